"""The emulator's callback store: compact columns, sorted indexes, one query planner.

Why columns and not a dict of dicts: the emulator must hold a million callbacks in well
under 1 GiB and answer a ``limit=5000`` search in milliseconds. A record is therefore a
*row number* into a dozen ``array``/``bytearray`` columns (about 55 bytes per row, plus
8 bytes per row per index; ~200 MiB RSS per million callbacks as measured by
``benchmarks/bench_emulator.py``), and the JSON-shaped dict is only built for the rows a
page returns.

A search combining two or more equality filters scans the shortest index run and checks
the rest on the columns: fine for the usual shapes, ~30 ms for e.g. stage+recipient over a
million records. A composite index would remove that if it ever matters.

Ordering. Results are ordered by ``callback_time`` then ``id`` (numeric), as a stable
server-side sort would; an insert during a pagination walk therefore shifts later pages,
which is what the real API does. The order is captured by a *sort key* per row::

    skey = (minute << ROW_BITS) | row       # minute = date ordinal * 1440 + minute of day

and ``id = ID_BASE + row``, so comparing sort keys compares (callback_time, id). Every index
is an ``array('q')`` of sort keys:

* ``_order`` holds all live rows sorted by skey (the unfiltered result order);
* one :class:`_Index` per filter field holds all live rows sorted by (field code, skey), so
  the rows of one value are a contiguous run, itself sorted by skey.

A date window is then a pair of bisections inside a run, and a query with several filters
picks the shortest run and checks the remaining fields on the columns. Nothing scans the
whole store.

Dates. ``start_date``/``end_date`` are inclusive and compare against the *date part of
``callback_time``* as stored (the wall-clock time the record shows), ignoring time zones.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    _IntArray = array[int]
else:  # array is subscriptable at run time only from Python 3.12, and typing.get_type_hints
    _IntArray = array  # evaluates load()'s signature (pydantic, typeguard)

ROW_BITS: Final = 24
ROW_MASK: Final = (1 << ROW_BITS) - 1
MAX_ROWS: Final = 1 << ROW_BITS
SKEY_BITS: Final = 58
"""Sort keys stay below ``1 << SKEY_BITS``: minutes up to year 9999 take 33 bits, rows 24."""
SKEY_MASK: Final = (1 << SKEY_BITS) - 1
ID_BASE: Final = 100_000
"""Callback ids are ``ID_BASE + row``: numeric strings, increasing with creation."""

MINUTES_PER_DAY: Final = 1440
SECONDS_PER_DAY: Final = 86_400
NULL_TIME: Final = -1
NO_USER: Final = -1

# Canonical stage codes (what filters match) and the spellings records may carry.
STAGES: Final = ("COMPLETED", "PAST_DUE", "PENDING", "DISMISSED", "MISSED")
COMPLETED, PAST_DUE, PENDING, DISMISSED, MISSED = range(5)
STAGE_SPELLINGS: Final = ("COMPLETED", "PAST_DUE", "PENDING", "DISMISSED", "MISSED")
STAGE_SPELLINGS_LIVE: Final = ("Dismissed", "PASTDUE")
"""Extra spellings seen on the live API, stored as spelling codes 5 and 6."""
ALL_STAGE_SPELLINGS: Final = STAGE_SPELLINGS + STAGE_SPELLINGS_LIVE
STAGE_OF_SPELLING: Final = (COMPLETED, PAST_DUE, PENDING, DISMISSED, MISSED, DISMISSED, PAST_DUE)
SP_DISMISSED_LIVE: Final = 5
SP_PASTDUE_LIVE: Final = 6

RECIPIENTS: Final = ("system", "personal", "useronly")
SYSTEM, PERSONAL, USERONLY = range(3)
ALL_RECIPIENT_SPELLINGS: Final = ("system", "personal", "USERONLY", "System")
RECIPIENT_OF_SPELLING: Final = (SYSTEM, PERSONAL, USERONLY, SYSTEM)
SP_SYSTEM_CAPITALISED: Final = 3

STATUSES: Final = ("ACTIVE", "INACTIVE")
STATUS_NAMES: Final = ("Active", "Inactive")

_HM12: Final = tuple(
    f"{(m // 60) % 12 or 12:02d}:{m % 60:02d} {'AM' if m < 720 else 'PM'}"
    for m in range(MINUTES_PER_DAY)
)
_HM24: Final = tuple(f"{m // 60:02d}:{m % 60:02d}:00" for m in range(MINUTES_PER_DAY))


@dataclass(frozen=True, slots=True)
class User:
    """An agent: ``user_id`` is what the ``user_id`` filter and insert field take."""

    id: int
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class Campaign:
    id: int
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class CallList:
    """A lead list; every list belongs to one campaign."""

    id: int
    name: str
    campaign: int
    """Index into :attr:`CallbackStore.campaigns`."""


@dataclass(frozen=True, slots=True)
class Query:
    """A validated search. Field values are *codes* (see the store tables), ``None`` = any."""

    start_day: int | None = None
    """Inclusive, as a date ordinal."""
    end_day: int | None = None
    """Inclusive, as a date ordinal."""
    callback_id: int | None = None
    lead_id: int | None = None
    campaign: int | None = None
    call_list: int | None = None
    user: int | None = None
    recipient: int | None = None
    stage: int | None = None
    offset: int = 0
    limit: int = 20


class _Index:
    """Sort keys of all live rows, ordered by (``column[row]``, skey)."""

    __slots__ = ("column", "keys")

    def __init__(self, column: Sequence[int]) -> None:
        self.column = column
        self.keys: array[int] = array("q")

    def _code(self, skey: int) -> int:
        return self.column[skey & ROW_MASK]

    def _pair(self, skey: int) -> tuple[int, int]:
        return (self.column[skey & ROW_MASK], skey)

    def build(self, ordered: Sequence[int]) -> None:
        """Sort all keys by (code, skey) at once, as one int per row: code above the skey."""
        column = self.column
        composite = sorted([(column[skey & ROW_MASK] << SKEY_BITS) | skey for skey in ordered])
        self.keys = array("q", [c & SKEY_MASK for c in composite])

    def span(self, code: int) -> tuple[int, int]:
        lo = bisect.bisect_left(self.keys, code, key=self._code)
        return lo, bisect.bisect_right(self.keys, code, lo, key=self._code)

    def add(self, skey: int) -> None:
        bisect.insort(self.keys, skey, key=self._pair)

    def remove(self, skey: int) -> None:
        """Remove ``skey``; call while the column still holds the row's old code."""
        i = bisect.bisect_left(self.keys, self._pair(skey), key=self._pair)
        del self.keys[i]


class CallbackStore:
    """The callbacks an emulator holds, plus its users, campaigns and lists.

    Reading (what tests assert on):

    * ``len(store)``, ``id in store`` (``str`` or ``int`` ids),
    * ``iter(store)`` / :meth:`ids` - callback ids (``str``) in result order,
    * :meth:`get` - the record exactly as a search would return it, or ``None``,
    * :meth:`records` - every record in result order,
    * :meth:`user_id_of` - the user id behind a record (records show only name/email),
    * :attr:`users`, :attr:`campaigns`, :attr:`lists` - the reference tables.

    Writing goes through :meth:`insert`, :meth:`update` and :meth:`delete`, which take
    already-validated values; the HTTP layer does the validation.
    """

    def __init__(
        self,
        *,
        users: Sequence[User],
        campaigns: Sequence[Campaign],
        lists: Sequence[CallList],
        comments: Sequence[str] = ("",),
        live_dialect: bool = False,
        clock: Callable[[], datetime] = datetime.now,
    ) -> None:
        if not users or not campaigns or not lists:
            raise ValueError("a store needs at least one user, campaign and list")
        self.users: tuple[User, ...] = tuple(users)
        self.campaigns: tuple[Campaign, ...] = tuple(campaigns)
        self.lists: tuple[CallList, ...] = tuple(lists)
        self.live_dialect = live_dialect
        self._clock = clock
        self._user_code = {u.id: i for i, u in enumerate(self.users)}
        self._campaign_code = {c.id: i for i, c in enumerate(self.campaigns)}
        self._list_code = {cl.id: i for i, cl in enumerate(self.lists)}
        self._comment_pool: list[str] = list(dict.fromkeys(comments))
        self._comment_code = {c: i for i, c in enumerate(self._comment_pool)}
        self._day_cache: dict[int, str] = {}
        # Columns, one entry per row ever created (deleted rows stay, flagged dead).
        self.alive = bytearray()
        self.minute: array[int] = array("q")
        self.created: array[int] = array("q")
        self.modified: array[int] = array("q")
        self.lead: array[int] = array("q")
        self.call_list: array[int] = array("H")
        self.campaign: array[int] = array("H")
        self.user: array[int] = array("i")
        self.stage = bytearray()
        self.stage_spelling = bytearray()
        self.recipient = bytearray()
        self.recipient_spelling = bytearray()
        self.status = bytearray()
        self.clock24 = bytearray()
        self.comment: array[int] = array("I")
        self._live_count = 0
        # Indexes.
        self._order: array[int] = array("q")
        self._indexes: dict[str, _Index] = {
            "lead_id": _Index(self.lead),
            "campaign": _Index(self.campaign),
            "call_list": _Index(self.call_list),
            "user": _Index(self.user),
            "recipient": _Index(self.recipient),
            "stage": _Index(self.stage),
        }

    # -- codes and reference tables ---------------------------------------------------

    def user_code(self, user_id: int) -> int | None:
        return self._user_code.get(user_id)

    def campaign_code(self, campaign_id: int) -> int | None:
        return self._campaign_code.get(campaign_id)

    def list_code(self, list_id: int) -> int | None:
        return self._list_code.get(list_id)

    def list_for_lead(self, lead_id: int) -> int:
        """The list (code) a lead belongs to: a fixed rule, so inserts need no lead table."""
        return lead_id % len(self.lists)

    def comment_code(self, text: str) -> int:
        code = self._comment_code.get(text)
        if code is None:
            code = self._comment_code[text] = len(self._comment_pool)
            self._comment_pool.append(text)
        return code

    # -- bulk loading (used by the synthetic data generator) ---------------------------

    def load(
        self,
        *,
        minute: _IntArray,
        created: _IntArray,
        modified: _IntArray,
        lead: _IntArray,
        user: _IntArray,
        stage_spelling: bytearray,
        recipient_spelling: bytearray,
        status: bytearray,
        clock24: bytearray,
        comment: _IntArray,
    ) -> None:
        """Replace the contents with whole columns (row ``i`` = id ``ID_BASE + i``)."""
        n = len(minute)
        if n > MAX_ROWS:
            raise ValueError(f"the emulator holds at most {MAX_ROWS} callbacks")
        columns = (created, modified, lead, user, stage_spelling, recipient_spelling)
        if any(len(c) != n for c in (*columns, status, clock24, comment)):
            raise ValueError("columns differ in length")
        self.minute[:] = minute
        self.created[:] = created
        self.modified[:] = modified
        self.lead[:] = lead
        self.user[:] = user
        self.stage_spelling[:] = stage_spelling
        self.recipient_spelling[:] = recipient_spelling
        self.stage[:] = stage_spelling.translate(bytes(STAGE_OF_SPELLING).ljust(256, b"\0"))
        self.recipient[:] = recipient_spelling.translate(
            bytes(RECIPIENT_OF_SPELLING).ljust(256, b"\0")
        )
        self.status[:] = status
        self.clock24[:] = clock24
        self.comment[:] = comment
        n_lists = len(self.lists)
        list_campaign = [cl.campaign for cl in self.lists]
        self.call_list[:] = array("H", [x % n_lists for x in lead])
        self.campaign[:] = array("H", [list_campaign[x] for x in self.call_list])
        self.alive[:] = b"\1" * n
        self._live_count = n
        self._order = array("q", sorted([(m << ROW_BITS) | r for r, m in enumerate(minute)]))
        for index in self._indexes.values():
            index.build(self._order)

    # -- reading -----------------------------------------------------------------------

    def __len__(self) -> int:
        return self._live_count

    def _row(self, callback_id: int | str) -> int | None:
        try:
            row = int(callback_id) - ID_BASE
        except ValueError:
            return None
        if 0 <= row < len(self.alive) and self.alive[row]:
            return row
        return None

    def __contains__(self, callback_id: object) -> bool:
        return isinstance(callback_id, int | str) and self._row(callback_id) is not None

    def __iter__(self) -> Iterator[str]:
        return self.ids()

    def ids(self) -> Iterator[str]:
        """Callback ids in result order (callback_time, then id)."""
        for skey in self._order:
            yield str(ID_BASE + (skey & ROW_MASK))

    def get(self, callback_id: int | str) -> dict[str, Any] | None:
        row = self._row(callback_id)
        return None if row is None else self.render(row)

    def records(self) -> Iterator[dict[str, Any]]:
        for skey in self._order:
            yield self.render(skey & ROW_MASK)

    def user_id_of(self, callback_id: int | str) -> int | None:
        row = self._row(callback_id)
        if row is None or self.user[row] == NO_USER:
            return None
        return self.users[self.user[row]].id

    # -- formatting --------------------------------------------------------------------

    def _day(self, ordinal: int) -> str:
        text = self._day_cache.get(ordinal)
        if text is None:
            text = self._day_cache[ordinal] = date.fromordinal(ordinal).isoformat()
        return text

    def _timestamp(self, seconds: int) -> str | None:
        if seconds == NULL_TIME:
            return None
        day, sod = divmod(seconds, SECONDS_PER_DAY)
        hours, rest = divmod(sod, 3600)
        return f"{self._day(day)} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"

    def render(self, row: int) -> dict[str, Any]:
        """Row -> record dict with the API's field names (and live extras in live dialect)."""
        day, mod = divmod(self.minute[row], MINUTES_PER_DAY)
        clock = _HM24 if self.clock24[row] else _HM12
        user_code = self.user[row]
        user = self.users[user_code] if user_code != NO_USER else None
        call_list = self.lists[self.call_list[row]]
        campaign = self.campaigns[call_list.campaign]
        stage = self.stage[row]
        status = self.status[row]
        record: dict[str, Any] = {
            "id": str(ID_BASE + row),
            "lead_id": str(self.lead[row]),
            "list_id": str(call_list.id),
            "campaign_id": str(campaign.id),
            "status": STATUSES[status],
            "created_at": self._timestamp(self.created[row]),
            "callback_time": f"{self._day(day)} {clock[mod]}",
            "modified_at": self._timestamp(self.modified[row]),
            "user": user.name if user else "",
            "recipient": ALL_RECIPIENT_SPELLINGS[self.recipient_spelling[row]],
            "comments": self._comment_pool[self.comment[row]],
            "stage": ALL_STAGE_SPELLINGS[self.stage_spelling[row]],
            "user_name": user.email if user else "",
            "campaign_name": campaign.name,
        }
        if self.live_dialect:
            lead = self.lead[row]
            record.update(
                context="CALLBACK",
                callback_seen="0" if stage in (PENDING, MISSED) else "1",
                **{"class": "SYSTEM" if self.recipient[row] == SYSTEM else "PERSONAL"},
                phone_number=f"{200 + lead % 800}{(lead * 7919) % 10_000_000:07d}",
                directory_name=call_list.name,
                campaign_type=campaign.type,
                status_name=STATUS_NAMES[status],
            )
        return record

    # -- querying ----------------------------------------------------------------------

    def query(self, q: Query) -> tuple[int, list[int]]:
        """Run a search: (total matching, rows of the requested page in result order)."""
        lo_key = -(1 << 62) if q.start_day is None else (q.start_day * MINUTES_PER_DAY) << ROW_BITS
        hi_key = 1 << 62 if q.end_day is None else ((q.end_day + 1) * MINUTES_PER_DAY) << ROW_BITS
        filters: list[tuple[str, Sequence[int], int]] = [
            (name, self._indexes[name].column, code)
            for name, code in (
                ("lead_id", q.lead_id),
                ("campaign", q.campaign),
                ("call_list", q.call_list),
                ("user", q.user),
                ("recipient", q.recipient),
                ("stage", q.stage),
            )
            if code is not None
        ]
        if q.callback_id is not None:
            row = self._row(q.callback_id)
            if row is None:
                return 0, []
            skey = (self.minute[row] << ROW_BITS) | row
            ok = lo_key <= skey < hi_key and all(col[row] == code for _, col, code in filters)
            return (1, [row][q.offset : q.offset + q.limit]) if ok else (0, [])
        # Pick the shortest run among the filtered indexes (or the global order).
        best_keys, best_lo, best_hi, best_name = self._order, 0, len(self._order), ""
        for name, _, code in filters:
            keys = self._indexes[name].keys
            start, stop = self._indexes[name].span(code)
            lo = bisect.bisect_left(keys, lo_key, start, stop)
            hi = bisect.bisect_left(keys, hi_key, lo, stop)
            if not best_name or hi - lo < best_hi - best_lo:
                best_keys, best_lo, best_hi, best_name = keys, lo, hi, name
        if best_name == "":
            best_lo = bisect.bisect_left(best_keys, lo_key)
            best_hi = bisect.bisect_left(best_keys, hi_key, best_lo)
        rest = [(col, code) for name, col, code in filters if name != best_name]
        if not rest:
            total = best_hi - best_lo
            start = best_lo + q.offset
            page = best_keys[start : min(best_hi, start + q.limit)] if start < best_hi else []
            return total, [skey & ROW_MASK for skey in page]
        matched: list[int] | array[int] = best_keys[best_lo:best_hi]
        for col, code in rest:
            matched = [skey for skey in matched if col[skey & ROW_MASK] == code]
        page = matched[q.offset : q.offset + q.limit]
        return len(matched), [skey & ROW_MASK for skey in page]

    def search(self, q: Query) -> tuple[int, list[dict[str, Any]]]:
        """:meth:`query` with the page rendered as records."""
        total, rows = self.query(q)
        return total, [self.render(row) for row in rows]

    # -- writing -----------------------------------------------------------------------

    def _now(self) -> int:
        now = self._clock()
        return now.toordinal() * SECONDS_PER_DAY + now.hour * 3600 + now.minute * 60 + now.second

    def _index_all(self, row: int, add: bool) -> None:
        skey = (self.minute[row] << ROW_BITS) | row
        if add:
            bisect.insort(self._order, skey)
        else:
            del self._order[bisect.bisect_left(self._order, skey)]
        for index in self._indexes.values():
            (index.add if add else index.remove)(skey)

    def insert(
        self,
        *,
        lead_id: int,
        recipient: int,
        minute: int,
        user: int = NO_USER,
        comments: str = "",
        stage: int = PENDING,
    ) -> str:
        """Append a callback (codes already validated); returns its new id."""
        row = len(self.alive)
        if row >= MAX_ROWS:
            raise OverflowError(f"the emulator holds at most {MAX_ROWS} callbacks")
        call_list = self.list_for_lead(lead_id)
        now = self._now()
        self.alive.append(1)
        self.minute.append(minute)
        self.created.append(now)
        self.modified.append(now)
        self.lead.append(lead_id)
        self.call_list.append(call_list)
        self.campaign.append(self.lists[call_list].campaign)
        self.user.append(user)
        self.stage.append(stage)
        self.stage_spelling.append(stage)
        self.recipient.append(recipient)
        self.recipient_spelling.append(recipient)
        self.status.append(0)
        self.clock24.append(0)
        self.comment.append(self.comment_code(comments))
        self._live_count += 1
        self._index_all(row, add=True)
        return str(ID_BASE + row)

    def update(
        self,
        callback_id: int | str,
        *,
        user: int | None = None,
        recipient: int | None = None,
        minute: int | None = None,
        comments: str | None = None,
        dismiss: bool = False,
    ) -> bool:
        """Change a live callback; ``False`` when there is no such callback."""
        row = self._row(callback_id)
        if row is None:
            return False
        self._index_all(row, add=False)
        if user is not None:
            self.user[row] = user
        if recipient is not None:
            self.recipient[row] = self.recipient_spelling[row] = recipient
        if minute is not None:
            self.minute[row] = minute
            self.clock24[row] = 0
        if comments is not None:
            self.comment[row] = self.comment_code(comments)
        if dismiss:
            self.stage[row] = self.stage_spelling[row] = DISMISSED
            self.status[row] = 1
        self.modified[row] = self._now()
        self._index_all(row, add=True)
        return True

    def delete(self, callback_id: int | str) -> bool:
        """Remove a live callback; ``False`` when there is no such callback."""
        row = self._row(callback_id)
        if row is None:
            return False
        self._index_all(row, add=False)
        self.alive[row] = 0
        self._live_count -= 1
        return True
