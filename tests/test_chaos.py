"""Chaos exports: ~10% of responses faulted, and still exactly the store, once each.

The CI-sized runs (60,000 records over 20 days: two windows, since the whole range is
beyond the 55,000 cap) take about a second each. The full-size run of the issue (100,000
records, latency up to 200 ms) is marked ``chaos``: ``nox -s chaos`` runs it
(``pytest -m chaos``); a plain ``pytest`` skips it.

Every fault kind the emulator has for a search is scripted once up front, so each run
meets all of them whatever the random draws; then the seeded rates take over.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from convoso_async import (
    CallbackExport,
    ConvosoClient,
    RetryPolicy,
    ServerError,
    TransportError,
)
from convoso_async import cli as cli_module
from convoso_async._export import ExportProgress
from convoso_async.testing import ConvosoEmulator, Faults

from .samples import drain

START, END = date(2026, 3, 1), date(2026, 3, 20)
SEARCH_FAULTS = ["status_429", "status_500", "status_502", "status_503", "status_504",
                 "reset", "cut_body", "truncated_json"]  # fmt: skip
RESILIENT = RetryPolicy(attempts=6, initial_wait=0.01, max_wait=0.2)


def chaos(latency: float, seed: int) -> Faults:
    """10% of responses faulted, spread over every transient kind; 429s say retry now."""
    return Faults(
        status_429=0.02, status_500=0.01, status_502=0.01, status_503=0.01, status_504=0.01,
        reset=0.015, cut_body=0.01, truncated_json=0.015,
        retry_after="0.01", latency=(0.0, latency), seed=seed,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _seeded_jitter() -> Iterator[None]:
    state = random.getstate()
    random.seed(77)
    yield
    random.setstate(state)


@pytest.fixture
def full_size(request: pytest.FixtureRequest) -> None:
    """Skip unless the run selected the chaos marker (``pytest -m chaos``)."""
    expression = request.config.getoption("markexpr") or ""
    if "chaos" not in expression or "not chaos" in expression:
        pytest.skip("full-size chaos run: nox -s chaos (pytest -m chaos)")


@pytest.fixture
def store_60k() -> ConvosoEmulator:
    """Per test: an emulator serves one event loop, and pytest-asyncio gives each test its own."""
    return ConvosoEmulator(60_000, seed=7, start_date=START, days=20)


@pytest.fixture
def store_3k() -> ConvosoEmulator:
    return ConvosoEmulator(3_000, seed=7, start_date=START, days=20)


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def client_tasks() -> set[asyncio.Task[Any]]:
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and "convoso_async/_" in repr(getattr(task.get_coro(), "cr_code", None))
    }


async def chaos_export(
    emu: ConvosoEmulator, *, latency: float, page_size: int, seed: int
) -> tuple[list[str], CallbackExport]:
    emu.reset_stats()
    emu.faults = chaos(latency, seed)
    emu.script([step for fault in SEARCH_FAULTS for step in (fault, None)])
    async with ConvosoClient(
        emu.auth_token, base_url=emu.base_url, retry=RESILIENT, max_concurrency=8
    ) as client:
        export = client.callbacks.export(START, END, page_size=page_size)
        ids = [callback.id async for callback in export]
        assert client_tasks() == set()
    faulted = sum(1 for r in emu.requests if r.fault is not None)
    assert client.retries == export.progress.retries == faulted
    return ids, export


def assert_exactly_the_store(emu: ConvosoEmulator, ids: list[str], export: CallbackExport) -> None:
    assert len(ids) == len(emu.store)  # no loss...
    assert len(set(ids)) == len(ids)  # ...no duplicate...
    assert set(ids) == set(emu.store.ids())  # ...and nothing else
    faulted = [r.fault for r in emu.requests if r.fault is not None]
    assert set(faulted) == set(SEARCH_FAULTS)
    assert len(faulted) / len(emu.requests) > 0.07
    # Every fault cost exactly one more request: nothing was given up, nothing repeated.
    assert len(emu.requests) == export.probes + export.pages_fetched + len(faulted)
    clean = [r for r in emu.requests if r.fault is None]
    assert sum(1 for r in clean if r.form["limit"] == "1") == export.probes
    assert sum(1 for r in clean if r.form["limit"] != "1") == export.pages_fetched
    assert len(export.windows) >= 2


async def test_a_chaos_export_yields_exactly_the_store(store_60k: ConvosoEmulator) -> None:
    async with store_60k:
        ids, export = await chaos_export(store_60k, latency=0.005, page_size=1000, seed=5)
    assert_exactly_the_store(store_60k, ids, export)
    assert len(ids) == 60_000
    assert export.probes == 1 + 20  # the whole range, then each day
    assert [w.total for w in export.windows] == [54_000, 6_000]


@pytest.mark.chaos
async def test_a_full_size_chaos_export_yields_exactly_the_store(full_size: None) -> None:
    """The issue's run: 100,000 records over 20 days, 10% faulted, latency up to 200 ms."""
    emu = ConvosoEmulator(100_000, seed=13, start_date=START, days=20)
    async with emu:
        ids, export = await chaos_export(emu, latency=0.2, page_size=500, seed=21)
    assert_exactly_the_store(emu, ids, export)
    assert len(ids) == 100_000
    assert export.probes == 1 + 20


# --- past the retry budget: the typed error, and no partial output -------------------------


async def test_an_export_against_a_down_api_stops_when_the_budget_is_spent(
    store_3k: ConvosoEmulator,
) -> None:
    """Budget 10 allows two retries (RETRY_COST 5): the first probe is tried 3 times,
    although attempts would allow 6, and the export raises ServerError."""
    policy = RetryPolicy(attempts=6, initial_wait=0.001, max_wait=0.002, retry_budget=10)
    async with store_3k:
        store_3k.reset_stats()
        store_3k.faults = Faults(status_503=1.0)
        async with ConvosoClient(
            store_3k.auth_token, base_url=store_3k.base_url, retry=policy
        ) as client:
            with pytest.raises(ServerError):
                async for _ in client.callbacks.export(START, END):
                    pass
            assert client_tasks() == set()
    assert len(store_3k.requests) == 3


async def test_an_export_that_loses_the_api_mid_way_raises_and_cleans_up(
    store_60k: ConvosoEmulator,
) -> None:
    """After the first page arrives every request resets: TransportError once attempts are
    spent, with the records already yielded and no task left behind."""
    taken: list[str] = []
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)

    def outage_after_first_page(progress: ExportProgress) -> None:
        if progress.records_done and not store_60k.faults.reset:
            store_60k.faults = Faults(reset=1.0)

    async with store_60k:
        store_60k.reset_stats()
        store_60k.faults = Faults()
        async with ConvosoClient(
            store_60k.auth_token, base_url=store_60k.base_url, retry=policy
        ) as client:
            export = client.callbacks.export(
                START, END, page_size=1000, progress=outage_after_first_page
            )
            with pytest.raises(TransportError):
                await drain(export, taken)
            assert client_tasks() == set()
    assert 1000 <= len(taken) < 60_000
    assert len(set(taken)) == len(taken)
    resets = [r for r in store_60k.requests if r.fault == "reset"]
    assert len(resets) >= 3  # one page's three attempts at least


# --- the CLI -------------------------------------------------------------------------------


def cli_export(emu: ConvosoEmulator, output: Path, *extra: str) -> list[str]:
    return [
        *("export", "--start-date", START.isoformat(), "--end-date", END.isoformat()),
        *("--base-url", emu.base_url, "--output", str(output), "--quiet", *extra),
    ]


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's token from the environment, and CI-short retry waits."""
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", ConvosoEmulator(0).auth_token)
    policy = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.005)
    monkeypatch.setattr(cli_module, "ConvosoClient", functools.partial(ConvosoClient, retry=policy))


async def test_the_cli_exits_non_zero_and_leaves_no_file_when_the_api_is_down(
    store_3k: ConvosoEmulator,
    cli_env: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = tmp_path / "callbacks.jsonl"
    async with store_3k:
        store_3k.reset_stats()
        store_3k.faults = Faults(status_503=1.0)
        code = await asyncio.to_thread(cli_module.main, cli_export(store_3k, output))
    assert code == 1
    assert "error: ServerError" in capsys.readouterr().err
    assert not output.exists()
    assert listing(tmp_path) == []  # no temporary file left either
    assert len(store_3k.requests) == 4  # the first probe, tried `attempts` times


async def test_the_cli_exits_non_zero_and_leaves_no_file_when_the_api_fails_mid_export(
    store_60k: ConvosoEmulator,
    cli_env: None,
    tmp_path: Path,
) -> None:
    """Probes and the first pages answer, then everything is 503: records were already
    written to the temporary file, which must not become the output."""
    output = tmp_path / "callbacks.jsonl"
    async with store_60k:
        store_60k.reset_stats()
        store_60k.faults = Faults(status_503=1.0)
        store_60k.script([None] * (21 + 3))  # every probe, then three pages
        code = await asyncio.to_thread(
            cli_module.main, cli_export(store_60k, output, "--page-size", "1000")
        )
    assert code == 1
    assert not output.exists()
    assert listing(tmp_path) == []
    assert sum(1 for r in store_60k.requests if r.fault is None) == 24


async def test_the_cli_writes_exactly_the_store_through_chaos(
    store_60k: ConvosoEmulator,
    cli_env: None,
    tmp_path: Path,
) -> None:
    output = tmp_path / "callbacks.jsonl"
    async with store_60k:
        store_60k.reset_stats()
        store_60k.faults = chaos(0.002, seed=3)
        store_60k.script([step for fault in SEARCH_FAULTS for step in (fault, None)])
        code = await asyncio.to_thread(
            cli_module.main, cli_export(store_60k, output, "--page-size", "2000")
        )
    assert code == 0
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 60_000
    assert set(ids) == set(store_60k.store.ids())
    assert {r.fault for r in store_60k.requests} >= set(SEARCH_FAULTS)
    assert listing(tmp_path) == ["callbacks.jsonl"]
