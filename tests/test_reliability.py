"""Retry discipline, the storm guard, the deadline and the insert rule, against the emulator.

Every test runs the real client over real HTTP on 127.0.0.1 and counts what the emulator
saw (``emu.requests``, with arrival times), so a claim about backoff or resends is checked
on the wire, not on the client's own bookkeeping. Jitter is drawn from the global
``random`` module by tenacity; it is seeded per test, so every run is the same.
"""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest

from convoso_async import (
    ConvosoClient,
    ConvosoError,
    MalformedResponseError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from convoso_async._retry import RetryBudget
from convoso_async._transport import MAX_BODY_BYTES
from convoso_async.testing import ConvosoEmulator, Faults

from .conftest import raw_server

INSERT_PATH = "/callbacks/insert"


@pytest.fixture(autouse=True)
def _seeded_jitter() -> Iterator[None]:
    state = random.getstate()
    random.seed(20260305)
    yield
    random.setstate(state)


@pytest.fixture
async def emu() -> AsyncIterator[ConvosoEmulator]:
    async with ConvosoEmulator(records=500, seed=3) as emulator:
        yield emulator


def client_for(emu: ConvosoEmulator, retry: RetryPolicy, **kwargs: Any) -> ConvosoClient:
    return ConvosoClient(emu.auth_token, base_url=emu.base_url, retry=retry, **kwargs)


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[tuple[int, float]]:
    """(attempt number, wait before the next attempt) of every INFO retry log line."""
    return [
        (record.args[1], record.args[4])  # type: ignore[index]
        for record in caplog.records
        if record.name == "convoso_async" and "retrying in" in record.getMessage()
    ]


def insert_kwargs(lead_id: str = "12345") -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "recipient": "system",
        "callback_time": "2026-03-05 02:30 PM",
        "callback_time_zone": -7,
    }


# --- backoff: exponential, full jitter, capped ------------------------------------------


async def test_backoff_is_exponential_with_full_jitter_and_capped(
    emu: ConvosoEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """40 calls against an API that is down: 5 retries each, waits drawn from
    [0, min(max_wait, initial * 2**(n-1))], all distinct, growing, and never above the cap."""
    caplog.set_level(logging.INFO, logger="convoso_async")
    emu.faults = Faults(status_503=1.0)
    policy = RetryPolicy(attempts=6, initial_wait=0.004, max_wait=0.02, retry_budget=None)
    async with client_for(emu, policy, max_concurrency=40) as client:
        results = await asyncio.gather(
            *(client.callbacks.search_page(limit=1) for _ in range(40)), return_exceptions=True
        )
    assert all(isinstance(r, ServerError) and r.status == 503 for r in results)
    assert len(emu.requests) == 40 * 6
    assert client.requests_sent == 240
    assert client.retries == 200

    waits = retry_waits(caplog)
    assert len(waits) == 200
    by_attempt: dict[int, list[float]] = {n: [] for n in range(1, 6)}
    for attempt, wait in waits:
        by_attempt[attempt].append(wait)
    assert {n: len(w) for n, w in by_attempt.items()} == {1: 40, 2: 40, 3: 40, 4: 40, 5: 40}
    for n, values in by_attempt.items():
        ceiling = min(0.02, 0.004 * 2 ** (n - 1))
        assert all(0 <= w <= ceiling for w in values), (n, max(values))
        assert len(set(values)) == 40  # full jitter: no two callers wait alike
    means = [sum(by_attempt[n]) / 40 for n in range(1, 6)]
    # Exponential growth up to the cap: the mean of U(0, c) is c/2 -> 2, 4, 8, 10, 10 ms.
    assert means[0] < means[1] < means[2]
    assert means[0] == pytest.approx(0.002, rel=0.35)
    assert means[2] == pytest.approx(0.008, rel=0.35)
    assert means[4] == pytest.approx(0.010, rel=0.35)
    assert max(by_attempt[4] + by_attempt[5]) > 0.015  # the cap is reached, not exceeded


async def test_the_request_timeline_follows_the_logged_waits(
    emu: ConvosoEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    """One call, five 503s: each resend reaches the server no earlier than its logged wait."""
    caplog.set_level(logging.INFO, logger="convoso_async")
    emu.script(["status_503"] * 5)
    policy = RetryPolicy(attempts=6, initial_wait=0.02, max_wait=0.06, retry_budget=None)
    async with client_for(emu, policy) as client:
        page = await client.callbacks.search_page(limit=3)
    assert len(page.results) == 3
    assert [r.fault for r in emu.requests] == ["status_503"] * 5 + [None]
    waits = [w for _, w in retry_waits(caplog)]
    assert len(waits) == 5
    gaps = [b.time - a.time for a, b in zip(emu.requests, emu.requests[1:], strict=False)]
    for gap, wait in zip(gaps, waits, strict=True):
        assert gap >= wait - 0.002
    assert all(w <= 0.06 for w in waits)


async def test_the_retries_counter_counts_only_retries_under_concurrency(
    emu: ConvosoEmulator,
) -> None:
    emu.script(["status_503"] * 40)
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002, retry_budget=None)
    async with client_for(emu, policy, max_concurrency=40) as client:
        await asyncio.gather(*(client.callbacks.search_page(limit=1) for _ in range(40)))
    assert len(emu.requests) == client.requests_sent == 80
    assert client.retries == 40


# --- Retry-After --------------------------------------------------------------------------


async def test_retry_after_seconds_is_honoured_on_the_wire(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(retry_after="0.25")
    emu.script(["status_429", "status_429"])
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=5.0, retry_budget=None)
    async with client_for(emu, policy) as client:
        await client.callbacks.search_page(limit=1)
    times = [r.time for r in emu.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.25
    assert times[2] - times[1] >= 0.25
    assert times[2] - times[0] < 1.0  # honoured, not padded with the backoff


async def test_retry_after_is_capped_at_max_wait_on_the_wire(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(retry_after=3600)
    emu.script(["status_429"])
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.15, retry_budget=None)
    started = time.monotonic()
    async with client_for(emu, policy) as client:
        await client.callbacks.search_page(limit=1)
    gap = emu.requests[1].time - emu.requests[0].time
    assert 0.15 <= gap < 0.6
    assert time.monotonic() - started < 1.0


async def test_retry_after_as_an_http_date_is_honoured_up_to_the_cap(
    emu: ConvosoEmulator,
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    emu.faults = Faults(retry_after=format_datetime(later, usegmt=True))
    emu.script(["status_429"])
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.15, retry_budget=None)
    async with client_for(emu, policy) as client:
        await client.callbacks.search_page(limit=1)
    gap = emu.requests[1].time - emu.requests[0].time
    assert 0.15 <= gap < 0.6  # the date was read (else ~1 ms of backoff), then capped


async def test_a_429_past_the_attempts_reports_the_servers_retry_after(
    emu: ConvosoEmulator,
) -> None:
    emu.faults = Faults(status_429=1.0, retry_after="0.01")
    policy = RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.05, retry_budget=None)
    async with client_for(emu, policy) as client:
        with pytest.raises(RateLimitError) as info:
            await client.callbacks.search_page(limit=1)
    assert info.value.retry_after == pytest.approx(0.01)
    assert len(emu.requests) == 4


# --- concurrent 429s: back off, do not stampede ------------------------------------------


async def _wave_of_429s(
    emu: ConvosoEmulator, retry_after: str | None, policy: RetryPolicy
) -> tuple[list[float], list[float]]:
    """20 concurrent searches whose first requests all get 429: (first, second) wave
    arrival times, relative to the first request."""
    emu.faults = Faults(retry_after=retry_after)
    emu.script(["status_429"] * 20)
    async with client_for(emu, policy, max_concurrency=20) as client:
        pages = await asyncio.gather(*(client.callbacks.search_page(limit=2) for _ in range(20)))
    assert all(len(p.results) == 2 for p in pages)
    assert [r.fault for r in emu.requests] == ["status_429"] * 20 + [None] * 20
    t0 = emu.requests[0].time
    times = [r.time - t0 for r in emu.requests]
    return times[:20], times[20:]


async def test_concurrent_429s_without_retry_after_spread_over_the_jitter_window(
    emu: ConvosoEmulator,
) -> None:
    """The timeline: 20 requests at once, all 429; the resends spread over ~initial_wait."""
    # A 0.5 s window, not 0.1 s: on a loaded machine the loop can stall for ~0.1 s, and
    # every timer due in the stall fires at its end, so a 0.1 s window was seen to collapse
    # into 2-3 instants (3 of 10 slots, or the last resend 0.21 s in). The checks keep
    # their proportions to the window; max_wait stays 10x above it.
    policy = RetryPolicy(attempts=3, initial_wait=0.5, max_wait=5.0, retry_budget=None)
    first, second = await _wave_of_429s(emu, None, policy)
    # The upper bounds leave a loaded machine 0.1-0.2 s of slack: they are there to catch
    # waits of the order of max_wait (5 s), not to time the event loop.
    assert max(first) < 0.1  # the first wave arrived together
    assert min(second) >= max(0.0, min(first))
    spread = max(second) - min(second)
    assert spread >= 0.25  # full jitter over [0, 0.5): not one instant
    assert len({int(t * 20) for t in second}) >= 5  # resends fall in >= 5 of 50 ms slots
    assert max(second) < max(first) + 0.5 + 0.2


async def test_concurrent_429s_wait_at_least_retry_after(emu: ConvosoEmulator) -> None:
    """The timeline: 20 requests at once, all 429 with Retry-After 0.2 s; no resend
    arrives sooner than 0.2 s after the 429 it answers."""
    policy = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=1.0, retry_budget=None)
    first, second = await _wave_of_429s(emu, "0.2", policy)
    assert max(first) < 0.05
    assert min(second) - max(first) >= 0.2 - 0.05
    for sent, resent in zip(sorted(first), sorted(second), strict=True):
        assert resent - sent >= 0.2


async def test_concurrent_429s_with_retry_after_do_not_resend_in_one_burst(
    emu: ConvosoEmulator,
) -> None:
    policy = RetryPolicy(attempts=3, initial_wait=0.05, max_wait=1.0, retry_budget=None)
    first, second = await _wave_of_429s(emu, "0.2", policy)
    assert min(second) - max(first) >= 0.2 - 0.05
    assert max(second) - min(second) >= 0.02  # the resends spread over the jitter window


# --- attempts per request never exceed the policy -----------------------------------------


async def test_no_request_is_tried_more_than_attempts_times(emu: ConvosoEmulator) -> None:
    """150 searches and 50 inserts, each tagged by lead_id, under 45% mixed faults."""
    emu.faults = Faults(
        status_429=0.1, status_500=0.05, status_503=0.1, reset=0.1, truncated_json=0.1,
        retry_after=0, seed=8,
    )  # fmt: skip
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.004, retry_budget=None)
    async with client_for(emu, policy, max_concurrency=25) as client:
        calls = [client.callbacks.search_page(lead_id=f"9{i:04d}", limit=1) for i in range(150)]
        calls += [client.callbacks.insert(**insert_kwargs(f"8{i:04d}")) for i in range(50)]
        results = await asyncio.gather(*calls, return_exceptions=True)
    per_call = Counter(r.form["lead_id"] for r in emu.requests)
    assert len(per_call) == 200
    assert max(per_call.values()) == 3
    assert sum(per_call.values()) == len(emu.requests) == client.requests_sent
    searches_spent = sum(1 for i in range(150) if per_call[f"9{i:04d}"] == 3)
    assert searches_spent > 0
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures  # some calls ran out of attempts...
    assert all(isinstance(f, RateLimitError | ServerError | TransportError | MalformedResponseError)
               for f in failures)  # fmt: skip
    # ...and no insert was resent after a failure that may have been processed.
    for i in range(50):
        sent = [r for r in emu.requests if r.form["lead_id"] == f"8{i:04d}"]
        assert all(r.fault == "status_429" for r in sent[:-1])


# --- storm guard: the retry budget -------------------------------------------------------


async def _storm(emu: ConvosoEmulator, policy: RetryPolicy, calls: int = 200) -> list[Any]:
    async with client_for(emu, policy, max_concurrency=50) as client:
        return await asyncio.gather(
            *(client.callbacks.search_page(limit=1) for _ in range(calls)), return_exceptions=True
        )


async def test_retry_budget_stops_a_storm_when_the_api_is_down(emu: ConvosoEmulator) -> None:
    """200 concurrent calls, all 503, budget 50: 50 / RETRY_COST = 10 retries, then none."""
    emu.faults = Faults(status_503=1.0)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, retry_budget=50)
    results = await _storm(emu, policy)
    assert all(isinstance(r, ServerError) for r in results)
    assert len(emu.requests) == 200 + 50 // RetryBudget.RETRY_COST == 210


async def test_transport_failures_drain_the_budget_twice_as_fast(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(reset=1.0)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, retry_budget=50)
    results = await _storm(emu, policy)
    assert all(isinstance(r, TransportError) for r in results)
    assert len(emu.requests) == 200 + 50 // RetryBudget.TRANSPORT_COST == 205


async def test_without_a_budget_a_storm_multiplies_the_load(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(status_503=1.0)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, retry_budget=None)
    results = await _storm(emu, policy)
    assert all(isinstance(r, ServerError) for r in results)
    assert len(emu.requests) == 200 * 3


async def test_successes_refill_the_budget_after_an_outage(emu: ConvosoEmulator) -> None:
    """Budget 10 = two retries. After the outage drains it, 10 successes refund 10 tokens,
    so the next failure may retry again."""
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002, retry_budget=10)
    async with client_for(emu, policy) as client:
        emu.faults = Faults(status_503=1.0)
        for _ in range(3):
            with pytest.raises(ServerError):
                await client.callbacks.search_page(limit=1)
        assert len(emu.requests) == 3 + 2  # two retries, then the budget is spent
        emu.faults = Faults()
        for _ in range(10):
            await client.callbacks.search_page(limit=1)
        emu.reset_stats()
        emu.script(["status_503", "status_503"])
        await client.callbacks.search_page(limit=1)
    assert len(emu.requests) == 3


# --- deadline ------------------------------------------------------------------------------


async def test_deadline_cuts_a_hanging_attempt_short(emu: ConvosoEmulator) -> None:
    """The client timeout is 30 s, the server hangs 30 s; the 0.3 s deadline wins."""
    emu.faults = Faults(hang=1.0, hang_seconds=30)
    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.002, deadline=0.3)
    async with client_for(emu, policy, timeout=30.0) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out"):
            await client.callbacks.search_page(limit=1)
        elapsed = time.monotonic() - started
    # The upper bound is there to catch the 30 s timeout winning, not to time the loop:
    # 0.5 s of slack for a loaded machine.
    assert 0.3 <= elapsed < 0.3 + 0.5
    assert len(emu.requests) == 1


async def test_deadline_bounds_the_total_time_across_attempts(emu: ConvosoEmulator) -> None:
    """Each attempt takes 0.1 s and fails; attempts=50 would take 5 s, the 0.35 s deadline
    allows at most four."""
    emu.faults = Faults(status_503=1.0, latency=0.1)
    policy = RetryPolicy(attempts=50, initial_wait=0.001, max_wait=0.002, deadline=0.35)
    async with client_for(emu, policy) as client:
        started = time.monotonic()
        with pytest.raises((ServerError, TransportError)):
            await client.callbacks.search_page(limit=1)
        elapsed = time.monotonic() - started
    # The bound catches the 5 s of attempts=50, not the loop's latency (the request count
    # below checks the attempts): 0.5 s of slack for a loaded machine.
    assert elapsed < 0.35 + 0.5
    assert 2 <= len(emu.requests) <= 4  # retried, and stopped (2 when the loop runs late)


async def test_deadline_counts_the_time_a_call_waits_for_a_slot(emu: ConvosoEmulator) -> None:
    """One slot, a 0.2 s server, a 0.3 s deadline, three calls at once: the second is sent
    with what is left of its deadline after 0.2 s queued and times out; the third is still
    queued when its deadline passes and fails unsent. No call outlives its deadline."""
    emu.faults = Faults(latency=0.2)
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, deadline=0.3)
    async with client_for(emu, policy, max_concurrency=1) as client:

        async def timed() -> tuple[float, BaseException | None]:
            started = time.monotonic()
            try:
                await client.callbacks.search_page(limit=1)
            except ConvosoError as error:
                return time.monotonic() - started, error
            return time.monotonic() - started, None

        outcomes = await asyncio.gather(timed(), timed(), timed())
    assert outcomes[0][1] is None
    assert isinstance(outcomes[1][1], TransportError)
    queued_out = outcomes[2][1]
    assert isinstance(queued_out, TransportError)
    assert not queued_out.sent
    assert "deadline passed" in str(queued_out)
    assert len(emu.requests) == 2
    assert max(elapsed for elapsed, _ in outcomes) < 0.3 + 0.15


async def test_an_attempt_started_at_the_deadline_is_not_unbounded(
    emu: ConvosoEmulator,
) -> None:
    emu.faults = Faults(hang=1.0, hang_seconds=0.6)
    policy = RetryPolicy(attempts=1, deadline=1.0)
    async with client_for(emu, policy, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(TransportError):
            await client._transport.post("callbacks/search", {"limit": "1"}, 0.0)
        elapsed = time.monotonic() - started
    assert elapsed < 0.2 + 0.1  # no time left: fail now, never wait past the timeout


# --- no duplicate dials ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "error", "store_delta"),
    [
        ("drop_after_process", TransportError, 1),
        ("cut_body", TransportError, 1),
        ("truncated_json", MalformedResponseError, 1),
        ("reset", TransportError, 0),
        ("status_500", ServerError, 0),
        ("status_502", ServerError, 0),
        ("status_503", ServerError, 0),
        ("status_504", ServerError, 0),
    ],
)
async def test_an_insert_that_may_have_been_processed_is_never_resent(
    emu: ConvosoEmulator, fault: str, error: type[Exception], store_delta: int
) -> None:
    """With attempts to spare, an ambiguous failure raises at once: one request, and the
    store holds exactly the callbacks the server made (one if it processed the insert)."""
    before = len(emu.store)
    emu.script([fault], paths=INSERT_PATH)
    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.002)
    async with client_for(emu, policy) as client:
        with pytest.raises(error):
            await client.callbacks.insert(**insert_kwargs())
    assert len(emu.requests) == 1
    assert client.retries == 0
    assert len(emu.store) == before + store_delta


async def test_an_insert_whose_answer_never_comes_is_not_resent(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(hang_seconds=30)
    emu.script(["hang"], paths=INSERT_PATH)
    before = len(emu.store)
    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.002)
    async with client_for(emu, policy, timeout=0.2) as client:
        started = time.monotonic()
        with pytest.raises(TransportError, match="timed out") as info:
            await client.callbacks.insert(**insert_kwargs())
        assert time.monotonic() - started < 1.0
    assert info.value.sent is True
    assert len(emu.requests) == 1
    assert len(emu.store) == before


async def test_a_rate_limited_insert_is_retried_and_dials_once(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(retry_after=0)
    emu.script(["status_429", "status_429"], paths=INSERT_PATH)
    before = len(emu.store)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with client_for(emu, policy) as client:
        new_id = await client.callbacks.insert(**insert_kwargs())
    assert [r.fault for r in emu.requests] == ["status_429", "status_429", None]
    assert len(emu.store) == before + 1
    assert new_id in emu.store


class RefusingConnector(aiohttp.TCPConnector):
    """A real TCPConnector whose first ``refusals`` connection attempts are refused."""

    def __init__(self, refusals: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refusals = refusals
        self.attempts = 0

    async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109 (aiohttp signature)
        self.attempts += 1
        if self.attempts <= self.refusals:
            refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
            raise aiohttp.ClientConnectorError(req.connection_key, refused)
        return await super()._create_connection(req, traces, timeout)


async def test_a_refused_connection_is_retried_and_the_insert_dials_once(
    emu: ConvosoEmulator,
) -> None:
    before = len(emu.store)
    connector = RefusingConnector(refusals=1)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        client_for(emu, policy, session=session) as client,
    ):
        new_id = await client.callbacks.insert(**insert_kwargs())
    assert connector.attempts == 2
    assert client.requests_sent == 2
    assert client.retries == 1
    assert len(emu.requests) == 1
    assert len(emu.store) == before + 1
    assert new_id in emu.store


async def test_an_insert_refused_every_time_fails_having_dialled_nobody(
    emu: ConvosoEmulator,
) -> None:
    before = len(emu.store)
    connector = RefusingConnector(refusals=99)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        client_for(emu, policy, session=session) as client,
    ):
        with pytest.raises(TransportError, match="could not connect") as info:
            await client.callbacks.insert(**insert_kwargs())
    assert info.value.sent is False
    assert connector.attempts == 3
    assert len(emu.requests) == 0
    assert len(emu.store) == before


async def test_an_insert_whose_connection_never_opens_in_time_is_retried_unsent() -> None:
    """A server that accepts TCP but never completes the TLS handshake (an overloaded TLS
    terminator, a dead backend behind a port that still accepts): each attempt times out
    before a byte of the request is written. The connection was never established, so
    the insert is retried, as after a refused connection, and the error says it was not
    sent rather than "no complete answer"."""
    hellos: list[bytes] = []
    handlers: set[asyncio.Task[None]] = set()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        hellos.append(await reader.read())  # a TLS ClientHello, then the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    base_url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with server:
        async with ConvosoClient("t0ken", base_url=base_url, retry=policy, timeout=0.2) as client:
            with pytest.raises(TransportError, match="could not connect: timed out") as info:
                await client.callbacks.insert(**insert_kwargs())
        await asyncio.gather(*handlers)
    assert info.value.sent is False
    assert len(hellos) == policy.attempts
    assert all(hello.startswith(b"\x16\x03") for hello in hellos)  # handshakes, no request
    assert client.retries == policy.attempts - 1


# --- raw network faults: a server on 127.0.0.1 writing exact bytes ---------------------------


_EMPTY_PAGE_HEAD = b'{"offset": 0, "limit": 1, "total": 0, "results": []'


async def _endless_chunked_page(writer: asyncio.StreamWriter, body: bytes) -> None:
    """A page that never ends: the head of a JSON page, then blanks for ever."""
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"%x\r\n%s\r\n" % (len(_EMPTY_PAGE_HEAD), _EMPTY_PAGE_HEAD))
    blanks = b" " * 65536
    while True:
        writer.write(b"%x\r\n%s\r\n" % (len(blanks), blanks))
        await writer.drain()  # raises once the client has hung up


async def _gzip_bomb_page(writer: asyncio.StreamWriter, body: bytes) -> None:
    """A valid page, 300 KB on the wire, that inflates past the limit."""
    page = _EMPTY_PAGE_HEAD + b" " * (MAX_BODY_BYTES + 1) + b"}"
    packed = gzip.compress(page, compresslevel=1)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
    )
    writer.write(packed)
    await writer.drain()


@pytest.mark.parametrize("answer", [_endless_chunked_page, _gzip_bomb_page])
async def test_an_answer_larger_than_any_page_is_refused_not_buffered(
    answer: Callable[[asyncio.StreamWriter, bytes], Awaitable[None]],
) -> None:
    """A proxy or server that streams without end (or a small gzip inflating to gigabytes)
    must not be read into memory until the timeout: the client stops at the limit, with a
    typed error that says so, and does not ask again (the next answer would be the same)."""
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with (
        raw_server(answer) as (base_url, bodies),
        ConvosoClient("t0ken", base_url=base_url, retry=policy, timeout=10) as client,
    ):
        with pytest.raises(MalformedResponseError, match="larger than") as info:
            await client.callbacks.search_page(limit=1)
    assert info.value.retryable is False
    assert len(bodies) == 1
    assert client.requests_sent == 1


async def test_an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The limit is the largest body read, not the first refused: at a 4 KiB limit (in
    place of 64 MiB) a page of exactly 4096 bytes is a page, one of 4097 is refused."""
    limit = 4096
    monkeypatch.setattr("convoso_async._transport.MAX_BODY_BYTES", limit)

    def page_of(size: int) -> bytes:
        page = _EMPTY_PAGE_HEAD + b" " * (size - len(_EMPTY_PAGE_HEAD) - 1) + b"}"
        assert len(page) == size
        head = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n"
        return head % size + page

    sizes = iter([limit, limit + 1])

    async def answer(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(page_of(next(sizes)))
        await writer.drain()

    policy = RetryPolicy(attempts=1)
    async with (
        raw_server(answer) as (base_url, bodies),
        ConvosoClient("t0ken", base_url=base_url, retry=policy, timeout=10) as client,
    ):
        page = await client.callbacks.search_page(limit=1)
        assert (page.total, page.results) == (0, ())
        with pytest.raises(MalformedResponseError, match="larger than"):
            await client.callbacks.search_page(limit=1)
    assert len(bodies) == 2


async def _bad_chunk_size(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n")
    await writer.drain()


async def _not_http(writer: asyncio.StreamWriter, body: bytes) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    await writer.drain()


@pytest.mark.parametrize(
    ("answer", "says"),
    [(_bad_chunk_size, "chunk size"), (_not_http, "Expected HTTP/")],
)
async def test_an_answer_that_is_not_valid_http_is_reported_as_such(
    answer: Callable[[asyncio.StreamWriter, bytes], Awaitable[None]], says: str
) -> None:
    """aiohttp reports a broken answer as a ClientResponseError of status 400, its own
    stand-in: the server sent no 400 (here a 200, or no status at all). The error names
    what was wrong and no HTTP status, nor the request's headers."""
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002)
    async with (
        raw_server(answer) as (base_url, bodies),
        ConvosoClient("t0ken", base_url=base_url, retry=policy) as client,
    ):
        with pytest.raises(TransportError) as info:
            await client.callbacks.search_page(limit=1)
    message = str(info.value)
    assert message.startswith("callbacks/search: no complete answer: the answer is not valid HTTP")
    assert says in message
    assert "400" not in message
    assert "User-Agent" not in message
    assert len(bodies) == policy.attempts  # a search is retried
