"""``convoso_async.testing``: a local Convoso Callbacks API emulator with fault injection.

It shares no code with the client (it never imports ``convoso_async._*``), so tests that
run the client against it test the client honestly.

::

    from convoso_async.testing import ConvosoEmulator, Faults

    async with ConvosoEmulator(records=10_000, seed=7) as emu:
        emu.base_url, emu.auth_token    # where and how to connect
        emu.script(["reset", None])     # fault the next request, then answer normally
        emu.faults = Faults(status_503=0.1, latency=(0.0, 0.05), seed=3)
        emu.store.get("100042")         # the record as the API returns it
        emu.requests[-1].form           # what arrived, auth_token masked as "***"

Names are imported lazily, so the pytest plugin (loaded by every pytest run once the
package is installed) can import this package without importing aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import RecordedRequest
    from ._emulator import DEFAULT_AUTH_TOKEN, ConvosoEmulator
    from ._faults import Fault, Faults
    from ._store import CallbackStore, CallList, Campaign, User

__all__ = [
    "DEFAULT_AUTH_TOKEN",
    "CallList",
    "CallbackStore",
    "Campaign",
    "ConvosoEmulator",
    "Fault",
    "Faults",
    "RecordedRequest",
    "User",
]

_HOME = {
    "ConvosoEmulator": "._emulator",
    "DEFAULT_AUTH_TOKEN": "._emulator",
    "Fault": "._faults",
    "Faults": "._faults",
    "RecordedRequest": "._app",
    "CallbackStore": "._store",
    "CallList": "._store",
    "Campaign": "._store",
    "User": "._store",
}


# Hidden from type checkers: a module __getattr__ they can see turns every name the
# package lacks (a typo included) into an Any that `mypy --strict` lets pass.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        module = _HOME.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
