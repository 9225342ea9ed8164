"""Shared by the benchmarks: sample bodies shaped like the reference's example, a page
server in its own process (so serving costs the measured client nothing), and timing.

Every figure is a median of repeated runs, reported next to a baseline measured in the
same run: this is a shared 2-core VM whose absolute times drift 15-25% between runs.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import socket
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import orjson

from convoso_async._models import CallbackPage
from convoso_async._protocol import parse_page

TOKEN = "bench-token"
STAGES = ("PENDING", "COMPLETED", "PAST_DUE", "DISMISSED")


def sample_record(rng: random.Random, index: int) -> dict[str, str]:
    """One record like the reference's example (~360 bytes of JSON)."""
    day = rng.randint(1, 28)
    first, last = rng.choice(("Jane", "John", "Ana", "Omar")), rng.choice(("Smith", "Doe", "Lee"))
    return {
        "id": str(100_000 + index),
        "lead_id": str(rng.randint(10_000, 99_999)),
        "list_id": str(rng.choice((333, 334, 335))),
        "campaign_id": "111",
        "status": "ACTIVE",
        "created_at": f"2026-03-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
        "callback_time": (
            f"2026-03-{day:02d} {rng.randint(1, 12):02d}:{rng.choice((0, 15, 30, 45)):02d} "
            f"{rng.choice(('AM', 'PM'))}"
        ),
        "modified_at": f"2026-03-{day:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00",
        "user": f"{first} {last}",
        "recipient": rng.choice(("system", "personal")),
        "comments": "Customer requested callback",
        "stage": rng.choice(STAGES),
        "user_name": f"{first.lower()}.{last.lower()}@company.com",
        "campaign_name": "Sales Campaign",
    }


def make_bodies(total: int, page_size: int, seed: int = 1) -> dict[int, bytes]:
    """``{offset: body}`` for every page of a ``total``-record search."""
    rng = random.Random(seed)
    records = [sample_record(rng, i) for i in range(total)]
    return {
        offset: orjson.dumps(
            {
                "offset": offset,
                "limit": page_size,
                "total": total,
                "results": records[offset : offset + page_size],
            }
        )
        for offset in range(0, total, page_size)
    }


def typed_pages(bodies: Iterable[bytes], page_size: int) -> Iterator[CallbackPage]:
    """Each search body decoded by the client's own path (``parse_page``, then every
    record typed), one page at a time, as if the bodies were pages from offset 0."""
    for index, body in enumerate(bodies):
        yield parse_page(body, offset=index * page_size, limit=page_size).page()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(port: int, total: int, page_size: int, latency: float, ready: Any) -> None:
    from aiohttp import web

    bodies = make_bodies(total, page_size)

    async def search(request: web.Request) -> web.Response:
        form = await request.post()
        await asyncio.sleep(latency)
        body = bodies.get(int(str(form.get("offset", "0"))), b'{"total": 0, "results": []}')
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/callbacks/search", search)
    ready.set()
    web.run_app(app, host="127.0.0.1", port=port, print=None, handle_signals=True)


class PageServer:
    """Serves prebuilt pages from another process, after ``latency`` seconds each."""

    def __init__(self, total: int, page_size: int, latency: float) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Event()
        self._process = ctx.Process(
            target=_serve, args=(self.port, total, page_size, latency, ready), daemon=True
        )
        self._process.start()
        ready.wait(60)
        _wait_for_port(self.port)

    def close(self) -> None:
        self._process.terminate()
        self._process.join(10)

    def __enter__(self) -> PageServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"benchmark server on port {port} did not start")


async def interleaved_rounds(
    runs: dict[str, Callable[[], Awaitable[Any]]], repeats: int
) -> dict[str, list[float]]:
    """Wall seconds of each coroutine over ``repeats`` rounds that run every one in turn.

    One warm-up round first. This machine drifts between fast and slow spells that last
    seconds; rounds put every contender in every spell, and a ratio taken within one
    round compares runs made under the same conditions.
    """
    for run in runs.values():
        await run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            await run()
            times[name].append(time.perf_counter() - started)
    return times


def row(label: str, value: str, ratio: str = "") -> None:
    print(f"  {label:<48} {value:>16} {ratio:>12}")


def interleaved_medians(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each plain (not async) run, in :func:`interleaved_rounds`.

    Each run is wrapped in a coroutine that only calls it: microseconds against runs of
    tens of milliseconds.
    """

    def wrapped(run: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            run()

        return call

    rounds = interleaved_rounds({name: wrapped(run) for name, run in runs.items()}, repeats)
    return {name: statistics.median(values) for name, values in asyncio.run(rounds).items()}


class EmulatorProcess:
    """``python -m convoso_async.testing`` in a child process, on a free port.

    The emulator's CPU (query, rendering, JSON encoding) then runs on the other core, not
    on the event loop of the client being measured.
    """

    def __init__(self, records: int, *, seed: int = 1, latency_ms: float = 0.0, days: int = 30):
        import subprocess
        import sys

        self.port = free_port()
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "convoso_async.testing",
                "--port",
                str(self.port),
                "--records",
                str(records),
                "--seed",
                str(seed),
                "--days",
                str(days),
                "--latency-ms",
                str(latency_ms),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        lines = {}
        for _ in range(2):
            key, _, value = self._process.stdout.readline().strip().partition(": ")
            lines[key] = value
        if "base_url" not in lines:
            self.close()
            raise RuntimeError("the emulator did not start")
        self.base_url = lines["base_url"]
        self.auth_token = lines["auth_token"]
        _wait_for_port(self.port)

    def close(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except Exception:
            self._process.kill()
            self._process.wait(10)
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
