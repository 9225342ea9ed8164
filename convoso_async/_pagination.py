"""``client.callbacks.search()``: an ordered, concurrent walk of offset/limit pages.

The walk is one loop (:meth:`CallbackSearch._walk`); items, pages and ``collect()`` are
views of it. The first page goes alone because it reveals ``total``; after that a
:class:`_Window` keeps up to ``concurrency`` page requests in flight while pages are
handed out strictly in offset order. A request frees its place in the window as soon as
its body has arrived; the body is parsed, and its records decoded, only when the walk
reaches the page, a slice at a time, so the CPU work overlaps the requests still in
flight and never holds up the next request. Each page request is one client call, so
retries wrap a single request and never the walk: a page that fails then succeeds is
yielded once.

Tasks belong to the walk's generator frame, whose ``finally`` cancels them and the view
driving it awaits them: leaving an ``async for`` early (``break``, an exception,
cancellation) drops the generator, asyncio closes it, and every request still in flight
is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import operator
import weakref
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from types import TracebackType
from typing import Any, Final, Protocol, Self, TypeVar

import attrs

from ._errors import PaginationLimitError
from ._models import Callback, CallbackPage
from ._protocol import MAX_LIMIT, MAX_OFFSET, REACHABLE

logger = logging.getLogger("convoso_async")
T = TypeVar("T")


class RawPage(Protocol):
    """A parsed page whose counters are read but whose records are decoded on demand."""

    @property
    def offset(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def total(self) -> int: ...
    def __len__(self) -> int: ...
    def decode(self, start: int = 0, stop: int | None = None) -> tuple[Callback, ...]: ...


class LandedPage(Protocol):
    """A page whose answer has arrived but has not been parsed yet."""

    @property
    def total_hint(self) -> int | None:
        """``total``, if it can be known without parsing the page."""

    async def open(self, slot: Callable[[], AbstractAsyncContextManager[None]]) -> RawPage:
        """Parse the page (once), raising the client's typed error if it cannot.

        A page fetched again (its body proved unreadable) first takes ``slot()``: a place
        among the walk's requests in flight.
        """


#: Records decoded at a time, with a turn of the event loop before each slice (about
#: half a millisecond of CPU): bodies still arriving are read, and the requests that
#: their arrival lets out are sent, while the walk decodes. Below the collector's first
#: threshold (700) on purpose: a consumer that drops each record frees a slice before the
#: next is built, so records streamed through never live long enough to be scanned.
DECODE_SLICE = 250


#: Turns of the event loop a request just started needs to be written on a pooled or
#: loopback connection. Measured on benchmarks/bench_pagination.py: with three, its
#: pages land ~8 ms sooner than with one; six gain nothing more.
_TURNS_TO_SEND = 3


async def _let_requests_leave() -> None:
    """Let requests just started reach the wire before a stretch of CPU holds the loop."""
    for _ in range(_TURNS_TO_SEND):
        await asyncio.sleep(0)


#: Fetches ``limit`` records from ``offset``: ``fetch(offset, limit)``.
FetchPage = Callable[[int, int], Awaitable[LandedPage]]


@attrs.frozen
class PageRequest:
    """One planned request: ``limit`` records from ``offset``, dropping the first ``skip``.

    ``skip`` is non-zero only for the last page past the offset cap, which is re-aligned
    to ``offset=50000`` and so overlaps records already yielded.
    """

    offset: int
    limit: int
    skip: int = 0

    @property
    def end(self) -> int:
        return self.offset + self.limit


def plan_request(position: int, end: int, page_size: int) -> PageRequest | None:
    """The request that fetches records from ``position`` on, or ``None`` at ``end``."""
    if position >= end:
        return None
    if position <= MAX_OFFSET:
        return PageRequest(position, min(page_size, end - position))
    # Past the offset cap: ask from the cap itself and drop what was already yielded.
    return PageRequest(MAX_OFFSET, min(MAX_LIMIT, end - MAX_OFFSET), position - MAX_OFFSET)


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, not {value}")
    return value


class CallbackStream:
    """An ``async for`` over callbacks, driven by a generator made fresh for each loop.

    Outside ``async with``, a loop left early drops its generator and asyncio's finaliser
    closes it, cancelling the requests it started, in a task of its own soon after.
    Inside ``async with stream:`` the stream holds the generator and closes it on exit,
    so the requests are cancelled and awaited before the block ends. ``anext()`` on the
    stream keeps one generator, closed by :meth:`aclose` or ``async with``; once it has
    raised, asking for more raises ``RuntimeError``. Subclasses provide :meth:`_iterate`.
    """

    _items: AsyncGenerator[Callback, None] | None = None
    _in_context = False
    #: The generator last started: held while inside ``async with``, else weakly, so
    #: that a loop left early still drops it.
    _held: AsyncGenerator[Any, None] | None = None
    _running: weakref.ref[AsyncGenerator[Any, None]] | None = None
    #: The exception a walk driven by ``anext()`` ended with (its class name).
    _failed: str | None = None
    _resume_hint = "start a new one"

    def _iterate(self) -> AsyncGenerator[Callback, None]:
        raise NotImplementedError

    def _track(self, generator: AsyncGenerator[T, None]) -> AsyncGenerator[T, None]:
        self._running = weakref.ref(generator)
        if self._in_context:
            self._held = generator
        return generator

    def __aiter__(self) -> AsyncIterator[Callback]:
        if self._items is not None:
            self._check_not_failed()
            return self  # a walk begun with anext() goes on in the loop, through __anext__
        return self._track(self._iterate())

    async def __anext__(self) -> Callback:
        if self._items is None:
            self._items = self._track(self._iterate())
        else:
            self._check_not_failed()
        try:
            return await self._items.__anext__()
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            # Raised out of the generator, the error finished it: asked again, it would
            # say StopAsyncIteration, and a caller who caught the error (a timeout
            # around anext()) would take the records never fetched for the end of the
            # search. (A walk busy in another task refuses this caller and goes on.)
            if getattr(self._items, "ag_frame", None) is None:
                self._failed = type(exc).__name__
            raise

    def _check_not_failed(self) -> None:
        if self._failed is not None:
            raise RuntimeError(
                f"this {type(self).__name__} ended with {self._failed} and cannot go on; "
                f"{self._resume_hint}"
            )

    async def aclose(self) -> None:
        """Stop the stream now, cancelling its requests in flight and waiting for them."""
        running = self._held or (self._running() if self._running is not None else None)
        self._held = None
        for generator in (self._items, running):  # closing one twice does nothing
            if generator is not None:
                await generator.aclose()

    async def __aenter__(self) -> Self:
        self._in_context = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_context = False
        await self.aclose()


class CallbackSearch(CallbackStream):
    """An ``async for`` over every callback matching a search, in offset order.

    Nothing is sent until iteration starts, and it can be iterated once (as items, as
    :meth:`pages`, or through :meth:`collect`). ``total`` is ``None`` until the first page
    arrives. ``next_offset`` is the offset of the first record not yet yielded: after a
    ``break`` or an error, ``search(..., offset=pager.next_offset)`` resumes without loss
    or repeat. Use ``async with`` (or :meth:`aclose`) when you drive it with ``anext()``.
    """

    def __init__(
        self,
        fetch: FetchPage,
        *,
        page_size: int = MAX_LIMIT,
        max_items: int | None = None,
        offset: int = 0,
        concurrency: int = 4,
        truncate: bool = False,
        max_concurrency: int | None = None,
    ) -> None:
        self._fetch = fetch
        self.page_size = _check_int(page_size, "page_size", 1, MAX_LIMIT)
        self.max_items = None if max_items is None else _check_int(max_items, "max_items", 0)
        self.concurrency = _check_int(concurrency, "concurrency", 1)
        if max_concurrency is not None:
            self.concurrency = min(self.concurrency, max_concurrency)
        self.truncate = truncate
        # Up to the last reachable record: a walk broken off past the offset cap leaves
        # next_offset there, and resuming from it re-aligns to the cap (plan_request).
        self.next_offset = _check_int(offset, "offset", 0, REACHABLE - 1)
        self.total: int | None = None
        #: Page requests this walk has sent (each may include retries inside the client).
        self.pages_fetched = 0
        self._started = False
        self._window: _Window | None = None
        self._cursor = self._end = 0
        #: The most wanted records any page's ``total`` put beyond the caps, and that
        #: total: pages answer out of order, so a later one may carry an older total.
        self._out_of_reach = self._total_out_of_reach = 0
        #: When each page answered but not yet handed out was asked for and answered,
        #: in one count of both: a page asked for after the one before it was answered
        #: saw at least what that one saw.
        self._events = itertools.count()
        self._stamps: dict[PageRequest, tuple[int, int]] = {}

    _resume_hint = "call search() again, with offset=next_offset to resume"

    def __repr__(self) -> str:
        return (
            f"<CallbackSearch next_offset={self.next_offset} total={self.total} "
            f"page_size={self.page_size} concurrency={self.concurrency}>"
        )

    # --- the three views ------------------------------------------------------------

    def pages(self) -> AsyncIterator[CallbackPage]:
        """Iterate whole pages (duplicates already removed) instead of single records."""
        return self._track(self._iter_pages())

    async def collect(self) -> list[Callback]:
        """Every matching record, in order, as a list. Mind the memory for big searches.

        All or nothing: when the walk fails part-way, the records gathered so far go with
        the error, so ``next_offset`` is put back where this call began, and
        ``search(offset=next_offset)`` fetches them again rather than skipping them.
        """
        start = self.next_offset
        try:
            return [callback async for callback in self]
        except BaseException:
            self.next_offset = start
            raise

    def _iterate(self) -> AsyncGenerator[Callback, None]:
        return self._iter_items()

    async def _iter_items(self) -> AsyncGenerator[Callback, None]:
        chunks = self._walk()
        try:
            async for chunk in chunks:
                for callback, position in zip(chunk.results, chunk.positions, strict=True):
                    self.next_offset = position + 1  # handed over counts as yielded
                    yield callback
                self.next_offset = chunk.end
        finally:
            await chunks.aclose()
            await self._settle()

    async def _iter_pages(self) -> AsyncGenerator[CallbackPage, None]:
        chunks = self._walk()
        results: list[Callback] = []
        try:
            async for chunk in chunks:
                results.extend(chunk.results)
                if not chunk.last:
                    continue
                self.next_offset = chunk.end  # handed over counts as yielded
                if results:
                    yield chunk.page(results)
                results = []
        finally:
            await chunks.aclose()
            await self._settle()

    async def _settle(self) -> None:
        """Wait for the requests the walk cancelled as it ended.

        Awaited by the view rather than in the walk's own ``finally``: a pager left
        unclosed after ``anext()`` has its generators closed by asyncio all at once (at
        loop shutdown, or when the pager is collected), the view's and the walk's, in
        either order; a walk then suspended in its ``finally`` made the other close fail
        ("aclose(): asynchronous generator is already running")."""
        if self._window is not None:
            await self._window.settle()

    # --- the walk ---------------------------------------------------------------------

    async def _walk(self) -> AsyncGenerator[_Chunk, None]:
        """Every page in offset order, as slices of fresh records decoded just in time.

        Pages wait in the window as the bytes that arrived; one is parsed when the walk
        reaches it, and each slice is decoded only when the consumer asks for it, with
        a turn of the event loop between slices.
        """
        if self._started:
            raise RuntimeError("a CallbackSearch can be iterated only once; call search() again")
        self._started = True
        start = self.next_offset
        if self.max_items == 0:
            return
        first_end = start + min(self.page_size, self.max_items or self.page_size)
        request = plan_request(start, first_end, self.page_size)
        assert request is not None  # first_end > start: max_items 0 returned above
        landed = await self._fetch_planned(request)
        # The next requests need only the total: peek it, and parse once they have left.
        total = landed.total_hint
        page: RawPage | None = None
        if total is None:
            page = await landed.open(nullcontext)  # nothing else is in flight yet
            total = page.total
        self.total = total
        self._end = self._planned_end(start, total)  # may raise before any yield
        self._cursor = request.end
        window = self._window = _Window(self._fetch_planned, self._plan_next, self.concurrency)
        window.fill()
        tally = _Tally(start, self.max_items)
        try:
            if page is None:
                await _let_requests_leave()
                page = await landed.open(window.reserve)
            while True:
                self._replan(page.total, tally)
                for chunk in self._slices(page, request, tally):
                    yield chunk
                    await asyncio.sleep(0)  # let the network move before the next slice
                # A short page means the data ends here, whatever total said.
                if len(page) < request.limit or tally.enough:
                    break
                window.fill()
                landed_next = await window.next()
                if landed_next is None:
                    if self._out_of_reach and not self.truncate:
                        # The total grew past the caps during the walk: all that paging
                        # reaches is handed out; say what is missing, not "done".
                        raise self._beyond_reach(self._total_out_of_reach, start, grew=True)
                    break
                handed_total, (_, handed_at) = page.total, self._stamps.pop(request)
                request, landed = landed_next
                page = await landed.open(window.reserve)
                if page.total < handed_total and self._stamps[request][0] < handed_at:
                    # Pages in flight together are answered in any order: this one,
                    # asked for before the page just handed out was answered, may have
                    # been answered before it, with records added in between, and those
                    # they pushed from its head onto that page's tail would be in
                    # neither. Fetched again, it sees at least what that page saw. (When
                    # records were removed instead, this costs one request.)
                    logger.debug("fetching the page at offset %d again", request.offset)
                    async with window.reserve():
                        landed = await self._fetch_planned(request)
                    page = await landed.open(window.reserve)
        finally:
            # Cancelled here and awaited by the view that drives the walk (_settle): a
            # walk suspended in its finally could not be closed by asyncio meanwhile.
            window.cancel()

    def _slices(self, page: RawPage, request: PageRequest, tally: _Tally) -> Iterator[_Chunk]:
        """The page's records past its skip, decoded one slice per step, duplicates out."""
        page_end = request.offset + len(page)
        page_start = request.offset + request.skip
        for first in range(page_start, page_end, DECODE_SLICE):
            stop = min(first + DECODE_SLICE, page_end)
            records = page.decode(first - request.offset, stop - request.offset)
            dropped = tally.dropped
            results, positions, end = tally.take(records, first)
            if tally.dropped != dropped:
                self._replan(page.total, tally)  # duplicates reach as many records further
            last = tally.enough or stop == page_end
            yield _Chunk(results, positions, end, page, page_start, last)
            if last:
                return
        yield _Chunk((), (), page_end, page, page_start, last=True)  # nothing past the skip

    def _replan(self, total: int, tally: _Tally) -> None:
        """Move the walk's end to match a page's ``total`` and the duplicates dropped so
        far, warning when the total changed during the walk (records added or removed)."""
        if total != self.total:
            logger.warning(
                "search total changed from %s to %d during the walk: records were added or "
                "removed, so later pages may have shifted",
                self.total,
                total,
            )
            self.total = total
        self._end = self._planned_end(tally.start, total, dropped=tally.dropped, initial=False)

    async def _fetch_planned(self, request: PageRequest) -> LandedPage:
        asked = next(self._events)
        body = await self._fetch(request.offset, request.limit)
        self.pages_fetched += 1
        self._stamps[request] = (asked, next(self._events))
        return body

    def _plan_next(self) -> PageRequest | None:
        request = plan_request(self._cursor, self._end, self.page_size)
        if request is not None:
            self._cursor = request.end
        return request

    def _planned_end(
        self, start: int, total: int, *, dropped: int = 0, initial: bool = True
    ) -> int:
        """Where the walk stops; raises if the caps hide records the caller wants.

        ``dropped`` duplicates do not count against ``max_items``: the walk reaches as
        many records further.
        """
        wanted = total
        if self.max_items is not None:
            wanted = min(total, start + self.max_items + dropped)
        beyond = wanted - REACHABLE
        if beyond <= 0:
            return wanted
        if beyond > self._out_of_reach:
            self._out_of_reach, self._total_out_of_reach = beyond, total
        if initial and not self.truncate:
            raise self._beyond_reach(total, start)
        if initial:
            logger.warning(
                "search matches %d callbacks; truncate=True: yielding the %d reachable by "
                "offset/limit paging and skipping %d",
                total,
                REACHABLE - start,
                wanted - REACHABLE,
            )
        return REACHABLE

    def _beyond_reach(self, total: int, start: int, *, grew: bool = False) -> PaginationLimitError:
        when = (
            f"{total} callbacks matched these filters during the walk (records were added, "
            "or shifted by changes, after it began); "
            f"records {start}..{REACHABLE - 1} were yielded, but"
            if grew
            else f"{total} callbacks match these filters, but"
        )
        return PaginationLimitError(
            f"{when} offset/limit paging reaches only records {start}..{REACHABLE - 1} "
            f"(offset <= {MAX_OFFSET}, limit <= {MAX_LIMIT}): {self._out_of_reach} are out of "
            "reach. Narrow the filters (a shorter date range, a stage, a campaign), pass "
            "truncate=True to take the reachable part, or use client.callbacks.export(), "
            "which splits the search.",
            total=total,
            reachable=REACHABLE - start,
        )


class _Window:
    """Page requests ahead of the walk, in offset order.

    At most ``size`` pages are ahead of the one being handed out, in flight or landed, so
    a slow consumer holds at most ``size`` pages in memory. While the walk keeps up, a
    request that lands makes room for the next one at once, from its done-callback, not
    when its records are consumed.
    """

    def __init__(
        self,
        fetch: Callable[[PageRequest], Coroutine[Any, Any, LandedPage]],
        plan: Callable[[], PageRequest | None],
        size: int,
    ) -> None:
        self._fetch = fetch
        self._plan = plan
        self._size = size
        self._queue: deque[tuple[PageRequest, asyncio.Task[LandedPage]]] = deque()
        self._cancelled: list[asyncio.Task[LandedPage]] = []
        self._in_flight = 0
        self._closed = False
        self._reserving = 0  # the walk waits for a place for a request of its own
        self._freed = asyncio.Event()

    def fill(self) -> None:
        # The queue holds requests in flight and pages landed; the page the walk has
        # taken may still be in flight too.
        while (
            not self._closed
            and len(self._queue) < self._size
            and self._in_flight + self._reserving < self._size
        ):
            request = self._plan()
            if request is None:
                return
            task = asyncio.create_task(self._fetch(request))
            self._in_flight += 1
            task.add_done_callback(self._landed)
            self._queue.append((request, task))

    def _landed(self, task: asyncio.Task[LandedPage]) -> None:
        self._in_flight -= 1
        self._freed.set()
        self.fill()

    @asynccontextmanager
    async def reserve(self) -> AsyncIterator[None]:
        """A place among the requests in flight for one the walk sends itself (a page
        fetched again), taken before any new request ahead is let out."""
        self._reserving += 1
        try:
            while self._in_flight >= self._size:
                self._freed.clear()
                await self._freed.wait()
        finally:
            self._reserving -= 1
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            self.fill()

    async def next(self) -> tuple[PageRequest, LandedPage] | None:
        """The next page in offset order, waiting for it if needed; ``None`` when done."""
        if not self._queue:
            return None
        request, task = self._queue.popleft()
        self.fill()  # the page taken is no longer ahead of the walk
        return request, await task

    def cancel(self) -> None:
        """Cancel what is still pending, without waiting: :meth:`settle` waits for it."""
        self._closed = True
        self._cancelled += (task for _, task in self._queue)
        self._queue.clear()
        for task in self._cancelled:
            task.cancel()

    async def settle(self) -> None:
        """Wait for the requests :meth:`cancel` cancelled: no task outlives the walk."""
        tasks, self._cancelled = self._cancelled, []
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


@attrs.define
class _Tally:
    """What one walk has handed out: ids already yielded, and counts for ``max_items``."""

    start: int
    max_items: int | None
    seen: set[str] = attrs.field(factory=set)
    yielded: int = 0
    #: Duplicates left out; they do not count against ``max_items``.
    dropped: int = 0

    @property
    def enough(self) -> bool:
        return self.max_items is not None and self.yielded >= self.max_items

    def take(
        self, records: tuple[Callback, ...], first: int
    ) -> tuple[tuple[Callback, ...], Sequence[int], int]:
        """The fresh ``records`` (from position ``first``) this walk may still yield, their
        positions, and the position just past the last record considered."""
        results, positions = _take_fresh(records, first, self.seen)
        self.dropped += len(records) - len(positions)
        end = first + len(records)
        if self.max_items is not None and self.max_items - self.yielded < len(positions):
            wanted = self.max_items - self.yielded
            results, positions = results[:wanted], positions[:wanted]
            end = positions[-1] + 1 if positions else first
        self.yielded += len(positions)
        return results, positions, end


@attrs.frozen
class _Chunk:
    """A slice of a page as the walk hands it out: fresh records and their positions.

    ``end`` is the position just past the slice, duplicates dropped from it included.
    ``last`` marks the final slice of the page ``body``, whose first wanted record is at
    ``page_start`` (past any re-aligned overlap).
    """

    results: tuple[Callback, ...]
    positions: Sequence[int]
    end: int
    body: RawPage
    page_start: int
    last: bool

    def page(self, results: list[Callback]) -> CallbackPage:
        """The page this slice ends, holding ``results``: its records, minus duplicates."""
        body = self.body
        # The server's offset, unless records were left out of the page: then the one
        # that makes the page's next_offset the walk's (``end``). Past a skip or before
        # a max_items cut that is page_start; past a duplicate dropped by drift (at the
        # head of the page: a record pushed over from the last one), the next record's.
        offset = body.offset if len(results) == len(body) else self.end - len(results)
        return CallbackPage(offset, body.limit, body.total, tuple(results))


_id_of: Final = operator.attrgetter("id")


def _take_fresh(
    records: tuple[Callback, ...], first: int, seen: set[str]
) -> tuple[tuple[Callback, ...], Sequence[int]]:
    """``records`` (from position ``first``) minus any this walk already yielded, with
    the positions of those kept.

    Offset paging over live data drifts: an insert ahead of the cursor pushes the last
    record of one page onto the next. Ids seen before are dropped, never yielded twice.
    """
    ids = list(map(_id_of, records))
    if seen.isdisjoint(ids):
        before = len(seen)
        seen.update(ids)
        if len(seen) - before == len(ids):
            return records, range(first, first + len(records))  # the usual slice: all new
        seen.difference_update(ids)  # an id twice within the slice: none were seen before
    kept: list[Callback] = []
    positions: list[int] = []
    for position, callback in enumerate(records, first):
        if callback.id in seen:
            logger.debug("dropping callback %s, already yielded in this walk", callback.id)
            continue
        seen.add(callback.id)
        kept.append(callback)
        positions.append(position)
    return tuple(kept), positions
