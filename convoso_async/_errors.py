"""The exception tree. Every failure the client reports is a :class:`ConvosoError`.

::

    ConvosoError
    ├── ConvosoAPIError              the server answered, and the answer is a failure
    │   │                            (a 3xx redirect, never followed, raises it as is)
    │   ├── AuthenticationError      invalid token, HTTP 401/403
    │   ├── NotFoundError            6001, 6038, 6074 and "... not found"
    │   ├── InvalidParameterError    6006, 6023, 6026, 6031, 6042, 6070-6073, 7230, 7231,
    │   │                            7237, 7258, "Invalid ..." (bad stage/time/zone)
    │   ├── RateLimitError           HTTP 429, once retries are spent
    │   └── ServerError              HTTP 5xx, once retries are spent
    ├── MalformedResponseError       the body is not the documented JSON
    ├── TransportError               no usable answer: refused, reset, timed out
    └── PaginationLimitError         a search reaches past the API's offset/limit caps

None of them ever carries the auth token: messages are built from the endpoint name, the
HTTP status and the server's own error text, never from the request form.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from urllib.parse import quote, quote_plus


class ConvosoError(Exception):
    """Base class of every error raised by convoso-async."""

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only constructor arguments defeat Exception's default pickling; rebuild
        # from args and the instance dict so errors can cross process boundaries.
        return (_restore, (type(self), self.args), self.__dict__)

    def redact(self, secret: str) -> None:
        """Replace ``secret`` wherever server text carried it into this error: raw, or
        url-encoded as the form carried it (``quote_plus``) or as a path would (``quote``),
        since a server that echoes the request body echoes the encoded token.

        When the token was found, the exceptions chained to this one are dropped: they are
        not ours to edit, and the one that brought the text holds it too (aiohttp's parser
        errors quote the raw answer, a decode error the bad value)."""
        if not secret:
            return
        pattern = _secret_pattern(secret)
        own = [text for text in (*self.args, *vars(self).values()) if isinstance(text, str)]
        chained = [text for link in _chained(self) for text in (str(link), repr(link))]
        if not any(pattern.search(text) for text in own + chained):
            return
        self.args = tuple(
            pattern.sub("***", arg) if isinstance(arg, str) else arg for arg in self.args
        )
        for name, value in vars(self).items():
            if isinstance(value, str):
                setattr(self, name, pattern.sub("***", value))
        # As ``raise ... from None`` would, and the context too, which it would keep.
        self.__cause__ = self.__context__ = None
        self.__suppress_context__ = True


def _chained(error: BaseException) -> Iterator[BaseException]:
    """Every exception chained below ``error``, as causes or contexts, at any depth."""
    seen = {id(error)}
    links = [error.__cause__, error.__context__]
    while links:
        link = links.pop()
        if link is not None and id(link) not in seen:
            seen.add(id(link))
            yield link
            links += (link.__cause__, link.__context__)


@functools.lru_cache(maxsize=8)
def _secret_pattern(secret: str) -> re.Pattern[str]:
    """The token and its url-encoded spellings, longest first (so an encoded spelling is
    replaced whole); a percent-escape matches in either case, ``%2F`` and ``%2f``."""
    spellings = {secret: re.escape(secret)}
    # A form (quote_plus), a query or path segment (quote, safe=""), a path (quote).
    for encoded in (quote_plus(secret), quote(secret, safe=""), quote(secret)):
        if encoded not in spellings:
            spellings[encoded] = re.sub(r"%([0-9A-F]{2})", r"%(?i:\1)", re.escape(encoded))
    ordered = sorted(spellings, key=len, reverse=True)
    return re.compile("|".join(spellings[spelling] for spelling in ordered))


def _restore(cls: type[ConvosoError], args: tuple[object, ...]) -> ConvosoError:
    error = cls.__new__(cls)
    error.args = args
    return error


class ConvosoAPIError(ConvosoError):
    """The API answered with a failure (``success: false`` or an HTTP error status).

    ``code`` is the vendor's numeric code when the body carried one (as a number or a
    string), else ``None``; ``message`` is the server's text; ``endpoint`` is the path that
    failed, such as ``"callbacks/search"``; ``status`` is the HTTP status.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        endpoint: str = "",
        status: int | None = None,
    ) -> None:
        self.message = message
        self.code = code
        self.endpoint = endpoint
        self.status = status
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.endpoint}: " if self.endpoint else ""
        code = f" (code {self.code})" if self.code is not None else ""
        status = ""
        # A body without text has "HTTP 503" as its message already: say it once.
        if self.status not in (None, 200) and self.message != f"HTTP {self.status}":
            status = f" [HTTP {self.status}]"
        return f"{where}{self.message}{code}{status}"


class AuthenticationError(ConvosoAPIError):
    """The token is missing, invalid, or not valid for this office (HTTP 401/403)."""


class NotFoundError(ConvosoAPIError):
    """The callback (or lead) named in the request does not exist (6074, 6038, 6001)."""


class InvalidParameterError(ConvosoAPIError):
    """The server rejected an argument: an id, a date, a time, a zone or a stage."""


class RateLimitError(ConvosoAPIError):
    """HTTP 429 after every retry the policy allows. ``retry_after`` is the server's hint,
    in seconds, when it sent a ``Retry-After`` header."""

    retry_after: float | None = None


class ServerError(ConvosoAPIError):
    """HTTP 5xx after every retry the policy allows."""


class MalformedResponseError(ConvosoError):
    """The answer was not the documented JSON: not JSON, cut short, or the wrong shape.

    ``retryable`` is true when the body was not JSON at all (a proxy's HTML page, a body
    cut short): a second attempt may well succeed. JSON of the wrong shape is not retried.
    """

    def __init__(self, message: str, *, endpoint: str = "", retryable: bool = False) -> None:
        self.endpoint = endpoint
        self.retryable = retryable
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


class TransportError(ConvosoError):
    """No usable answer arrived: connection refused or reset, timeout, body cut off.

    ``sent`` tells whether the request may have reached the server. When it is ``False``
    (the connection was never established) resending is safe even for ``insert``.
    ``retryable`` is false for failures a second attempt cannot fix, such as a TLS
    certificate that does not verify.
    """

    def __init__(
        self, message: str, *, endpoint: str = "", sent: bool = True, retryable: bool = True
    ) -> None:
        self.endpoint = endpoint
        self.sent = sent
        self.retryable = retryable
        super().__init__(f"{endpoint}: {message}" if endpoint else message)


class PaginationLimitError(ConvosoError):
    """A search matches more records than offset/limit paging can reach (55,000).

    ``total`` is what the server reported and ``reachable`` how many paging can fetch.
    Narrow the filters (dates, stage, campaign) or use ``client.callbacks.export()``.
    """

    def __init__(self, message: str, *, total: int, reachable: int) -> None:
        self.total = total
        self.reachable = reachable
        super().__init__(message)
