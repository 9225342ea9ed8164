"""The four endpoints as pure functions: form fields in, (HTTP status, JSON body) out.

No aiohttp here, so the rules can be read (and benchmarked) without a server.

Validation rules the reference leaves open, as the emulator decides them:

* *Auth.* No ``auth_token`` field at all: HTTP 401. Present but wrong (or empty): HTTP 200,
  code 5001, "Invalid authentication token" (live dialect: "Auth token is invalid").
* *Empty fields.* An optional field sent empty (``start_date=``) counts as absent.
* *Ids.* An id is valid when it is 1-18 ASCII digits. On search, an invalid
  ``campaign_id`` / ``list_id`` / ``user_id`` / ``lead_id`` / ``id`` is an error (6026 /
  6042 / 6006 / 6070 / 6073); a well-formed id that matches nothing gives an empty page.
  On insert and update an unknown ``user_id`` is 6006 "No such user".
* *Paging.* ``offset``: not an integer, negative or above 50000 -> 7231. ``limit``: not an
  integer or above 5000 -> 7230; below 1 -> 7258.
* *Enums.* ``stage`` filter: COMPLETED, PAST_DUE, PENDING, DISMISSED, MISSED or PASTDUE,
  any case (PASTDUE = PAST_DUE; MISSED matches only MISSED records). ``recipient`` filter:
  system, personal or useronly, any case. Anything else: ``success: false`` "Invalid
  callback stage" / "Invalid recipient" *without* a ``code`` (the reference's general error
  table shows code-less bodies; a client must cope with both). Insert/update ``recipient``
  must be ``system`` or ``personal`` (any case); ``callback_status`` may only be
  ``dismissed`` (any case), which sets stage DISMISSED and status INACTIVE.
* *Times.* ``callback_time`` must be ``YYYY-MM-DD hh:mm AM/PM`` (two-digit 01-12 hour,
  upper-case AM/PM) and a real date, else 6071. ``callback_time_zone`` is ``[+|-]H[H]`` with
  an optional ``.MM`` (two digits, minutes 00-59), between -12.00 and +14.00, else 6072. It is
  validated, not stored: records do not show it.
* *Required fields.* insert: ``lead_id``, ``recipient``, ``callback_time``,
  ``callback_time_zone``; update/delete: ``callback_id``. Missing -> 6023 naming them.
* *Unknown callback.* A well-formed ``callback_id`` that is not (or no longer) in the store
  -> 6074 "Callback not found".
* *Unknown lead.* The emulator keeps no lead table, so any well-formed ``lead_id`` exists,
  except ``0``: inserting a callback for lead 0 answers 6001 "Lead not found" (the
  reference's general error), so clients can test that path.

Live dialect (``live=True``): the search page is wrapped as ``{"success": true, "data":
{...}}`` with ``offset``/``limit``/``total`` as strings; error bodies carry the message
under ``text`` instead of ``error``, and ``code`` is a string on callbacks/search and an
integer on the other endpoints.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any, Final

from ._store import MINUTES_PER_DAY, NO_USER, RECIPIENTS, STAGES, CallbackStore, Query

MAX_OFFSET: Final = 50_000
MAX_LIMIT: Final = 5000
DEFAULT_LIMIT: Final = 20

ENDPOINTS: Final = ("search", "insert", "update", "delete")
UNKNOWN: Final = -2
"""Code for a well-formed id no record can carry (``NO_USER`` is -1): an empty result."""

_ID = re.compile(r"[0-9]{1,18}")
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_CALLBACK_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2}) (0[1-9]|1[0-2]):([0-5][0-9]) (AM|PM)"
)
_TIME_ZONE = re.compile(r"([+-]?)([0-9]{1,2})(?:\.([0-9]{2}))?")
_INT = re.compile(r"[+-]?[0-9]{1,9}")

_STAGE_FILTER: Final = {name.lower(): code for code, name in enumerate(STAGES)} | {"pastdue": 1}
_RECIPIENT_FILTER: Final = {name: code for code, name in enumerate(RECIPIENTS)}
_RECIPIENT_WRITE: Final = {name: _RECIPIENT_FILTER[name] for name in ("system", "personal")}


class ApiError(Exception):
    """A ``success: false`` answer; ``code`` ``None`` means the body carries no code."""

    def __init__(self, code: int | None, message: str, *, status: int = 200) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def handle(
    endpoint: str,
    form: Mapping[str, str],
    store: CallbackStore,
    *,
    auth_token: str,
    live: bool = False,
) -> tuple[int, dict[str, Any]]:
    """Answer one request to ``/callbacks/<endpoint>``: (HTTP status, JSON body)."""
    fields = {k: v for k, v in form.items() if v != "" or k == "auth_token"}
    try:
        if "auth_token" not in fields:
            raise ApiError(5001, "Authentication token is required", status=401)
        if fields["auth_token"] != auth_token:
            text = "Auth token is invalid" if live else "Invalid authentication token"
            raise ApiError(5001, text)
        return 200, _HANDLERS[endpoint](fields, store, live)
    except ApiError as err:
        return err.status, error_body(endpoint, err.code, err.message, live)


def error_body(endpoint: str, code: int | None, message: str, live: bool) -> dict[str, Any]:
    """A ``success: false`` body in the dialect asked for (see the module docstring)."""
    body: dict[str, Any] = {"success": False}
    if code is not None:
        body["code"] = str(code) if live and endpoint == "search" else code
    body["text" if live else "error"] = message
    return body


def _search(fields: Mapping[str, str], store: CallbackStore, live: bool) -> dict[str, Any]:
    query = parse_search(fields, store)
    total, records = store.search(query)
    offset, limit = query.offset, query.limit
    if live:
        page = {"offset": str(offset), "limit": str(limit), "total": str(total)}
        return {"success": True, "data": {**page, "results": records}}
    return {"offset": offset, "limit": limit, "total": total, "results": records}


def _paging(fields: Mapping[str, str]) -> tuple[int, int]:
    offset_text = fields.get("offset", "0")
    if not _INT.fullmatch(offset_text) or not 0 <= int(offset_text) <= MAX_OFFSET:
        raise ApiError(7231, "Invalid offset value")
    limit_text = fields.get("limit", str(DEFAULT_LIMIT))
    if not _INT.fullmatch(limit_text) or int(limit_text) > MAX_LIMIT:
        raise ApiError(7230, "Invalid limit value")
    if int(limit_text) < 1:
        raise ApiError(7258, "Limit must be at least 1")
    return int(offset_text), int(limit_text)


def parse_search(fields: Mapping[str, str], store: CallbackStore) -> Query:
    """Validate search fields into a :class:`Query`."""
    start = _day(fields, "start_date")
    end = _day(fields, "end_date")
    offset, limit = _paging(fields)
    stage = _enum(fields, "stage", _STAGE_FILTER, "Invalid callback stage")
    recipient = _enum(fields, "recipient", _RECIPIENT_FILTER, "Invalid recipient")
    campaign = _code(fields, "campaign_id", 6026, "Invalid campaign ID", store.campaign_code)
    call_list = _code(fields, "list_id", 6042, "Invalid list ID", store.list_code)
    user = _code(fields, "user_id", 6006, "Invalid user ID", store.user_code)
    lead_id = _id(fields, "lead_id", 6070, "Invalid lead ID")
    callback_id = _id(fields, "id", 6073, "Invalid callback ID")
    return Query(
        start_day=start,
        end_day=end,
        callback_id=callback_id,
        lead_id=lead_id,
        campaign=campaign,
        call_list=call_list,
        user=user,
        recipient=recipient,
        stage=stage,
        offset=offset,
        limit=limit,
    )


def _day(fields: Mapping[str, str], name: str) -> int | None:
    text = fields.get(name)
    if text is None:
        return None
    match = _DATE.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        return date(*map(int, match.groups())).toordinal()
    except ValueError:
        raise ApiError(6031, f"Invalid date format for {name}, expected YYYY-MM-DD") from None


def _enum(fields: Mapping[str, str], name: str, known: Mapping[str, int], error: str) -> int | None:
    text = fields.get(name)
    if text is None:
        return None
    code = known.get(text.lower())
    if code is None:
        raise ApiError(None, error)
    return code


def _id(fields: Mapping[str, str], name: str, code: int, error: str) -> int | None:
    text = fields.get(name)
    if text is None:
        return None
    if not _ID.fullmatch(text):
        raise ApiError(code, error)
    return int(text)


def _code(
    fields: Mapping[str, str],
    name: str,
    error_code: int,
    error: str,
    lookup: Callable[[int], int | None],
) -> int | None:
    """A reference-table id as its code; :data:`UNKNOWN` when well-formed but unknown."""
    value = _id(fields, name, error_code, error)
    if value is None:
        return None
    code = lookup(value)
    return UNKNOWN if code is None else code


def _require(fields: Mapping[str, str], *names: str) -> None:
    missing = [n for n in names if n not in fields]
    if missing:
        raise ApiError(6023, f"Required fields are missed: {', '.join(missing)}")


def _callback_minute(fields: Mapping[str, str]) -> int | None:
    text = fields.get("callback_time")
    if text is None:
        return None
    match = _CALLBACK_TIME.fullmatch(text)
    try:
        if match is None:
            raise ValueError(text)
        year, month, day, hour, minute, half = match.groups()
        ordinal = date(int(year), int(month), int(day)).toordinal()
    except ValueError:
        raise ApiError(6071, "Invalid callback time format") from None
    hour24 = int(hour) % 12 + (12 if half == "PM" else 0)
    return ordinal * MINUTES_PER_DAY + hour24 * 60 + int(minute)


def _check_time_zone(fields: Mapping[str, str]) -> None:
    text = fields.get("callback_time_zone")
    if text is None:
        return
    match = _TIME_ZONE.fullmatch(text)
    if match is not None:
        sign, hours, minutes = match.groups()
        offset = (int(hours) * 60 + int(minutes or 0)) * (-1 if sign == "-" else 1)
        if int(minutes or 0) < 60 and -12 * 60 <= offset <= 14 * 60:
            return
    raise ApiError(6072, "Invalid timezone offset")


def _write_user(fields: Mapping[str, str], store: CallbackStore) -> int | None:
    value = _id(fields, "user_id", 6006, "No such user")
    if value is None:
        return None
    code = store.user_code(value)
    if code is None:
        raise ApiError(6006, "No such user")
    return code


def _insert(fields: Mapping[str, str], store: CallbackStore, live: bool) -> dict[str, Any]:
    _require(fields, "lead_id", "recipient", "callback_time_zone", "callback_time")
    lead_id = _id(fields, "lead_id", 6070, "Invalid lead ID")
    recipient = _enum(fields, "recipient", _RECIPIENT_WRITE, "Invalid recipient")
    minute = _callback_minute(fields)
    _check_time_zone(fields)
    user = _write_user(fields, store)
    assert lead_id is not None  # (required, so present: these asserts only narrow types)
    assert recipient is not None
    assert minute is not None
    if lead_id == 0:
        raise ApiError(6001, "Lead not found")
    callback_id = store.insert(
        lead_id=lead_id,
        recipient=recipient,
        minute=minute,
        user=NO_USER if user is None else user,
        comments=fields.get("comments", ""),
    )
    return {"success": True, "data": {"callback_id": callback_id}}


def _target(fields: Mapping[str, str], store: CallbackStore) -> str:
    _require(fields, "callback_id")
    callback_id = fields["callback_id"]
    if not _ID.fullmatch(callback_id):
        raise ApiError(6073, "Invalid callback ID")
    if callback_id not in store:
        raise ApiError(6074, "Callback not found")
    return callback_id


def _update(fields: Mapping[str, str], store: CallbackStore, live: bool) -> dict[str, Any]:
    callback_id = _target(fields, store)
    recipient = _enum(fields, "recipient", _RECIPIENT_WRITE, "Invalid recipient")
    minute = _callback_minute(fields)
    _check_time_zone(fields)
    user = _write_user(fields, store)
    status = fields.get("callback_status")
    if status is not None and status.lower() != "dismissed":
        raise ApiError(None, "Invalid callback status")
    store.update(
        callback_id,
        user=user,
        recipient=recipient,
        minute=minute,
        comments=fields.get("comments"),
        dismiss=status is not None,
    )
    return {"success": True, "data": {"callback_id": callback_id}}


def _delete(fields: Mapping[str, str], store: CallbackStore, live: bool) -> dict[str, Any]:
    store.delete(_target(fields, store))
    return {"success": True}


_HANDLERS: Final[dict[str, Callable[[Mapping[str, str], CallbackStore, bool], dict[str, Any]]]] = {
    "search": _search,
    "insert": _insert,
    "update": _update,
    "delete": _delete,
}
