"""convoso-async: an asyncio-first client for the Convoso Callbacks API.

Everything public is re-exported here; the modules behind it are private (``_*.py``).
"""

from __future__ import annotations

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
from ._models import Callback, CallbackPage, Recipient, Stage
from ._pagination import CallbackSearch
from ._retry import RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "AuthenticationError",
    "Callback",
    "CallbackPage",
    "CallbackSearch",
    "Callbacks",
    "ConvosoAPIError",
    "ConvosoClient",
    "ConvosoError",
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
