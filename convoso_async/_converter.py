"""The one cattrs converter, and the wire rules it applies to a ``callbacks/search`` record.

Wire rules (what the live API sends, and what the caller gets):

* ``id`` is required; it and every other documented string field accept a JSON string or
  a number (kept as its decimal text; ``657.0`` is ``"657"``). ``null`` or a missing
  field is ``None``.
* ``created_at``, ``modified_at`` and ``callback_time`` accept ``YYYY-MM-DD HH:MM:SS``,
  the vendor's ``YYYY-MM-DD hh:mm AM/PM`` and ISO 8601 with an offset
  (``2016-11-17T10:54:21-0800``), each also with a one-digit hour (PHP's ``g:i A``:
  ``2026-03-05 2:30 PM``). ``null``, ``""`` and ``0000-00-00 00:00:00`` are
  ``None``. Python's ``datetime.fromisoformat`` reads them, so its other ISO 8601 forms
  pass too: a date alone is midnight, and the basic (``20260305T143000``) and week
  (``2026-W10-4T10:00``) forms are read as written. Any other text is a
  :class:`MalformedResponseError`: a time we cannot read is never guessed.
* ``stage`` and ``recipient`` are looked up case-insensitively (``PASTDUE`` is
  ``PAST_DUE``); a value outside the enums is kept as its raw string.
* Fields the documentation does not list go, untouched, into ``Callback.extra``.

Speed: a page holds up to 5000 records and a bulk export hundreds of thousands, so the
decoder is written for it (see ``benchmarks/bench_decode.py``): records that share their
fields, as a page's do, are decoded a column at a time with C-level ``map`` calls
(:func:`_structure_columns`); parsed times are memoised (they repeat heavily at minute
resolution); and records are built through :data:`_Builder` (below). The record-by-record
path (:func:`_structure_fast`, then :func:`_structure_slow`) takes the rest.
"""

from __future__ import annotations

import gc
import operator
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from itertools import chain, repeat
from types import MappingProxyType
from typing import Any, Final

import attrs
import cattrs

from ._models import _EMPTY, CALLBACK_FIELDS, Callback, Recipient, Stage

_MISSING: Final = object()
_TIME_CACHE_MAX: Final = 100_000
_TIME_CACHE: dict[object, datetime | None] = {None: None}
#: An ISO 8601 zone at the end of a time: ``Z``, ``+05:30``, ``-0800`` or ``+05``.
_ZONE_SUFFIX: Final = re.compile(r"(?:Z|[+-]\d\d(?::?\d\d)?)$", re.ASCII)
#: A date, then an hour written with one digit (``2026-03-05 2:30 PM``).
_ONE_DIGIT_HOUR: Final = re.compile(r"\d{4}-\d\d-\d\d[ T]\d:", re.ASCII)


def parse_time(value: object) -> datetime | None:
    """Read one of the API's time spellings; see the module docstring for the rules."""
    if not isinstance(value, str):
        if value is None:
            return None
        # Checked before the memo, which would fail a list as "unhashable type".
        raise ValueError(f"expected a time string, got {type(value).__name__}")
    cached = _TIME_CACHE.get(value, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    parsed = _parse_time_text(value)
    if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
        _TIME_CACHE.clear()
        _TIME_CACHE[None] = None
    _TIME_CACHE[value] = parsed
    return parsed


def _is_zero_date(text: str) -> bool:
    """MySQL's "never set" in any spelling: ``0000-00-00T00:00:00``, with fractions of
    a second, a zone (``Z``, ``-0800``, ``+00:00``), or as a 12-hour ``0000-00-00 12:00
    AM``. Nothing but zeros after the date (a 12-hour clock's midnight included); any
    other time on a zero date is an error."""
    if not text.startswith("0000-00-00"):
        return False
    clock = _ZONE_SUFFIX.sub("", text[10:].upper(), count=1)
    if clock.endswith("AM"):  # 12:00 AM is midnight; a 24-hour 12:00 is noon
        clock = clock.removesuffix("AM").replace("12:00", "00:00", 1)
    return not clock.strip("0:.T ")


def _parse_time_text(text: str) -> datetime | None:
    stripped = text.strip()
    if not stripped or _is_zero_date(stripped):
        return None
    if not stripped.isascii():
        raise ValueError(f"{text!r} is not a time")
    if _ONE_DIGIT_HOUR.match(stripped):
        stripped = f"{stripped[:11]}0{stripped[11:]}"  # PHP's "g:i A" or "G:i:s": 2:30 PM
    meridiem = stripped[-2:].upper()
    if meridiem in ("AM", "PM"):
        # "2026-03-05 02:30 PM": fromisoformat is ~40x faster than strptime.
        clock = datetime.fromisoformat(stripped[:-2].strip())
        if not 1 <= clock.hour <= 12:
            raise ValueError(f"{text!r} is not a 12-hour time")
        hour = clock.hour % 12 + (12 if meridiem == "PM" else 0)
        return clock.replace(hour=hour)
    return datetime.fromisoformat(stripped)


def _text(value: object) -> str | None:
    """A documented string field: text stays, a number becomes its decimal text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _id(value: object) -> str:
    text = _text(value)
    if not text:
        raise ValueError("a callback without an id")
    return text


def _lookup(
    enum: type[Stage] | type[Recipient], table: dict[object, Any]
) -> Callable[[object], Any]:
    """A memoised lookup into ``table``: enum member for any known spelling, else the
    raw string. The fast path reads ``table`` itself and calls this only on a miss."""

    def lookup(value: object) -> Any:
        if not isinstance(value, str):
            if value is None:
                return None
            # Checked before the memo, which would fail a list as "unhashable type".
            raise ValueError(
                f"{enum.__name__.lower()} must be a string, got {type(value).__name__}"
            )
        found = table.get(value, _MISSING)
        if found is not _MISSING:
            return found
        try:
            found = enum(value)
        except ValueError:
            found = value  # an unknown spelling is kept, never fatal
        if len(table) < 1000:
            table[value] = found
        return found

    return lookup


_STAGES: Final[dict[object, Any]] = {None: None}
_RECIPIENTS: Final[dict[object, Any]] = {None: None}
_stage: Final = _lookup(Stage, _STAGES)
_recipient: Final = _lookup(Recipient, _RECIPIENTS)
_stages_get: Final = _STAGES.get
_recipients_get: Final = _RECIPIENTS.get
_KNOWN: Final = frozenset(CALLBACK_FIELDS)
_N_KNOWN: Final = len(_KNOWN)

#: A mutable twin of :class:`Callback` with the same slots, used only to build records.
#: attrs' frozen ``__init__`` sets each field through ``object.__setattr__`` (1.4 us for
#: 15 fields, a third of a record's decode); the twin's plain ``__init__`` takes 0.3 us,
#: and re-labelling the finished object as a ``Callback`` makes it the genuine, frozen
#: article. Python allows the re-label only for identical slot layouts, which deriving
#: the twin from ``attrs.fields(Callback)`` guarantees; tests pin it.
_Builder: Final = attrs.make_class(
    "_CallbackBuilder",
    {field.name: attrs.field() for field in attrs.fields(Callback)},
    slots=True,
    weakref_slot=False,
    eq=False,
    repr=False,
)


_fields_of: Final = operator.itemgetter(*CALLBACK_FIELDS)
_time_cache_get: Final = _TIME_CACHE.get
_fromisoformat: Final = datetime.fromisoformat


def _stamp(value: object) -> datetime | None:
    """``created_at`` or ``modified_at``: they carry seconds, so they rarely repeat, and
    are parsed directly (0.07 us) rather than through the memo, which would miss and churn."""
    try:
        return _fromisoformat(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return parse_time(value)


def _structure_callback(record: Any, _: object = None) -> Callback:
    """Build a Callback from one record dict; ``ValueError`` if it cannot be read."""
    return _structure_fast(record, _fields_of)


def _getter_for(record: object) -> Callable[[Any], tuple[Any, ...]]:
    """An ``itemgetter`` of the documented fields, keyed by ``record``'s own key objects.

    orjson hands every record of a page the same cached key strings. A lookup by the
    identical object skips the string comparison a merely equal key costs, which is
    about a twentieth of decoding a record.
    """
    if type(record) is not dict:
        return _fields_of
    own = {key: key for key in record}
    return operator.itemgetter(*[own.get(name, name) for name in CALLBACK_FIELDS])


def _structure_fast(record: Any, fields_of: Callable[[Any], tuple[Any, ...]]) -> Callback:
    """The record hook's body, with the field getter to use.

    The common record carries exactly the documented fields as strings: for it, one
    C-level ``itemgetter`` call reads all fields, each value takes a type check or a
    memo lookup, and no function is called per field. Anything else (missing or extra
    fields, numbers, nulls) falls back to :func:`_structure_slow`.
    """
    if type(record) is not dict or len(record) != _N_KNOWN:
        return _structure_slow(record)
    try:
        (
            id_,
            lead_id,
            list_id,
            campaign_id,
            status,
            created_at,
            callback_time,
            modified_at,
            user,
            recipient,
            comments,
            stage,
            user_name,
            campaign_name,
        ) = fields_of(record)
    except KeyError:
        return _structure_slow(record)
    if (
        type(id_) is not str
        or type(lead_id) is not str
        or type(list_id) is not str
        or type(campaign_id) is not str
        or type(status) is not str
        or type(user) is not str
        or type(comments) is not str
        or type(user_name) is not str
        or type(campaign_name) is not str
        or not id_
    ):
        return _structure_slow(record)
    created, modified = _stamp(created_at), _stamp(modified_at)
    # callback_time is "hh:mm AM/PM" at minute resolution: it repeats, so memoise it.
    scheduled = _time_cache_get(callback_time, _MISSING)
    if scheduled is _MISSING:
        scheduled = parse_time(callback_time)
    stage_value = _stages_get(stage, _MISSING)
    if stage_value is _MISSING:
        stage_value = _stage(stage)
    recipient_value = _recipients_get(recipient, _MISSING)
    if recipient_value is _MISSING:
        recipient_value = _recipient(recipient)
    built = _Builder(
        id_,
        lead_id,
        list_id,
        campaign_id,
        status,
        created,
        scheduled,
        modified,
        user,
        recipient_value,
        comments,
        stage_value,
        user_name,
        campaign_name,
        _EMPTY,
    )
    built.__class__ = Callback
    return built  # type: ignore[no-any-return]


def _structure_slow(record: Any) -> Callback:
    """Any record the fast path declines: missing, extra, numeric or null fields."""
    if type(record) is not dict:
        raise ValueError(f"a record must be an object, got {type(record).__name__}")
    get = record.get
    text = _text
    extra: Mapping[str, Any] = _EMPTY
    if not _KNOWN.issuperset(record):
        extra = MappingProxyType({k: v for k, v in record.items() if k not in _KNOWN})
    built = _Builder(
        _id(get("id")),
        text(get("lead_id")),
        text(get("list_id")),
        text(get("campaign_id")),
        text(get("status")),
        _stamp(get("created_at")),  # as the fast paths read it (fromisoformat first)
        parse_time(get("callback_time")),
        _stamp(get("modified_at")),
        text(get("user")),
        _recipient(get("recipient")),
        text(get("comments")),
        _stage(get("stage")),
        text(get("user_name")),
        text(get("campaign_name")),
        extra,
    )
    built.__class__ = Callback
    return built  # type: ignore[no-any-return]


def _memoised(table: dict[object, Any], fill: Callable[[object], Any], column: Any) -> list[Any]:
    """``column`` looked up in a memo ``table``, ``fill`` first storing any value it lacks."""
    try:
        return list(map(table.__getitem__, column))
    except KeyError:
        for value in set(column).difference(table):
            fill(value)
        return list(map(table.__getitem__, column))  # a memo that is full misses again


def _texts(column: tuple[Any, ...]) -> Any:
    """A text column: as it is when every value is a string, else read value by value."""
    try:
        "".join(column)  # the quickest check that all are strings: ~7 ns a value, in C
    except TypeError:
        return list(map(_text, column))  # nulls and numbers
    return column


def _stamps(column: tuple[Any, ...]) -> list[datetime | None]:
    """A column of :func:`_stamp` values, read in C when all are ISO text."""
    try:
        return list(map(_fromisoformat, column))
    except (TypeError, ValueError):
        return list(map(_stamp, column))  # null, 0000-00-00 or the AM/PM spelling


def _structure_columns(records: list[Any]) -> tuple[Callback, ...] | None:
    """Records decoded a field at a time; ``None`` unless they all have the same fields.

    Pages come that way: the documented fields, often with the same few undocumented ones
    (``context``, ``callback_seen``...) on every record. Each check and conversion is
    then one C-level ``map`` over a column, and the one Python frame left per record is
    :data:`_Builder`'s ``__init__`` (``benchmarks/bench_decode.py`` has the figures). A
    column that is not all plain values (nulls, numbers, other time spellings) is read
    value by value by the same rules as :func:`_structure_slow`. A value that cannot be
    read raises here; :func:`structure_records` then goes record by record, raising what
    the bad record gives.
    """
    first = records[0]
    names = tuple(first) if type(first) is dict else ()
    if len(names) < 2 or set(map(type, records)) != {dict}:
        return None  # (one field: itemgetter would hand back values, not tuples)
    if set(map(len, records)) != {len(names)}:
        return None
    try:
        # first's own key objects: a lookup by identity, see _getter_for
        rows = map(operator.itemgetter(*names), records)
        columns: dict[str, tuple[Any, ...]] = dict(zip(names, zip(*rows, strict=True), strict=True))
    except KeyError:
        return None  # as many fields in each record, but not the same ones
    ids = columns.get("id")
    if ids is None or not all(ids):
        return None  # a missing or empty id: record by record, which says which record
    nothing = (None,) * len(records)

    def field(name: str) -> tuple[Any, ...]:
        return columns.get(name, nothing)  # a documented field that is absent is None

    extra_names = [name for name in names if name not in _KNOWN]
    extras: Iterable[Mapping[str, Any]] = repeat(_EMPTY)
    if extra_names:
        values = zip(*map(columns.__getitem__, extra_names), strict=True)
        extras = map(MappingProxyType, map(dict, map(zip, repeat(extra_names), values)))
    built = list(
        map(
            _Builder,
            _texts(ids),
            _texts(field("lead_id")),
            _texts(field("list_id")),
            _texts(field("campaign_id")),
            _texts(field("status")),
            _stamps(field("created_at")),
            _memoised(_TIME_CACHE, parse_time, field("callback_time")),
            _stamps(field("modified_at")),
            _texts(field("user")),
            _memoised(_RECIPIENTS, _recipient, field("recipient")),
            _texts(field("comments")),
            _memoised(_STAGES, _stage, field("stage")),
            _texts(field("user_name")),
            _texts(field("campaign_name")),
            extras,
        )
    )
    deque(map(setattr, built, repeat("__class__"), repeat(Callback)), maxlen=0)
    return tuple(built)


#: Records decoded a column at a time in one step: columns of a few hundred values stay
#: in the CPU cache from one pass to the next, and a page of 5000 in one piece decodes
#: ~12% slower than in pieces of 250 to 1000.
_COLUMN_CHUNK: Final = 500
#: Fewer records than this go record by record: going a column at a time costs ~8 us
#: whatever the count, and pays only from about five records of the live API's shape
#: (documented fields plus a few more). A lookup by ``callback_id`` gets one record.
_COLUMNS_FROM: Final = 5


def _structure_chunk(records: list[Any]) -> tuple[Callback, ...]:
    if len(records) >= _COLUMNS_FROM:
        try:
            decoded = _structure_columns(records)
        except (KeyError, TypeError, ValueError):
            decoded = None  # record by record below, to raise what the bad record gives
        if decoded is not None:
            return decoded
    fields_of = _getter_for(records[0])
    try:
        return tuple([_structure_fast(record, fields_of) for record in records])
    except TypeError:
        # The fast path's memo lookups fail a list or an object as "unhashable type";
        # the record path says which value is wrong (and gives equal records otherwise).
        return tuple([_structure_slow(record) for record in records])


def structure_records(records: list[Any]) -> tuple[Callback, ...]:
    """A page's records, decoded in one pass (the hot loop of every search).

    Each piece of up to 500 records goes a column at a time (:func:`_structure_columns`)
    when its records share their fields; otherwise, when a value cannot be read, or when
    it holds fewer than five records, it goes record by record. The cyclic garbage
    collector is paused for the pass: building 5000 records makes tens of thousands of
    allocations, each nudging the collector to scan young objects that cannot form
    cycles; pausing it cut decoding from 2.9 to 2.1 us a record here. The pass never
    awaits, so nothing else runs while it is off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        pieces = range(0, len(records), _COLUMN_CHUNK)
        return tuple(
            chain.from_iterable(
                _structure_chunk(records[start : start + _COLUMN_CHUNK]) for start in pieces
            )
        )
    finally:
        if was_enabled:
            gc.enable()


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(datetime | None, lambda value, _: parse_time(value))
    conv.register_structure_hook(str | None, lambda value, _: _text(value))
    conv.register_structure_hook(Stage | str | None, lambda value, _: _stage(value))
    conv.register_structure_hook(Recipient | str | None, lambda value, _: _recipient(value))
    conv.register_structure_hook(Callback, _structure_callback)
    return conv


#: The converter for every model. Build nothing else from scratch.
converter: Final = _make_converter()
