"""The one seam where aiohttp is used: POST a form, get status, headers and body back.

aiohttp's exceptions stop here and become :class:`TransportError`, with ``sent`` telling
whether the request could have reached the server; that fact decides whether ``insert``
may be resent. The token is added to the form here, at the last moment, and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING
from urllib.parse import quote_plus, urlencode

import aiohttp
from aiohttp.payload import BytesPayload
from yarl import URL

if TYPE_CHECKING:  # aiohttp's internals, named only for the connect() override's types
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.connector import Connection
    from aiohttp.tracing import Trace

from ._errors import ConvosoError, MalformedResponseError, TransportError

_FORM_TYPE = "application/x-www-form-urlencoded"

#: The largest answer read, counted after any ``Content-Encoding`` is undone. A full page
#: (5,000 records) is about 2 MB: this leaves room for records thirty times richer, and
#: stops a server or proxy that streams without end (or a small gzip that inflates to
#: gigabytes) before it fills memory, where the timeout alone would let it run for
#: ``timeout`` seconds at network speed.
MAX_BODY_BYTES = 64 * 1024 * 1024


def deadline_passed(endpoint: str) -> TransportError:
    """The error of an attempt whose retry deadline passed before it could be sent:
    not sent (so nothing to fear for ``insert``), and not retryable (no time is left)."""
    return TransportError(
        "the retry deadline passed before this attempt could be sent",
        endpoint=endpoint,
        sent=False,
        retryable=False,
    )


async def _read_body(response: aiohttp.ClientResponse, endpoint: str) -> bytes:
    """The whole body, as ``response.read()`` reads it, but never past ``MAX_BODY_BYTES``."""
    content = response.content
    blocks = []
    size = 0
    while block := await content.readany():
        size += len(block)
        if size > MAX_BODY_BYTES:
            response.close()  # the rest is never read: the connection goes, not to the pool
            raise MalformedResponseError(
                f"the answer is larger than {MAX_BODY_BYTES >> 20} MiB, far beyond any "
                "page the API sends; stopped reading it",
                endpoint=endpoint,
            )
        blocks.append(block)
    return b"".join(blocks)


class _Attempt:
    """One request's progress, as far as the connector can tell it."""

    __slots__ = ("connecting",)

    def __init__(self) -> None:
        self.connecting = False


_attempt: ContextVar[_Attempt | None] = ContextVar("convoso_async_attempt", default=None)


class _Connector(aiohttp.TCPConnector):
    """The client's own connector: it marks the request whose connection is being opened
    (a pooled one taken, or a new one connected, TLS handshake included). aiohttp's total
    timeout striking there surfaces as a bare ``TimeoutError``, as one striking after the
    request was written does; only this mark tells that nothing was sent."""

    async def connect(
        self,
        req: ClientRequest,
        traces: list[Trace],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 (aiohttp signature)
    ) -> Connection:
        attempt = _attempt.get()
        if attempt is None:
            return await super().connect(req, traces, timeout)
        attempt.connecting = True
        connection = await super().connect(req, traces, timeout)
        attempt.connecting = False
        return connection


class Transport:
    """POSTs forms to ``base_url`` through one pooled session, owned or borrowed."""

    def __init__(
        self,
        base_url: URL,
        token: str,
        *,
        timeout: float,
        pool_size: int,
        session: aiohttp.ClientSession | None,
    ) -> None:
        self._base_url = base_url
        self._token = token
        self._token_field = "&auth_token=" + quote_plus(token)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._pool_size = pool_size
        self._session = session
        self._owns_session = session is None
        # A borrowed session may carry a default Content-Type (one set up for a JSON
        # API) or skip the automatic one: the form's type is then stated on each POST,
        # or the server cannot read the form, token included.
        self._headers = None if session is None else {"Content-Type": _FORM_TYPE}
        self._urls: dict[str, URL] = {}
        self.closed = False

    def _client_session(self) -> aiohttp.ClientSession:
        if self.closed:
            raise RuntimeError("this ConvosoClient is closed")
        if self._session is None:
            # Created on first use, inside the running loop, as aiohttp requires.
            connector = _Connector(limit=self._pool_size, limit_per_host=self._pool_size)
            # Token auth travels in the form, so cookies serve nothing: skip the jar's
            # per-request filtering.
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session

    async def post(
        self, endpoint: str, form: Mapping[str, str], time_left: float | None = None
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one form; return ``(status, headers, body)`` or raise :class:`TransportError`."""
        if time_left is not None and time_left <= 0:
            # aiohttp reads a zero timeout as "none at all": refuse rather than hang.
            raise deadline_passed(endpoint)
        session = self._client_session()
        # Encoded here rather than handed to aiohttp as a dict: its FormData path costs
        # ~60 us a request, several times this. The token's field is encoded once.
        payload = BytesPayload(
            (urlencode(form) + self._token_field).encode(), content_type=_FORM_TYPE
        )
        request_timeout = self._timeout
        if time_left is not None and time_left < (self._timeout.total or float("inf")):
            # A retry deadline nearer than the usual timeout shortens this attempt.
            request_timeout = aiohttp.ClientTimeout(total=time_left)
        # Only the client's own connector marks the connecting phase; a borrowed session's
        # timeouts are all taken as "may have been sent".
        attempt = _Attempt() if self._owns_session else None
        marked = _attempt.set(attempt)
        try:
            # Never follow a redirect: a 307/308 resends the form, token and all, to any
            # Location, plain http included. check_status makes a 3xx a typed error.
            async with session.post(
                self._url(endpoint),
                data=payload,
                headers=self._headers,
                timeout=request_timeout,
                allow_redirects=False,
                # A caller's session may raise for status: the status is check_status's
                # to map, or a 401 would come out as a TransportError, retried.
                raise_for_status=False,
            ) as response:
                body = await _read_body(response, endpoint)
                return response.status, response.headers, body
        except aiohttp.ClientSSLError as exc:
            raise TransportError(
                f"TLS failure: {exc}", endpoint=endpoint, sent=False, retryable=False
            ) from exc
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
            raise TransportError(
                f"could not connect: {exc}", endpoint=endpoint, sent=False
            ) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            timed_out = isinstance(exc, asyncio.TimeoutError)
            if timed_out and attempt is not None and attempt.connecting:
                raise TransportError(
                    "could not connect: timed out", endpoint=endpoint, sent=False
                ) from exc
            if timed_out:
                what = "timed out"
            elif isinstance(exc, aiohttp.ClientResponseError):
                # The parser's error (raise_for_status is off): its status is aiohttp's
                # stand-in 400, not the server's, and its repr lists the request headers.
                what = f"the answer is not valid HTTP: {' '.join(exc.message.split())}"
            else:
                what = repr(exc)
            raise TransportError(f"no complete answer: {what}", endpoint=endpoint) from exc
        finally:
            _attempt.reset(marked)

    def redact(self, error: ConvosoError) -> None:
        """Scrub the token from an error built from server text: servers echo tokens."""
        error.redact(self._token)

    def _url(self, endpoint: str) -> URL:
        url = self._urls.get(endpoint)
        if url is None:
            url = self._urls[endpoint] = self._base_url / endpoint
        return url

    async def close(self) -> None:
        """Close the session if this transport created it; a borrowed one is left open."""
        self.closed = True
        if self._owns_session and self._session is not None:
            await self._session.close()
