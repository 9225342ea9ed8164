"""``ConvosoClient``: configuration, the shared request path, and ``client.callbacks``.

Every request goes through :meth:`ConvosoClient._call`: validate (already done by the
form builders), wait for a concurrency slot and then the rate limiter, POST, release the slot
the moment the body is read, then check and decode. Retries wrap exactly that one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime, timedelta
from functools import partial
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp
from yarl import URL

from . import _protocol as proto
from ._errors import ConvosoError
from ._export import CallbackExport, ExportProgress, ExportWindow
from ._models import CallbackPage, Recipient, Stage
from ._pagination import CallbackSearch
from ._retry import (
    RetryBudget,
    RetryPolicy,
    Sleep,
    Tries,
    call_with_retries,
    continue_with_retries,
    is_retryable,
    is_seconds,
)
from ._transport import Transport, deadline_passed

logger = logging.getLogger("convoso_async")
T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.convoso.com/v1"

DateLike = date | str
Id = str | int
Zone = float | str | timedelta


def _checked_base_url(raw: str) -> URL:
    # Surrounding blanks (a value pasted into an env file) would be sent as %20 in the path.
    url = URL(raw.strip().rstrip("/"))
    if url.query_string or url.fragment:
        # Endpoints are joined onto the path: a query would be dropped without a word.
        raise ValueError(f"base_url must not carry a query or fragment: {_shown(url)}")
    if url.scheme == "https" and url.host:
        return url
    if url.scheme == "http" and url.host and _is_loopback(url.host):
        return url
    raise ValueError(
        f"base_url must be https (plain http only for a loopback host): {_shown(url)}; "
        "the auth token would otherwise cross the network in clear text"
    )


def _shown(url: URL) -> str:
    """``url`` fit for a message or repr: no user, password, query or fragment."""
    if url.absolute:  # (a URL with no host has no user to drop)
        url = url.with_user(None)
    return str(url.with_query(None).with_fragment(None))


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _RateLimiter:
    """Spaces request starts at least ``1 / rate`` seconds apart, smoothing bursts.

    Waiters take the starts in the order they came. ``sleep`` is the client's: it ends
    early, raising, when the client is closed.
    """

    def __init__(self, rate: float, sleep: Sleep) -> None:
        self._interval = 1.0 / rate
        self._next = 0.0
        self._sleep = sleep
        # First come, first served (asyncio.Lock wakes its waiters in order): woken
        # together, the first to run took the start, so under load a waiter could lose
        # its turn after turn, for seconds, to waiters that came after it.
        self._turns = asyncio.Lock()

    async def wait(self) -> None:
        """Return when a request may start; the caller must send it before awaiting anything."""
        loop = asyncio.get_running_loop()
        # The start is claimed only once it has come, never reserved ahead: a waiter that
        # is cancelled while asleep (a timeout, a deadline) must leave no claim behind to
        # push later requests out. Only the waiter at the head of the line sleeps.
        async with self._turns:
            while True:
                now = loop.time()
                if now >= self._next:
                    self._next = now + self._interval
                    return
                await self._sleep(self._next - now)


class ConvosoClient:
    """An async client for the Convoso Callbacks API; share one across your whole program.

    ``auth_token`` falls back to ``$CONVOSO_AUTH_TOKEN`` and ``base_url`` to
    ``$CONVOSO_BASE_URL`` when not given; an empty one given is a ``ValueError``.
    ``max_concurrency`` bounds requests in flight across everything this client does;
    ``rate_limit`` (requests per second) spaces their starts. Pass your own ``session``
    to reuse a pool you manage: the client will not close it.

    Use it as ``async with ConvosoClient() as client:`` or call :meth:`close`.
    """

    def __init__(
        self,
        auth_token: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        rate_limit: float | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        token = auth_token if auth_token is not None else os.environ.get("CONVOSO_AUTH_TOKEN")
        if not token:
            raise ValueError("no auth token: pass auth_token= or set CONVOSO_AUTH_TOKEN")
        if not isinstance(token, str):
            # Not quoted: it is the secret. Bytes were taken, then broke every failure
            # with a TypeError when its error was scrubbed of them.
            raise ValueError(f"auth_token must be a string, not {type(token).__name__}")
        if base_url is None:
            base_url = os.environ.get("CONVOSO_BASE_URL") or DEFAULT_BASE_URL
        elif isinstance(base_url, str) and not base_url.strip():
            # As with the token, only one not passed falls back: an empty one (a blank
            # config value, an unset variable) would send the token to Convoso's API.
            raise ValueError(
                "base_url is empty: pass the API's URL, or leave it out for "
                "$CONVOSO_BASE_URL or Convoso's"
            )
        self.base_url = _checked_base_url(base_url)
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ValueError(f"max_concurrency must be an integer, not {max_concurrency!r}")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, not {max_concurrency}")
        if not is_seconds(timeout) or not 0 < timeout < math.inf:
            raise ValueError(f"timeout must be positive seconds, not {timeout!r}")
        if rate_limit is not None and (not is_seconds(rate_limit) or not 0 < rate_limit < math.inf):
            raise ValueError(f"rate_limit must be positive requests/second, not {rate_limit!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ValueError(f"retry must be a RetryPolicy or None, not {type(retry).__name__}")
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        # The loop of the first call: the session, the slots and the close() event bind
        # to it, and fail obscurely in any other ("Event loop is closed", "bound to a
        # different event loop", or not at all until two calls contend).
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set by close(): wakes the calls asleep in the rate limiter or a retry's backoff,
        # which would otherwise wait out their turn only to find the client closed.
        self._closing = asyncio.Event()
        self._limiter = _RateLimiter(rate_limit, self._sleep) if rate_limit else None
        self._budget = (
            RetryBudget(self.retry.retry_budget) if self.retry.retry_budget is not None else None
        )
        self._transport = Transport(
            self.base_url, token, timeout=timeout, pool_size=max_concurrency, session=session
        )
        self.callbacks = Callbacks(self)
        #: Requests sent, and retries among them, over the client's life (an attempt
        #: that ends before it is sent, cancelled or out of time in the queue, is neither).
        self.requests_sent = 0
        self.retries = 0

    def __repr__(self) -> str:
        return (
            f"ConvosoClient(base_url={_shown(self.base_url)!r}, "
            f"max_concurrency={self.max_concurrency}, retry={self.retry!r})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool (unless it was passed in as ``session=``).

        Calls still waiting for the rate limiter or a retry's backoff then raise
        ``RuntimeError`` at once; calls waiting for a slot raise it when one frees, which
        with a borrowed ``session=`` is only when a request in flight ends.
        """
        self._closing.set()
        await self._transport.close()

    @property
    def closed(self) -> bool:
        return self._transport.closed

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this ConvosoClient belongs to the event loop it was first used in and "
                "cannot be used in another event loop: create one client per loop "
                "(per asyncio.run, per test event loop)"
            )

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise RuntimeError("this ConvosoClient is closed")

    async def _sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise ``RuntimeError`` as soon as the client is closed."""
        if not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._closing.wait()
        self._check_open()

    async def _take_turn(self) -> None:
        """Wait for a concurrency slot, then for the rate limiter: the request may go now.

        The caller holds the slot from here and must release it; a wait that is cancelled
        takes nothing. The limiter is passed last, once the slot is held: passed before,
        it let calls queued on a busy slot go out back to back when the slot freed.
        """
        await self._slots.acquire()
        try:
            if self._limiter is not None:
                await self._limiter.wait()
        except BaseException:
            self._slots.release()
            raise

    async def _send(
        self, endpoint: str, form: Mapping[str, str], deadline: float | None, is_retry: bool
    ) -> tuple[int, Mapping[str, str], bytes]:
        """Send one request on the slot the caller took; free the slot once the answer is
        read, before it is decoded, so that decoding never holds back the next request."""
        try:
            self._check_open()  # close() may have come while it was queued
            time_left = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if time_left is not None and time_left <= 0:
                raise deadline_passed(endpoint)  # the turn came just too late
            # Counted now that it is certain to be sent, and not before: an attempt that
            # ends while queued (cancelled, out of time) sent nothing.
            self.requests_sent += 1
            if is_retry:
                self.retries += 1
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("POST %s %s", endpoint, _loggable(form))
            return await self._transport.post(endpoint, form, time_left)
        finally:
            self._slots.release()

    async def _call(
        self,
        endpoint: str,
        form: Mapping[str, str],
        *,
        idempotent: bool,
        decode: Callable[[bytes], T],
        tries: Tries | None = None,
        failed: ConvosoError | None = None,
    ) -> T:
        """POST ``form`` to ``endpoint`` under the retry policy; return ``decode(body)``.

        ``decode`` gets the body of a 2xx answer and raises the typed error of one that
        is not a success; it runs inside the retries, so a retryable error is retried.
        ``tries`` counts the call's attempts. Passing it back with ``failed``, the error
        of an answer found unreadable after the call returned, continues that call with
        the attempts the policy has left.
        """
        self._check_loop()
        tries = tries if tries is not None else Tries()
        before = tries.made

        async def attempt(remaining: float | None) -> T:
            tries.made += 1
            # Every attempt of a continued call is a retry.
            is_retry = failed is not None or tries.made - before > 1
            loop = asyncio.get_running_loop()
            # The deadline bounds the whole call, queueing included: fixed now, it is
            # waited for no longer, and the request sent gets only what is left of it.
            deadline = None if remaining is None else loop.time() + remaining
            try:
                async with asyncio.timeout_at(deadline):
                    await self._take_turn()
            except TimeoutError:
                raise deadline_passed(endpoint) from None
            # Every error of the attempt is redacted before tenacity logs it or the caller
            # sees it, the transport's too: aiohttp's parser errors quote the raw answer.
            try:
                status, headers, body = await self._send(endpoint, form, deadline, is_retry)
                logger.debug("%s answered HTTP %d, %d bytes", endpoint, status, len(body))
                proto.check_status(endpoint, status, headers, body, datetime.now(UTC))
                return decode(body)
            except ConvosoError as error:
                self._transport.redact(error)
                raise

        if failed is None:
            return await call_with_retries(
                attempt,
                policy=self.retry,
                budget=self._budget,
                idempotent=idempotent,
                what=endpoint,
                sleep=self._sleep,
            )
        return await continue_with_retries(
            attempt,
            failed,
            spent=before,
            policy=self.retry,
            budget=self._budget,
            idempotent=idempotent,
            what=endpoint,
            sleep=self._sleep,
        )


def _filters_from(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The search filters among a method's arguments (``locals()`` at its top)."""
    return {name: arguments[name] for name in proto.SEARCH_FILTERS}


def _loggable(form: Mapping[str, str]) -> str:
    # Forms never hold the token (the transport adds it), but comments are customer text.
    return " ".join(f"{k}={v}" for k, v in form.items() if k != "comments")


class _LandedPage:
    """A search answer as it arrived: HTTP status checked, body not parsed yet.

    The paginator holds up to ``concurrency`` answers ahead of its consumer. Parsing each
    on arrival would put milliseconds of CPU inside the request's task, where it holds
    back the requests queued behind it, and would keep the page as JSON objects, about
    five times the size of its bytes. So the walk opens a page when it reaches it. A body
    that then proves unreadable in a way a retry can fix (not JSON, a transient error) is
    fetched again, parsed inside the retry policy this time; any other error is raised.
    The fetch continues the call that brought the body, with the attempts it has left,
    and takes a place among the walk's requests in flight (``slot``).
    """

    __slots__ = ("_body", "_client", "_fetch_again", "_limit", "_offset")

    def __init__(
        self,
        body: bytes,
        *,
        offset: int,
        limit: int,
        fetch_again: Callable[[ConvosoError], Awaitable[proto.PageBody]],
        client: ConvosoClient,
    ) -> None:
        self._body = body
        self._offset, self._limit = offset, limit
        self._fetch_again = fetch_again
        self._client = client

    @property
    def total_hint(self) -> int | None:
        """``total`` if the body's head tells it without parsing (the documented shape)."""
        return proto.peek_total(self._body)

    async def open(self, slot: Callable[[], AbstractAsyncContextManager[None]]) -> proto.PageBody:
        """Parse the page (once: the body is released)."""
        body, self._body = self._body, b""
        try:
            return proto.parse_page(
                body, offset=self._offset, limit=self._limit, redact=self._client._transport.redact
            )
        except ConvosoError as error:
            self._client._transport.redact(error)
            if not is_retryable(error, idempotent=True):
                raise
            # Whether it is fetched again is the retry policy's to say (attempts, budget):
            # its retry line tells it, when one is made.
            logger.warning(
                "the search page at offset %d could not be read when the walk reached it (%s)",
                self._offset,
                error,
            )
            async with slot():
                return await self._fetch_again(error)


class Callbacks:
    """The four Callbacks endpoints, as ``client.callbacks``."""

    def __init__(self, client: ConvosoClient) -> None:
        self._client = client

    async def search_page(
        self,
        *,
        offset: int = 0,
        limit: int = 20,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        campaign_id: Id | None = None,
        callback_id: Id | None = None,
        lead_id: Id | None = None,
        list_id: Id | None = None,
        recipient: Recipient | str | None = None,
        user_id: Id | None = None,
        stage: Stage | str | None = None,
    ) -> CallbackPage:
        """One page of ``callbacks/search``: up to ``limit`` records from ``offset``.

        Dates are inclusive, as ``date`` or ``YYYY-MM-DD``; ``callback_id`` is sent as the
        form field ``id``. Raises ``ValueError`` before sending if an argument is invalid.
        For more than one page, iterate :meth:`search` instead.
        """
        filters = proto.filter_form(_filters_from(locals()))
        return (await self._page(filters, offset, limit)).page()

    async def _search(
        self,
        filters: proto.Form,
        offset: int,
        limit: int,
        decode: Callable[[bytes], T],
        *,
        tries: Tries | None = None,
        failed: ConvosoError | None = None,
    ) -> T:
        """One search call; ``tries`` and ``failed`` as :meth:`ConvosoClient._call`."""
        form = proto.page_form(filters, offset=offset, limit=limit)
        return await self._client._call(
            proto.SEARCH, form, idempotent=True, decode=decode, tries=tries, failed=failed
        )

    async def _page(
        self,
        filters: proto.Form,
        offset: int,
        limit: int,
        *,
        tries: Tries | None = None,
        failed: ConvosoError | None = None,
    ) -> proto.PageBody:
        redact = self._client._transport.redact
        decode = partial(proto.parse_page, offset=offset, limit=limit, redact=redact)
        return await self._search(filters, offset, limit, decode, tries=tries, failed=failed)

    async def _landed_page(self, filters: proto.Form, offset: int, limit: int) -> _LandedPage:
        """A page for the paginator: its body as it arrived, parsed when the walk opens it."""
        tries = Tries()

        def fetch_again(error: ConvosoError) -> Awaitable[proto.PageBody]:
            return self._page(filters, offset, limit, tries=tries, failed=error)

        def landed(body: bytes) -> _LandedPage:
            return _LandedPage(
                body, offset=offset, limit=limit, fetch_again=fetch_again, client=self._client
            )

        return await self._search(filters, offset, limit, landed, tries=tries)

    def search(
        self,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        campaign_id: Id | None = None,
        callback_id: Id | None = None,
        lead_id: Id | None = None,
        list_id: Id | None = None,
        recipient: Recipient | str | None = None,
        user_id: Id | None = None,
        stage: Stage | str | None = None,
        page_size: int = proto.MAX_LIMIT,
        max_items: int | None = None,
        offset: int = 0,
        concurrency: int = 4,
        truncate: bool = False,
    ) -> CallbackSearch:
        """Every callback matching the filters, as an ``async for`` in offset order.

        Takes :meth:`search_page`'s filters. Sends nothing until iterated; then fetches
        the first page alone (it tells ``total``) and the rest ``concurrency`` at a time
        (never more than the client's ``max_concurrency``). Stops at ``total``, at a
        short page, or after ``max_items``. If ``total`` is beyond what offset/limit
        paging can reach (55,000 records), raises :class:`PaginationLimitError` before
        yielding anything, unless ``truncate=True``; :meth:`export` reaches them all.
        """
        # Validated now: a bad filter must fail at the call, not at the first iteration.
        filters = proto.filter_form(_filters_from(locals()))

        def fetch(page_offset: int, limit: int) -> Awaitable[_LandedPage]:
            return self._landed_page(filters, page_offset, limit)

        return CallbackSearch(
            fetch,
            page_size=page_size,
            max_items=max_items,
            offset=offset,
            concurrency=concurrency,
            truncate=truncate,
            max_concurrency=self._client.max_concurrency,
        )

    def export(
        self,
        start_date: DateLike,
        end_date: DateLike,
        *,
        campaign_id: Id | None = None,
        list_id: Id | None = None,
        user_id: Id | None = None,
        lead_id: Id | None = None,
        recipient: Recipient | str | None = None,
        stage: Stage | str | None = None,
        concurrency: int | None = None,
        progress: Callable[[ExportProgress], object] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        before_checkpoint: Callable[[ExportWindow], Mapping[str, Any] | None] | None = None,
        page_size: int = proto.MAX_LIMIT,
        keep_checkpoint: bool = False,
    ) -> CallbackExport:
        """Every callback between two dates (inclusive) matching the filters, exactly once,
        however many there are: an ``async for`` that reaches past the 55,000 cap.

        The range is planned as windows under the cap (whole days, adjacent small days
        merged, a day beyond the cap split by stage and then recipient, partitions checked
        to add up) that partition it, days and parts probed empty included; each window
        is walked by :meth:`search`, ``concurrency`` windows at a time (default
        ``max_concurrency // 4``, at least 1). Records come window by window, in date
        order; ids are de-duplicated across windows. Memory stays bounded: one page per
        window is queued between the walkers and you.

        Cost: 1 probe (a ``limit=1`` search) when the whole range fits the cap; otherwise
        1 + one per day + 4 per day beyond the cap (+1 ``MISSED`` probe if the four stages
        fall short, +2 per stage still beyond the cap; with a ``stage`` filter, a day
        beyond the cap is split by recipient: 2 per day). Then ``ceil(total / page_size)``
        page requests per window, one for a window probed empty (``page_size`` defaults to
        5000), plus retries.

        ``progress`` is called with an :class:`ExportProgress` after every page and window.
        ``checkpoint`` is a JSON file recording the plan and completed windows, written
        atomically after each window and removed when the export completes; rerun with
        the same filters and path to skip completed windows (a checkpoint of different
        filters is a ``ValueError``). With a checkpoint, ``before_checkpoint(window)`` runs
        once you have taken a window's last record, before it is recorded: make your
        output durable there; what it returns is stored and comes back as
        ``resume_state``. Without one it is never called. With
        ``keep_checkpoint=True`` a completed export leaves its checkpoint (every window
        done) for you to remove once your output is safe: until then a rerun resumes
        with nothing left to fetch rather than starting over. Raises
        :class:`PaginationLimitError` naming the window if a partition cannot be brought
        under the cap or its parts do not add up.
        """
        return CallbackExport(
            self,
            start_date=start_date,
            end_date=end_date,
            campaign_id=campaign_id,
            list_id=list_id,
            user_id=user_id,
            lead_id=lead_id,
            recipient=recipient,
            stage=stage,
            concurrency=concurrency,
            progress=progress,
            checkpoint=checkpoint,
            before_checkpoint=before_checkpoint,
            page_size=page_size,
            keep_checkpoint=keep_checkpoint,
        )

    async def insert(
        self,
        *,
        lead_id: Id,
        recipient: Recipient | str,
        callback_time: datetime | str,
        callback_time_zone: Zone | None = None,
        user_id: Id | None = None,
        comments: str | None = None,
    ) -> str:
        """Schedule a callback; return its new id.

        ``callback_time`` is a ``datetime`` or ``YYYY-MM-DD hh:mm AM/PM``. The zone is
        required: pass ``callback_time_zone`` (hours, e.g. ``-7.0``; ``5.5`` for +5:30) or
        an aware ``datetime``. Insert is not idempotent, so it is retried only when the
        request provably was not processed (connection refused, HTTP 429); any other
        failure raises at once rather than risk dialling a customer twice.
        """
        form = proto.insert_form(
            lead_id=lead_id,
            recipient=recipient,
            callback_time=callback_time,
            callback_time_zone=callback_time_zone,
            user_id=user_id,
            comments=comments,
        )
        return await self._client._call(
            proto.INSERT,
            form,
            idempotent=False,
            decode=partial(proto.callback_id_answer, proto.INSERT),
        )

    async def update(
        self,
        callback_id: Id,
        *,
        callback_time: datetime | str | None = None,
        callback_time_zone: Zone | None = None,
        comments: str | None = None,
        user_id: Id | None = None,
        recipient: Recipient | str | None = None,
        callback_status: str | None = None,
    ) -> str:
        """Change a callback; return its id. ``callback_status`` may only be ``"dismissed"``.

        Update sets fields to given values, so repeating it is harmless: it is retried
        like a search.
        """
        form = proto.update_form(
            callback_id,
            user_id=user_id,
            recipient=recipient,
            comments=comments,
            callback_time=callback_time,
            callback_time_zone=callback_time_zone,
            callback_status=callback_status,
        )
        return await self._client._call(
            proto.UPDATE,
            form,
            idempotent=True,
            decode=partial(proto.callback_id_answer, proto.UPDATE, fallback=form["callback_id"]),
        )

    async def delete(self, callback_id: Id) -> None:
        """Delete a callback. A retried delete whose first attempt landed reports 6074."""
        form = proto.delete_form(callback_id)
        await self._client._call(proto.DELETE, form, idempotent=True, decode=proto.delete_answer)
