"""``client.callbacks.export()`` against the emulator on 127.0.0.1: past the cap, exactly once.

Stores are built once per module (construction is synchronous and seeded) and served
per test. Every test checks the export against the store itself, never against the
client's own view of it.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import os
import random
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convoso_async import ConvosoClient, PaginationLimitError, RetryPolicy, ServerError
from convoso_async import _export as export_mod
from convoso_async import _protocol as proto
from convoso_async._export import CallbackExport, ExportProgress, ExportWindow, SeenIds
from convoso_async._protocol import REACHABLE
from convoso_async.testing import ConvosoEmulator, Faults
from convoso_async.testing._store import DISMISSED, PENDING

from .samples import drain

START, END = date(2026, 3, 1), date(2026, 3, 30)
HOT = date(2026, 3, 10)


@pytest.fixture(scope="module")
def big() -> ConvosoEmulator:
    """70,000 records, 56,000 of them on one day: beyond the cap on that day alone."""
    return ConvosoEmulator(70_000, seed=11, hot_days={HOT: 56_000})


@pytest.fixture(scope="module")
def live() -> ConvosoEmulator:
    """The live dialect: ~2% MISSED stages, which no documented stage filter selects."""
    return ConvosoEmulator(60_000, seed=5, hot_days={HOT: 56_000}, live_dialect=True)


@pytest.fixture
def small() -> ConvosoEmulator:
    return ConvosoEmulator(3_000, seed=2)


def client_for(emu: ConvosoEmulator, **kwargs: Any) -> ConvosoClient:
    return ConvosoClient(emu.auth_token, base_url=emu.base_url, **kwargs)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def search_forms(emu: ConvosoEmulator) -> list[dict[str, str]]:
    return [r.form for r in emu.requests if r.endpoint == "search"]


async def test_exports_a_store_with_a_day_beyond_the_cap_exactly_once(
    big: ConvosoEmulator,
) -> None:
    async with big, client_for(big) as client:
        big.reset_stats()
        export = client.callbacks.export(START, END)
        ids = [callback.id async for callback in export]
    assert len(ids) == len(big.store) == 70_000
    assert set(ids) == set(big.store.ids())
    # The hot day was split by stage; every window fits the cap; windows partition days.
    hot = [w for w in export.windows if w.start == HOT]
    assert {w.stage for w in hot} <= {"COMPLETED", "PAST_DUE", "PENDING", "DISMISSED"}
    assert len(hot) == 4
    assert all(w.total <= REACHABLE for w in export.windows)
    assert sum(w.total for w in export.windows) == 70_000
    # Small days were merged: far fewer windows than days.
    assert len([w for w in export.windows if w.stage is None]) == 2
    # Request cost as documented: 1 + 30 day probes + 4 stage probes, then the pages.
    assert export.probes == 1 + 30 + 4
    pages = sum(-(-w.total // 5000) for w in export.windows)
    assert export.pages_fetched == pages
    assert len(search_forms(big)) == export.probes + pages


async def test_live_dialect_missed_records_are_fetched_not_lost(live: ConvosoEmulator) -> None:
    async with live, client_for(live) as client:
        export = client.callbacks.export(START, END)
        stages: dict[str, int] = {}
        ids = set()
        async for callback in export:
            ids.add(callback.id)
            stages[str(callback.stage)] = stages.get(str(callback.stage), 0) + 1
    assert ids == set(live.store.ids())
    assert stages["MISSED"] > 0
    missed = [w for w in export.windows if w.stage == "MISSED"]
    assert len(missed) == 1
    assert missed[0].start == HOT
    assert export.probes == 1 + 30 + 4 + 1  # the MISSED probe only because of the gap


async def test_a_gap_no_filter_reaches_is_a_typed_error_naming_it(
    live: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_mod, "EXTRA_STAGE_PARTS", ())
    hot_missed = sum(
        1
        for record in live.store.records()
        if record["stage"] == "MISSED" and record["callback_time"].startswith(str(HOT))
    )
    assert hot_missed > 0
    async with live, client_for(live) as client:
        with pytest.raises(PaginationLimitError) as caught:
            await drain(client.callbacks.export(START, END))
    message = str(caught.value)
    assert f"window {HOT}" in message
    assert f"a gap of {hot_missed} records" in message
    assert caught.value.total - caught.value.reachable == hot_missed


def _delete_before_split(
    emu: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, day: date, count: int
) -> list[str]:
    """Delete ``count`` of ``day``'s records when the planner first splits that day: after
    the probe that sent the day to the split, before the probes of its parts."""
    deleted: list[str] = []
    split = export_mod.CallbackExport._split

    async def delete_then_split(
        self: export_mod.CallbackExport, window: ExportWindow
    ) -> list[ExportWindow]:
        if window.start == day and window.stage is None and not deleted:
            on_day = [r["id"] for r in emu.store.records() if r["callback_time"][:10] == str(day)]
            for callback_id in on_day[:count]:
                assert emu.store.delete(callback_id)
                deleted.append(str(callback_id))
        return await split(self, window)

    monkeypatch.setattr(export_mod.CallbackExport, "_split", delete_then_split)
    return deleted


async def test_records_deleted_between_the_probes_of_a_split_are_no_gap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Records deleted after the day's probe and before its stage probes left the parts
    # short of the whole, and the export failed with "a gap of 5 records with a stage
    # no filter selects, beyond the cap and so out of reach": nothing was out of reach.
    monkeypatch.setattr(proto, "REACHABLE", 1_000)
    emu = ConvosoEmulator(3_000, seed=6, hot_days={HOT: 2_000})
    deleted = _delete_before_split(emu, monkeypatch, HOT, 5)
    async with emu, client_for(emu) as client:
        export = client.callbacks.export(START, END)
        ids = [callback.id async for callback in export]
    assert len(deleted) == 5
    assert sorted(ids) == sorted(emu.store.ids())
    assert len(ids) == 2_995
    # 1 + 30 days + 4 stages + MISSED (the parts fell short) + the day probed again.
    assert export.probes == 1 + 30 + 4 + 1 + 1
    assert sum(w.total for w in export.windows if w.start == HOT) == 2_000 - 5


async def test_a_recipient_gap_names_the_recipient_partitions(
    live: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A stage part split by recipient named each part by its stage: "its recipient
    # partitions (COMPLETED=10960, COMPLETED=11071)", not which recipient held what.
    monkeypatch.setattr(proto, "REACHABLE", 15_000)  # the hot day's COMPLETED is beyond
    async with live, client_for(live) as client:
        with pytest.raises(PaginationLimitError) as caught:
            await drain(client.callbacks.export(START, END))
    message = str(caught.value)
    parts = message.split("recipient partitions (")[1].split(")")[0]
    assert f"window {HOT} stage=COMPLETED holds" in message
    assert [p.split("=")[0] for p in parts.split(", ")] == ["System", "Personal"]
    counts = [int(p.split("=")[1]) for p in parts.split(", ")]
    assert sum(counts) == caught.value.reachable < caught.value.total  # USERONLY: the gap


@pytest.fixture(scope="module")
def huge() -> ConvosoEmulator:
    """One day of 270,000: even stage COMPLETED x recipient System is beyond the cap."""
    return ConvosoEmulator(270_000, seed=3, start_date=HOT, days=1, hot_days={HOT: 270_000})


async def test_the_narrowest_partition_beyond_the_cap_raises_naming_it(
    huge: ConvosoEmulator,
) -> None:
    async with huge, client_for(huge) as client:
        huge.reset_stats()
        with pytest.raises(PaginationLimitError) as caught:
            await drain(client.callbacks.export(HOT, HOT))
        # Planning failed before any page was walked: only limit=1 probes were sent.
        assert {f["limit"] for f in search_forms(huge)} == {"1"}
    assert f"window {HOT} stage=COMPLETED recipient=System" in str(caught.value)
    assert caught.value.total > REACHABLE


async def test_a_fixed_stage_is_split_by_recipient(huge: ConvosoEmulator) -> None:
    async with huge, client_for(huge) as client:
        export = client.callbacks.export(HOT, HOT, stage="PENDING")
        assert export.windows == []  # planned only when iterated
        ids = {c.id async for c in export}
    # The documented cost: the range, its one day, then 2 recipient probes (not 4 stages).
    assert export.probes == 1 + 1 + 2
    assert {w.recipient for w in export.windows} == {"System", "Personal"}
    assert all(w.stage is None for w in export.windows)
    assert len(ids) == sum(w.total for w in export.windows) > REACHABLE
    assert all(huge.store.get(i)["stage"] == "PENDING" for i in list(ids)[:500])  # type: ignore[index]


async def test_a_fixed_stage_and_recipient_beyond_the_cap_is_the_narrowest(
    huge: ConvosoEmulator,
) -> None:
    async with huge, client_for(huge) as client:
        with pytest.raises(PaginationLimitError, match="stage=COMPLETED recipient=System"):
            await drain(client.callbacks.export(HOT, HOT, stage="COMPLETED", recipient="system"))


async def test_progress_counts(small: ConvosoEmulator) -> None:
    seen: list[ExportProgress] = []
    async with small, client_for(small) as client:
        export = client.callbacks.export(START, END, page_size=500, progress=seen.append)
        count = sum([1 async for _ in export])
    assert count == 3_000
    last = seen[-1]
    assert last.records_done == last.records_expected == 3_000
    assert last.windows_done == last.windows_total == 1
    assert last.pages == 6
    assert last.probes == 1
    assert last.requests == len(small.requests) == 7
    done = [p.records_done for p in seen]
    assert done == sorted(done)
    assert len(set(done)) == 7
    assert export.progress == last
    # Pages are counted as they land, not when their window ends.
    pages = [p.pages for p in seen]
    assert pages == sorted(pages)
    in_window = [p.pages for p in seen if p.windows_done == 0 and p.records_done]
    assert len(in_window) == 6
    assert in_window[0] >= 1  # (and may run ahead: pages land before their records go)
    assert all(p.pages + p.probes <= p.requests for p in seen)


async def test_windows_run_concurrently_within_the_client_limit(big: ConvosoEmulator) -> None:
    big.faults = Faults(latency=0.01)
    try:
        async with big, client_for(big, max_concurrency=3) as client:
            big.reset_stats()
            export = client.callbacks.export(START, END, concurrency=3, page_size=2000)
            count = sum([1 async for _ in export])
            peak = big.max_in_flight
    finally:
        big.faults = None
    assert count == 70_000
    assert 2 <= peak <= 3


@pytest.mark.parametrize(("max_concurrency", "windows"), [(1, 1), (3, 1), (8, 2), (20, 5)])
def test_the_default_window_concurrency_is_a_quarter_of_the_client_at_least_one(
    max_concurrency: int, windows: int
) -> None:
    client = ConvosoClient("t", base_url="https://api.example/v1", max_concurrency=max_concurrency)
    assert client.callbacks.export(START, END).concurrency == windows


async def test_ids_are_deduplicated_across_windows() -> None:
    # A record rescheduled from the first window to the last while the export runs would
    # be fetched twice; the export hands it out once.
    emu = ConvosoEmulator(60_000, seed=8, hot_days={HOT: 56_000})
    store = emu.store
    ids = list(store.ids())
    by_time = sorted(ids, key=lambda i: store.get(i)["callback_time"])  # type: ignore[index]
    first, last = by_time[0], by_time[-1]
    late_minute = store.minute[store._row(last)]  # type: ignore[index]
    moved: list[int] = []

    def move(progress: ExportProgress) -> None:
        if progress.windows_done == 1 and not moved:
            moved.append(progress.records_done)
            store.update(first, minute=late_minute)

    async with emu, client_for(emu) as client:
        export = client.callbacks.export(START, END, progress=move, concurrency=1)
        got = [c.id async for c in export]
    assert moved
    assert store.get(first)["callback_time"][:10] == str(END)  # type: ignore[index]
    assert first in got[: moved[0]]  # exported with the first window, before it moved
    assert len(got) == len(set(got)) == 60_000
    assert set(got) == set(ids)


def test_seen_ids_are_compact_and_exact() -> None:
    seen = SeenIds()
    assert seen.add("100001")
    assert not seen.add("100001")
    assert seen.add("007")
    assert seen.add("7")
    assert not seen.add("007")
    assert seen.add("abc")
    assert not seen.add("abc")
    assert seen.add(str(10**17))
    assert seen.add("99999999999999999999")
    assert not seen.add("99999999999999999999")


def test_seen_ids_that_are_scattered_numbers_stay_small_and_exact() -> None:
    # 15-digit ids spread at random would each take an 8 KiB chunk: 20,000 of them took
    # 184 MiB. Past a few chunks the store sees they are sparse and keeps a set instead.
    rng = random.Random(11)
    ids = [str(rng.randrange(10**14, 10**15)) for _ in range(20_000)]
    seen = SeenIds()
    tracemalloc.start()
    try:
        assert all(seen.add(i) for i in ids)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert not any(seen.add(i) for i in ids)  # those held in chunks before the move too
    assert len(seen) == len(ids)
    assert seen.add("007")
    assert seen.add("7")
    assert not seen.add("7")


def test_seen_ids_that_are_dense_keep_their_chunks_despite_outliers() -> None:
    seen = SeenIds()
    dense = [str(n) for n in range(5_000_000, 5_300_000)]
    outliers = [str(10**12 + 10**7 * n) for n in range(200)]
    assert all(seen.add(i) for i in dense + outliers)
    assert not any(seen.add(i) for i in outliers + dense)
    assert len(seen) == 300_200
    assert not seen._other  # the 300,000 dense ids are bits, not strings


class Crash(Exception):
    """Raised from a progress callback: the process dies mid-export."""


async def test_before_checkpoint_runs_once_per_window_and_only_with_a_checkpoint(
    big: ConvosoEmulator, tmp_path: Path
) -> None:
    # It asks the caller to make a window's records durable before the checkpoint vouches
    # for them; with no checkpoint it would only cost the caller a flush per window.
    async with big, client_for(big) as client:
        for checkpoint in (None, tmp_path / "export.ckpt.json"):
            called: list[ExportWindow] = []
            export = client.callbacks.export(
                START, END, checkpoint=checkpoint, before_checkpoint=called.append
            )
            assert len([c async for c in export]) == len(big.store)
            assert called == ([] if checkpoint is None else export.windows)
            assert len(export.windows) > 1


async def _export_until_windows(
    emu: ConvosoEmulator,
    path: Path,
    stop_after: int,
    store: list[str],
    *,
    start: date = START,
    end: date = END,
    grow: Any = None,
    **kw: Any,
) -> CallbackExport:
    """Run a checkpointed export of ``start..end`` into ``store``, growing the data with
    ``grow`` at each report, until ``stop_after`` windows are done; the export, as the
    crash left it."""

    def progress(p: ExportProgress) -> None:
        if grow is not None:
            grow(p)
        if p.windows_done >= stop_after:
            raise Crash

    async with client_for(emu) as client:
        export = client.callbacks.export(
            start,
            end,
            checkpoint=path,
            progress=progress,
            before_checkpoint=lambda window: {"records": len(store)},
            **kw,
        )
        with pytest.raises(Crash):
            await drain(export, store)
    return export


async def test_resume_skips_completed_windows_and_yields_the_same_set(
    big: ConvosoEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "export.ckpt.json"
    got: list[str] = []
    async with big:
        await _export_until_windows(big, path, 3, got, page_size=4000)
        saved = read_json(path)
        assert saved is not None
        assert len(saved["done"]) == 3
        done = [ExportWindow.from_json(saved["windows"][i]) for i in saved["done"]]
        # What the checkpoint vouches for: records up to the last completed window.
        got = got[: saved["state"]["records"]]
        big.reset_stats()
        async with client_for(big) as client:
            export = client.callbacks.export(START, END, checkpoint=path, page_size=4000)
            assert export.resume_state == saved["state"]
            assert export.resume_windows_done == 3
            async for callback in export:
                got.append(callback.id)
        forms = search_forms(big)
    assert len(got) == len(set(got)) == len(big.store)
    assert set(got) == set(big.store.ids())
    # The rerun probed nothing and fetched no completed window.
    assert all(f["limit"] != "1" for f in forms)
    for window in done:
        assert not any(
            f["start_date"] == str(window.start)
            and f["end_date"] == str(window.end)
            and f.get("stage") == window.stage
            for f in forms
        )
    assert export.pages_fetched == len(forms)
    assert not path.exists()  # a completed export removes its checkpoint


async def test_a_checkpoint_of_other_filters_is_refused(
    small: ConvosoEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt.json"
    async with small:
        await _export_until_windows(small, path, 0, [], page_size=4000)
    async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(ValueError, match="belongs to a different export"):
            client.callbacks.export(START, END, stage="PENDING", checkpoint=path)
    path.write_text("{not json")
    async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(ValueError, match="not valid JSON"):
            client.callbacks.export(START, END, checkpoint=path)
    path.write_text("[]")
    async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(ValueError, match="not a convoso-async export checkpoint"):
            client.callbacks.export(START, END, checkpoint=path)


async def test_keep_checkpoint_leaves_the_completed_checkpoint_for_the_caller(
    small: ConvosoEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "ckpt.json"
    async with small, client_for(small) as client:
        export = client.callbacks.export(START, END, checkpoint=path, keep_checkpoint=True)
        got = [callback.id async for callback in export]
        assert len(got) == len(small.store)
        saved = read_json(path)
        assert sorted(saved["done"]) == list(range(len(export.windows)))
        small.reset_stats()
        again = client.callbacks.export(START, END, checkpoint=path)
        assert again.resume_windows_done == len(export.windows)
        assert [callback async for callback in again] == []  # all done: nothing re-sent
        assert again.progress.windows_done == again.progress.windows_total == len(export.windows)
        assert search_forms(small) == []
    assert not path.exists()  # the default removes it once complete


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTSUP])
async def test_a_checkpoint_is_written_where_fsync_is_not_supported(
    small: ConvosoEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    # Some FUSE, SMB and Docker-for-Mac mounts refuse fsync (EINVAL, ENOTSUP). The output
    # writer tolerated it, the checkpoint writer did not: an export with checkpoint= (and
    # the CLI's --checkpoint) failed with that OSError at its first checkpoint.
    def unsupported(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", unsupported)
    path = tmp_path / "ckpt.json"
    async with small, client_for(small) as client:
        export = client.callbacks.export(START, END, checkpoint=path, keep_checkpoint=True)
        got = [callback.id async for callback in export]
    assert sorted(got) == sorted(small.store.ids())
    assert sorted(read_json(path)["done"]) == list(range(len(export.windows)))
    assert names_in(tmp_path) == ["ckpt.json"]  # no temporary file left


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_a_checkpoint_whose_sync_fails_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failing disk (EIO) may have lost the bytes: the old checkpoint stays, the error
    # is raised, and the temporary file is removed.
    path = tmp_path / "ckpt.json"
    path.write_text("old")

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match=r"\[Errno 5\]"):
        export_mod.write_atomically(path, "new")
    assert path.read_text() == "old"
    assert names_in(tmp_path) == ["ckpt.json"]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda saved: saved.pop("windows"), "KeyError"),
        (lambda saved: saved.update(done=["x"]), "ValueError"),
        (lambda saved: saved.update(done=7), "TypeError"),
        (lambda saved: saved["windows"][0].update(start="soon"), "ValueError"),
        (lambda saved: saved.update(done=[len(saved["windows"])]), "do not match its plan"),
        (lambda saved: saved.update(records_done=-1), "do not match its plan"),
        # resume_state is a Mapping or None: a list here was an AttributeError in the CLI.
        (lambda saved: saved.update(state=["jsonl", 10]), "its state is not an object"),
        # A window its search would refuse failed the export partway, after other requests.
        (lambda saved: saved["windows"][-1].update(stage="SOON"), "stage must be one of"),
        (lambda saved: saved["windows"][-1].update(recipient="all"), "recipient must be"),
        (lambda saved: saved["windows"][-1].update(end="2000-01-01"), "ends before it starts"),
    ],
)
async def test_a_damaged_checkpoint_is_refused_before_any_request(
    small: ConvosoEmulator, tmp_path: Path, damage: Any, why: str
) -> None:
    path = tmp_path / "ckpt.json"
    async with small:
        await _export_until_windows(small, path, 0, [], page_size=4000)
    saved = read_json(path)
    damage(saved)
    path.write_text(json.dumps(saved))
    async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(ValueError, match="is damaged") as info:
            client.callbacks.export(START, END, checkpoint=path, page_size=4000)
        assert client.requests_sent == 0
    assert why in str(info.value)


def _tasks() -> set[asyncio.Task[Any]]:
    """The client's tasks (the emulator's server-side handlers are not ours to count)."""
    return {
        t
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
        and "convoso_async/_" in getattr(t.get_coro(), "cr_code", t.get_coro).__repr__()
    }


async def test_leaving_early_cancels_every_task(big: ConvosoEmulator) -> None:
    async with big, client_for(big) as client:
        before = _tasks()
        export = client.callbacks.export(START, END, concurrency=4, page_size=1000)
        async with export:
            for _ in range(10):
                await anext(export)
            assert export.progress.windows_total > 0
        assert _tasks() == before
        with pytest.raises(RuntimeError, match="only once"):
            await anext(export._iterate())


async def test_a_failing_window_raises_the_typed_error_and_cleans_up(
    small: ConvosoEmulator,
) -> None:
    retry = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002)
    async with small, client_for(small, retry=retry) as client:
        before = _tasks()
        # The probe passes, then the first page fails past the retry budget.
        small.script([None, "status_503", "status_503"])
        with pytest.raises(ServerError):
            await drain(client.callbacks.export(START, END, page_size=500))
        assert _tasks() == before


async def test_an_export_failed_under_anext_refuses_to_go_on_rather_than_end_empty(
    small: ConvosoEmulator,
) -> None:
    retry = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002)
    async with small, client_for(small, retry=retry) as client:
        small.script([None, "status_503", "status_503"])
        export = client.callbacks.export(START, END, page_size=500)
        with pytest.raises(ServerError):
            await anext(export)
        with pytest.raises(RuntimeError, match=r"ended with ServerError.*export\(\) again"):
            await drain(export)


async def test_an_empty_range_is_one_window_costing_a_probe_and_a_page(
    small: ConvosoEmulator,
) -> None:
    # Planned like any range under the cap, so the plan covers it even when empty.
    async with small, client_for(small) as client:
        export = client.callbacks.export(date(2027, 1, 1), date(2027, 1, 31))
        assert [c async for c in export] == []
        assert export.windows == [ExportWindow(date(2027, 1, 1), date(2027, 1, 31))]
        assert len(small.requests) == 2
    assert export.progress.windows_done == export.progress.windows_total == 1
    assert export.progress.records_expected == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_date": "2026-03-05", "end_date": "2026-03-01"}, "after end_date"),
        ({"start_date": "2026-03-01", "end_date": None}, "both start_date and end_date"),
        ({"start_date": START, "end_date": END, "concurrency": 0}, "concurrency"),
        ({"start_date": START, "end_date": END, "page_size": 5001}, "page_size"),
        ({"start_date": START, "end_date": END, "page_size": 0}, "page_size"),
        ({"start_date": START, "end_date": END, "page_size": "10"}, "page_size"),
        ({"start_date": START, "end_date": END, "stage": "LOST"}, "stage"),
    ],
)
async def test_invalid_arguments_fail_at_the_call(kwargs: dict[str, Any], match: str) -> None:
    async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
        with pytest.raises(ValueError, match=match):
            client.callbacks.export(**kwargs)


def test_window_text_and_json_round_trip() -> None:
    window = ExportWindow(START, END, "PENDING", "System", 12)
    assert str(window) == "2026-03-01..2026-03-30 stage=PENDING recipient=System"
    assert ExportWindow.from_json(window.to_json()) == window
    assert ExportWindow.from_json(window.to_json()).total == 12


# --- windows that grow beyond the cap between planning and walking --------------------

GROW_START, GROW_END = date(2026, 3, 1), date(2026, 3, 3)
GROW_HOT = date(2026, 3, 2)


def _minute(day: date) -> int:
    return day.toordinal() * 1440 + 600


def _grow_on_plan(emu: ConvosoEmulator, *days: date, stage: int = PENDING) -> Any:
    """A progress callback that adds one callback (``stage``, System) on each of ``days``
    at the first report after the plan is made, before any window is walked."""
    store = emu.store
    grown: list[ExportProgress] = []

    def progress(p: ExportProgress) -> None:
        if p.windows_total and not grown:
            grown.append(p)
            for day in days:
                store.insert(lead_id=store.lead[0], recipient=0, minute=_minute(day), stage=stage)

    return progress


@pytest.fixture
def at_cap() -> ConvosoEmulator:
    """60,000 records over three days, the middle one holding exactly the cap."""
    return ConvosoEmulator(
        60_000, seed=3, start_date=GROW_START, days=3, hot_days={GROW_HOT: REACHABLE}
    )


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_day_that_grows_beyond_the_cap_after_planning_is_split_and_exported_once(
    at_cap: ConvosoEmulator, concurrency: int
) -> None:
    grow = _grow_on_plan(at_cap, GROW_HOT)
    seen: list[ExportProgress] = []

    def progress(p: ExportProgress) -> None:
        grow(p)
        seen.append(p)

    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(
            GROW_START, GROW_END, progress=progress, concurrency=concurrency
        )
        got = [c async for c in export]
        forms = search_forms(at_cap)
    ids = [c.id for c in got]
    assert len(ids) == len(set(ids)) == len(at_cap.store) == 60_001
    assert set(ids) == set(at_cap.store.ids())
    days = [c.callback_time.date() for c in got]  # type: ignore[union-attr]
    assert days == sorted(days)
    # The plan shows the split: the hot day by stage, the other days as planned.
    assert [(w.start, w.stage) for w in export.windows] == [
        (GROW_START, None),
        *[(GROW_HOT, s) for s in export_mod.STAGE_PARTS],
        (GROW_END, None),
    ]
    assert all(w.total <= REACHABLE for w in export.windows)
    assert sum(w.total for w in export.windows) == 60_001
    # Progress followed the re-plan: windows and the expected count, done at the end.
    assert seen[0].windows_total == 3
    assert seen[0].records_expected == 60_000
    last = seen[-1]
    assert last.windows_done == last.windows_total == len(export.windows) == 6
    assert last.records_done == last.records_expected == 60_001
    assert [p.windows_done for p in seen] == sorted(p.windows_done for p in seen)
    # Cost: the plan's 1 + 3 probes, 4 stage probes for the re-plan; the page that found
    # the day beyond the cap counts as a page.
    assert export.probes == 1 + 3 + 4
    assert export.pages_fetched == len(forms) - export.probes
    assert export.pages_fetched == 1 + sum(-(-w.total // 5000) for w in export.windows)


def _grow_in_walk(emu: ConvosoEmulator, day: date, after: int) -> Any:
    """A progress callback that adds one callback on ``day`` once ``after`` records are
    done: inside that day's walk when it follows a smaller day."""
    store = emu.store
    grown: list[int] = []

    def progress(p: ExportProgress) -> None:
        if p.records_done >= after and not grown:
            grown.append(p.records_done)
            store.insert(lead_id=store.lead[0], recipient=0, minute=_minute(day))

    return progress


async def test_a_day_that_grows_beyond_the_cap_during_its_walk_is_split_and_finished(
    at_cap: ConvosoEmulator,
) -> None:
    """The record lands once the hot day has given pages: its search ends at the cap and
    raises; the day is split and its parts walked as that one window, and only the
    record it missed is new."""
    store = at_cap.store
    progress = _grow_in_walk(at_cap, GROW_HOT, after=10_000)
    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(GROW_START, GROW_END, progress=progress, concurrency=1)
        ids = [c.id async for c in export]
    assert len(store) == 60_001
    assert len(ids) == len(set(ids)) == len(store)
    assert set(ids) == set(store.ids())
    # Still three windows: the hot day's parts were walked as that window, now 55,001.
    assert [(w.start, w.stage, w.total) for w in export.windows][1] == (GROW_HOT, None, 55_001)
    assert len(export.windows) == 3
    assert export.progress.records_done == export.progress.records_expected == 60_001
    assert export.progress.windows_done == export.progress.windows_total == 3


async def test_a_day_that_keeps_growing_through_its_re_plan_is_exported_whole(
    at_cap: ConvosoEmulator,
) -> None:
    """One record a page from mid-walk on: the stage probes of the re-plan count more than
    the total that sent the day to it, which is growth, not a gap."""
    store = at_cap.store
    before = set(store.ids())

    def progress(p: ExportProgress) -> None:
        if p.records_done >= 10_000 and len(store) < 60_100:
            store.insert(lead_id=store.lead[0], recipient=0, minute=_minute(GROW_HOT))

    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(GROW_START, GROW_END, progress=progress, concurrency=1)
        ids = [c.id async for c in export]
    assert len(ids) == len(set(ids))
    assert set(ids) >= before  # what was there from the start, whatever arrived since


async def test_a_part_split_again_inside_a_grown_day_keeps_the_counts_true(
    at_cap: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = at_cap.store
    hot = str(GROW_HOT)
    pending = sum(
        1 for r in store.records() if r["stage"] == "PENDING" and r["callback_time"][:10] == hot
    )
    progress = _grow_in_walk(at_cap, GROW_HOT, after=10_000)
    replan = export_mod.CallbackExport._replan

    async def replan_then_grow(
        self: export_mod.CallbackExport, window: ExportWindow, total: int
    ) -> list[ExportWindow]:
        parts = await replan(self, window, total)
        if window.stage is None:  # the day was just split: its PENDING part outgrows the cap
            for n in range(REACHABLE + 1 - pending):
                store.insert(lead_id=store.lead[0], recipient=n % 2, minute=_minute(GROW_HOT))
        return parts

    monkeypatch.setattr(export_mod.CallbackExport, "_replan", replan_then_grow)
    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(GROW_START, GROW_END, progress=progress, concurrency=1)
        ids = [c.id async for c in export]
    assert len(ids) == len(set(ids)) == len(store)
    assert export.progress.records_done == export.progress.records_expected == len(store)
    assert sum(w.total for w in export.windows) == len(store)


async def test_a_resume_after_a_day_grew_during_its_walk_repeats_no_record(
    at_cap: ConvosoEmulator, tmp_path: Path
) -> None:
    """The checkpoint must not vouch for a part of the grown day while the output holds
    records of its other parts: a resume would give those again."""
    path = tmp_path / "export.ckpt.json"
    grow = _grow_in_walk(at_cap, GROW_HOT, after=10_000)
    got: list[str] = []
    async with at_cap:
        await _export_until_windows(
            at_cap, path, 2, got, start=GROW_START, end=GROW_END, grow=grow, concurrency=1
        )
        del got[read_json(path)["state"]["records"] :]  # the output, cut to the checkpoint
        async with client_for(at_cap) as client:
            await drain(client.callbacks.export(GROW_START, GROW_END, checkpoint=path), got)
    assert len(got) == len(set(got)) == len(at_cap.store)


async def test_merged_days_that_grow_beyond_the_cap_are_planned_again_day_by_day() -> None:
    day1, day2 = date(2026, 3, 1), date(2026, 3, 2)
    emu = ConvosoEmulator(REACHABLE, seed=4, start_date=day1, days=2, hot_days={day1: 30_000})
    grow = _grow_on_plan(emu, day2)
    async with emu, client_for(emu) as client:
        export = client.callbacks.export(day1, day2, progress=grow)
        ids = [c.id async for c in export]
    assert len(ids) == len(set(ids)) == len(emu.store) == REACHABLE + 1
    assert set(ids) == set(emu.store.ids())
    assert [(w.start, w.end, w.stage, w.total) for w in export.windows] == [
        (day1, day1, None, 30_000),
        (day2, day2, None, 25_001),
    ]
    assert export.probes == 1 + 2  # the plan's whole-range probe, then one per day
    assert export.progress.windows_done == export.progress.windows_total == 2


async def test_a_part_that_grows_beyond_the_cap_too_is_split_again(
    at_cap: ConvosoEmulator,
) -> None:
    store = at_cap.store
    pending = sum(
        1
        for r in store.records()
        if r["stage"] == "PENDING" and r["callback_time"].startswith(str(GROW_HOT))
    )
    grow = _grow_on_plan(at_cap, GROW_HOT)
    split: list[ExportProgress] = []

    def progress(p: ExportProgress) -> None:
        grow(p)
        if p.windows_total > 3 and not split:
            # The hot day was just split by stage; its PENDING part, not walked yet,
            # grows beyond the cap too (half System, half Personal).
            split.append(p)
            for n in range(REACHABLE + 1 - pending):
                store.insert(lead_id=store.lead[0], recipient=n % 2, minute=_minute(GROW_HOT))

    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(GROW_START, GROW_END, progress=progress)
        ids = [c.id async for c in export]
    assert split
    assert len(ids) == len(set(ids)) == len(store)
    assert set(ids) == set(store.ids())
    hot = [(w.stage, w.recipient) for w in export.windows if w.start == GROW_HOT]
    assert hot == [
        ("COMPLETED", None),
        ("PAST_DUE", None),
        ("PENDING", "System"),
        ("PENDING", "Personal"),
        ("DISMISSED", None),
    ]
    assert export.progress.records_done == export.progress.records_expected == len(store)
    assert export.progress.windows_done == export.progress.windows_total == 7


async def test_a_re_planned_export_checkpoints_the_parts_and_resumes_from_them(
    at_cap: ConvosoEmulator, tmp_path: Path
) -> None:
    path = tmp_path / "export.ckpt.json"
    grow = _grow_on_plan(at_cap, GROW_HOT)
    got: list[str] = []
    async with at_cap:
        # Crash once the first day and two of the hot day's stages are done.
        export = await _export_until_windows(
            at_cap, path, 3, got, start=GROW_START, end=GROW_END, grow=grow
        )
        saved = read_json(path)
        # The checkpoint holds the re-planned windows, and its done indices point at them.
        windows = [ExportWindow.from_json(w) for w in saved["windows"]]
        assert windows == export.windows
        assert len(windows) == 6
        assert saved["done"] == [0, 1, 2]
        assert [(w.start, w.stage) for w in windows[1:3]] == [
            (GROW_HOT, "COMPLETED"),
            (GROW_HOT, "PAST_DUE"),
        ]
        got = got[: saved["state"]["records"]]
        assert saved["records_done"] == len(got)
        at_cap.reset_stats()
        async with client_for(at_cap) as client:
            resumed = client.callbacks.export(GROW_START, GROW_END, checkpoint=path)
            async for callback in resumed:
                got.append(callback.id)
        forms = search_forms(at_cap)
    assert len(got) == len(set(got)) == len(at_cap.store) == 60_001
    assert set(got) == set(at_cap.store.ids())
    assert all(f["limit"] != "1" for f in forms)  # no probes: the plan came back
    assert not any(f.get("stage") in ("COMPLETED", "PAST_DUE") for f in forms)
    assert resumed.progress.windows_done == resumed.progress.windows_total == 6
    assert not path.exists()


async def test_the_narrowest_partition_growing_beyond_the_cap_raises_naming_it() -> None:
    # Exactly the cap of PENDING System callbacks on one day: planned as one window.
    emu = ConvosoEmulator(1, seed=6, start_date=HOT, days=1)
    store = emu.store
    (first,) = store.records()
    already = first["stage"] == "PENDING" and first["recipient"] == "System"
    for _ in range(REACHABLE - already):
        store.insert(lead_id=store.lead[0], recipient=0, minute=_minute(HOT))
    grow = _grow_on_plan(emu, HOT)
    async with emu, client_for(emu) as client:
        export = client.callbacks.export(
            HOT, HOT, stage="PENDING", recipient="system", progress=grow
        )
        with pytest.raises(PaginationLimitError) as caught:
            await drain(export)
    message = str(caught.value)
    assert f"window {HOT} stage=PENDING recipient=System" in message
    assert "narrowest partition" in message
    assert "use client.callbacks.export()" not in message
    assert caught.value.total == REACHABLE + 1


# --- the plan partitions the range: empty days and empty parts are windows too --------


def _covered(windows: list[ExportWindow]) -> list[tuple[date, str | None]]:
    """(day, stage) for every day each window covers, in plan order: a partition of the
    range lists each day once (stage None), or a split day once per stage part."""
    return [
        (date.fromordinal(o), w.stage)
        for w in windows
        for o in range(w.start.toordinal(), w.end.toordinal() + 1)
    ]


async def test_empty_days_beside_a_split_day_are_windows_their_new_records_exported() -> None:
    # Only Mar 2 holds records (beyond the cap); Mar 1 and Mar 3..4 are empty when probed
    # and get a record each once the plan is made, before any window is walked.
    day1, day2, day3, day4 = (date(2026, 3, d) for d in (1, 2, 3, 4))
    emu = ConvosoEmulator(56_000, seed=1, start_date=day2, days=1, hot_days={day2: 56_000})
    grow = _grow_on_plan(emu, day1, day4)
    async with emu, client_for(emu) as client:
        export = client.callbacks.export(day1, day4, progress=grow)
        ids = [c.id async for c in export]
    assert len(emu.store) == 56_002
    assert len(ids) == len(set(ids)) == len(emu.store)
    assert set(ids) == set(emu.store.ids())
    assert [(w.start, w.end, w.stage, w.total) for w in export.windows if w.stage is None] == [
        (day1, day1, None, 0),
        (day3, day4, None, 0),  # a run of empty days at the edge is one window
    ]
    assert export.progress.windows_done == export.progress.windows_total == 6
    # The plan's totals: the records added since are done but were not expected.
    assert export.progress.records_expected == 56_000
    assert export.progress.records_done == 56_002


@pytest.fixture
def no_dismissed() -> ConvosoEmulator:
    """One day beyond the cap holding no DISMISSED callback: a stage part probed empty."""
    emu = ConvosoEmulator(63_000, seed=1, start_date=HOT, days=1)
    store = emu.store
    for record in list(store.records()):
        if record["stage"] == "DISMISSED":
            store.delete(record["id"])
    assert len(store) > REACHABLE
    return emu


async def test_a_stage_part_probed_empty_is_a_window_and_its_new_record_exported(
    no_dismissed: ConvosoEmulator,
) -> None:
    store = no_dismissed.store
    grow = _grow_on_plan(no_dismissed, HOT, stage=DISMISSED)
    async with no_dismissed, client_for(no_dismissed) as client:
        export = client.callbacks.export(HOT, HOT, progress=grow)
        ids = [c.id async for c in export]
    assert len(ids) == len(set(ids)) == len(store)
    assert set(ids) == set(store.ids())
    assert [(w.stage, w.total == 0) for w in export.windows] == [
        (stage, stage == "DISMISSED") for stage in export_mod.STAGE_PARTS
    ]
    assert export.progress.windows_done == export.progress.windows_total == 4


async def test_the_plan_partitions_the_range_day_by_day_and_part_by_part() -> None:
    # Mar 1 (outside the store) and Mar 3 are empty, beside split days; Mar 5..9 are a
    # run of small and empty days, Mar 9 outside the store too.
    days = [date(2026, 3, d) for d in range(1, 10)]
    emu = ConvosoEmulator(
        113_000,
        seed=9,
        start_date=days[1],
        days=7,
        hot_days={days[1]: 56_000, days[2]: 0, days[3]: 56_000, days[4]: 0, days[6]: 0},
    )
    async with emu, client_for(emu) as client:
        export = client.callbacks.export(days[0], days[-1])
        ids = {c.id async for c in export}
    assert ids == set(emu.store.ids())
    assert _covered(export.windows) == [
        (days[0], None),
        *[(days[1], s) for s in export_mod.STAGE_PARTS],
        (days[2], None),
        *[(days[3], s) for s in export_mod.STAGE_PARTS],
        *[(day, None) for day in days[4:]],
    ]
    assert [(w.start, w.end) for w in export.windows if w.stage is None] == [
        (days[0], days[0]),
        (days[2], days[2]),
        (days[4], days[8]),  # the empty days folded into the small day between them
    ]
    assert sum(w.total for w in export.windows) == len(emu.store)


# A day as the planner's probes see it: a total under the cap, or the four stage totals of
# a day beyond it (zeros among them, and parts at the cap, which are not split further).
_DAY = st.one_of(
    st.sampled_from([0, 0, 1, 30_000, REACHABLE]),
    st.tuples(*[st.sampled_from([0, 30_000, 50_000, REACHABLE])] * 4).filter(
        lambda t: sum(t) > REACHABLE
    ),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(_DAY, min_size=1, max_size=10))
def test_any_plan_partitions_the_range(specs: list[int | tuple[int, ...]]) -> None:
    start = date(2026, 3, 1)
    end = date.fromordinal(start.toordinal() + len(specs) - 1)

    def total(window: ExportWindow) -> int:
        spec = specs[(window.start - start).days : (window.end - start).days + 1]
        if window.stage is not None:
            (day,) = spec
            assert isinstance(day, tuple)
            return day[export_mod.STAGE_PARTS.index(window.stage)]
        return sum(d if isinstance(d, int) else sum(d) for d in spec)

    async def probe(windows: list[ExportWindow]) -> list[ExportWindow]:
        return [ExportWindow(w.start, w.end, w.stage, w.recipient, total(w)) for w in windows]

    async def plan() -> list[ExportWindow]:
        async with ConvosoClient("t", base_url="http://127.0.0.1:9/v1") as client:
            export = client.callbacks.export(start, end)
            export._probe = probe  # type: ignore[method-assign]
            return await export._plan()

    windows = asyncio.run(plan())
    assert _covered(windows) == [
        (date.fromordinal(start.toordinal() + i), stage)
        for i, spec in enumerate(specs)
        for stage in (export_mod.STAGE_PARTS if isinstance(spec, tuple) else [None])
    ]
    assert all(w.total == total(w) <= REACHABLE for w in windows)
    # Adjacent unsplit windows could not have been merged: an empty day joins its run.
    for a, b in itertools.pairwise(windows):
        if a.stage is None and b.stage is None:
            assert a.total + b.total > REACHABLE


# --- found by mutating _export.py: what its tests did not pin ------------------------


@pytest.mark.parametrize(
    ("fixed", "finest"),
    [
        # A day beyond the cap is split by stage; each stage part must fit.
        ({"campaign_id": None, "recipient": "system"}, ("stage",)),
        # With a stage fixed, a day is split by recipient instead.
        ({"campaign_id": None, "stage": "PENDING"}, ("recipient",)),
        ({"list_id": None}, ("stage", "recipient")),
    ],
)
async def test_every_request_of_an_export_carries_its_fixed_filters(
    small: ConvosoEmulator,
    monkeypatch: pytest.MonkeyPatch,
    fixed: dict[str, str | None],
    finest: tuple[str, ...],
) -> None:
    # A probe or a walk that dropped a fixed filter counted (or fetched) the records of
    # every campaign, list or recipient: the plan's totals, and so its splits and the
    # progress's records_expected, were wrong, or the export gave records it should not.
    store = small.store
    first = next(iter(store.records()))
    # The first record's campaign or list; stage and recipient as records spell them.
    fixed = {name: value or first[name] for name, value in fixed.items()}
    wanted = [r for r in store.records() if all(r[k] == v for k, v in fixed.items())]
    days: dict[str, int] = {}
    parts: dict[tuple[str, ...], int] = {}
    for record in wanted:
        day = record["callback_time"][:10]
        days[day] = days.get(day, 0) + 1
        key = (day, *(record[name] for name in finest))
        parts[key] = parts.get(key, 0) + 1
    # A cap the finest parts fit but some days do not: the plan probes days and splits.
    cap = max(parts.values())
    assert max(days.values()) > cap
    monkeypatch.setattr(proto, "REACHABLE", cap)
    async with small, client_for(small) as client:
        small.reset_stats()
        export = client.callbacks.export(START, END, **fixed)  # type: ignore[arg-type]
        ids = [c.id async for c in export]
        forms = search_forms(small)
    assert sorted(ids) == sorted(r["id"] for r in wanted)
    assert any(w.stage or w.recipient for w in export.windows)  # some day was split
    sent = proto.filter_form(fixed)  # the fields and values a search form gives them
    assert forms
    for form in forms:
        assert {field: form.get(field) for field in sent} == sent, form
    assert export.progress.records_expected == export.progress.records_done == len(wanted)


async def test_the_narrowest_partition_beyond_the_cap_is_named_with_the_fixed_filters(
    small: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The way out the message gives is to narrow the export: it says what the export
    # already fixes, or the window it names is the whole account's.
    monkeypatch.setattr(proto, "REACHABLE", 0)  # the first record's partition is beyond
    first = next(iter(small.store.records()))
    day, stage, recipient = first["callback_time"][:10], first["stage"], first["recipient"]
    campaign = first["campaign_id"]
    async with small, client_for(small) as client:
        export = client.callbacks.export(
            day, day, campaign_id=campaign, stage=stage, recipient=recipient
        )
        with pytest.raises(PaginationLimitError) as caught:
            await drain(export)
    named = f"stage={stage} recipient={recipient.capitalize()} campaign_id={campaign}"
    assert f"window {day} {named}" in str(caught.value)


async def test_progress_counts_the_requests_and_retries_sent_since_the_export_was_made(
    small: ConvosoEmulator,
) -> None:
    retry = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with small, client_for(small, retry=retry) as client:
        # Earlier calls on the same client, one of them retried, are not the export's.
        small.script(["status_503", None])
        await client.callbacks.search_page(start_date=START, end_date=END, limit=1)
        assert (client.requests_sent, client.retries) == (2, 1)
        small.reset_stats()
        export = client.callbacks.export(START, END, page_size=1000)
        small.script([None, "status_503", None])  # the probe, then the first page twice
        count = sum([1 async for _ in export])
        sent = len(small.requests)
    assert count == 3_000
    assert sent == 1 + 1 + 3
    assert export.progress.requests == sent
    assert export.progress.retries == 1


def test_window_concurrency_is_capped_at_the_clients() -> None:
    client = ConvosoClient("t", base_url="https://api.example/v1", max_concurrency=3)
    assert client.callbacks.export(START, END, concurrency=10).concurrency == 3


async def test_probes_use_every_slot_and_walks_half_of_them(big: ConvosoEmulator) -> None:
    # The module docstring: a day's probes go out as many at a time as max_concurrency
    # lets; the walk's windows together fill half the client's slots (here one window of
    # two page requests), so memory stays bounded by the pages in flight.
    big.faults = Faults(latency=0.01)
    peaks: list[int] = []

    def progress(p: ExportProgress) -> None:
        if p.windows_total and not peaks:  # the plan is made, no page requested yet
            peaks.append(big.max_in_flight)
            big.reset_stats()

    try:
        async with big, client_for(big, max_concurrency=4) as client:
            big.reset_stats()
            export = client.callbacks.export(
                START, END, concurrency=1, page_size=2000, progress=progress
            )
            assert export.concurrency == 1
            count = 0
            async for _ in export:
                count += 1
                if count == 30_000:
                    break
            peaks.append(big.max_in_flight)
    finally:
        big.faults = None
    assert peaks[0] == 4  # 30 day probes, 4 at a time
    assert 1 <= peaks[1] <= 2


async def test_a_failing_probe_cancels_the_probes_still_waiting(
    small: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The plan's day probes run max_concurrency at a time; once one fails the export
    # fails, and the probes not sent yet are cancelled, not sent for nothing.
    monkeypatch.setattr(proto, "REACHABLE", 1_000)  # the range is probed day by day
    retry = RetryPolicy(attempts=1)
    async with small, client_for(small, retry=retry, max_concurrency=1) as client:
        before = _tasks()
        small.script([None, None, "status_503"])  # the range, the first day, the second
        with pytest.raises(ServerError):
            await drain(client.callbacks.export(START, END))
        assert [r.form["start_date"] for r in small.requests] == [
            str(START),
            str(START),
            "2026-03-02",
        ]
        assert _tasks() == before


def test_a_checkpoint_is_synced_holding_all_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fsync makes durable what the OS holds: text still in Python's buffer when it runs
    # would be lost by a crash after the rename, leaving a truncated checkpoint.
    text = json.dumps({"padding": "x" * 1000})
    synced: list[int] = []

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fsync", fsync)
    export_mod.write_atomically(tmp_path / "ckpt.json", text)
    assert synced == [len(text)]
    assert (tmp_path / "ckpt.json").read_text() == text


async def test_a_re_plan_is_in_the_checkpoint_when_progress_first_shows_it(
    at_cap: ConvosoEmulator, tmp_path: Path
) -> None:
    # "the parts replace it in windows (and in the checkpoint)": at once, not only when
    # the next window is done.
    path = tmp_path / "export.ckpt.json"
    grow = _grow_on_plan(at_cap, GROW_HOT)
    seen: list[tuple[int, int, list[ExportWindow]]] = []

    def progress(p: ExportProgress) -> None:
        grow(p)
        if p.windows_total > 3 and not seen:
            saved = read_json(path)
            windows = [ExportWindow.from_json(w) for w in saved["windows"]]
            seen.append((p.windows_done, len(saved["done"]), windows))

    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(
            GROW_START, GROW_END, progress=progress, checkpoint=path, concurrency=1
        )
        await drain(export)
    ((windows_done, saved_done, windows),) = seen
    assert windows_done == saved_done == 1  # the first day, and no part of the hot day
    assert windows == export.windows
    assert [(w.start, w.stage) for w in windows[1:5]] == [
        (GROW_HOT, s) for s in export_mod.STAGE_PARTS
    ]


async def test_a_resume_re_planned_before_its_first_window_ends_keeps_the_stored_state(
    at_cap: ConvosoEmulator, tmp_path: Path
) -> None:
    # The state the hook stored says where the output stands; a checkpoint written by the
    # resume before any of its windows ends (a re-plan) must still say it.
    path = tmp_path / "export.ckpt.json"
    got: list[str] = []
    async with at_cap:
        await _export_until_windows(
            at_cap, path, 1, got, start=GROW_START, end=GROW_END, concurrency=1
        )
        state = read_json(path)["state"]
        assert state == {"records": len(got)} != {"records": 0}
        store = at_cap.store
        store.insert(lead_id=store.lead[0], recipient=0, minute=_minute(GROW_HOT))

        def crash_on_re_plan(p: ExportProgress) -> None:
            if p.windows_total > 3:
                raise Crash

        async with client_for(at_cap) as client:
            resumed = client.callbacks.export(
                GROW_START,
                GROW_END,
                checkpoint=path,
                progress=crash_on_re_plan,
                before_checkpoint=lambda window: {"records": -1},  # never reached
            )
            assert resumed.resume_state == state
            with pytest.raises(Crash):
                await drain(resumed)
    saved = read_json(path)
    assert len(saved["windows"]) == 6  # the hot day re-planned and saved
    assert saved["state"] == state


def test_seen_ids_check_their_density_as_the_chunk_count_doubles_from_64() -> None:
    # The check counts the bits of every chunk, so it runs as their count doubles (64,
    # 128, ...), not at each new chunk: that would cost time quadratic in the chunks.
    chunk = 1 << 16  # ids per chunk
    scattered = SeenIds()
    for key in range(64):
        assert scattered.add(str(key * chunk))
    assert not scattered._other  # 64 chunks: not checked yet
    assert scattered.add(str(64 * chunk))  # a 65th chunk: checked, and far too sparse
    assert len(scattered._other) == len(scattered) == 65

    dense = SeenIds()
    for key in range(64):  # 130 ids a chunk: over the 128 (16 per KiB) that pay for one
        for n in range(130):
            dense.add(str(key * chunk + n))
    for key in range(64, 128):  # one id a chunk: sparse on average, from the 67th on
        dense.add(str(key * chunk))
    assert not dense._other  # not checked between 64 and 128 chunks
    dense.add(str(128 * chunk))  # the 129th: checked, and below 16 ids per KiB
    assert len(dense._other) == len(dense) == 64 * 130 + 65


@pytest.mark.parametrize(("grown", "replans"), [("before_its_walk", 1), ("during_its_walk", 2)])
async def test_a_re_plan_that_gives_the_window_back_is_walked_once_more_then_raises(
    at_cap: ConvosoEmulator, monkeypatch: pytest.MonkeyPatch, grown: str, replans: int
) -> None:
    # Probes that keep finding the window under the cap while its walk finds it beyond
    # (its days shrank again, or the API counts two ways): the export must end with the
    # search's error, not re-plan and walk the window for ever.
    calls: list[ExportWindow] = []

    async def gives_it_back(
        self: export_mod.CallbackExport, window: ExportWindow, total: int
    ) -> list[ExportWindow]:
        calls.append(window)
        assert len(calls) <= replans, "re-planned again"
        return [window]

    monkeypatch.setattr(export_mod.CallbackExport, "_replan", gives_it_back)
    if grown == "before_its_walk":
        progress = _grow_on_plan(at_cap, GROW_HOT)
    else:
        progress = _grow_in_walk(at_cap, GROW_HOT, after=10_000)
    async with at_cap, client_for(at_cap) as client:
        export = client.callbacks.export(GROW_START, GROW_END, progress=progress, concurrency=1)
        with pytest.raises(PaginationLimitError):
            await drain(export)
    assert [w.start for w in calls] == [GROW_HOT] * replans
