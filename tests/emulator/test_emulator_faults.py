"""Fault injection, observed from the client side with raw aiohttp; plus the request log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable

import aiohttp
import orjson
import pytest

from convoso_async.testing import ConvosoEmulator, Fault, Faults, _app
from convoso_async.testing._faults import FaultPlan

INSERT = {
    "lead_id": "424242",
    "recipient": "system",
    "callback_time_zone": "-5.00",
    "callback_time": "2026-03-05 02:30 PM",
}


async def send(
    http: aiohttp.ClientSession, emu: ConvosoEmulator, endpoint: str = "search", **fields: str
) -> tuple[int, dict[str, str], bytes]:
    data = {"auth_token": emu.auth_token, **fields}
    async with http.post(emu.url(endpoint), data=data) as response:
        return response.status, dict(response.headers), await response.read()


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (bounded; no fixed sleeps)."""
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.001)


def inserted(emu: ConvosoEmulator) -> list[str]:
    return [r["id"] for r in emu.store.records() if r["lead_id"] == INSERT["lead_id"]]


@pytest.mark.parametrize(
    ("retry_after", "header"), [(1, "1"), (7, "7"), ("Wed, 21 Oct 2026 07:28:00 GMT", None)]
)
async def test_429_carries_retry_after(
    emu: ConvosoEmulator, http: aiohttp.ClientSession, retry_after: int | str, header: str | None
) -> None:
    emu.faults = Faults(retry_after=retry_after)
    emu.script(["status_429"])
    status, headers, body = await send(http, emu)
    assert status == 429
    assert headers["Retry-After"] == (header or retry_after)
    assert orjson.loads(body)["success"] is False


async def test_429_without_retry_after(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.faults = Faults(retry_after=None)
    emu.script([Fault.STATUS_429])
    status, headers, _ = await send(http, emu)
    assert status == 429
    assert "Retry-After" not in headers


@pytest.mark.parametrize(
    ("fault", "status", "content_type"),
    [
        ("status_500", 500, "application/json"),
        ("status_502", 502, "text/html"),
        ("status_503", 503, "text/html"),
        ("status_504", 504, "text/html"),
    ],
)
async def test_server_errors_do_not_process(
    emu: ConvosoEmulator, http: aiohttp.ClientSession, fault: str, status: int, content_type: str
) -> None:
    emu.script([fault])
    got, headers, body = await send(http, emu, "insert", **INSERT)
    assert got == status
    assert headers["Content-Type"].startswith(content_type)
    assert str(status).encode() in body or b"error" in body
    assert inserted(emu) == []


async def test_reset_before_any_byte(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.script(["reset"])
    with pytest.raises(aiohttp.ClientConnectionError) as caught:
        await send(http, emu, "insert", **INSERT)
    assert isinstance(caught.value, aiohttp.ClientOSError | aiohttp.ServerDisconnectedError)
    assert inserted(emu) == []
    assert (await send(http, emu))[0] == 200  # the session recovers on a new connection


@pytest.mark.skipif(sys.platform == "win32", reason="ECONNRESET as Linux and macOS report it")
async def test_reset_sends_a_reset_not_a_close(emu: ConvosoEmulator) -> None:
    # An orderly close (FIN) would read as b"" here: the fault is a real RST.
    emu.script(["reset"])
    reader, writer = await asyncio.open_connection(emu.host, emu.port)
    try:
        body = f"auth_token={emu.auth_token}"
        writer.write(
            f"POST /v1/callbacks/search HTTP/1.1\r\nHost: {emu.host}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n{body}".encode()
        )
        await writer.drain()
        with pytest.raises(ConnectionResetError):
            await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    assert [r.fault for r in emu.requests] == ["reset"]


@pytest.mark.parametrize(
    ("platform", "layout"), [("win32", "HH"), ("linux", "ii"), ("darwin", "ii")]
)
def test_reset_packs_so_linger_as_the_platforms_struct_linger(
    monkeypatch: pytest.MonkeyPatch, platform: str, layout: str
) -> None:
    # Winsock's struct linger is two u_shorts, POSIX's two ints: "ii" on Windows gave it
    # 8 bytes, right only because the low half of a little-endian int 1 reads as (1, 0).
    options: list[tuple[int, int, bytes]] = []

    class Socket:
        def setsockopt(self, level: int, option: int, value: bytes) -> None:
            options.append((level, option, value))

    class Transport:
        aborted = False

        def get_extra_info(self, name: str) -> Socket:
            assert name == "socket"
            return Socket()

        def abort(self) -> None:
            Transport.aborted = True

    class Request:
        transport = Transport()

    monkeypatch.setattr(sys, "platform", platform)
    _app._hang_up(Request(), reset=True)  # type: ignore[arg-type]
    assert options == [(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack(layout, 1, 0))]
    assert Transport.aborted


async def test_cut_body_is_a_payload_error_after_processing(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["cut_body"])
    async with http.post(
        emu.url("insert"), data={"auth_token": emu.auth_token, **INSERT}
    ) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert len(inserted(emu)) == 1


async def test_cut_body_for_a_client_already_gone_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The client gives up during the latency (say, it timed out): nothing to cut, no error
    logged, as for the other faults."""
    emu = ConvosoEmulator(records=10, faults=Faults(latency=30.0))
    await emu.start()
    emu.script(["cut_body"])
    _, writer = await asyncio.open_connection(emu.host, emu.port)
    form = f"auth_token={emu.auth_token}".encode()
    head = f"POST /v1/callbacks/search HTTP/1.1\r\nHost: emulator\r\nContent-Length: {len(form)}"
    writer.write(f"{head}\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n".encode())
    writer.write(form)
    await until(lambda: emu.in_flight == 1)  # waiting out its latency
    writer.close()
    await writer.wait_closed()
    server = emu._runner.server if emu._runner else None
    assert server is not None
    # The one connection is still there (its handler runs on) but has seen the client go.
    await until(lambda: [c.transport for c in server.connections] == [None])
    await emu.close()  # ends the latency: the handler goes on to cut the body
    await until(lambda: emu.in_flight == 0)
    assert [r.fault for r in emu.requests] == [Fault.CUT_BODY]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_truncated_json_is_complete_but_invalid(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["truncated_json"])
    status, headers, body = await send(http, emu, limit="5")
    assert status == 200
    assert int(headers["Content-Length"]) == len(body) > 0
    assert body.startswith(b'{"offset":0,"limit":5')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_business_error_burst(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.faults = Faults(business_error_code=6100, business_error_text="Try later")
    emu.script(["business_error"], paths="insert")
    status, _, body = await send(http, emu, "insert", **INSERT)
    assert (status, orjson.loads(body)) == (
        200,
        {"success": False, "code": 6100, "error": "Try later"},
    )
    assert inserted(emu) == []


def test_rate_drawn_business_error_comes_in_bursts() -> None:
    plan = FaultPlan(Faults(business_error=0.1, burst=4, seed=11), default_seed=0)
    draws = [plan.draw("/v1/callbacks/search") for _ in range(400)]
    runs, length = [], 0
    for fault in [*draws, None]:
        if fault is Fault.BUSINESS_ERROR:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    assert runs
    assert all(run >= 4 for run in runs)
    assert set(draws) == {None, Fault.BUSINESS_ERROR}


async def test_drop_after_process_keeps_the_insert(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["drop_after_process"])
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(http, emu, "insert", **INSERT)
    assert len(inserted(emu)) == 1
    assert [(r.endpoint, r.fault) for r in emu.requests] == [("insert", Fault.DROP_AFTER_PROCESS)]


async def test_hang_then_disconnect(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.faults = Faults(hang_seconds=0.05)
    emu.script(["hang"])
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await send(http, emu, "insert", **INSERT)
    assert time.monotonic() - started >= 0.05
    assert inserted(emu) == []


async def test_hang_meets_a_client_timeout(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["hang"])  # default hang_seconds=30
    with pytest.raises(TimeoutError):
        async with http.post(
            emu.url("search"),
            data={"auth_token": emu.auth_token},
            timeout=aiohttp.ClientTimeout(total=0.1),
        ):
            pass  # pragma: no cover - never reached


async def test_close_cuts_a_hang_short(http: aiohttp.ClientSession) -> None:
    emu = ConvosoEmulator(records=10)
    await emu.start()
    emu.script(["hang"])
    request = asyncio.ensure_future(send(http, emu))
    await until(lambda: emu.in_flight == 1)
    started = time.monotonic()
    await emu.close()
    with pytest.raises(aiohttp.ClientConnectionError):
        await request
    assert time.monotonic() - started < 5


async def test_script_runs_in_order_then_stops(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["reset", "status_503", None, "status_429"])
    assert emu.scripted_pending == 4
    outcomes: list[int | str] = []
    for _ in range(6):
        try:
            outcomes.append((await send(http, emu))[0])
        except aiohttp.ClientConnectionError:
            outcomes.append("error")
    assert outcomes == ["error", 503, 200, 429, 200, 200]
    assert emu.scripted_pending == 0
    assert [r.fault for r in emu.requests] == [
        Fault.RESET,
        Fault.STATUS_503,
        None,
        Fault.STATUS_429,
        None,
        None,
    ]


async def test_script_restricted_to_paths(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script(["status_500"], paths="/callbacks/insert")
    emu.script(["status_502"])
    assert (await send(http, emu))[0] == 502  # first applicable step for a search
    assert (await send(http, emu))[0] == 200
    assert (await send(http, emu, "insert", **INSERT))[0] == 500
    assert (await send(http, emu, "insert", **INSERT))[0] == 200
    emu.script(["status_500", "status_500"])
    emu.clear_script()
    assert emu.scripted_pending == 0
    assert (await send(http, emu))[0] == 200


def test_script_rejects_unknown_names(emu: ConvosoEmulator) -> None:
    with pytest.raises(ValueError, match="explode"):
        emu.script([None, "explode"])
    assert emu.scripted_pending == 0


async def observed(seed: int | None, emulator_seed: int = 0, n: int = 40) -> list[object]:
    faults = Faults(status_503=0.25, status_500=0.15, reset=0.1, seed=seed)
    outcomes: list[object] = []
    async with (
        ConvosoEmulator(records=20, seed=emulator_seed, faults=faults) as emu,
        aiohttp.ClientSession() as http,
    ):
        for _ in range(n):
            try:
                outcomes.append((await send(http, emu))[0])
            except aiohttp.ClientConnectionError:
                outcomes.append("reset")
        assert [r.fault for r in emu.requests] == [
            {503: Fault.STATUS_503, 500: Fault.STATUS_500, "reset": Fault.RESET}.get(o)  # type: ignore[call-overload]
            for o in outcomes
        ]
    return outcomes


async def test_rates_replay_for_a_seed() -> None:
    first = await observed(seed=5)
    assert first == await observed(seed=5, emulator_seed=99)  # Faults.seed wins
    assert first != await observed(seed=6)
    assert {200, 503, 500, "reset"} == set(first)
    # Without Faults.seed the emulator's seed is used.
    assert await observed(None, emulator_seed=5) == first


async def test_faults_apply_to_their_paths_and_can_change_while_running(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.faults = Faults(status_500=1.0, paths={"/callbacks/search"})
    assert (await send(http, emu))[0] == 500
    assert (await send(http, emu, "insert", **INSERT))[0] == 200
    emu.faults = None
    assert emu.faults == Faults()
    assert (await send(http, emu))[0] == 200


async def test_fixed_latency_is_awaited(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.faults = Faults(latency=0.05, paths="search")
    started = time.monotonic()
    assert (await send(http, emu))[0] == 200
    assert time.monotonic() - started >= 0.05
    assert FaultPlan(emu.faults, 0).latency("/v1/callbacks/insert") == 0.0


def test_random_latency_is_seeded_and_in_range() -> None:
    def draws(seed: int) -> list[float]:
        plan = FaultPlan(Faults(latency=(0.01, 0.03), seed=seed), default_seed=0)
        return [plan.latency("/v1/callbacks/search") for _ in range(50)]

    values = draws(3)
    assert all(0.01 <= v <= 0.03 for v in values)
    assert len(set(values)) == 50
    assert values == draws(3)
    assert values != draws(4)


def test_one_emulator_serves_successive_event_loops() -> None:
    """Built once, entered on a new loop per test (as pytest-asyncio runs tests): a request
    that waits out its latency is answered on every loop, not failed with HTTP 500."""
    emu = ConvosoEmulator(records=10, faults=Faults(latency=0.01))

    async def one_test() -> int:
        async with emu, aiohttp.ClientSession() as http:
            return (await send(http, emu))[0]

    assert [asyncio.run(one_test()) for _ in range(2)] == [200, 200]


async def test_in_flight_tracking(emu: ConvosoEmulator, http: aiohttp.ClientSession) -> None:
    emu.faults = Faults(latency=30.0)
    requests = [asyncio.ensure_future(send(http, emu)) for _ in range(5)]
    await until(lambda: emu.in_flight == 5)
    assert emu.max_in_flight == 5
    emu.reset_stats()
    assert emu.requests == []
    assert emu.max_in_flight == 5  # restarts from the current level
    await emu.close()  # cuts the latency short; the requests still get answers
    statuses = [r[0] for r in await asyncio.gather(*requests)]
    assert statuses == [200] * 5
    assert emu.in_flight == 0
    emu.reset_stats()
    assert emu.max_in_flight == 0


async def test_sequential_requests_never_overlap(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    for _ in range(3):
        await send(http, emu)
    assert (emu.max_in_flight, emu.in_flight) == (1, 0)


async def test_request_log_masks_the_token(
    emu: ConvosoEmulator, http: aiohttp.ClientSession
) -> None:
    emu.script([None, "status_503"])
    await send(http, emu, limit="3", stage="PENDING")
    await send(http, emu, "insert", **INSERT)
    first, second = emu.requests
    assert first.path == "/v1/callbacks/search"
    assert first.form == {"auth_token": "***", "limit": "3", "stage": "PENDING"}
    assert (first.fault, second.fault, second.endpoint) == (None, Fault.STATUS_503, "insert")
    assert second.form == {"auth_token": "***", **INSERT}
    assert first.time <= second.time <= time.monotonic()
    assert emu.auth_token not in repr(emu.requests)


async def test_request_log_keeps_only_the_newest(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bounded, so a server that runs until interrupted does not grow with every request."""
    monkeypatch.setattr(_app, "REQUEST_LOG_SIZE", 3, raising=False)
    async with ConvosoEmulator(records=10) as emu:
        for limit in range(1, 6):
            await send(http, emu, limit=str(limit))
    assert [r.form["limit"] for r in emu.requests] == ["3", "4", "5"]
    monkeypatch.undo()
    assert _app.REQUEST_LOG_SIZE == 10_000  # the bound the docs state


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status_500": 1.5}, "status_500 must be a rate"),
        ({"reset": -0.1}, "reset must be a rate"),
        ({"status_503": 0.6, "status_504": 0.6}, "sum to at most 1"),
        ({"latency": -1.0}, "latency must be >= 0"),
        ({"latency": (0.3, 0.1)}, "latency range"),
        ({"burst": 0}, "burst"),
    ],
)
def test_faults_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Faults(**kwargs)  # type: ignore[arg-type]


def test_faults_normalise_paths_and_latency() -> None:
    faults = Faults(latency=(0, 1), paths=["/callbacks/search", "insert"])
    assert faults.latency == (0.0, 1.0)
    assert faults.paths == frozenset({"/callbacks/search", "insert"})
    assert faults.applies_to("/v1/callbacks/insert")
    assert not faults.applies_to("/v1/callbacks/delete")
    assert Faults().applies_to("/anything")
    assert [f for f, _ in Faults().rates()] == list(Fault)
