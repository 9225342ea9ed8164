"""pytest plugin: a ``convoso_emulator`` fixture serving a started :class:`ConvosoEmulator`.

Registered through the ``pytest11`` entry point, so every pytest run in an environment
where the package is installed loads it: at import it touches nothing but pytest (and
pytest-asyncio when present); aiohttp and the emulator are imported inside the fixture.

Configure the emulator per test with the constructor's keywords::

    @pytest.mark.convoso_emulator(records=500, seed=3, live_dialect=True)
    async def test_export(convoso_emulator):
        ...

Works in pytest-asyncio's ``auto`` and ``strict`` modes (in strict mode mark the test
``@pytest.mark.asyncio`` as usual). The fixture runs on the loop pytest-asyncio gives
async fixtures (``asyncio_default_fixture_loop_scope``): a test on a wider loop
(``loop_scope="module"``) needs that option set to its scope, or its requests wait on a
server whose loop is not running until the client's timeout ends them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

if TYPE_CHECKING:
    from convoso_async.testing._emulator import ConvosoEmulator

MARKER = "convoso_emulator"

_F = TypeVar("_F", bound=Callable[..., Any])


def _async_fixture(func: _F) -> _F:
    """``pytest_asyncio.fixture`` when available: async fixtures then work in strict mode."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - pytest-asyncio is a test dependency
        return cast("_F", pytest.fixture(func))
    return cast("_F", pytest_asyncio.fixture(func))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**kwargs): ConvosoEmulator keyword arguments for the {MARKER} fixture "
        "(records, seed, live_dialect, faults, hot_days, auth_token, ...)",
    )


@_async_fixture
async def convoso_emulator(request: pytest.FixtureRequest) -> AsyncIterator[ConvosoEmulator]:
    """A started emulator (function scope), closed after the test."""
    from convoso_async.testing._emulator import ConvosoEmulator

    async with ConvosoEmulator(**emulator_kwargs(request.node)) as emulator:
        yield emulator


def emulator_kwargs(node: pytest.Item) -> dict[str, Any]:
    """The ``convoso_emulator`` marker's keywords (closest marker wins; none -> defaults)."""
    marker = node.get_closest_marker(MARKER)
    if marker is None:
        return {}
    if marker.args:
        raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments only")
    return dict(marker.kwargs)
