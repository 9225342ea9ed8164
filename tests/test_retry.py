"""RetryPolicy, the retry predicate, the client-wide budget, and the tenacity loop.

The loop is driven by scripted ``attempt`` coroutines, so every rule is checked without a
network and with millisecond waits.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Iterator
from types import SimpleNamespace

import attrs
import pytest

from convoso_async import (
    AuthenticationError,
    ConvosoAPIError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TransportError,
    _retry,
)
from convoso_async._retry import RetryBudget, call_with_retries, is_retryable

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005, retry_budget=None)


@pytest.fixture(autouse=True)
def _seeded_jitter() -> Iterator[None]:
    # tenacity's jitter uses the random module: seed it so waits are reproducible.
    state = random.getstate()
    random.seed(1234)
    yield
    random.setstate(state)


class Script:
    """An ``attempt`` that raises the scripted errors in turn, then returns ``"ok"``."""

    def __init__(self, *outcomes: BaseException | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.remaining: list[float | None] = []

    async def __call__(self, remaining: float | None) -> str:
        self.calls += 1
        self.remaining.append(remaining)
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def server_error(status: int = 503) -> ServerError:
    return ServerError(f"HTTP {status}", endpoint="callbacks/search", status=status)


def rate_limited(retry_after: float | None = None) -> RateLimitError:
    error = RateLimitError("HTTP 429", endpoint="callbacks/search", status=429)
    error.retry_after = retry_after
    return error


def refused() -> TransportError:
    return TransportError("could not connect", endpoint="callbacks/insert", sent=False)


def reset() -> TransportError:
    return TransportError("no complete answer", endpoint="callbacks/insert", sent=True)


# --- RetryPolicy -------------------------------------------------------------------------


def test_retry_policy_defaults_match_the_issue() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.initial_wait, policy.max_wait) == (5, 0.5, 30.0)
    assert policy.deadline is None
    assert policy.retry_budget == 500


def test_retry_policy_is_frozen() -> None:
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RetryPolicy().attempts = 2  # type: ignore[misc]


@pytest.mark.parametrize("attempts", [0, -1, True, 2.0, "3", None])
def test_retry_policy_rejects_bad_attempts(attempts: object) -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=attempts)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-0.001, math.inf, math.nan, "1", None, True])
@pytest.mark.parametrize("field", ["initial_wait", "max_wait"])
def test_retry_policy_rejects_negative_or_non_finite_waits(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("deadline", [0, -1.0, math.inf, math.nan, "5", True])
def test_retry_policy_rejects_non_positive_deadline(deadline: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(deadline=deadline)


@pytest.mark.parametrize("budget", [-1, True, 5.0, "500"])
def test_retry_policy_rejects_a_bad_retry_budget(budget: object) -> None:
    # Unchecked, -1 would silently never retry and "500" fail with a TypeError at the
    # first retry, far from the mistake.
    with pytest.raises(ValueError, match="retry_budget"):
        RetryPolicy(retry_budget=budget)  # type: ignore[arg-type]


def test_retry_policy_accepts_a_zero_or_no_retry_budget() -> None:
    assert RetryPolicy(retry_budget=0).retry_budget == 0
    assert RetryPolicy(retry_budget=None).retry_budget is None


def test_retry_policy_accepts_zero_waits_and_one_attempt() -> None:
    policy = RetryPolicy(attempts=1, initial_wait=0, max_wait=0, deadline=0.5)
    assert policy.attempts == 1
    assert policy.deadline == 0.5


# --- is_retryable ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "idempotent", "insert"),
    [
        (rate_limited(), True, True),
        (rate_limited(3.0), True, True),
        (refused(), True, True),
        (reset(), True, False),
        (TransportError("tls", sent=False, retryable=False), False, False),
        (TransportError("odd", sent=True, retryable=False), False, False),
        (server_error(500), True, False),
        (server_error(502), True, False),
        (server_error(503), True, False),
        (server_error(504), True, False),
        (server_error(501), False, False),
        (ServerError("no status"), False, False),
        (MalformedResponseError("html", retryable=True), True, False),
        (MalformedResponseError("wrong shape", retryable=False), False, False),
        (ConvosoAPIError("success false"), False, False),
        (InvalidParameterError("Invalid timezone offset", code=6072), False, False),
        (NotFoundError("Callback not found", code=6074), False, False),
        (AuthenticationError("Invalid authentication token", status=401), False, False),
        (ValueError("a bug of ours"), False, False),
        (KeyError("a bug of ours"), False, False),
    ],
)
def test_is_retryable_truth_table(error: BaseException, idempotent: bool, insert: bool) -> None:
    assert is_retryable(error, idempotent=True) is idempotent
    assert is_retryable(error, idempotent=False) is insert


# --- RetryBudget -------------------------------------------------------------------------


def test_budget_spends_retry_cost_and_transport_cost() -> None:
    budget = RetryBudget(20)
    assert budget.try_spend(server_error())
    assert budget.available == 20 - RetryBudget.RETRY_COST
    assert budget.try_spend(refused())
    assert budget.available == 20 - RetryBudget.RETRY_COST - RetryBudget.TRANSPORT_COST


def test_budget_refuses_when_the_cost_exceeds_what_is_left() -> None:
    budget = RetryBudget(9)
    assert not budget.try_spend(refused())  # costs 10
    assert budget.available == 9
    assert budget.try_spend(server_error())  # costs 5
    assert not budget.try_spend(server_error())
    assert budget.available == 4


def test_budget_refund_adds_one_up_to_capacity() -> None:
    budget = RetryBudget(6)
    budget.try_spend(rate_limited())
    budget.refund()
    assert budget.available == 2
    for _ in range(10):
        budget.refund()
    assert budget.available == 6


# --- call_with_retries -------------------------------------------------------------------


async def test_success_first_time_makes_one_attempt() -> None:
    attempt = Script("ok")
    result = await call_with_retries(
        attempt, policy=FAST, budget=None, idempotent=True, what="callbacks/search"
    )
    assert result == "ok"
    assert attempt.calls == 1
    assert attempt.remaining == [None]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_transient_server_errors_are_retried(status: int) -> None:
    attempt = Script(server_error(status), server_error(status))
    result = await call_with_retries(
        attempt, policy=FAST, budget=None, idempotent=True, what="callbacks/search"
    )
    assert result == "ok"
    assert attempt.calls == 3


async def test_attempts_spent_raises_the_last_typed_error() -> None:
    last = server_error(502)
    attempt = Script(server_error(503), server_error(500), last, "never")
    with pytest.raises(ServerError) as info:
        await call_with_retries(
            attempt, policy=FAST, budget=None, idempotent=True, what="callbacks/search"
        )
    assert info.value is last
    assert attempt.calls == FAST.attempts


@pytest.mark.parametrize(
    "error",
    [
        InvalidParameterError("Invalid callback stage"),
        NotFoundError("Callback not found", code=6074),
        MalformedResponseError("wrong shape"),
        ServerError("HTTP 501", status=501),
        KeyError("bug"),
    ],
)
async def test_non_retryable_errors_raise_after_one_attempt(error: BaseException) -> None:
    attempt = Script(error)
    with pytest.raises(type(error)) as info:
        await call_with_retries(
            attempt, policy=FAST, budget=None, idempotent=True, what="callbacks/search"
        )
    assert info.value is error
    assert attempt.calls == 1


async def test_attempts_one_never_retries() -> None:
    attempt = Script(server_error())
    with pytest.raises(ServerError):
        await call_with_retries(
            attempt,
            policy=RetryPolicy(attempts=1, initial_wait=0.001, max_wait=0.005),
            budget=None,
            idempotent=True,
            what="x",
        )
    assert attempt.calls == 1


@pytest.mark.parametrize(
    "error", [reset(), server_error(500), MalformedResponseError("x", retryable=True)]
)
async def test_non_idempotent_call_is_not_retried_after_an_ambiguous_failure(
    error: BaseException,
) -> None:
    attempt = Script(error)
    with pytest.raises(type(error)):
        await call_with_retries(
            attempt, policy=FAST, budget=None, idempotent=False, what="callbacks/insert"
        )
    assert attempt.calls == 1


@pytest.mark.parametrize("error", [refused(), rate_limited()])
async def test_non_idempotent_call_is_retried_when_provably_not_processed(
    error: BaseException,
) -> None:
    attempt = Script(error)
    assert (
        await call_with_retries(
            attempt, policy=FAST, budget=None, idempotent=False, what="callbacks/insert"
        )
        == "ok"
    )
    assert attempt.calls == 2


async def test_retry_after_is_honoured_but_capped_at_max_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.0001, max_wait=0.01, retry_budget=None)
    attempt = Script(rate_limited(retry_after=100.0))
    caplog.set_level(logging.INFO, logger="convoso_async")
    started = time.monotonic()
    assert await call_with_retries(attempt, policy=policy, budget=None, idempotent=True, what="x")
    assert time.monotonic() - started < 1.0
    waits = [r.args[4] for r in caplog.records if "retrying in" in r.getMessage()]
    assert waits == [pytest.approx(0.01)]


async def test_retry_after_stretches_a_short_backoff(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.00001, max_wait=0.05, retry_budget=None)
    attempt = Script(rate_limited(retry_after=0.004))
    caplog.set_level(logging.INFO, logger="convoso_async")
    await call_with_retries(attempt, policy=policy, budget=None, idempotent=True, what="x")
    (wait,) = [r.args[4] for r in caplog.records if "retrying in" in r.getMessage()]
    assert 0.004 <= wait <= 0.05


async def test_backoff_never_exceeds_max_wait(caplog: pytest.LogCaptureFixture) -> None:
    policy = RetryPolicy(attempts=6, initial_wait=0.004, max_wait=0.005, retry_budget=None)
    attempt = Script(*[server_error()] * 5)
    caplog.set_level(logging.INFO, logger="convoso_async")
    await call_with_retries(attempt, policy=policy, budget=None, idempotent=True, what="x")
    waits = [r.args[4] for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(waits) == 5
    assert all(0 <= w <= 0.005 for w in waits)


async def test_each_retry_is_logged_at_info(caplog: pytest.LogCaptureFixture) -> None:
    attempt = Script(server_error(503))
    caplog.set_level(logging.INFO, logger="convoso_async")
    await call_with_retries(attempt, policy=FAST, budget=None, idempotent=True, what="callbacks/x")
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert "callbacks/x failed (attempt 1 of 3)" in record.getMessage()


async def test_a_wait_that_overruns_the_deadline_raises_the_last_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wait fitted the deadline but a busy loop woke late: the call fails with the
    server's last answer, not with a retry sent with no time left."""
    now = [0.0]
    real_sleep = asyncio.sleep

    async def late_sleep(seconds: float) -> None:
        now[0] += seconds + 1.0
        await real_sleep(0)

    monkeypatch.setattr(_retry, "time", SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(asyncio, "sleep", late_sleep)
    last = server_error()
    attempt = Script(last, "never sent")
    policy = RetryPolicy(
        attempts=5, initial_wait=0.01, max_wait=0.01, deadline=0.5, retry_budget=None
    )
    with pytest.raises(ServerError) as info:
        await call_with_retries(attempt, policy=policy, budget=None, idempotent=True, what="x")
    assert info.value is last
    assert attempt.calls == 1


async def test_deadline_stops_retrying_before_attempts_are_spent() -> None:
    policy = RetryPolicy(
        attempts=1000, initial_wait=0.02, max_wait=0.02, deadline=0.05, retry_budget=None
    )

    class Always(Script):
        async def __call__(self, remaining: float | None) -> str:
            await super().__call__(remaining)
            raise server_error()

    attempt = Always()
    started = time.monotonic()
    with pytest.raises(ServerError):
        await call_with_retries(attempt, policy=policy, budget=None, idempotent=True, what="x")
    assert time.monotonic() - started < 0.5
    assert 1 <= attempt.calls < 1000
    remaining = attempt.remaining
    assert all(r is not None and 0 <= r <= 0.05 for r in remaining)
    assert remaining == sorted(remaining, reverse=True)  # type: ignore[type-var]


async def test_budget_stops_retries_once_spent() -> None:
    budget = RetryBudget(10)  # two retries at RETRY_COST 5
    policy = RetryPolicy(attempts=10, initial_wait=0.001, max_wait=0.002)
    attempt = Script(*[server_error()] * 10)
    with pytest.raises(ServerError):
        await call_with_retries(attempt, policy=policy, budget=budget, idempotent=True, what="x")
    assert attempt.calls == 3
    assert budget.available == 0

    # The budget is client-wide: the next call fails on its first error.
    second = Script(server_error())
    with pytest.raises(ServerError):
        await call_with_retries(second, policy=policy, budget=budget, idempotent=True, what="x")
    assert second.calls == 1


async def test_transport_failures_cost_more_budget() -> None:
    budget = RetryBudget(10)
    policy = RetryPolicy(attempts=10, initial_wait=0.001, max_wait=0.002)
    attempt = Script(*[refused()] * 10)
    with pytest.raises(TransportError):
        await call_with_retries(attempt, policy=policy, budget=budget, idempotent=True, what="x")
    assert attempt.calls == 2


async def test_success_refunds_the_budget() -> None:
    budget = RetryBudget(10)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    await call_with_retries(
        Script(server_error()), policy=policy, budget=budget, idempotent=True, what="x"
    )
    assert budget.available == 10 - RetryBudget.RETRY_COST + 1


async def test_non_retryable_errors_do_not_spend_budget() -> None:
    budget = RetryBudget(10)
    with pytest.raises(NotFoundError):
        await call_with_retries(
            Script(NotFoundError("gone")), policy=FAST, budget=budget, idempotent=True, what="x"
        )
    assert budget.available == 10
