"""The one cattrs converter, and the wire rules it applies to a ``callbacks/search`` record.

Wire rules (what the live API sends, and what the caller gets):

* ``id`` is required; it and every other documented string field accept a JSON string or
  a number (kept as its decimal text). ``null`` or a missing field is ``None``.
* ``created_at``, ``modified_at`` and ``callback_time`` accept ``YYYY-MM-DD HH:MM:SS``,
  the vendor's ``YYYY-MM-DD hh:mm AM/PM`` and ISO 8601 with an offset
  (``2016-11-17T10:54:21-0800``). ``null``, ``""`` and ``0000-00-00 00:00:00`` are
  ``None``. Any other text is a :class:`MalformedResponseError`: a time we cannot read is
  never guessed.
* ``stage`` and ``recipient`` are looked up case-insensitively (``PASTDUE`` is
  ``PAST_DUE``); a value outside the enums is kept as its raw string.
* Fields the documentation does not list go, untouched, into ``Callback.extra``.

Speed: a page holds up to 5000 records, so every per-value step here is a dict lookup.
Time strings repeat heavily across a page (minute resolution), so parsed values are
memoised in a bounded cache; enum values go through a precomputed table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final

import cattrs

from ._models import _EMPTY, CALLBACK_FIELDS, Callback, Recipient, Stage

_NO_TIME: Final = frozenset({"", "0000-00-00 00:00:00", "0000-00-00", "0000-00-00 00:00"})
_TIME_CACHE: dict[str, datetime | None] = {}
_TIME_CACHE_MAX: Final = 100_000


def parse_time(value: object) -> datetime | None:
    """Read one of the API's time spellings; see the module docstring for the rules."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a time string, got {type(value).__name__}")
    try:
        return _TIME_CACHE[value]
    except KeyError:
        pass
    parsed = _parse_time_text(value)
    if len(_TIME_CACHE) >= _TIME_CACHE_MAX:
        _TIME_CACHE.clear()
    _TIME_CACHE[value] = parsed
    return parsed


def _parse_time_text(text: str) -> datetime | None:
    stripped = text.strip()
    if stripped in _NO_TIME:
        return None
    meridiem = stripped[-2:].upper()
    if meridiem in ("AM", "PM"):
        # "2026-03-05 02:30 PM": fromisoformat is ~40x faster than strptime.
        clock = datetime.fromisoformat(stripped[:-2].strip())
        if not 1 <= clock.hour <= 12:
            raise ValueError(f"{text!r} is not a 12-hour time")
        hour = clock.hour % 12 + (12 if meridiem == "PM" else 0)
        return clock.replace(hour=hour)
    return datetime.fromisoformat(stripped)


def _structure_time(value: object, _: object) -> datetime | None:
    return parse_time(value)


def _structure_text(value: object, _: object) -> str | None:
    if value is None or type(value) is str:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _structure_id(value: object, _: object) -> str:
    text = _structure_text(value, _)
    if not text:
        raise ValueError("a callback without an id")
    return text


def _lookup_table(enum: type[Stage] | type[Recipient]) -> Callable[[object, object], Any]:
    table: dict[str, Any] = {}

    def structure(value: object, _: object) -> Any:
        if value is None:
            return None
        if type(value) is not str:
            raise ValueError(f"expected a string, got {type(value).__name__}")
        try:
            return table[value]
        except KeyError:
            try:
                member: Any = enum(value)
            except ValueError:
                member = value  # unknown spelling: keep the raw string, never fail
            if len(table) < 1000:
                table[value] = member
            return member

    return structure


_STAGE = _lookup_table(Stage)
_RECIPIENT = _lookup_table(Recipient)
_KNOWN: Final = frozenset(CALLBACK_FIELDS)
_N_KNOWN: Final = len(_KNOWN)


def _structure_callback(record: Any, _: object) -> Callback:
    """Build a Callback from one record dict.

    Written out field by field rather than generated with ``make_dict_structure_fn``:
    the generated function builds a kwargs dict and makes two calls per field, and this
    runs once per record, up to 5000 times a page (see benchmarks/bench_decode.py).
    """
    if type(record) is not dict:
        raise ValueError(f"a record must be an object, got {type(record).__name__}")
    get = record.get
    extra: Mapping[str, Any] = _EMPTY
    if len(record) != _N_KNOWN or not _KNOWN.issuperset(record):
        unknown = {k: v for k, v in record.items() if k not in _KNOWN}
        if unknown:
            extra = MappingProxyType(unknown)
    return Callback(
        _structure_id(get("id"), None),
        _text(get("lead_id")),
        _text(get("list_id")),
        _text(get("campaign_id")),
        _text(get("status")),
        parse_time(get("created_at")),
        parse_time(get("callback_time")),
        parse_time(get("modified_at")),
        _text(get("user")),
        _RECIPIENT(get("recipient"), None),
        _text(get("comments")),
        _STAGE(get("stage"), None),
        _text(get("user_name")),
        _text(get("campaign_name")),
        extra,
    )


def _text(value: object) -> str | None:
    if value is None or type(value) is str:
        return value
    return _structure_text(value, None)


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=False, forbid_extra_keys=False)
    conv.register_structure_hook(datetime | None, _structure_time)
    conv.register_structure_hook(str | None, _structure_text)
    conv.register_structure_hook(Stage | str | None, _STAGE)
    conv.register_structure_hook(Recipient | str | None, _RECIPIENT)
    conv.register_structure_hook(Callback, _structure_callback)
    return conv


#: The converter every decode goes through. Build nothing else from scratch.
converter: Final = _make_converter()
