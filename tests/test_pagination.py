"""The paginator, driven by an in-memory page source (no network: the walk is pure logic).

The source records every request and how many were in flight, and can hold pages back
until a test releases them, so ordering and concurrency are observed, not assumed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from convoso_async import Callback, CallbackPage, CallbackSearch, PaginationLimitError
from convoso_async._errors import TransportError
from convoso_async._pagination import DECODE_SLICE, PageRequest, plan_request

from .samples import drain


class Raw:
    """What a fetch hands the walk: a landed page that opens to itself, whose counters
    are read at once and records on ``decode()``."""

    def __init__(
        self, page: CallbackPage, *, hint: bool = True, on_open: Callable[[], None] | None = None
    ) -> None:
        self.page = page
        self.offset, self.limit, self.total = page.offset, page.limit, page.total
        self.total_hint = page.total if hint else None
        self._on_open = on_open

    async def open(self, slot: Callable[[], AbstractAsyncContextManager[None]]) -> Raw:
        if self._on_open is not None:
            self._on_open()
        return self

    def __len__(self) -> int:
        return len(self.page.results)

    def decode(self, start: int = 0, stop: int | None = None) -> tuple[Callback, ...]:
        return self.page.results[start:stop]


class PageSource:
    """A fake ``callbacks/search`` over ``records``, observable and steerable."""

    def __init__(self, total: int, *, gated: bool = False, hint: bool = True) -> None:
        self.records = [Callback(id=str(i)) for i in range(total)]
        self.hint = hint
        #: Answer this many records more than asked (a server that ignores ``limit``).
        self.extra = 0
        self.requests: list[tuple[int, int]] = []
        #: ("request", offset) and ("open", offset), in the order they happened.
        self.events: list[tuple[str, int]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.answered = 0
        self.cancelled = 0
        self.gates: dict[int, asyncio.Event] | None = {} if gated else None
        self.fail_at: dict[int, Exception] = {}
        self.before_answer: Callable[[int], None] | None = None
        self._arrivals = asyncio.Condition()

    async def until_requests(self, count: int) -> None:
        """Wait until ``count`` requests have arrived (no polling, no sleeping)."""
        await self.until(lambda: len(self.requests) >= count)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds; checked whenever a request arrives or is answered."""
        async with self._arrivals:
            await self._arrivals.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._arrivals:
            self._arrivals.notify_all()

    def gate(self, offset: int) -> asyncio.Event:
        assert self.gates is not None
        return self.gates.setdefault(offset, asyncio.Event())

    async def fetch(self, offset: int, limit: int) -> Raw:
        self.requests.append((offset, limit))
        self.events.append(("request", offset))
        await self._notify()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gates is not None and offset != self.requests[0][0]:
                await self.gate(offset).wait()
            else:
                await asyncio.sleep(0)
            if offset in self.fail_at:
                raise self.fail_at.pop(offset)
            if self.before_answer is not None:
                self.before_answer(offset)
            self.answered += 1
            await self._notify()
            return Raw(
                CallbackPage(
                    offset=offset,
                    limit=limit,
                    total=len(self.records),
                    results=tuple(self.records[offset : offset + limit + self.extra]),
                ),
                hint=self.hint,
                on_open=lambda: self.events.append(("open", offset)),
            )
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.in_flight -= 1


def ids(callbacks: list[Callback]) -> list[int]:
    return [int(c.id) for c in callbacks]


@pytest.mark.parametrize("total", [0, 1, 9, 10, 11, 35])
async def test_yields_every_record_once_in_order(total: int) -> None:
    source = PageSource(total)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
    got = await pager.collect()
    assert ids(got) == list(range(total))
    assert pager.total == total
    # One request per page, none past the end (the first goes even when total is 0).
    assert len(source.requests) == max(1, -(-total // 10))
    assert pager.pages_fetched == len(source.requests)  # what an export reports as spent
    assert pager.next_offset == total


async def test_55000_records_reach_exactly_the_cap() -> None:
    source = PageSource(55_000)
    got = await CallbackSearch(source.fetch, page_size=5000, concurrency=8).collect()
    assert ids(got) == list(range(55_000))
    assert source.requests == [(offset, 5000) for offset in range(0, 55_000, 5000)]
    assert max(offset for offset, _ in source.requests) == 50_000


async def test_tail_past_the_offset_cap_is_realigned_without_repeats() -> None:
    # 3000 does not divide 50000: the page after offset 48000 would start at 51000,
    # past the cap, so it is asked from 50000 and the overlap is dropped.
    source = PageSource(55_000)
    got = await CallbackSearch(source.fetch, page_size=3000, concurrency=4).collect()
    assert ids(got) == list(range(55_000))
    assert all(offset <= 50_000 and limit <= 5000 for offset, limit in source.requests)
    assert source.requests[-1] == (50_000, 5000)


def test_plan_request_respects_both_caps() -> None:
    assert plan_request(0, 12, 5) == PageRequest(0, 5)
    assert plan_request(10, 12, 5) == PageRequest(10, 2)
    assert plan_request(12, 12, 5) is None
    assert plan_request(51_000, 55_000, 3000) == PageRequest(50_000, 5000, skip=1000)
    # At the cap itself the page size still holds; only past it is the page re-aligned.
    assert plan_request(50_000, 55_000, 1000) == PageRequest(50_000, 1000)
    # Re-aligned, it asks for no more than the walk's end needs.
    assert plan_request(51_000, 52_000, 3000) == PageRequest(50_000, 2000, skip=1000)


async def test_max_items_stops_early_without_an_extra_request() -> None:
    source = PageSource(100)
    got = await CallbackSearch(source.fetch, page_size=10, max_items=25, concurrency=4).collect()
    assert ids(got) == list(range(25))
    assert source.requests == [(0, 10), (10, 10), (20, 5)]


async def test_max_items_smaller_than_a_page_asks_only_for_that_many() -> None:
    source = PageSource(100)
    got = await CallbackSearch(source.fetch, page_size=50, max_items=7).collect()
    assert ids(got) == list(range(7))
    assert source.requests == [(0, 7)]


async def test_max_items_counts_only_records_yielded_when_duplicates_are_dropped() -> None:
    source = PageSource(30)

    def insert_at_front(offset: int) -> None:
        if offset == 10 and len(source.records) == 30:
            source.records.insert(0, Callback(id="new"))  # page 2 now repeats record 9

    source.before_answer = insert_at_front
    got = await CallbackSearch(source.fetch, page_size=10, max_items=15, concurrency=1).collect()
    assert ids(got) == list(range(15))  # fifteen records, the repeat not among them
    assert source.requests == [(0, 10), (10, 5), (15, 1)]


async def test_max_items_holds_when_the_server_sends_more_than_asked() -> None:
    source = PageSource(100)
    source.extra = 3
    pager = CallbackSearch(source.fetch, page_size=10, max_items=25, concurrency=2)
    got = await pager.collect()
    assert ids(got) == list(range(25))
    assert pager.next_offset == 25


@pytest.mark.parametrize("view", ["items", "pages"])
async def test_a_walk_cut_by_max_items_in_a_long_page_resumes_right_after_the_cut(
    view: str,
) -> None:
    # A server that ignores limit sends a page of several decode slices; max_items ends
    # the walk in the first. next_offset must stop there, not at a later slice's start,
    # or a search resumed from it would skip the records in between.
    source = PageSource(400)
    source.extra = 300
    pager = CallbackSearch(source.fetch, page_size=10, max_items=5)
    if view == "items":
        got = ids(await pager.collect())
    else:
        got = [int(c.id) async for page in pager.pages() for c in page.results]
    assert got == list(range(5))
    assert pager.next_offset == 5


async def test_next_offset_passes_a_duplicate_at_the_end_of_a_page() -> None:
    # Page 0 ends with a repeat of record 8, dropped; page 10 then fails. Resuming from
    # next_offset must start past the repeat, or the resumed walk, which has not seen
    # record 8, hands it out a second time.
    source = PageSource(30)
    source.records[9] = Callback(id="8")
    source.fail_at[10] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    first: list[str] = []
    with pytest.raises(TransportError):
        await drain(pager, first)
    assert first == [str(i) for i in range(9)]
    assert pager.next_offset == 10


async def test_an_id_twice_within_one_page_is_yielded_once() -> None:
    source = PageSource(20)
    source.records[5] = Callback(id="4")
    got = await CallbackSearch(source.fetch, page_size=10).collect()
    assert [c.id for c in got] == [str(i) for i in range(20) if i != 5]


async def test_pages_view_skips_a_page_with_nothing_new() -> None:
    source = PageSource(30)

    def insert_ten_at_front(offset: int) -> None:
        if offset == 10 and len(source.records) == 30:
            # Page 2 now holds exactly the records page 1 already yielded.
            source.records[:0] = [Callback(id=f"new{i}") for i in range(10)]

    source.before_answer = insert_ten_at_front
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    pages = [page async for page in pager.pages()]
    assert [(p.offset, len(p.results)) for p in pages] == [(0, 10), (20, 10), (30, 10)]
    assert len({c.id for p in pages for c in p.results}) == 30


async def test_async_with_on_a_search_never_iterated_sends_nothing() -> None:
    source = PageSource(10)
    async with CallbackSearch(source.fetch) as pager:
        assert "next_offset=0" in repr(pager)
        assert "total=None" in repr(pager)
    assert source.requests == []


async def test_max_items_zero_sends_nothing() -> None:
    source = PageSource(100)
    assert await CallbackSearch(source.fetch, max_items=0).collect() == []
    assert source.requests == []


async def test_beyond_the_cap_raises_before_yielding_anything() -> None:
    source = PageSource(60_001)
    pager = CallbackSearch(source.fetch, page_size=5000)
    with pytest.raises(PaginationLimitError) as info:
        await anext(pager)
    assert info.value.total == 60_001
    assert info.value.reachable == 55_000
    assert "5001 are out of reach" in str(info.value)
    assert "export" in str(info.value)
    # Known from the first page: not the "grew during the walk" story of a later raise.
    assert str(info.value).startswith("60001 callbacks match these filters, but")
    assert source.requests == [(0, 5000)]


async def test_beyond_the_cap_is_fine_when_max_items_fits() -> None:
    source = PageSource(60_000)
    got = await CallbackSearch(source.fetch, page_size=5000, max_items=12_000).collect()
    assert len(got) == 12_000


async def test_truncate_yields_the_reachable_part_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = PageSource(56_000)
    with caplog.at_level(logging.WARNING, logger="convoso_async"):
        got = await CallbackSearch(source.fetch, page_size=5000, truncate=True).collect()
    assert ids(got) == list(range(55_000))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "yielding the 55000 reachable" in warnings[0].getMessage()
    assert "skipping 1000" in warnings[0].getMessage()


@pytest.mark.parametrize("truncate", [False, True])
async def test_beyond_the_cap_from_an_offset_counts_what_is_reachable_from_there(
    truncate: bool, caplog: pytest.LogCaptureFixture
) -> None:
    source = PageSource(60_001)
    pager = CallbackSearch(source.fetch, page_size=5000, offset=1000, truncate=truncate)
    if not truncate:
        with pytest.raises(PaginationLimitError) as info:
            await anext(pager)
        assert info.value.reachable == 54_000
        assert "reaches only records 1000..54999" in str(info.value)
        return
    with caplog.at_level(logging.WARNING, logger="convoso_async"):
        got = await pager.collect()
    assert ids(got) == list(range(1000, 55_000))
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "matches 60001 callbacks" in warning
    assert "yielding the 54000 reachable" in warning
    assert "skipping 5001" in warning


def grow_after_first_page(source: PageSource, to: int) -> None:
    """Append records past the end once the first page has been answered."""

    def grow(offset: int) -> None:
        if offset > 0 and len(source.records) < to:
            source.records.extend(Callback(id=str(i)) for i in range(len(source.records), to))

    source.before_answer = grow


async def test_a_total_grown_past_the_cap_during_the_walk_raises_after_the_reachable_part() -> None:
    source = PageSource(55_000)
    grow_after_first_page(source, 55_010)
    pager = CallbackSearch(source.fetch, page_size=5000, concurrency=4)
    got: list[str] = []
    with pytest.raises(PaginationLimitError) as info:
        await drain(pager, got)
    assert [int(i) for i in got] == list(range(55_000))  # all that paging reaches, first
    assert info.value.total == 55_010
    assert "during the walk" in str(info.value)
    assert "records 0..54999 were yielded" in str(info.value)
    assert "10 are out of reach" in str(info.value)
    assert pager.next_offset == 55_000
    assert max(offset for offset, _ in source.requests) == 50_000


async def test_a_total_beyond_the_cap_on_any_page_raises_though_the_last_page_said_less() -> None:
    """Pages answer out of order: the last one before a record lands, the others after.
    The shift loses a record; the walk must not end as if complete."""
    source = PageSource(55_000, gated=True)
    pager = CallbackSearch(source.fetch, page_size=5000, concurrency=10)
    got: list[str] = []
    consumer = asyncio.create_task(drain(pager, got))
    await source.until_requests(11)  # the first page, then 5000..50000 in flight
    source.gate(50_000).set()  # answers first, with the total still 55,000
    await source.until(lambda: source.answered == 2)
    source.records.insert(0, Callback(id="new"))
    for offset in range(5000, 50_000, 5000):
        source.gate(offset).set()
    with pytest.raises(PaginationLimitError) as info:
        await consumer
    assert info.value.total == 55_001
    assert len(got) == len(set(got))


async def test_the_error_names_the_most_records_any_page_put_out_of_reach() -> None:
    # Pages may carry an older total than the one before (answered out of turn): the
    # error reports the largest excess seen, not the last page's smaller one.
    source = PageSource(55_000)

    def grow_then_shrink(offset: int) -> None:
        if offset == 5000:
            source.records.extend(Callback(id=f"g{i}") for i in range(10))
        elif offset == 10_000:
            del source.records[-5:]

    source.before_answer = grow_then_shrink
    pager = CallbackSearch(source.fetch, page_size=5000, concurrency=1)
    with pytest.raises(PaginationLimitError) as info:
        await drain(pager)
    assert info.value.total == 55_010
    assert "10 are out of reach" in str(info.value)


async def test_a_total_grown_past_the_cap_with_truncate_ends_quietly_at_the_cap() -> None:
    source = PageSource(55_000)
    grow_after_first_page(source, 55_010)
    pages = [p async for p in CallbackSearch(source.fetch, page_size=5000, truncate=True).pages()]
    assert sum(len(p.results) for p in pages) == 55_000


async def test_yields_in_offset_order_when_later_pages_answer_first() -> None:
    source = PageSource(50, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=4)
    consumer = asyncio.create_task(pager.collect())
    await source.until_requests(5)  # the first page, then four in flight
    for offset in (40, 30, 20, 10):  # release newest first
        source.gate(offset).set()
        await asyncio.sleep(0)
    assert ids(await consumer) == list(range(50))


async def test_never_more_than_concurrency_requests_in_flight() -> None:
    source = PageSource(200, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
    consumer = asyncio.create_task(pager.collect())
    for offset in range(10, 200, 10):
        await source.until_requests(offset // 10 + 1)
        assert source.in_flight <= 3
        source.gate(offset).set()
    assert len(await consumer) == 200
    assert source.max_in_flight == 3  # the bound is reached, and never passed


async def test_concurrency_is_clamped_to_the_clients_bound() -> None:
    source = PageSource(10)
    pager = CallbackSearch(source.fetch, concurrency=50, max_concurrency=6)
    assert pager.concurrency == 6


async def test_a_record_shifted_across_a_boundary_is_yielded_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = PageSource(30)

    def insert_at_front(offset: int) -> None:
        if offset == 10 and len(source.records) == 30:
            # A new record lands before the cursor: page 2 now repeats page 1's last one.
            source.records.insert(0, Callback(id="new"))

    source.before_answer = insert_at_front
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    with caplog.at_level(logging.WARNING, logger="convoso_async"):
        got = await pager.collect()
    got_ids = [c.id for c in got]
    assert len(got_ids) == len(set(got_ids))
    assert set(got_ids) == {str(i) for i in range(30)}
    # Warned once, when it changed, not again on every later page; total is the new one.
    changed = [r.getMessage() for r in caplog.records if "total changed" in r.getMessage()]
    assert len(changed) == 1
    assert "total changed from 30 to 31" in changed[0]
    assert pager.total == 31


@pytest.mark.parametrize("view", ["items", "pages"])
async def test_a_page_answered_before_an_insert_that_the_page_before_saw_is_fetched_again(
    view: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Pages in flight together can be answered in any order. Page 20 answered first, then
    # a record was added at the front, then page 10, which now starts one record earlier
    # (its first is page 0's last, dropped as a duplicate): record 19, pushed over into
    # page 20 after page 20 was answered, was in neither, and the walk lost it although
    # nothing but an insert happened. A page whose total is below the one of the page
    # handed out before it was answered before it, and is fetched again.
    source = PageSource(40, gated=True)
    for offset in (30, 40):
        source.gate(offset).set()
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)

    async def consume() -> list[str]:
        if view == "items":
            return [c.id for c in await pager.collect()]
        return [c.id async for page in pager.pages() for c in page.results]

    with caplog.at_level(logging.WARNING, logger="convoso_async"):
        consumer = asyncio.create_task(consume())
        await source.until_requests(3)  # page 0 answered, pages 10 and 20 in flight
        source.gate(20).set()
        await source.until(lambda: source.answered == 2)
        source.records.insert(0, Callback(id="new"))
        source.gate(10).set()
        got = await consumer
    assert len(got) == len(set(got))
    assert set(got) >= {str(i) for i in range(40)}
    assert source.requests.count((20, 10)) == 2  # page 20 again, once
    assert any("total changed from 40 to 41" in r.getMessage() for r in caplog.records)


async def test_a_page_fetched_again_waits_for_a_place_among_the_requests_in_flight() -> None:
    # As above, page 20 must be fetched again, but now both places of the window are
    # taken by pages 30 and 40, held by the server: the new request waits for one of
    # them to land, and never makes three in flight.
    source = PageSource(60, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    consumer = asyncio.create_task(pager.collect())
    await source.until_requests(3)  # page 0 answered, pages 10 and 20 in flight
    source.gate(20).set()
    await source.until(lambda: source.answered == 2)
    source.records.insert(0, Callback(id="new"))
    source.gate(10).set()
    await source.until(lambda: (40, 10) in source.requests)  # 30 and 40 fill the window
    assert source.requests.count((20, 10)) == 1  # the second asking waits for a place
    source.gate(30).set()  # one lands: its place goes to page 20, asked again
    await asyncio.wait_for(source.until(lambda: source.requests.count((20, 10)) == 2), 10)
    # Its place is given back: 40 and 50 in flight again, as many as before.
    await asyncio.wait_for(source.until(lambda: (50, 10) in source.requests), 10)
    for offset in (40, 50, 60):
        source.gate(offset).set()
    got = [c.id for c in await asyncio.wait_for(consumer, 10)]
    assert len(got) == len(set(got))
    assert set(got) >= {str(i) for i in range(60)}
    assert source.max_in_flight == 2


async def test_a_landed_request_lets_the_next_one_out_before_its_records_are_taken() -> None:
    # The page the walk waits for holds a place while in flight; when it lands, the next
    # request leaves at once, not only when the consumer comes back for more records.
    source = PageSource(100, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    async with pager:
        for _ in range(10):
            await anext(pager)  # all of page 0, with 10 and 20 in flight
        await source.until_requests(3)
        taking = asyncio.create_task(anext(pager))  # waits for page 10
        source.gate(10).set()
        assert (await taking).id == "10"
        await asyncio.wait_for(source.until_requests(4), 10)
        assert source.requests[3] == (30, 10)
        assert source.max_in_flight == 2  # 20 and 30: the page taken counted while in flight


async def test_a_page_asked_for_after_the_one_before_was_answered_is_not_fetched_again() -> None:
    # A lower total there means records were removed, not a page answered out of turn:
    # fetching it again would only double the requests of a walk over data being deleted.
    source = PageSource(60)

    def delete_at_front(offset: int) -> None:
        if offset:
            del source.records[0]

    source.before_answer = delete_at_front
    await drain(CallbackSearch(source.fetch, page_size=10, concurrency=1))
    # Each page a record fewer: the one at 50 holds the last 5 of the 55 left.
    assert [offset for offset, _ in source.requests] == [0, 10, 20, 30, 40, 50]


async def test_break_cancels_requests_in_flight_and_leaves_no_task() -> None:
    source = PageSource(100, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=4)
    async for callback in pager:
        if callback.id == "3":
            break
    # The dropped generator is closed by asyncio's finaliser on the next loop turns.
    for _ in range(5):
        await asyncio.sleep(0)
    assert source.cancelled == 4
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert pager.next_offset == 4


async def test_an_exception_in_the_loop_body_cleans_up() -> None:
    source = PageSource(100, gated=True)

    async def failing_body() -> None:
        async for _ in CallbackSearch(source.fetch, page_size=10, concurrency=2):
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing_body()
    for _ in range(5):
        await asyncio.sleep(0)
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_cancelling_the_consumer_cancels_the_walk() -> None:
    source = PageSource(100, gated=True)
    consumer = asyncio.create_task(
        CallbackSearch(source.fetch, page_size=10, concurrency=3).collect()
    )
    await source.until_requests(4)
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert source.cancelled == 3
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_an_error_surfaces_and_next_offset_resumes_without_loss_or_repeat() -> None:
    source = PageSource(50)
    source.fail_at[30] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    first: list[str] = []
    with pytest.raises(TransportError):
        await drain(pager, first)
    assert pager.next_offset == 30
    rest = await CallbackSearch(source.fetch, page_size=10, offset=pager.next_offset).collect()
    assert [int(i) for i in first] + ids(rest) == list(range(50))


async def test_a_failed_collect_puts_next_offset_back_so_nothing_is_skipped() -> None:
    # collect() hands the caller nothing when it fails: the records it had gathered go
    # with the error, so resuming from next_offset must fetch them again.
    source = PageSource(50)
    source.fail_at[25] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2, offset=5)
    with pytest.raises(TransportError):
        await pager.collect()
    assert pager.next_offset == 5
    rest = await CallbackSearch(source.fetch, page_size=10, offset=pager.next_offset).collect()
    assert ids(rest) == list(range(5, 50))


async def test_a_failed_collect_after_anext_resumes_after_what_anext_handed_out() -> None:
    source = PageSource(50)
    source.fail_at[30] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    first = await anext(pager)
    with pytest.raises(TransportError):
        await pager.collect()
    assert pager.next_offset == 1
    rest = await CallbackSearch(source.fetch, page_size=10, offset=pager.next_offset).collect()
    assert ids([first, *rest]) == list(range(50))
    await pager.aclose()


async def test_next_offset_after_break_mid_page() -> None:
    source = PageSource(50)
    pager = CallbackSearch(source.fetch, page_size=10)
    seen = []
    async for callback in pager:
        seen.append(callback)
        if len(seen) == 14:
            break
    assert pager.next_offset == 14
    rest = await CallbackSearch(source.fetch, page_size=10, offset=14).collect()
    assert ids(seen + rest) == list(range(50))


async def test_anext_and_aclose_drive_the_walk_by_hand() -> None:
    source = PageSource(30, gated=True)
    async with CallbackSearch(source.fetch, page_size=10, concurrency=2) as pager:
        assert (await anext(pager)).id == "0"
        assert (await anext(pager)).id == "1"
        assert pager.total == 30
        assert len(asyncio.all_tasks()) == 3  # two pages prefetched while we held item 1
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert source.in_flight == 0


async def test_a_loop_after_anext_goes_on_with_the_same_walk() -> None:
    source = PageSource(30)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    first = await anext(pager)  # peek a record and the total, then loop over the rest
    assert pager.total == 30
    rest = [callback async for callback in pager]
    assert ids([first, *rest]) == list(range(30))
    assert len(source.requests) == 3


async def test_aclose_after_anext_and_a_loop_closes_the_walk_in_flight() -> None:
    source = PageSource(100, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
    assert (await anext(pager)).id == "0"
    async for callback in pager:
        if callback.id == "5":
            break
    await source.until_requests(4)  # three pages in flight behind the first
    await pager.aclose()
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_aclose_stops_a_pages_view_the_caller_still_holds() -> None:
    source = PageSource(100, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
    pages = pager.pages()
    assert (await anext(pages)).offset == 0
    await source.until_requests(4)  # three pages in flight behind the first
    await pager.aclose()  # the caller's iterator is still alive: aclose() must find it
    assert source.cancelled == 3
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_a_walk_failed_under_anext_refuses_to_go_on_rather_than_end_empty() -> None:
    source = PageSource(30)
    source.fail_at[10] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    taken = [await anext(pager) for _ in range(10)]
    with pytest.raises(TransportError):
        await anext(pager)
    assert pager.next_offset == 10
    # Not StopAsyncIteration, nor a loop that ends at once: the 20 records left are
    # not "done", and a caller catching the error must not take it for the end.
    with pytest.raises(RuntimeError, match=r"ended with TransportError.*offset=next_offset"):
        await anext(pager)  # ... and says how to resume
    with pytest.raises(RuntimeError, match="ended with TransportError"):
        async for _ in pager:
            pass
    rest = await CallbackSearch(source.fetch, page_size=10, offset=pager.next_offset).collect()
    assert ids(taken + rest) == list(range(30))


async def test_a_loop_after_anext_that_fails_leaves_the_walk_refusing_to_go_on() -> None:
    source = PageSource(30)
    source.fail_at[20] = TransportError("reset", endpoint="callbacks/search")
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    seen = [(await anext(pager)).id]
    with pytest.raises(TransportError):
        await drain(pager, seen)  # the loop goes on with the walk anext() began
    assert seen == [str(i) for i in range(20)]
    with pytest.raises(RuntimeError, match="ended with TransportError"):
        await pager.collect()


async def test_a_second_task_pulling_a_busy_walk_does_not_end_it_for_the_first() -> None:
    source = PageSource(30, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    for expected in range(10):
        assert (await anext(pager)).id == str(expected)
    first = asyncio.create_task(anext(pager))  # waits for page 10, held back
    await asyncio.sleep(0)  # one turn: that task starts, and is inside the walk
    assert pager._items is not None
    assert pager._items.ag_running
    with pytest.raises(RuntimeError, match="already running"):
        await anext(pager)  # the walk is busy: that caller is refused, the walk goes on
    source.gate(10).set()
    source.gate(20).set()
    assert (await first).id == "10"
    assert ids([callback async for callback in pager]) == list(range(11, 30))


async def test_a_timeout_around_anext_leaves_the_walk_refusing_to_go_on() -> None:
    source = PageSource(30, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=2)
    assert (await anext(pager)).id == "0"
    async for callback in pager:
        if callback.id == "9":
            break
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0):  # page 10 is held back: the wait times out
            await anext(pager)
    assert pager.next_offset == 10
    assert source.in_flight == 0  # the walk was closed by the cancellation
    with pytest.raises(RuntimeError, match="ended with CancelledError"):
        await anext(pager)


@pytest.mark.parametrize("walk_first", [False, True])
@pytest.mark.parametrize("view", ["items", "pages"])
async def test_a_walk_left_unclosed_closes_cleanly_when_asyncio_closes_its_generators(
    view: str, walk_first: bool
) -> None:
    # A pager driven by anext() and never closed holds its generators until the loop
    # shuts down (or the garbage collector finds the pager); asyncio then closes every
    # generator left at once, the walk inside the view's generator included, in either
    # order. Neither may fail with "aclose(): asynchronous generator is already running".
    source = PageSource(100, gated=True)
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
    outer = pager._items = pager._track(
        pager._iter_items() if view == "items" else pager._iter_pages()  # type: ignore[arg-type]
    )
    await anext(outer)
    await source.until_requests(4)  # three pages in flight behind the first
    walk = outer.ag_frame.f_locals["chunks"]
    order = [walk, outer] if walk_first else [outer, walk]
    outcomes = await asyncio.gather(*(g.aclose() for g in order), return_exceptions=True)
    assert outcomes == [None, None]
    assert source.cancelled == 3
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_a_pager_left_after_anext_says_nothing_when_asyncio_run_ends() -> None:
    errors: list[dict[str, object]] = []

    async def peek() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        source = PageSource(100)
        pager = CallbackSearch(source.fetch, page_size=10, concurrency=3)
        assert (await anext(pager)).id == "0"  # and never closed

    asyncio.run(peek())
    assert errors == []


@pytest.mark.parametrize("stop_at", [50_001, 52_000, 54_999])
async def test_next_offset_past_the_offset_cap_resumes_without_loss_or_repeat(
    stop_at: int,
) -> None:
    source = PageSource(55_000)
    pager = CallbackSearch(source.fetch, page_size=5000, concurrency=4)
    taken: list[Callback] = []
    async with pager:
        async for callback in pager:
            taken.append(callback)
            if len(taken) == stop_at:
                break
    assert pager.next_offset == stop_at
    source.requests.clear()
    rest = await CallbackSearch(source.fetch, page_size=5000, offset=pager.next_offset).collect()
    assert ids(taken + rest) == list(range(55_000))
    assert source.requests == [(50_000, 5000)]  # re-aligned to the cap, its head skipped


async def test_an_offset_past_the_last_reachable_record_is_refused() -> None:
    source = PageSource(10)
    with pytest.raises(ValueError, match="offset"):
        CallbackSearch(source.fetch, offset=55_000)
    assert source.requests == []


async def test_pages_view_yields_pages_in_order() -> None:
    source = PageSource(25)
    pager = CallbackSearch(source.fetch, page_size=10)
    pages = [page async for page in pager.pages()]
    assert [(p.offset, len(p.results)) for p in pages] == [(0, 10), (10, 10), (20, 5)]
    assert pager.next_offset == 25


async def test_pages_view_next_offset_after_break_resumes_without_repeat() -> None:
    source = PageSource(50)
    pager = CallbackSearch(source.fetch, page_size=10)
    taken: list[Callback] = []
    async for page in pager.pages():
        taken.extend(page.results)
        if len(taken) == 20:
            break
    assert pager.next_offset == 20  # a page handed over counts as yielded
    rest = await CallbackSearch(source.fetch, page_size=10, offset=pager.next_offset).collect()
    assert ids(taken + rest) == list(range(50))


async def test_pages_view_next_offset_after_an_error_in_the_loop_body() -> None:
    source = PageSource(50)
    pager = CallbackSearch(source.fetch, page_size=10)

    async def failing_body() -> None:
        async for _ in pager.pages():
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await failing_body()
    assert pager.next_offset == 10


async def test_a_slow_consumer_holds_at_most_concurrency_pages_ahead() -> None:
    source = PageSource(200, gated=True)
    async with CallbackSearch(source.fetch, page_size=10, concurrency=4) as pager:
        assert (await anext(pager)).id == "0"  # the walk holds page 0 and stops there
        await source.until_requests(5)
        for offset in (10, 20, 30, 40):
            source.gate(offset).set()
        await source.until(lambda: source.answered == 5)
        # Turns in which the landed pages' done-callbacks could send more requests.
        for _ in range(5):
            await asyncio.sleep(0)
        assert source.in_flight == 0
        assert source.requests[5:] == []  # four pages wait ahead; none more was asked for
        for expected in range(1, 11):
            assert (await anext(pager)).id == str(expected)
        await source.until_requests(6)  # taking page 10 made room for page 50
        assert source.requests[5] == (50, 10)


async def test_pages_view_returns_whole_pages_that_span_several_decode_slices() -> None:
    page_size = 2 * DECODE_SLICE + 100  # each page is decoded in three slices
    source = PageSource(2 * page_size + 7)
    pages = [page async for page in CallbackSearch(source.fetch, page_size=page_size).pages()]
    assert [(p.offset, len(p.results)) for p in pages] == [
        (0, page_size),
        (page_size, page_size),
        (2 * page_size, 7),
    ]
    assert ids([c for p in pages for c in p.results]) == list(range(2 * page_size + 7))


async def test_each_slice_of_a_page_is_decoded_once(caplog: pytest.LogCaptureFixture) -> None:
    # Slices are cut relative to the page's own offset: a page past offset 0 must not
    # decode records of later slices early (each would then be dropped as a repeat).
    source = PageSource(1000)
    with caplog.at_level(logging.DEBUG, logger="convoso_async"):
        got = await CallbackSearch(source.fetch, page_size=2 * DECODE_SLICE).collect()
    assert ids(got) == list(range(1000))
    assert not [r for r in caplog.records if "dropping callback" in r.getMessage()]


async def test_max_items_mid_slice_ends_the_pages_view_there() -> None:
    source = PageSource(5000)
    wanted = DECODE_SLICE + DECODE_SLICE // 2
    pager = CallbackSearch(source.fetch, page_size=5000, max_items=wanted)
    pages = [page async for page in pager.pages()]
    assert [len(p.results) for p in pages] == [wanted]
    assert pager.next_offset == wanted


async def test_the_next_requests_leave_before_the_first_page_is_parsed() -> None:
    source = PageSource(30)  # its pages tell their total without parsing
    await CallbackSearch(source.fetch, page_size=10, concurrency=2).collect()
    assert source.events[:4] == [("request", 0), ("request", 10), ("request", 20), ("open", 0)]


async def test_without_a_total_hint_the_first_page_is_parsed_before_the_next_requests() -> None:
    source = PageSource(30, hint=False)
    got = await CallbackSearch(source.fetch, page_size=10, concurrency=2).collect()
    assert source.events[:3] == [("request", 0), ("open", 0), ("request", 10)]
    assert ids(got) == list(range(30))


async def test_async_with_closes_the_walk_before_the_block_ends() -> None:
    source = PageSource(100, gated=True)
    async with CallbackSearch(source.fetch, page_size=10, concurrency=4) as pager:
        async for callback in pager:
            if callback.id == "3":
                break
    # No loop turn in between: the block itself cancelled and awaited the requests.
    assert source.cancelled == 4
    assert source.in_flight == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_iterated_once_and_not_awaitable() -> None:
    source = PageSource(5)
    pager = CallbackSearch(source.fetch)
    await pager.collect()
    with pytest.raises(RuntimeError, match="only once"):
        await pager.collect()
    assert not hasattr(pager, "__await__")


async def test_a_short_page_ends_the_walk_even_if_total_said_more() -> None:
    source = PageSource(30)

    def shrink(offset: int) -> None:
        if offset == 10:
            del source.records[15:]

    source.before_answer = shrink
    got = await CallbackSearch(source.fetch, page_size=10, concurrency=1).collect()
    assert ids(got) == list(range(15))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"page_size": 0}, "page_size"),
        ({"page_size": 5001}, "page_size"),
        ({"offset": 55_000}, "offset"),
        ({"offset": -1}, "offset"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_items": -1}, "max_items must be at least 0, not -1"),
        ({"page_size": True}, "page_size"),
    ],
)
def test_invalid_arguments_raise_before_any_request(kwargs: dict[str, int], message: str) -> None:
    source = PageSource(5)
    with pytest.raises(ValueError, match=message):
        CallbackSearch(source.fetch, **kwargs)
    assert source.requests == []


async def test_the_smallest_page_size_and_concurrency_are_accepted() -> None:
    source = PageSource(3)
    got = await CallbackSearch(source.fetch, page_size=1, concurrency=1).collect()
    assert ids(got) == [0, 1, 2]
    assert source.requests == [(0, 1), (1, 1), (2, 1)]


async def test_pages_view_page_next_offset_is_the_resume_point_past_a_dropped_duplicate() -> None:
    """A page that lost a duplicate to drift still says where it ends: its records sit
    past the dropped one, so its ``next_offset`` is the walk's, not one short of it
    (resuming from that would hand a record over twice)."""
    source = PageSource(30)

    def insert_at_front(offset: int) -> None:
        if offset == 10 and len(source.records) == 30:
            source.records.insert(0, Callback(id="new"))  # page 2 now repeats record 9

    source.before_answer = insert_at_front
    pager = CallbackSearch(source.fetch, page_size=10, concurrency=1)
    seen: list[tuple[int, int, int]] = []
    async for page in pager.pages():
        seen.append((page.offset, page.next_offset, pager.next_offset))
    assert seen[1] == (11, 20, 20)  # records 10..18 of old, at positions 11..19
    assert all(page_next == walk_next for _, page_next, walk_next in seen)
