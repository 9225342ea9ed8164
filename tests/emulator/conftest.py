"""Fixtures for the emulator's own tests: a small seeded emulator and a raw aiohttp session.

These tests talk to the emulator with plain aiohttp requests, never through the client,
and check answers against an oracle computed from ``emu.store`` by brute force.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from emulator_oracle import Post

from convoso_async.testing import ConvosoEmulator

FIXED_NOW = datetime(2026, 2, 20, 9, 30, 15)


@pytest.fixture
async def emu() -> AsyncIterator[ConvosoEmulator]:
    async with ConvosoEmulator(records=3000, seed=7, clock=lambda: FIXED_NOW) as emulator:
        yield emulator


@pytest.fixture
async def live_emu() -> AsyncIterator[ConvosoEmulator]:
    async with ConvosoEmulator(records=3000, seed=7, live_dialect=True) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def post(http: aiohttp.ClientSession) -> Post:
    """``await post(emu, "search", limit=5)`` -> (status, parsed JSON), token filled in."""

    async def _post(
        emu: ConvosoEmulator, endpoint: str, *, token: bool = True, **fields: object
    ) -> tuple[int, Any]:
        data = {k: str(v) for k, v in fields.items()}
        if token:
            data.setdefault("auth_token", emu.auth_token)
        async with http.post(emu.url(endpoint), data=data) as response:
            return response.status, await response.json(content_type=None)

    return _post
