"""Fault injection: what can go wrong, how often, and in which order.

A :class:`Faults` value is an immutable description (rates, latency, paths); the emulator
turns it into a :class:`FaultPlan` that owns the seeded RNG, the scripted queue and the
state of a business-error burst. Each request asks the plan for at most one
:class:`Fault`; scripted steps win over rates.

What a client observes for each fault (``processed`` = the store was changed as if the
request had succeeded):

=====================  =========  ==========================================================
fault                  processed  client observes
=====================  =========  ==========================================================
``status_429``         no         HTTP 429, JSON body, ``Retry-After: <Faults.retry_after>``
``status_500``         no         HTTP 500, JSON ``{"success": false, "error": ...}``
``status_502/503/504`` no         HTTP 502/503/504 with a small ``text/html`` page
``reset``              no         TCP RST before any byte: ``aiohttp.ClientOSError``
                                  (connection reset) or ``ServerDisconnectedError``
``cut_body``           yes        HTTP 200, ``Content-Length`` of the full body, half of it
                                  sent, then the connection closes:
                                  ``aiohttp.ClientPayloadError`` on reading the body
``truncated_json``     yes        HTTP 200, complete response whose body is the first half
                                  of the JSON (Content-Length matches): a JSON decode error
``business_error``     no         HTTP 200 ``{"success": false, "code":
                                  Faults.business_error_code, "error": ...}``; once drawn
                                  by rate, the next ``burst - 1`` matching requests get it too
``drop_after_process`` yes        connection closed without a byte of answer:
                                  ``aiohttp.ServerDisconnectedError``
``hang``               no         nothing for ``Faults.hang_seconds``, then the connection
                                  closes: a client timeout (or ServerDisconnectedError)
=====================  =========  ==========================================================
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Iterable

import attrs


class Fault(enum.StrEnum):
    """Fault names; plain strings with these values are accepted everywhere."""

    STATUS_429 = "status_429"
    STATUS_500 = "status_500"
    STATUS_502 = "status_502"
    STATUS_503 = "status_503"
    STATUS_504 = "status_504"
    RESET = "reset"
    CUT_BODY = "cut_body"
    TRUNCATED_JSON = "truncated_json"
    BUSINESS_ERROR = "business_error"
    DROP_AFTER_PROCESS = "drop_after_process"
    HANG = "hang"


def _paths(value: Iterable[str] | str | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset([value] if isinstance(value, str) else value)


def _latency(value: float | tuple[float, float]) -> float | tuple[float, float]:
    if isinstance(value, tuple):
        low, high = value
        if not 0 <= low <= high:
            raise ValueError(f"latency range must satisfy 0 <= low <= high, got {value}")
        return (float(low), float(high))
    if value < 0:
        raise ValueError(f"latency must be >= 0, got {value}")
    return float(value)


def _rate(instance: Faults, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must be a rate in [0, 1], got {value}")


@attrs.frozen(kw_only=True)
class Faults:
    """How a running emulator misbehaves. Every rate is a probability per request.

    The rates are exclusive (one fault at most per request), so they must sum to <= 1.
    ``latency`` is added to every matching request, fault or not: a float for a fixed
    delay, a ``(low, high)`` tuple for a uniform draw, in seconds. ``paths`` restricts the
    whole object (latency and rates) to requests whose URL path ends with one of the given
    strings, e.g. ``{"/callbacks/search"}``. ``seed`` seeds the draws (default: the
    emulator's seed), so a failing run can be replayed.
    """

    latency: float | tuple[float, float] = attrs.field(default=0.0, converter=_latency)
    status_429: float = attrs.field(default=0.0, validator=_rate)
    status_500: float = attrs.field(default=0.0, validator=_rate)
    status_502: float = attrs.field(default=0.0, validator=_rate)
    status_503: float = attrs.field(default=0.0, validator=_rate)
    status_504: float = attrs.field(default=0.0, validator=_rate)
    reset: float = attrs.field(default=0.0, validator=_rate)
    cut_body: float = attrs.field(default=0.0, validator=_rate)
    truncated_json: float = attrs.field(default=0.0, validator=_rate)
    business_error: float = attrs.field(default=0.0, validator=_rate)
    drop_after_process: float = attrs.field(default=0.0, validator=_rate)
    hang: float = attrs.field(default=0.0, validator=_rate)
    retry_after: int | str | None = 1
    """``Retry-After`` header on 429 answers (seconds, or an HTTP date); ``None`` omits it."""
    burst: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """How many consecutive matching requests a rate-drawn ``business_error`` covers."""
    business_error_code: int = 6000
    business_error_text: str = "Temporary failure, please try again"
    hang_seconds: float = 30.0
    paths: frozenset[str] | None = attrs.field(default=None, converter=_paths)
    seed: int | None = None

    def __attrs_post_init__(self) -> None:
        if sum(rate for _, rate in self.rates()) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")

    def rates(self) -> list[tuple[Fault, float]]:
        """(fault, rate) pairs in a fixed order: the order draws are resolved in."""
        return [(fault, getattr(self, fault.value)) for fault in Fault]

    def applies_to(self, path: str) -> bool:
        return self.paths is None or any(path.endswith(p) for p in self.paths)


ScriptStep = Fault | str | None


class FaultPlan:
    """Per-emulator fault state: the active :class:`Faults`, its RNG, the script queue."""

    def __init__(self, faults: Faults, default_seed: int) -> None:
        self._default_seed = default_seed
        self._script: deque[tuple[Fault | None, frozenset[str] | None]] = deque()
        self.faults = faults

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        """Switch configuration; restarts the RNG so the same Faults replays the same draws."""
        self._faults = faults
        self._rng = random.Random(self._default_seed if faults.seed is None else faults.seed)
        self._burst_left = 0

    def script(self, steps: Iterable[ScriptStep], paths: Iterable[str] | str | None) -> None:
        only = _paths(paths)
        parsed = [None if step is None else Fault(step) for step in steps]
        self._script.extend((step, only) for step in parsed)

    @property
    def pending(self) -> int:
        """Scripted steps not yet consumed."""
        return len(self._script)

    def clear_script(self) -> None:
        self._script.clear()

    def draw(self, path: str) -> Fault | None:
        """The fault for one request to ``path`` (consumes a script step if one applies)."""
        for i, (step, only) in enumerate(self._script):
            if only is None or any(path.endswith(p) for p in only):
                del self._script[i]
                return step
        faults = self._faults
        if not faults.applies_to(path):
            return None
        if self._burst_left:
            self._burst_left -= 1
            return Fault.BUSINESS_ERROR
        x = self._rng.random()
        for fault, rate in faults.rates():
            if x < rate:
                if fault is Fault.BUSINESS_ERROR:
                    self._burst_left = faults.burst - 1
                return fault
            x -= rate
        return None

    def latency(self, path: str) -> float:
        faults = self._faults
        if not faults.applies_to(path):
            return 0.0
        if isinstance(faults.latency, tuple):
            return self._rng.uniform(*faults.latency)
        return faults.latency
