"""When to try a request again, and for how long: :class:`RetryPolicy` drives tenacity.

tenacity is always given explicit ``retry=``, ``stop=`` and ``wait=``: its defaults retry
every exception forever, which would turn a bug of ours into an endless "network error".
Only the failures :func:`is_retryable` names are retried, and a retry must also fit the
attempt count, the deadline and the client-wide :class:`RetryBudget`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import numbers
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import attrs
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from ._errors import (
    ConvosoError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    TransportError,
)

logger = logging.getLogger("convoso_async")
T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)  # looked up at each call, so a test may patch it


def is_seconds(value: object) -> bool:
    """A real number (not a bool, not text, which compare as a TypeError or as 1)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    # `not 0 <= value`: and not NaN, which compares false to everything
    if not is_seconds(value) or not 0 <= value < math.inf:
        raise ValueError(f"{attribute.name} must be zero or more seconds, not {value!r}")


def _optional_positive(
    instance: object, attribute: attrs.Attribute[float | None], value: float | None
) -> None:
    if value is not None and (not is_seconds(value) or not 0 < value < math.inf):
        raise ValueError(f"{attribute.name} must be positive or None, not {value!r}")


@attrs.frozen
class RetryPolicy:
    """How a failed request is tried again.

    ``attempts`` counts the first try (``attempts=1`` never retries). Waits grow
    exponentially from ``initial_wait`` with full jitter, capped at ``max_wait``; a 429's
    ``Retry-After`` is honoured up to ``max_wait``. ``deadline`` (seconds) bounds one
    call's total time across all its attempts and waits. ``retry_budget`` is the capacity
    of the client-wide :class:`RetryBudget` (``None`` for no budget).
    """

    attempts: int = attrs.field(default=5)
    initial_wait: float = attrs.field(default=0.5, validator=_positive)
    max_wait: float = attrs.field(default=30.0, validator=_positive)
    deadline: float | None = attrs.field(default=None, validator=_optional_positive)
    retry_budget: int | None = attrs.field(default=500)

    @retry_budget.validator
    def _check_budget(self, attribute: attrs.Attribute[int | None], value: int | None) -> None:
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise ValueError(f"retry_budget must be an integer >= 0 or None, not {value!r}")

    @attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"attempts must be an integer >= 1, not {value!r}")


class RetryBudget:
    """A client-wide allowance of retries, refilled by successes.

    Modelled on botocore's retry quota: each retry spends ``RETRY_COST`` (a timeout or
    broken connection ``TRANSPORT_COST``) and each success returns one token. When the API
    is down, thousands of concurrent calls drain it within a few dozen retries, after which
    calls fail on their first error instead of multiplying the load on a struggling server.
    """

    RETRY_COST = 5
    TRANSPORT_COST = 10

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.available = capacity

    def try_spend(self, error: BaseException | None) -> bool:
        cost = self.TRANSPORT_COST if isinstance(error, TransportError) else self.RETRY_COST
        if cost > self.available:
            return False
        self.available -= cost
        return True

    def refund(self) -> None:
        self.available = min(self.capacity, self.available + 1)


def is_retryable(error: BaseException, *, idempotent: bool) -> bool:
    """Whether a failure is worth another attempt.

    Idempotent calls retry transient failures: 429, 500/502/503/504, broken connections,
    timeouts, and a 200 whose body is not JSON. A non-idempotent call (``insert``) retries
    only what provably was not processed: a connection never established, or a 429.
    """
    if isinstance(error, RateLimitError):
        return True
    if isinstance(error, TransportError):
        return error.retryable and (idempotent or not error.sent)
    if not idempotent:
        return False
    if isinstance(error, ServerError):
        return error.status in (500, 502, 503, 504)
    return isinstance(error, MalformedResponseError) and error.retryable


class _Wait:
    """Full-jitter exponential backoff, added to a 429's ``Retry-After``, capped."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._max = policy.max_wait
        self._backoff = wait_random_exponential(multiplier=policy.initial_wait, max=policy.max_wait)

    def __call__(self, state: RetryCallState) -> float:
        wait = self._backoff(state)
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            # Jitter on top of the server's hint: callers told the same Retry-After must
            # not all come back in the same instant.
            wait += error.retry_after
        return min(wait, self._max)


async def call_with_retries(
    attempt: Callable[[float | None], Awaitable[T]],
    *,
    policy: RetryPolicy,
    budget: RetryBudget | None,
    idempotent: bool,
    what: str,
    sleep: Sleep = _asyncio_sleep,
) -> T:
    """Run ``attempt`` until it succeeds or a retry is not allowed; re-raise its error.

    ``attempt`` receives the seconds left before the policy's deadline (``None`` when
    there is none) so that a single slow attempt cannot overrun it. ``sleep`` waits
    between attempts (the client's ends early when it is closed).

    The first attempt runs outside tenacity: entering its retry loop costs ~40 us, more
    than a small request on a warm connection. Only a failure worth retrying enters the
    loop, which replays that failure as its attempt 1, so attempts, waits, the budget and
    the retry log are counted exactly as if tenacity had run it.
    """
    started = time.monotonic()
    try:
        result = await attempt(policy.deadline)
    except ConvosoError as error:
        if policy.attempts == 1 or not is_retryable(error, idempotent=idempotent):
            raise
        result = await _retry(
            attempt, error, started, policy, budget, idempotent, what, sleep=sleep
        )
    if budget is not None:
        budget.refund()
    return result


@attrs.define
class Tries:
    """The attempts one call has made, kept by a caller that may continue the call."""

    made: int = 0


async def continue_with_retries(
    attempt: Callable[[float | None], Awaitable[T]],
    error: ConvosoError,
    *,
    spent: int,
    policy: RetryPolicy,
    budget: RetryBudget | None,
    idempotent: bool,
    what: str,
    sleep: Sleep = _asyncio_sleep,
) -> T:
    """Carry on a call whose answer, accepted after ``spent`` attempts, proved unreadable
    later (a search page parsed when the paginator reaches it): ``error`` counts as the
    last of those attempts, so the call makes only the attempts the policy has left, each
    drawing on the budget. Its deadline runs afresh from here.
    """
    if spent >= policy.attempts or not is_retryable(error, idempotent=idempotent):
        raise error
    # No refund on success: the call's first success, when the body landed, made it.
    return await _retry(
        attempt, error, time.monotonic(), policy, budget, idempotent, what, spent=spent, sleep=sleep
    )


async def _retry(
    attempt: Callable[[float | None], Awaitable[T]],
    first_error: ConvosoError,
    started: float,
    policy: RetryPolicy,
    budget: RetryBudget | None,
    idempotent: bool,
    what: str,
    *,
    spent: int = 1,
    sleep: Sleep = _asyncio_sleep,
) -> T:
    """Retry after ``first_error``, the failure of attempt ``spent`` (replayed to tenacity
    as its attempt 1), until ``policy.attempts`` in all."""
    pending_replay: list[ConvosoError] = [first_error]
    earlier = spent - 1  # attempts made before the replayed one

    def remaining() -> float | None:
        if policy.deadline is None:
            return None
        return max(0.0, policy.deadline - (time.monotonic() - started))

    last_error = first_error

    async def resumed() -> T:
        nonlocal last_error
        if pending_replay:
            raise pending_replay.pop()
        left = remaining()
        if left == 0.0:
            # The wait fitted the deadline but overran it (a busy loop wakes late): the
            # call failed on its last answer, which says more than "deadline passed".
            raise last_error
        try:
            return await attempt(left)
        except ConvosoError as error:
            last_error = error
            raise

    attempts_spent = stop_after_attempt(policy.attempts - earlier)

    def stop(state: RetryCallState) -> bool:
        if attempts_spent(state):
            return True
        left = remaining()
        if left is not None and state.upcoming_sleep >= left:
            return True  # the wait alone would cross the deadline
        error = state.outcome.exception() if state.outcome else None
        return budget is not None and not budget.try_spend(error)

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        logger.info(
            "%s failed (attempt %d of %d): %s; retrying in %.3fs",
            what,
            earlier + state.attempt_number,
            policy.attempts,
            error,
            wait,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(lambda exc: is_retryable(exc, idempotent=idempotent)),
        stop=stop,
        wait=_Wait(policy),
        before_sleep=log_retry,
        reraise=True,
        sleep=sleep,
    )
    async for try_ in retrying:
        with try_:
            result = await resumed()
    return result
