"""Shared fixtures, and the aioresponses shim for aiohttp >= 3.14.

aioresponses 0.7.9 (its latest release) builds ``ClientResponse`` without the
``stream_writer`` argument that aiohttp 3.14 made required (pnuckowski/aioresponses#289).
aiohttp 3.14 is a security release and is what users install, so we do not pin aiohttp
down; instead, when the installed aiohttp needs it, the fixture below hands aioresponses a
``ClientResponse`` subclass that supplies an inert writer. Only the response *construction*
is patched: status, headers and body still flow through aiohttp's own reading code, so the
client under test is exercised on the real aiohttp. Remove this once aioresponses is fixed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses, core

from convoso_async import RetryPolicy

_NEEDS_STREAM_WRITER = (
    "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters
)


class _CompatResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        # A response that is already complete has written its request: output_size 0.
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


@pytest.fixture
def mock_api() -> Iterator[aioresponses]:
    """aioresponses, working on the installed aiohttp."""
    original = core.ClientResponse
    if _NEEDS_STREAM_WRITER:
        core.ClientResponse = _CompatResponse  # type: ignore[misc]
    try:
        with aioresponses() as mocked:
            yield mocked
    finally:
        core.ClientResponse = original  # type: ignore[misc]


BASE = "https://api.test/v1"
TOKEN = "s3cret-token-value"


@pytest.fixture
def fast_retry() -> RetryPolicy:
    """Millisecond waits: retry behaviour without slow tests."""
    return RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.005)


@pytest.fixture(autouse=True)
def _seeded_jitter() -> Iterator[None]:
    """Seed the global ``random`` module, which tenacity draws retry jitter from, so every
    test that retries waits the same on every run. A module may override it with its own
    seed (same fixture name); the state is restored afterwards."""
    state = random.getstate()
    random.seed(20260227)
    yield
    random.setstate(state)


@contextlib.asynccontextmanager
async def raw_server(
    answer: Callable[[asyncio.StreamWriter, bytes], Awaitable[None]],
) -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server on 127.0.0.1 that reads each request whole, records its body, and lets
    ``answer(writer, body)`` write the bytes of the reply; yields the base URL and the
    bodies. On the way out it waits for every connection's handler to end, so no task
    outlives the test."""
    bodies: list[bytes] = []
    handlers: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.partition(b":")[2])
                for line in head.lower().split(b"\r\n")
                if line.startswith(b"content-length:")
            )
            bodies.append(await reader.readexactly(length))
            await answer(writer, bodies[-1])
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: what some tests are about
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", bodies
        await asyncio.gather(*handlers)
