"""The one cattrs converter, and the wire rules it applies to a ``callbacks/search`` record.

Wire rules (what the live API sends, and what the caller gets):

* ``id`` is required; it and every other documented string field accept a JSON string or
  a number (kept as its decimal text; ``657.0`` is ``"657"``). ``null`` or a missing
  field is ``None``.
* ``created_at``, ``modified_at`` and ``callback_time`` accept ``YYYY-MM-DD HH:MM:SS``,
  the vendor's ``YYYY-MM-DD hh:mm AM/PM`` and ISO 8601 with an offset
  (``2016-11-17T10:54:21-0800``). ``null``, ``""`` and ``0000-00-00 00:00:00`` are
  ``None``. Any other text is a :class:`MalformedResponseError`: a time we cannot read is
  never guessed.
* ``stage`` and ``recipient`` are looked up case-insensitively (``PASTDUE`` is
  ``PAST_DUE``); a value outside the enums is kept as its raw string.
* Fields the documentation does not list go, untouched, into ``Callback.extra``.

Speed: a page holds up to 5000 records and a bulk export hundreds of thousands, so the
record hook is written for it (see ``benchmarks/bench_decode.py``): every per-value
step is a dict lookup, parsed times are memoised (they repeat heavily at minute
resolution), and records are built through :data:`_Builder` (below).
"""

from __future__ import annotations

import gc
import operator
from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

import attrs
import cattrs

from ._models import _EMPTY, CALLBACK_FIELDS, Callback, Recipient, Stage

_NO_TIME: Final = frozenset({"", "0000-00-00 00:00:00", "0000-00-00", "0000-00-00 00:00"})
_MISSING: Final = object()
_TIME_CACHE_MAX: Final = 100_000
_TIME_CACHE: dict[object, datetime | None] = {None: None}


def parse_time(value: object) -> datetime | None:
    """Read one of the API's time spellings; see the module docstring for the rules."""
    cached = _TIME_CACHE.get(value, _MISSING)
    if cached is not _MISSING:
        return cached  # type: ignore[return-value]
    if not isinstance(value, str):
        raise ValueError(f"expected a time string, got {type(value).__name__}")
    parsed = _parse_time_text(value)
    if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
        _TIME_CACHE.clear()
        _TIME_CACHE[None] = None
    _TIME_CACHE[value] = parsed
    return parsed


def _parse_time_text(text: str) -> datetime | None:
    stripped = text.strip()
    if stripped in _NO_TIME:
        return None
    if not stripped.isascii():
        raise ValueError(f"{text!r} is not a time")
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
    if value is None or type(value) is str:
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
        found = table.get(value, _MISSING)
        if found is not _MISSING:
            return found
        if type(value) is not str:
            raise ValueError(f"expected a string, got {type(value).__name__}")
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
    # created_at/modified_at carry seconds, so they rarely repeat: parse them directly
    # (0.07 us) rather than through the memo, which would miss and churn.
    created: datetime | None
    modified: datetime | None
    try:
        created = _fromisoformat(created_at)
    except (TypeError, ValueError):
        created = parse_time(created_at)
    try:
        modified = _fromisoformat(modified_at)
    except (TypeError, ValueError):
        modified = parse_time(modified_at)
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
        parse_time(get("created_at")),
        parse_time(get("callback_time")),
        parse_time(get("modified_at")),
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


def structure_records(records: list[Any]) -> tuple[Callback, ...]:
    """A page's records, decoded in one pass (the hot loop of every search).

    The cyclic garbage collector is paused for the pass: building 5000 records makes
    tens of thousands of allocations, each nudging the collector to scan young objects
    that cannot form cycles; pausing it cut decoding from 2.9 to 2.1 us a record here.
    The pass never awaits, so nothing else runs while the collector is off.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if not records:
            return ()
        fields_of = _getter_for(records[0])
        return tuple([_structure_fast(record, fields_of) for record in records])
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
