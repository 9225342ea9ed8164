"""convoso-async: an asyncio-first client for the Convoso Callbacks API.

Everything public is re-exported here; the modules behind it are private (``_*.py``).

Names load on first use (PEP 562): the package's pytest plugin is imported by every
pytest run where the package is installed, and must not drag aiohttp in with it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._client import Callbacks, ConvosoClient
    from ._errors import (
        AuthenticationError,
        ConvosoAPIError,
        ConvosoError,
        InvalidParameterError,
        MalformedResponseError,
        NotFoundError,
        PaginationLimitError,
        RateLimitError,
        ServerError,
        TransportError,
    )
    from ._export import CallbackExport, ExportProgress, ExportWindow
    from ._models import Callback, CallbackPage, Recipient, Stage
    from ._pagination import CallbackSearch
    from ._retry import RetryPolicy

__version__ = "0.1.0"

_HOME = {
    "Callbacks": "._client",
    "ConvosoClient": "._client",
    "AuthenticationError": "._errors",
    "ConvosoAPIError": "._errors",
    "ConvosoError": "._errors",
    "InvalidParameterError": "._errors",
    "MalformedResponseError": "._errors",
    "NotFoundError": "._errors",
    "PaginationLimitError": "._errors",
    "RateLimitError": "._errors",
    "ServerError": "._errors",
    "TransportError": "._errors",
    "Callback": "._models",
    "CallbackPage": "._models",
    "Recipient": "._models",
    "Stage": "._models",
    "CallbackSearch": "._pagination",
    "CallbackExport": "._export",
    "ExportProgress": "._export",
    "ExportWindow": "._export",
    "RetryPolicy": "._retry",
}

__all__ = [
    "AuthenticationError",
    "Callback",
    "CallbackExport",
    "CallbackPage",
    "CallbackSearch",
    "Callbacks",
    "ConvosoAPIError",
    "ConvosoClient",
    "ConvosoError",
    "ExportProgress",
    "ExportWindow",
    "InvalidParameterError",
    "MalformedResponseError",
    "NotFoundError",
    "PaginationLimitError",
    "RateLimitError",
    "Recipient",
    "RetryPolicy",
    "ServerError",
    "Stage",
    "TransportError",
    "__version__",
]


# Hidden from type checkers: a module __getattr__ they can see turns every name the
# package lacks (a typo included) into an Any that `mypy --strict` lets pass.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        home = _HOME.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
