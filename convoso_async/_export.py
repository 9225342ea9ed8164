"""``client.callbacks.export()``: every callback between two dates, past the 55,000 cap.

One filter combination reaches at most 55,000 records by offset/limit paging, so an
export plans *windows*, each under the cap, that partition the search:

1. **Probe.** One ``limit=1`` search over the whole range; if its ``total`` fits under the
   cap (0 included) the range is one window. Otherwise one ``limit=1`` search per day
   (as many at a time as the client's ``max_concurrency`` lets out, not ``concurrency``,
   which counts windows walked).
2. **Merge.** Adjacent days are merged into one window while the sum of their totals
   stays within the cap (fewer requests). Every day belongs to exactly one window, even
   one probed empty: records can be added to it before its window is walked (hours
   later, or on a resume of the stored plan). An empty day joins the run of days beside
   it; between split days or the range's edges it is a window of its own (or with its
   empty neighbours). A window whose total is 0 is walked like any other: one request.
3. **Split.** A day still beyond the cap is split by stage (the four documented stages),
   and a stage still beyond it by recipient (``System``/``Personal``): disjoint filters,
   every part kept, those probed empty too, for the same reason.
   A split is a partition only if the parts' totals add up to the whole: the live API
   carries stages outside the enum (``MISSED``), so when the four stages fall short the
   ``MISSED`` filter is probed for the remainder; if the parts still fall short, a
   :class:`PaginationLimitError` names the window and the gap rather than lose records.
   Before that the whole is probed once more: parts that cover the new total are
   records deleted between the probes, not a gap. Parts adding up to more than the
   whole are records added between the probes.
   A partition that cannot be split further and is beyond the cap raises too.
4. **Walk.** Each window is walked by ``client.callbacks.search()`` (the paginator), up
   to ``concurrency`` windows at once. Records are handed out window by window, in plan
   order (date order; a split day's stages in the order above), each window in the
   API's result order. Between the walkers and the consumer sit queues of one page
   each, so memory is bounded by the pages in flight, not by the export's size.
5. **Re-plan.** Data grows while an export runs: a window planned under the cap can be
   beyond it when its turn comes, and its search then raises before yielding anything.
   That window is planned again as above (merged days day by day, a day by stage, then
   recipient), the parts replace it in ``windows`` (and in the checkpoint) and are
   walked in its place. Only the narrowest partition beyond the cap raises. A window
   that grows beyond the cap during its walk is split the same way, but its parts are
   walked as that one window (ids de-duplicated), so the checkpoint never vouches for a
   part whose records are already in the output.

Everything the export starts is a task it owns: leaving the ``async for`` early (break,
error, cancellation) cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections import deque
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
)
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from . import _protocol as proto
from ._errors import PaginationLimitError
from ._models import Callback, CallbackPage, Recipient, Stage
from ._pagination import CallbackSearch, CallbackStream
from ._writers import fsync_where_supported

if TYPE_CHECKING:
    from ._client import Callbacks

logger = logging.getLogger("convoso_async")
T = TypeVar("T")

#: Stage filter values a day beyond the cap is split into: the documented four.
STAGE_PARTS: tuple[str, ...] = tuple(stage.value for stage in Stage)
#: Probed only when the four stages do not add up to the day's total: the live API's
#: records carry ``MISSED``, which no documented stage filter selects.
EXTRA_STAGE_PARTS: tuple[str, ...] = ("MISSED",)
#: Recipient filter values a stage partition beyond the cap is split into.
RECIPIENT_PARTS: tuple[str, ...] = tuple(r.filter_value for r in Recipient)

CHECKPOINT_VERSION = 1


@attrs.frozen
class ExportProgress:
    """A snapshot of an export's counters, handed to the ``progress`` callback.

    ``records_expected`` is the sum of the planned windows' totals (0 until the plan is
    made); ``requests`` and ``retries`` count every request the client sent since the
    export was created: this export's probes, pages and their retries, and, on a client
    shared with other calls (another export included), theirs too. ``pages`` counts this
    export's page requests and ``probes`` its ``limit=1`` planning requests.
    """

    records_done: int
    records_expected: int
    requests: int
    retries: int
    windows_done: int
    windows_total: int
    pages: int = 0
    probes: int = 0


@attrs.frozen
class ExportWindow:
    """One part of an export's plan: whole days ``start..end``, optionally one stage and
    one recipient. ``total`` is what the probe reported when the plan was made."""

    start: date
    end: date
    stage: str | None = None
    recipient: str | None = None
    total: int = attrs.field(default=0, eq=False)

    def __str__(self) -> str:
        days = str(self.start) if self.start == self.end else f"{self.start}..{self.end}"
        parts = [days]
        if self.stage is not None:
            parts.append(f"stage={self.stage}")
        if self.recipient is not None:
            parts.append(f"recipient={self.recipient}")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "stage": self.stage,
            "recipient": self.recipient,
            "total": self.total,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ExportWindow:
        return cls(
            date.fromisoformat(raw["start"]),
            date.fromisoformat(raw["end"]),
            raw.get("stage"),
            raw.get("recipient"),
            int(raw.get("total", 0)),
        )


class SeenIds:
    """Ids handed out so far, compactly: numeric ids (the API's are auto-increment
    integers) as bits in 64 KiB-id chunks, anything else in a set. 500,000 numeric ids
    take about 64 KB instead of the ~40 MB a set of strings would.

    Scattered numbers would cost a chunk (8 KiB) each: 500,000 of them, 4 GB. So when
    the chunks hold fewer than one id per :data:`_MIN_IDS_PER_KIB` KiB on average
    (checked as their count doubles, from 64 on), every id moves to the set for good.
    """

    _CHUNK_BITS = 16
    _CHUNK_BYTES = 1 << (_CHUNK_BITS - 3)
    #: Below this many ids per KiB of chunks, a set of strings is the smaller store.
    _MIN_IDS_PER_KIB = 16
    _FIRST_CHECK = 64

    def __init__(self) -> None:
        self._chunks: dict[int, bytearray] = {}
        self._other: set[str] = set()
        self._dense = True
        self._next_check = self._FIRST_CHECK

    def add(self, callback_id: str) -> bool:
        """Record ``callback_id``; true if it was not seen before."""
        if (
            self._dense
            and callback_id.isascii()
            and callback_id.isdigit()
            and len(callback_id) < 19
        ):
            number = int(callback_id)
            if str(number) == callback_id:  # "007" stays a string: it is not "7"
                chunk = self._chunks.get(number >> self._CHUNK_BITS)
                if chunk is None:
                    chunk = self._new_chunk(number >> self._CHUNK_BITS)
                if chunk is not None:
                    low = number & ((1 << self._CHUNK_BITS) - 1)
                    mask = 1 << (low & 7)
                    if chunk[low >> 3] & mask:
                        return False
                    chunk[low >> 3] |= mask
                    return True
        if callback_id in self._other:
            return False
        self._other.add(callback_id)
        return True

    def __len__(self) -> int:
        held = sum(int.from_bytes(chunk).bit_count() for chunk in self._chunks.values())
        return held + len(self._other)

    def _new_chunk(self, key: int) -> bytearray | None:
        """A chunk for ``key``, or ``None`` once the ids proved too scattered for chunks."""
        if len(self._chunks) >= self._next_check:
            self._next_check *= 2
            held = len(self) - len(self._other)
            if held * 1024 < len(self._chunks) * self._CHUNK_BYTES * self._MIN_IDS_PER_KIB:
                self._to_set()
                return None
        chunk = self._chunks[key] = bytearray(self._CHUNK_BYTES)
        return chunk

    def _to_set(self) -> None:
        for key, chunk in self._chunks.items():
            base = key << self._CHUNK_BITS
            bits = int.from_bytes(chunk, "little")
            while bits:
                low = bits & -bits
                self._other.add(str(base + low.bit_length() - 1))
                bits ^= low
        self._chunks.clear()
        self._dense = False


@attrs.frozen
class _End:
    """The window's last page is handed. ``total``: what it holds now, if it grew during
    its walk and was walked as parts."""

    total: int | None = None


@attrs.frozen
class _Failed:
    error: Exception


@attrs.frozen
class _Replanned:
    """The window being walked grew beyond the cap since it was planned: ``parts`` (each
    under the cap, in plan order) replace it and are walked next."""

    parts: tuple[ExportWindow, ...]


_Item = CallbackPage | _End | _Failed | _Replanned


def checkpoint_key(filters: Mapping[str, str]) -> str:
    """The identity of an export in a checkpoint: a digest of its validated filters."""
    canonical = json.dumps(dict(sorted(filters.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The checkpoint at ``path`` as a dict, or ``None`` if there is none."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"checkpoint {os.fspath(path)} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {os.fspath(path)} is not a convoso-async export checkpoint")
    return data


def _saved_progress(
    saved: Mapping[str, Any], path: Path
) -> tuple[list[ExportWindow], set[int], int]:
    """The plan, the completed windows and their record count that a checkpoint holds.

    Read when the export is made, so that a damaged or hand-edited checkpoint is a clear
    ``ValueError`` before any request rather than a ``KeyError`` in the middle of a resume.
    """

    def damaged(why: str) -> ValueError:
        return ValueError(f"checkpoint {path} is damaged ({why}); remove it to start over")

    try:
        windows = [ExportWindow.from_json(window) for window in saved["windows"]]
        done = {int(i) for i in saved["done"]}
        records_done = int(saved.get("records_done", 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise damaged(f"{type(exc).__name__}: {exc}") from None
    if not done <= set(range(len(windows))) or records_done < 0:
        raise damaged("its completed windows do not match its plan")
    for window in windows:
        # Checked as the window's search will check them, or the export fails partway.
        try:
            if window.start > window.end:
                raise ValueError(f"window {window} ends before it starts")
            if window.stage is not None:
                proto.stage_filter_text(window.stage)
            if window.recipient is not None:
                proto.recipient_of(window.recipient)
        except ValueError as exc:
            raise damaged(str(exc)) from None
    if not isinstance(saved.get("state"), dict | None):  # it becomes resume_state
        raise damaged("its state is not an object")
    return windows, done, records_done


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers see the
    old content or the new, never half of it, even if the process dies mid-write."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            fsync_where_supported(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CallbackExport(CallbackStream):
    """An ``async for`` over every callback matching an export, each exactly once.

    Returned by :meth:`Callbacks.export`, which documents the arguments. Iterate it once.
    After (or during) iteration: ``windows`` is the plan, ``progress`` the latest
    :class:`ExportProgress`, ``pages_fetched`` and ``probes`` the requests spent, and
    ``resume_state`` what the checkpoint's ``before_checkpoint`` hook last stored (when
    resuming), so a writer can pick up its partial output where the checkpoint vouches.
    ``resume_windows_done`` is, from the start, how many windows the checkpoint records
    as complete (0 when not resuming): records a resume will not hand out again.
    """

    _resume_hint = "call export() again (with the same checkpoint= to resume)"

    def __init__(
        self,
        callbacks: Callbacks,
        *,
        start_date: date | str,
        end_date: date | str,
        campaign_id: str | int | None = None,
        list_id: str | int | None = None,
        user_id: str | int | None = None,
        lead_id: str | int | None = None,
        recipient: Recipient | str | None = None,
        stage: Stage | str | None = None,
        concurrency: int | None = None,
        progress: Callable[[ExportProgress], object] | None = None,
        checkpoint: str | os.PathLike[str] | None = None,
        before_checkpoint: Callable[[ExportWindow], Mapping[str, Any] | None] | None = None,
        page_size: int = proto.MAX_LIMIT,
        keep_checkpoint: bool = False,
    ) -> None:
        if start_date is None or end_date is None:
            raise ValueError("export needs both start_date and end_date")
        self._filters = proto.filter_form(
            {
                "start_date": start_date,
                "end_date": end_date,
                "campaign_id": campaign_id,
                "list_id": list_id,
                "user_id": user_id,
                "lead_id": lead_id,
                "recipient": recipient,
                "stage": stage,
            }
        )
        self.start_date = date.fromisoformat(self._filters["start_date"])
        self.end_date = date.fromisoformat(self._filters["end_date"])
        # The filters every window shares; dates, stage and recipient vary per window.
        self._fixed = {
            name: self._filters[field]
            for name, field in (
                ("campaign_id", "campaign_id"),
                ("list_id", "list_id"),
                ("user_id", "user_id"),
                ("lead_id", "lead_id"),
            )
            if field in self._filters
        }
        self._stage = self._filters.get("stage")
        self._recipient = self._filters.get("recipient")
        self._callbacks = callbacks
        client = callbacks._client
        self._client = client
        if concurrency is None:
            concurrency = max(1, client.max_concurrency // 4)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
        self.concurrency = min(concurrency, client.max_concurrency)
        # Page requests per window: together the windows fill half the client's slots.
        # Each walker holds up to twice this many pages (in flight and landed), so this
        # bounds memory; decoding and writing, not the network, limit an export's speed.
        self._page_concurrency = max(1, client.max_concurrency // (2 * self.concurrency))
        if isinstance(page_size, bool) or not isinstance(page_size, int):
            raise ValueError(f"page_size must be an integer, not {page_size!r}")
        if not 1 <= page_size <= proto.MAX_LIMIT:
            raise ValueError(f"page_size must be between 1 and {proto.MAX_LIMIT}, not {page_size}")
        self.page_size = page_size
        self._progress_cb = progress
        self._before_checkpoint = before_checkpoint
        self._checkpoint = Path(checkpoint) if checkpoint is not None else None
        self._keep_checkpoint = keep_checkpoint
        self.key = checkpoint_key(self._filters)
        #: The plan, the completed windows and the records they held, when resuming.
        self._resumed: tuple[list[ExportWindow], set[int], int] | None = None
        self.resume_state: Mapping[str, Any] | None = None
        self.resume_windows_done = 0
        if self._checkpoint is not None:
            saved = read_checkpoint(self._checkpoint)
            if saved is not None:
                if saved.get("key") != self.key:
                    raise ValueError(
                        f"checkpoint {self._checkpoint} belongs to a different export "
                        f"({saved.get('filters')}); remove it or pass another path"
                    )
                self._resumed = _saved_progress(saved, self._checkpoint)
                self.resume_state = saved.get("state")
                self.resume_windows_done = len(self._resumed[1])
        #: The plan, once made (or read back from the checkpoint).
        self.windows: list[ExportWindow] = []
        self.pages_fetched = 0
        self.probes = 0
        self._records_done = 0
        self._records_expected = 0
        self._windows_done = 0
        self._requests0 = client.requests_sent
        self._retries0 = client.retries
        self._seen = SeenIds()
        self._started = False
        self.progress = self._snapshot()

    def __repr__(self) -> str:
        return (
            f"<CallbackExport {self.start_date}..{self.end_date} windows={len(self.windows)} "
            f"records_done={self._records_done}>"
        )

    # --- progress -------------------------------------------------------------------

    def _snapshot(self) -> ExportProgress:
        return ExportProgress(
            records_done=self._records_done,
            records_expected=self._records_expected,
            requests=self._client.requests_sent - self._requests0,
            retries=self._client.retries - self._retries0,
            windows_done=self._windows_done,
            windows_total=len(self.windows),
            pages=self.pages_fetched,
            probes=self.probes,
        )

    def _report(self) -> None:
        self.progress = self._snapshot()
        if self._progress_cb is not None:
            self._progress_cb(self.progress)

    # --- planning -------------------------------------------------------------------

    async def _probe(self, windows: list[ExportWindow]) -> list[ExportWindow]:
        """The windows with ``total`` filled in, one ``limit=1`` request each."""

        async def probe(window: ExportWindow) -> ExportWindow:
            page = await self._callbacks.search_page(
                limit=1,
                start_date=window.start,
                end_date=window.end,
                stage=window.stage or self._stage,
                recipient=window.recipient or self._recipient,
                campaign_id=self._fixed.get("campaign_id"),
                list_id=self._fixed.get("list_id"),
                user_id=self._fixed.get("user_id"),
                lead_id=self._fixed.get("lead_id"),
            )
            self.probes += 1
            return attrs.evolve(window, total=page.total)

        return await _bounded(
            [functools.partial(probe, w) for w in windows], self._client.max_concurrency
        )

    async def _plan(self) -> list[ExportWindow]:
        (whole,) = await self._probe([ExportWindow(self.start_date, self.end_date)])
        if whole.total <= proto.REACHABLE:
            # Even when empty: the plan partitions the range, whatever it held when probed.
            return [whole]
        return await self._plan_days(self.start_date, self.end_date)

    async def _plan_days(self, start: date, end: date) -> list[ExportWindow]:
        """Windows under the cap partitioning the days ``start..end``: one probe a day,
        adjacent days merged while their sum fits, a day beyond the cap split by
        :meth:`_split`. Days probed empty are kept (see the module docstring): they join
        the run beside them, or form their own next to a split day or an edge."""
        cap = proto.REACHABLE
        days = (end - start).days + 1
        probed = await self._probe(
            [ExportWindow(d, d) for d in (start + timedelta(i) for i in range(days))]
        )
        plan: list[ExportWindow] = []
        run: ExportWindow | None = None
        for day in probed:
            if day.total > cap:
                if run is not None:
                    plan.append(run)
                run = None
                plan.extend(await self._split(day))
            elif run is not None and run.total + day.total <= cap:
                run = attrs.evolve(run, end=day.end, total=run.total + day.total)
            else:
                if run is not None:
                    plan.append(run)
                run = day
        if run is not None:
            plan.append(run)
        return plan

    async def _split(self, window: ExportWindow) -> list[ExportWindow]:
        """Disjoint parts of ``window`` (beyond the cap), each within it, adding up to it
        and covering it: a part probed empty is kept, as records may land in it before
        it is walked."""
        if window.stage is None and self._stage is None:
            dimension = "stage"
            parts = await self._probe([attrs.evolve(window, stage=s) for s in STAGE_PARTS])
            if sum(p.total for p in parts) < window.total and EXTRA_STAGE_PARTS:
                parts += await self._probe(
                    [attrs.evolve(window, stage=s) for s in EXTRA_STAGE_PARTS]
                )
        elif window.recipient is None and self._recipient is None:
            dimension = "recipient"
            parts = await self._probe([attrs.evolve(window, recipient=r) for r in RECIPIENT_PARTS])
        else:
            narrowest = self._describe(window)
            raise PaginationLimitError(
                f"{window.total} callbacks match {narrowest}, the narrowest partition an "
                f"export can make, but offset/limit paging reaches only {proto.REACHABLE}: "
                "narrow the export with campaign_id, list_id or user_id",
                total=window.total,
                reachable=proto.REACHABLE,
            )
        covered = sum(p.total for p in parts)
        # More than the whole is live data growing between the probes, not a gap. Less
        # may be records deleted since the whole was probed: probed once more, a whole
        # the parts cover is no gap.
        if covered < window.total:
            (window,) = await self._probe([window])
        if covered < window.total:
            gap = window.total - covered
            raise PaginationLimitError(
                f"{self._describe(window)} holds {window.total} callbacks, but its {dimension} "
                f"partitions ({', '.join(f'{getattr(p, dimension)}={p.total}' for p in parts)}) "
                f"add up to {covered}: a gap of {gap} records with a {dimension} no filter "
                "selects, beyond the cap and so out of reach; refusing to lose them silently. "
                "Narrow the export (campaign_id, list_id, user_id) so the window fits the cap",
                total=window.total,
                reachable=covered,
            )
        plan: list[ExportWindow] = []
        for part in parts:
            if part.total > proto.REACHABLE:
                plan.extend(await self._split(part))
            else:
                plan.append(part)
        return plan

    async def _replan(self, window: ExportWindow, total: int) -> list[ExportWindow]:
        """Parts of ``window``, planned when it was under the cap and now holding ``total``
        callbacks: merged days are planned again day by day, a single day is split
        (stage, then recipient) as the planner splits a day beyond the cap, and the
        narrowest partition beyond it raises as it does there."""
        if window.start < window.end:
            return await self._plan_days(window.start, window.end)
        return await self._split(attrs.evolve(window, total=total))

    def _describe(self, window: ExportWindow) -> str:
        fixed = " ".join(f"{k}={v}" for k, v in self._fixed.items())
        extra = [f"stage={self._stage}"] if self._stage and window.stage is None else []
        if self._recipient and window.recipient is None:
            extra.append(f"recipient={self._recipient}")
        return "window " + " ".join(filter(None, [str(window), *extra, fixed]))

    # --- checkpoint -----------------------------------------------------------------

    def _save(self, done: Iterable[int], state: Mapping[str, Any] | None) -> None:
        if self._checkpoint is None:
            return
        payload = {
            "version": CHECKPOINT_VERSION,
            "key": self.key,
            "filters": self._filters,
            "windows": [w.to_json() for w in self.windows],
            "done": sorted(done),
            "records_done": self._records_done,
            "state": dict(state) if state is not None else None,
        }
        write_atomically(self._checkpoint, json.dumps(payload, indent=1))

    # --- the walk -------------------------------------------------------------------

    async def _walk(self, window: ExportWindow, queue: asyncio.Queue[_Item]) -> None:
        """Hand ``window``'s pages to ``queue``, then :class:`_End`.

        Data grows while an export runs: a window planned under the cap may be beyond it
        by the time it is walked, and its search then raises before yielding anything.
        That window is re-planned (:meth:`_replan`), :class:`_Replanned` tells the
        consumer, and the parts are walked in its place, each ending with its own
        :class:`_End`. A part that has grown beyond the cap in turn is split again; a
        re-plan that gives back the window itself (its days shrank again) is walked once
        more and then the search's error stands.

        A window can also grow beyond the cap during its walk: its search raises once it
        has given all that paging reaches. Its records are then spread over every part,
        so the parts are walked as that one window (:meth:`_walk_as_one`): the
        checkpoint records it done only when they all are, and a resume walks it whole,
        finding it beyond the cap before its first page.
        """
        todo: deque[tuple[ExportWindow, bool]] = deque([(window, True)])
        try:
            while todo:
                current, may_replan = todo.popleft()
                grown, handed = await self._walk_one(current, queue)
                if grown is None:
                    await queue.put(_End())
                    continue
                if not may_replan:
                    raise grown
                parts = await self._replan(current, grown.total)
                logger.warning(
                    "export: %s holds %d callbacks, beyond the cap since it was planned "
                    "(%d); walking it as %d parts%s",
                    self._describe(current),
                    grown.total,
                    current.total,
                    len(parts),
                    ", as one window: it has given records" if handed else "",
                )
                if handed:
                    total = await self._walk_as_one(parts, queue)
                    await queue.put(_End(total=total))
                    continue
                await queue.put(_Replanned(tuple(parts)))
                todo.extendleft((p, p != current) for p in reversed(parts))
        except Exception as exc:  # handed to the consumer, which raises it in order
            await queue.put(_Failed(exc))

    async def _walk_one(
        self, window: ExportWindow, queue: asyncio.Queue[_Item]
    ) -> tuple[PaginationLimitError | None, bool]:
        """Hand ``window``'s pages to ``queue``: the error of a window found beyond the
        cap, and whether any page was handed before it.

        The page requests are added to ``pages_fetched`` as they land, so that progress
        counts them during a window, not only at its end."""
        search = self._search(window)
        counted = 0

        def count_pages() -> None:
            nonlocal counted
            self.pages_fetched += search.pages_fetched - counted
            counted = search.pages_fetched

        handed = False
        try:
            async with search:  # a cancelled walk closes its window before it ends
                async for page in search.pages():
                    handed = True
                    count_pages()
                    await queue.put(page)
        except PaginationLimitError as exc:
            return exc, handed
        finally:
            count_pages()
        return None, handed

    async def _walk_as_one(self, parts: list[ExportWindow], queue: asyncio.Queue[_Item]) -> int:
        """Hand the pages of every part to ``queue``, re-planning any that is beyond the
        cap, with no :class:`_End` between them: the records the parts walked held. The
        consumer's id de-duplication drops the records the grown window gave already."""
        total = 0
        todo = deque((part, True) for part in parts)
        while todo:
            current, may_replan = todo.popleft()
            grown, _ = await self._walk_one(current, queue)
            if grown is None:
                total += current.total
                continue
            if not may_replan:
                raise grown
            split = await self._replan(current, grown.total)
            todo.extendleft((p, p != current) for p in reversed(split))
        return total

    def _search(self, window: ExportWindow) -> CallbackSearch:
        return self._callbacks.search(
            start_date=window.start,
            end_date=window.end,
            stage=window.stage or self._stage,
            recipient=window.recipient or self._recipient,
            page_size=self.page_size,
            concurrency=self._page_concurrency,
            campaign_id=self._fixed.get("campaign_id"),
            list_id=self._fixed.get("list_id"),
            user_id=self._fixed.get("user_id"),
            lead_id=self._fixed.get("lead_id"),
        )

    async def _iterate(self) -> AsyncGenerator[Callback, None]:
        if self._started:
            raise RuntimeError("an export can be iterated only once; call export() again")
        self._started = True
        done: set[int] = set()
        if self._resumed is not None:
            self.windows, done, self._records_done = self._resumed
            logger.info(
                "resuming export from %s: %d of %d windows done",
                self._checkpoint,
                len(done),
                len(self.windows),
            )
        else:
            self.windows = await self._plan()
            self._save(done, None)
        self._records_expected = sum(w.total for w in self.windows)
        self._windows_done = len(done)
        self._report()
        state: Mapping[str, Any] | None = self.resume_state
        pending = deque(i for i in range(len(self.windows)) if i not in done)
        running: deque[tuple[int, asyncio.Queue[_Item], asyncio.Task[None]]] = deque()
        try:
            while pending or running:
                while pending and len(running) < self.concurrency:
                    index = pending.popleft()
                    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=1)
                    task = asyncio.create_task(self._walk(self.windows[index], queue))
                    running.append((index, queue, task))
                index, queue, task = running[0]
                owed = 1  # plan entries, from ``index`` on, this walker has still to end
                while owed:
                    item = await queue.get()
                    if isinstance(item, _Failed):
                        raise item.error
                    if isinstance(item, _Replanned):
                        # The window at ``index`` is replaced by its parts: the plan, the
                        # indices after it and the checkpoint follow.
                        shift = len(item.parts) - 1
                        grown = self.windows[index]
                        self.windows[index : index + 1] = item.parts
                        done = {i + shift if i > index else i for i in done}
                        pending = deque(i + shift for i in pending)
                        running = deque(
                            (i + shift, q, t) if i > index else (i, q, t) for i, q, t in running
                        )
                        owed += shift
                        self._records_expected += sum(p.total for p in item.parts) - grown.total
                        self._windows_done = len(done)
                        self._save(done, state)
                        self._report()
                        continue
                    if isinstance(item, _End):
                        if item.total is not None:
                            grown = self.windows[index]
                            self._records_expected += item.total - grown.total
                            self.windows[index] = attrs.evolve(grown, total=item.total)
                        # The consumer has taken every record of the window: let it make
                        # them durable, then record the window as complete. With no
                        # checkpoint nothing is recorded, and nothing needs to be durable
                        # yet: a flush there would cost an fsync (and, in Parquet, a row
                        # group) per window.
                        if self._before_checkpoint is not None and self._checkpoint is not None:
                            state = self._before_checkpoint(self.windows[index])
                        done.add(index)
                        self._windows_done = len(done)
                        self._save(done, state)
                        self._report()
                        index += 1
                        owed -= 1
                        continue
                    fresh = [c for c in item.results if self._seen.add(c.id)]
                    if len(fresh) != len(item.results):
                        logger.debug(
                            "export: dropped %d records already exported from another window",
                            len(item.results) - len(fresh),
                        )
                    self._records_done += len(fresh)
                    self._report()
                    for callback in fresh:
                        yield callback
                running.popleft()
                await task
            if self._checkpoint is not None and not self._keep_checkpoint:
                # Complete: a rerun with this path starts a new export, not an empty one.
                with contextlib.suppress(FileNotFoundError):
                    self._checkpoint.unlink()
        finally:
            tasks = [task for _, _, task in running]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)


async def _bounded(factories: list[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Run the coroutines ``limit`` at a time; on the first failure cancel and await the
    rest, then raise it. No task outlives the call."""
    slots = asyncio.Semaphore(limit)

    async def run(factory: Callable[[], Awaitable[T]]) -> T:
        async with slots:
            return await factory()

    tasks = [asyncio.create_task(run(f)) for f in factories]
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
