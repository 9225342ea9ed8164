"""``ConvosoEmulator``: a local Convoso Callbacks API on 127.0.0.1, with fault injection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from types import TracebackType
from typing import Self

from aiohttp import web

from ._app import EmulatorHandler, RecordedRequest
from ._data import build_store
from ._faults import FaultPlan, Faults, ScriptStep
from ._store import CallbackStore

DEFAULT_AUTH_TOKEN = "emulator-token"


class ConvosoEmulator:
    """A fake Convoso Callbacks API served over real HTTP on loopback.

    ::

        async with ConvosoEmulator(records=10_000, seed=7) as emu:
            ...  # point a client at emu.base_url with emu.auth_token
            emu.script(["reset", "status_503", None])  # the next three requests
            emu.faults = Faults(status_429=0.1, latency=(0.0, 0.05))

    The synthetic store is built in the constructor (about 7 s per million records, on
    the calling thread); the server starts in :meth:`start` / ``async with``.
    """

    def __init__(
        self,
        records: int = 0,
        *,
        seed: int = 0,
        start_date: date = date(2026, 3, 1),
        days: int = 30,
        hot_days: Mapping[date, int] | None = None,
        live_dialect: bool = False,
        faults: Faults | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        self.seed = seed
        self.live_dialect = live_dialect
        self.host = host
        self._port = port
        self.auth_token = auth_token
        self.store: CallbackStore = build_store(
            records,
            seed=seed,
            start_date=start_date,
            days=days,
            hot_days=hot_days,
            live_dialect=live_dialect,
            clock=clock,
        )
        self._plan = FaultPlan(faults or Faults(), default_seed=seed)
        self._handler = EmulatorHandler(self.store, self._plan, auth_token, live_dialect)
        self._runner: web.AppRunner | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start serving (idempotent). With ``port=0`` the OS picks a free port."""
        if self._runner is not None:
            return
        # A fresh Event, not clear(): an Event binds to the loop that first waits on it, and
        # one emulator may serve on successive loops (pytest-asyncio's per-test loops).
        self._handler.closing = asyncio.Event()
        runner = web.AppRunner(
            self._handler.build_app(), access_log=None, handle_signals=False, shutdown_timeout=5
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = runner.addresses[0][1]
        self._runner = runner

    async def close(self) -> None:
        """Stop serving (idempotent); hanging or sleeping requests are cut short."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        self._handler.closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- addresses ---------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port once started (the requested one before)."""
        return self._port

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT/v1``, the API root a client is configured with."""
        if self._runner is None:
            raise RuntimeError("the emulator is not running; use 'async with' or start()")
        # An IPv6 address goes in brackets (RFC 3986): http://::1:8787 is no URL.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/v1"

    def url(self, endpoint: str) -> str:
        """Full URL of one endpoint: ``url("search")`` -> ``.../v1/callbacks/search``."""
        return f"{self.base_url}/callbacks/{endpoint}"

    # -- faults ------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._plan.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        """Replace the fault configuration (takes effect on the next request)."""
        self._plan.faults = faults or Faults()

    def script(
        self, steps: Iterable[ScriptStep], *, paths: Iterable[str] | str | None = None
    ) -> None:
        """Queue faults for the next requests, one step each, in order, whatever the rates.

        A step is a fault name (or :class:`Fault`) or ``None`` for a clean answer. With
        ``paths``, the steps are only consumed by requests whose path ends with one of them.
        Calls append to the queue. Unknown names raise ``ValueError`` here, not later.
        """
        self._plan.script(steps, paths)

    @property
    def scripted_pending(self) -> int:
        """Scripted steps not consumed yet."""
        return self._plan.pending

    def clear_script(self) -> None:
        self._plan.clear_script()

    # -- observation -------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received since start or :meth:`reset_stats`, in arrival order (a copy).

        Only the newest 10,000 are kept, older ones dropped, so the memory of a server that
        runs until interrupted stays flat.
        """
        return list(self._handler.requests)

    @property
    def in_flight(self) -> int:
        """Requests being handled right now."""
        return self._handler.in_flight

    @property
    def max_in_flight(self) -> int:
        """Peak of :attr:`in_flight` since start or :meth:`reset_stats`."""
        return self._handler.max_in_flight

    def reset_stats(self) -> None:
        """Forget recorded requests; restart the in-flight peak from the current level."""
        self._handler.requests.clear()
        self._handler.max_in_flight = self._handler.in_flight
