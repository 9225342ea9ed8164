"""The aiohttp side: routes, the request log, concurrency counters and fault delivery.

The business rules live in :mod:`._api`; this module only decides *how* an answer
reaches the client (or fails to), per the :class:`~._faults.Fault` drawn for the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from . import _api
from ._faults import Fault, FaultPlan
from ._store import CallbackStore

_HTML_ERRORS = {
    Fault.STATUS_502: (502, "Bad Gateway"),
    Fault.STATUS_503: (503, "Service Temporarily Unavailable"),
    Fault.STATUS_504: (504, "Gateway Time-out"),
}

REQUEST_LOG_SIZE = 10_000
"""Requests the log keeps, the newest: at ~0.7 KB each a server that runs for days (the
CLI's) stays flat at a few MB instead of growing with every request."""


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the emulator received it."""

    path: str
    """URL path, e.g. ``/v1/callbacks/search``."""
    form: dict[str, str]
    """Form fields (first value of each), ``auth_token`` shown as ``***``."""
    time: float
    """``time.monotonic()`` when the request body had been read."""
    fault: Fault | None
    """The fault injected into this request, if any."""

    @property
    def endpoint(self) -> str:
        """``search``, ``insert``, ``update`` or ``delete``."""
        return self.path.rsplit("/", 1)[-1]


class EmulatorHandler:
    """The single aiohttp handler for the four endpoints, and the state it keeps."""

    def __init__(self, store: CallbackStore, plan: FaultPlan, auth_token: str, live: bool) -> None:
        self.store = store
        self.plan = plan
        self.auth_token = auth_token
        self.live = live
        self.requests: deque[RecordedRequest] = deque(maxlen=REQUEST_LOG_SIZE)
        self.in_flight = 0
        self.max_in_flight = 0
        self.closing = asyncio.Event()

    def build_app(self) -> web.Application:
        app = web.Application()
        endpoints = "|".join(_api.ENDPOINTS)
        app.router.add_post(f"/v1/callbacks/{{endpoint:{endpoints}}}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._handle(request)
        finally:
            self.in_flight -= 1

    async def _pause(self, seconds: float) -> None:
        """Sleep without blocking the loop; cut short when the emulator closes."""
        if seconds > 0 and not self.closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), seconds)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        endpoint = request.match_info["endpoint"]
        try:
            form = await request.post()
        except (ValueError, LookupError, HttpProcessingError):
            # A body aiohttp cannot decode (a raw non-UTF-8 byte, an unknown charset, a
            # malformed multipart body) is the client's fault: a 400 in the API's error
            # style, before any fault is drawn or the request is logged, instead of
            # aiohttp's HTML 500 and a logged traceback.
            body = _api.error_body(endpoint, None, "Malformed form body", self.live)
            return self._json(400, orjson.dumps(body))
        fields: dict[str, str] = {}
        for key, value in form.items():
            if isinstance(value, str):
                fields.setdefault(key, value)
        fault = self.plan.draw(request.path)
        delay = self.plan.latency(request.path)
        masked = {k: "***" if k == "auth_token" else v for k, v in fields.items()}
        self.requests.append(RecordedRequest(request.path, masked, time.monotonic(), fault))
        await self._pause(delay)
        if fault is None:
            return self._json(*self._process(endpoint, fields))
        return await self._deliver(fault, request, endpoint, fields)

    def _process(self, endpoint: str, fields: dict[str, str]) -> tuple[int, bytes]:
        status, body = _api.handle(
            endpoint, fields, self.store, auth_token=self.auth_token, live=self.live
        )
        return status, orjson.dumps(body)

    @staticmethod
    def _json(status: int, payload: bytes, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(
            status=status, body=payload, content_type="application/json", headers=headers
        )

    async def _deliver(
        self, fault: Fault, request: web.Request, endpoint: str, fields: dict[str, str]
    ) -> web.StreamResponse:
        faults = self.plan.faults
        if fault is Fault.STATUS_429:
            headers = {} if faults.retry_after is None else {"Retry-After": str(faults.retry_after)}
            body = {"success": False, "error": "Too many requests"}
            return self._json(429, orjson.dumps(body), headers)
        if fault is Fault.STATUS_500:
            return self._json(500, orjson.dumps({"success": False, "error": "Internal error"}))
        if fault in _HTML_ERRORS:
            status, reason = _HTML_ERRORS[fault]
            page = f"<html><body><h1>{status} {reason}</h1></body></html>"
            return web.Response(status=status, text=page, content_type="text/html")
        if fault is Fault.BUSINESS_ERROR:
            body = _api.error_body(
                endpoint, faults.business_error_code, faults.business_error_text, self.live
            )
            return self._json(200, orjson.dumps(body))
        if fault is Fault.RESET:
            return _hang_up(request, reset=True)
        if fault is Fault.HANG:
            await self._pause(faults.hang_seconds)
            return _hang_up(request, reset=False)
        # The remaining faults happen after the request has been processed.
        status, payload = self._process(endpoint, fields)
        if fault is Fault.TRUNCATED_JSON:
            return self._json(status, payload[: len(payload) // 2])
        if fault is Fault.CUT_BODY:
            response = web.StreamResponse(status=status)
            response.content_type = "application/json"
            response.content_length = len(payload)
            try:
                await response.prepare(request)
                await response.write(payload[: len(payload) // 2])
            except ConnectionResetError:
                # The client has gone (say, it timed out during the latency): nothing to
                # cut. Quiet, as the other faults are, not aiohttp's "Error handling request".
                return _hang_up(request, reset=False)
            _hang_up(request, reset=False)
            return response
        assert fault is Fault.DROP_AFTER_PROCESS
        return _hang_up(request, reset=False)


def _hang_up(request: web.Request, *, reset: bool) -> web.Response:
    """Close the connection (RST when ``reset``, else FIN after flushing what was written).

    The response returned is never sent: aiohttp finds the transport closing, treats it as
    a client disconnect and moves on quietly. ``transport`` is ``None`` when the client has
    already gone (say, it timed out during a ``hang``).
    """
    transport: Any = request.transport
    if transport is not None:
        if reset:
            sock = transport.get_extra_info("socket")
            # struct linger {l_onoff=1, l_linger=0}: two ints on POSIX, two u_shorts
            # in Winsock.
            layout = "HH" if sys.platform == "win32" else "ii"
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(layout, 1, 0))
            transport.abort()
        else:
            transport.close()
    return web.Response()
