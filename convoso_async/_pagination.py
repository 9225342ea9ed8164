"""``client.callbacks.search()``: an ordered, concurrent walk of offset/limit pages.

The walk is one loop (:meth:`CallbackSearch._walk`); items, pages and ``collect()`` are
views of it. The first page goes alone because it reveals ``total``; after that a
:class:`_Window` keeps up to ``concurrency`` page requests in flight while pages are
handed out strictly in offset order. A request frees its place in the window as soon as
its body has arrived: records are decoded only when the walk reaches the page, so
decoding overlaps the requests still in flight. Each page request is one client call, so
retries wrap a single request and never the walk: a page that fails then succeeds is
yielded once.

Tasks belong to the walk's generator frame, which ``finally`` cleans: leaving an
``async for`` early (``break``, an exception, cancellation) drops the generator, asyncio
closes it, and every request still in flight is cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Protocol, Self

import attrs

from ._errors import PaginationLimitError
from ._models import Callback, CallbackPage
from ._protocol import MAX_LIMIT, MAX_OFFSET, REACHABLE

logger = logging.getLogger("convoso_async")


class RawPage(Protocol):
    """A page whose counters are read but whose records are decoded on demand."""

    @property
    def offset(self) -> int: ...
    @property
    def limit(self) -> int: ...
    @property
    def total(self) -> int: ...
    def __len__(self) -> int: ...
    def decode(self, start: int = 0, stop: int | None = None) -> tuple[Callback, ...]: ...


#: Records decoded between two turns of the event loop (about a millisecond of CPU).
DECODE_SLICE = 500


async def _decode(body: RawPage) -> CallbackPage:
    """Decode a page a slice at a time, letting the event loop run between slices.

    A 5000-record page is ~15 ms of CPU. Done in one go it starves the event loop:
    bodies of pages in flight (read 256 KiB per loop turn) and requests waiting to be
    written stall until it ends. Slicing keeps the network moving while we decode.
    """
    results: list[Callback] = []
    for start in range(0, len(body), DECODE_SLICE):
        await asyncio.sleep(0)
        results.extend(body.decode(start, start + DECODE_SLICE))
    return CallbackPage(body.offset, body.limit, body.total, tuple(results))


#: Fetches ``limit`` records from ``offset``: ``fetch(offset, limit)``.
FetchPage = Callable[[int, int], Awaitable[RawPage]]


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

    ``__aiter__`` hands the loop a generator that only the loop holds: when the loop is
    left early it is dropped and asyncio's finaliser closes it, cancelling whatever it
    started. ``anext()`` on the stream itself keeps one generator, closed by
    :meth:`aclose` or ``async with``. Subclasses provide :meth:`_iterate`.
    """

    _items: AsyncGenerator[Callback, None] | None = None

    def _iterate(self) -> AsyncGenerator[Callback, None]:
        raise NotImplementedError

    def __aiter__(self) -> AsyncIterator[Callback]:
        return self._iterate()

    async def __anext__(self) -> Callback:
        if self._items is None:
            self._items = self._iterate()
        return await self._items.__anext__()

    async def aclose(self) -> None:
        """Stop a stream driven by ``anext()``, cancelling its requests in flight."""
        if self._items is not None:
            await self._items.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
        self.next_offset = _check_int(offset, "offset", 0, MAX_OFFSET)
        self.total: int | None = None
        #: Page requests this walk has sent (each may include retries inside the client).
        self.pages_fetched = 0
        self._started = False
        self._cursor = self._end = 0

    def __repr__(self) -> str:
        return (
            f"<CallbackSearch next_offset={self.next_offset} total={self.total} "
            f"page_size={self.page_size} concurrency={self.concurrency}>"
        )

    # --- the three views ------------------------------------------------------------

    def pages(self) -> AsyncIterator[CallbackPage]:
        """Iterate whole pages (duplicates already removed) instead of single records."""
        return self._iter_pages()

    async def collect(self) -> list[Callback]:
        """Every matching record, in order, as a list. Mind the memory for big searches."""
        return [callback async for callback in self]

    def _iterate(self) -> AsyncGenerator[Callback, None]:
        return self._iter_items()

    async def _iter_items(self) -> AsyncGenerator[Callback, None]:
        chunks = self._walk()
        try:
            async for chunk in chunks:
                for callback, position in zip(chunk.page.results, chunk.positions, strict=True):
                    self.next_offset = position + 1  # handed over counts as yielded
                    yield callback
                self.next_offset = chunk.end
        finally:
            await chunks.aclose()

    async def _iter_pages(self) -> AsyncGenerator[CallbackPage, None]:
        chunks = self._walk()
        try:
            async for chunk in chunks:
                yield chunk.page
                self.next_offset = chunk.end
        finally:
            await chunks.aclose()

    # --- the walk ---------------------------------------------------------------------

    async def _walk(self) -> AsyncGenerator[_Chunk, None]:
        if self._started:
            raise RuntimeError("a CallbackSearch can be iterated only once; call search() again")
        self._started = True
        start = self.next_offset
        if self.max_items == 0:
            return
        request = PageRequest(start, min(self.page_size, self.max_items or self.page_size))
        body = await self._fetch_planned(request)
        self.total = body.total
        self._end = self._planned_end(start, body.total)  # may raise before any yield
        self._cursor = request.end
        window = _Window(self._fetch_planned, self._plan_next, self.concurrency)
        window.fill()  # the next requests go out before the first page is decoded
        seen: set[str] = set()
        yielded = dropped = 0
        try:
            while True:
                page = await _decode(body)
                if page.total != self.total:
                    logger.warning(
                        "search total changed from %d to %d during the walk: records were "
                        "added or removed, so later pages may have shifted",
                        self.total,
                        page.total,
                    )
                    self.total = page.total
                    self._end = self._planned_end(start, page.total, initial=False)
                chunk = _take_fresh(page, request, seen)
                dropped += len(page.results) - request.skip - len(chunk.positions)
                if self.max_items is not None:
                    chunk = chunk.head(self.max_items - yielded)
                    # Records dropped as duplicates do not count against max_items.
                    self._end = min(self._end, start + self.max_items + dropped)
                yielded += len(chunk.positions)
                # A short page means the data ends here, whatever total said.
                finished = len(page.results) < request.limit or (
                    self.max_items is not None and yielded >= self.max_items
                )
                if chunk.positions:
                    yield chunk
                if finished:
                    break
                window.fill()
                landed = await window.next()
                if landed is None:
                    break
                request, body = landed
        finally:
            await window.close()

    async def _fetch_planned(self, request: PageRequest) -> RawPage:
        body = await self._fetch(request.offset, request.limit)
        self.pages_fetched += 1
        return body

    def _plan_next(self) -> PageRequest | None:
        request = plan_request(self._cursor, self._end, self.page_size)
        if request is not None:
            self._cursor = request.end
        return request

    def _planned_end(self, start: int, total: int, *, initial: bool = True) -> int:
        """Where the walk stops; raises if the caps hide records the caller wants."""
        wanted = total if self.max_items is None else min(total, start + self.max_items)
        if wanted <= REACHABLE:
            return wanted
        if initial and not self.truncate:
            raise PaginationLimitError(
                f"{total} callbacks match these filters, but offset/limit paging reaches only "
                f"records {start}..{REACHABLE - 1} (offset <= {MAX_OFFSET}, limit <= "
                f"{MAX_LIMIT}): {wanted - REACHABLE} are out of reach. Narrow the filters "
                "(a shorter date range, a stage, a campaign), pass truncate=True to take the "
                "reachable part, or use client.callbacks.export(), which splits the search.",
                total=total,
                reachable=REACHABLE - start,
            )
        if initial:
            logger.warning(
                "search matches %d callbacks; truncate=True: yielding the %d reachable by "
                "offset/limit paging and skipping %d",
                total,
                REACHABLE - start,
                wanted - REACHABLE,
            )
        return REACHABLE


class _Window:
    """Page requests ahead of the walk, in offset order.

    At most ``size`` are in flight and at most ``size`` answered but not yet consumed,
    so memory stays bounded while a slow consumer never stalls the network: a request
    that lands makes room for the next one at once, from its done-callback.
    """

    def __init__(
        self,
        fetch: Callable[[PageRequest], Coroutine[Any, Any, RawPage]],
        plan: Callable[[], PageRequest | None],
        size: int,
    ) -> None:
        self._fetch = fetch
        self._plan = plan
        self._size = size
        self._queue: deque[tuple[PageRequest, asyncio.Task[RawPage]]] = deque()
        self._in_flight = 0
        self._closed = False

    def fill(self) -> None:
        while (
            not self._closed
            and self._in_flight < self._size
            and len(self._queue) - self._in_flight < self._size
        ):
            request = self._plan()
            if request is None:
                return
            task = asyncio.create_task(self._fetch(request))
            self._in_flight += 1
            task.add_done_callback(self._landed)
            self._queue.append((request, task))

    def _landed(self, task: asyncio.Task[RawPage]) -> None:
        self._in_flight -= 1
        self.fill()

    async def next(self) -> tuple[PageRequest, RawPage] | None:
        """The next page in offset order, waiting for it if needed; ``None`` when done."""
        if not self._queue:
            return None
        request, task = self._queue.popleft()
        return request, await task

    async def close(self) -> None:
        """Cancel what is still pending and wait for it: no task outlives the walk."""
        self._closed = True
        tasks = [task for _, task in self._queue]
        self._queue.clear()
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


@attrs.frozen
class _Chunk:
    """A page as the walk hands it out: fresh records and their absolute positions."""

    page: CallbackPage
    positions: tuple[int, ...]
    end: int

    def head(self, count: int) -> _Chunk:
        if count >= len(self.positions):
            return self
        kept = self.positions[:count]
        page = attrs.evolve(self.page, results=self.page.results[:count])
        return _Chunk(page, kept, kept[-1] + 1 if kept else self.positions[0])


def _take_fresh(page: CallbackPage, request: PageRequest, seen: set[str]) -> _Chunk:
    """The page minus the re-aligned overlap and any record this walk already yielded.

    Offset paging over live data drifts: an insert ahead of the cursor pushes the last
    record of one page onto the next. Ids seen before are dropped, never yielded twice.
    """
    end = request.offset + len(page.results)
    first = request.offset + request.skip
    results = page.results[request.skip :]
    ids = [callback.id for callback in results]
    kept: tuple[Callback, ...] | list[Callback]
    positions: range | list[int]
    if seen.isdisjoint(ids) and len(set(ids)) == len(ids):
        # The usual page: nothing seen before, no id twice. Checked with set operations.
        seen.update(ids)
        kept, positions = results, range(first, end)
    else:
        kept, positions = [], []
        for position, callback in enumerate(results, first):
            if callback.id in seen:
                logger.debug("dropping callback %s, already yielded in this walk", callback.id)
                continue
            seen.add(callback.id)
            kept.append(callback)
            positions.append(position)
    if len(kept) != len(page.results):
        page = attrs.evolve(page, offset=first, results=tuple(kept))
    return _Chunk(page, tuple(positions), end)
