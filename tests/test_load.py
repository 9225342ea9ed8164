"""One client under load, and cancellation mid-flight: bounded, answered, nothing left over.

A shared client must answer every one of thousands of concurrent calls, never put more
than ``max_concurrency`` requests in flight, hand every socket back to the pool, and
leave no task behind, whether the calls finish or the caller cancels them half-way.
Pool state is read from aiohttp's connector (private attributes, on purpose: that is
where a leaked connection would show).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from datetime import date, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from convoso_async import Callback, CallbackPage, ConvosoClient, RetryPolicy, Stage
from convoso_async.testing import ConvosoEmulator, Faults

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005)


def connector_of(client: ConvosoClient) -> aiohttp.BaseConnector:
    session = client._transport._session
    assert session is not None
    connector = session.connector
    assert connector is not None
    return connector


def acquired(connector: aiohttp.BaseConnector) -> int:
    """Connections taken from the pool and not handed back."""
    return len(connector._acquired)  # type: ignore[attr-defined]


def pooled(connector: aiohttp.BaseConnector) -> int:
    """Idle keep-alive connections waiting in the pool."""
    return sum(len(conns) for conns in connector._conns.values())  # type: ignore[attr-defined]


def client_tasks() -> set[asyncio.Task[Any]]:
    """Tasks running the client's code (the emulator's server-side handlers excluded)."""
    return {
        task
        for task in asyncio.all_tasks()
        if task is not asyncio.current_task()
        and "convoso_async/_" in repr(getattr(task.get_coro(), "cr_code", None))
    }


def watch_arrivals(emu: ConvosoEmulator, count: int) -> asyncio.Event:
    """An event set once ``count`` requests have reached the emulator (and drawn a fault)."""
    arrived = asyncio.Event()
    plan = emu._plan
    draw = plan.draw
    seen = 0

    def counting_draw(path: str) -> Any:
        nonlocal seen
        seen += 1
        if seen >= count:
            arrived.set()
        return draw(path)

    plan.draw = counting_draw  # type: ignore[method-assign]
    return arrived


# --- 2,000 mixed calls through one client ---------------------------------------------------


async def test_two_thousand_mixed_calls_at_max_concurrency_50() -> None:
    rng = random.Random(2026)
    emu = ConvosoEmulator(records=3_000, seed=4, faults=Faults(latency=0.002))
    initial = len(emu.store)
    targets = sorted(emu.store.ids())
    rng.shuffle(targets)
    kinds = rng.choices(["search", "insert", "update", "delete"], [50, 20, 20, 10], k=2_000)
    mix = Counter(kinds)
    deletions = iter(targets[: mix["delete"]])
    survivors = targets[mix["delete"] :]
    when = datetime(2026, 3, 20, 9, 15, tzinfo=timezone(timedelta(hours=-5)))

    async with (
        emu,
        ConvosoClient(
            emu.auth_token, base_url=emu.base_url, retry=FAST, max_concurrency=50
        ) as client,
    ):

        def make(kind: str) -> Coroutine[Any, Any, Any]:
            calls = client.callbacks
            if kind == "search":
                return calls.search_page(
                    offset=rng.randrange(0, 2_500),
                    limit=rng.randint(1, 100),
                    stage=rng.choice([None, Stage.PENDING, Stage.COMPLETED]),
                )
            if kind == "insert":
                return calls.insert(
                    lead_id=str(rng.randrange(10_000, 99_999)),
                    recipient=rng.choice(["system", "personal"]),
                    callback_time=when,
                    comments="load test",
                )
            if kind == "update":
                return calls.update(rng.choice(survivors), comments=f"touched {rng.random()}")
            return calls.delete(next(deletions))

        results = await asyncio.gather(*(make(kind) for kind in kinds), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []

        connector = connector_of(client)
        assert acquired(connector) == 0  # every socket is back in the pool...
        assert 0 < pooled(connector) <= 50  # ...kept alive for reuse, within the bound
        assert client_tasks() == set()

    assert len(results) == 2_000
    assert len(emu.requests) == client.requests_sent == 2_000
    assert client.retries == 0
    assert Counter(r.endpoint for r in emu.requests) == mix
    assert emu.max_in_flight == 50  # the bound is used, and never exceeded
    by_kind: dict[str, list[Any]] = {kind: [] for kind in mix}
    for kind, result in zip(kinds, results, strict=True):
        by_kind[kind].append(result)
    assert all(isinstance(p, CallbackPage) and len(p.results) <= p.limit for p in by_kind["search"])
    assert all(new_id in emu.store for new_id in by_kind["insert"])
    assert len(set(by_kind["insert"])) == mix["insert"]
    assert all(isinstance(i, str) and i in emu.store for i in by_kind["update"])
    assert all(r is None for r in by_kind["delete"])
    assert not any(t in emu.store for t in targets[: mix["delete"]])
    assert len(emu.store) == initial + mix["insert"] - mix["delete"]
    assert client.closed
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- cancellation mid-flight ------------------------------------------------------------


async def _cancel_mid_flight(
    emu: ConvosoEmulator,
    walk: Callable[[ConvosoClient], Any],
    *,
    taken: int,
    arrivals: int,
) -> tuple[int, int]:
    """Run ``walk(client)`` (an async iterable of Callbacks) in a task until it has yielded
    ``taken`` records and ``arrivals`` requests reached the emulator, some of them
    hanging; cancel it; check that nothing is left. Returns (records, requests)."""
    got: list[Callback] = []
    enough = asyncio.Event()
    arrived = watch_arrivals(emu, arrivals)

    async with ConvosoClient(
        emu.auth_token, base_url=emu.base_url, retry=FAST, max_concurrency=8
    ) as client:

        async def consume() -> None:
            async for callback in walk(client):
                got.append(callback)
                if len(got) == taken:
                    enough.set()

        task = asyncio.create_task(consume())
        await enough.wait()
        await arrived.wait()
        connector = connector_of(client)
        assert acquired(connector) > 0  # requests are hanging on the emulator right now
        assert emu.in_flight > 0
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        assert acquired(connector) == 0
        assert client_tasks() == set()
        started = client.requests_sent
    # A request written just before the cancellation may reach the emulator just after
    # it; none may be started after it.
    await emu.close()
    assert client.requests_sent == started
    assert len(emu.requests) <= started
    assert asyncio.all_tasks() == {asyncio.current_task()}
    return len(got), len(emu.requests)


async def test_cancelling_a_search_walk_releases_every_connection() -> None:
    """Pages 1-3 answer, the next ones hang: cancelled with requests in flight."""
    emu = ConvosoEmulator(records=2_000, seed=6, faults=Faults(hang_seconds=10))
    await emu.start()
    emu.script([None, None, None, "hang", "hang", "hang", "hang"])
    records, requests = await _cancel_mid_flight(
        emu,
        lambda client: client.callbacks.search(page_size=100, concurrency=4),
        taken=300,
        arrivals=4,
    )
    assert records == 300
    assert 4 <= requests <= 3 + 4  # the clean pages, and at most `concurrency` hanging


async def test_cancelling_an_export_releases_every_connection() -> None:
    """The probe and two pages answer, the next pages hang: cancelled mid-window."""
    emu = ConvosoEmulator(records=2_000, seed=6, faults=Faults(hang_seconds=10))
    await emu.start()
    emu.script([None, None, None, "hang", "hang", "hang", "hang"])
    records, requests = await _cancel_mid_flight(
        emu,
        lambda client: client.callbacks.export(
            date(2026, 3, 1), date(2026, 3, 30), page_size=100, concurrency=2
        ),
        taken=200,
        arrivals=4,
    )
    assert records == 200
    assert 4 <= requests <= 3 + 4  # probe, 2 pages, at most max_concurrency // 2 hanging


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_walk_cancelled_while_a_page_hangs_resumes_from_next_offset(how: str) -> None:
    """A web handler's ``asyncio.timeout()`` (or a cancelled task) ends a walk while it
    waits for a page that hangs: ``next_offset`` is then where a new walk picks up, with
    no record lost or repeated, as after a break."""
    emu = ConvosoEmulator(records=700, seed=9, faults=Faults(hang_seconds=10))
    await emu.start()
    async with ConvosoClient(
        emu.auth_token, base_url=emu.base_url, retry=FAST, max_concurrency=8
    ) as client:
        full = [cb.id async for cb in client.callbacks.search(page_size=100)]
        assert len(full) == 700
        emu.script([None, None, "hang", "hang"])  # pages 0-1 answer, 2-3 hang
        got: list[str] = []
        enough = asyncio.Event()
        pager = client.callbacks.search(page_size=100, concurrency=2)

        async def consume() -> None:
            async for callback in pager:
                got.append(callback.id)
                if len(got) == 200:
                    enough.set()

        async def consume_until_timed_out() -> None:
            async with asyncio.timeout(None) as deadline:
                waiter = asyncio.create_task(enough.wait())
                waiter.add_done_callback(
                    lambda _: deadline.reschedule(asyncio.get_running_loop().time())
                )
                await consume()

        if how == "cancel":
            task = asyncio.create_task(consume())
            await enough.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(TimeoutError):
                await consume_until_timed_out()
        assert pager.next_offset == 200
        assert acquired(connector_of(client)) == 0
        assert client_tasks() == set()
        rest = [cb.id async for cb in client.callbacks.search(page_size=100, offset=200)]
    await emu.close()
    assert got + rest == full  # nothing lost, nothing twice
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- the rate limiter under load --------------------------------------------------------


async def test_rate_limited_calls_go_out_in_the_order_they_were_made() -> None:
    """Calls queued on one rate-limited client take their turns first come, first served.

    Every waiter used to sleep until the same next start and the first woken took it, so
    which call went next was a lottery redrawn at every turn, newcomers included: under
    sustained load a call could lose it for seconds (2.2 s, against a fair 80 ms, at 200
    requests/second and 16 slots) while later calls went, holding its slot all along.
    """
    emu = ConvosoEmulator(records=100, seed=8)
    async with (
        emu,
        ConvosoClient(
            emu.auth_token, base_url=emu.base_url, retry=FAST, max_concurrency=8, rate_limit=400
        ) as client,
    ):
        sent: list[int] = []
        post = client._transport.post

        async def recording_post(endpoint: str, form: Any, time_left: float | None = None) -> Any:
            sent.append(int(form["offset"]))
            return await post(endpoint, form, time_left)

        client._transport.post = recording_post  # type: ignore[method-assign]
        calls = [client.callbacks.search_page(offset=i, limit=1) for i in range(80)]
        pages = await asyncio.gather(*calls)
    assert [page.offset for page in pages] == list(range(80))
    assert sent == list(range(80))  # none overtaken by a call made after it
    assert len(emu.requests) == client.requests_sent == 80
