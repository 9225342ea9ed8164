"""The Callbacks protocol with no I/O: build request forms, read answers, map failures.

Everything here is a pure function of its arguments, so it is tested on recorded bodies
without a network. Forms never contain the auth token: the transport adds it at the last
moment, so a form can be logged or put in an error message safely.

Validation happens here, before anything is sent: a bad argument is a ``ValueError``
naming the argument, never a request the server has to reject.
"""

from __future__ import annotations

import codecs
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import attrs
import orjson

from ._converter import structure_records
from ._errors import (
    AuthenticationError,
    ConvosoAPIError,
    ConvosoError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
)
from ._models import Callback, CallbackPage, Recipient, Stage

SEARCH: Final = "callbacks/search"
INSERT: Final = "callbacks/insert"
UPDATE: Final = "callbacks/update"
DELETE: Final = "callbacks/delete"

MAX_OFFSET: Final = 50_000
MAX_LIMIT: Final = 5_000
#: How many records one filter combination can reach by offset/limit paging.
REACHABLE: Final = MAX_OFFSET + MAX_LIMIT
#: A total above this is not a real answer (the vendor's largest offices hold millions).
_ABSURD_TOTAL: Final = 1_000_000_000

#: Stage filter values the live API is known to accept beyond the four documented ones.
STAGE_FILTER_VALUES: Final = frozenset({"COMPLETED", "PAST_DUE", "PENDING", "DISMISSED", "MISSED"})

Form = dict[str, str]
Filters = Mapping[str, Any]
SEARCH_FILTERS: Final = (
    "start_date",
    "end_date",
    "campaign_id",
    "callback_id",
    "lead_id",
    "list_id",
    "recipient",
    "user_id",
    "stage",
)

# --- request side -----------------------------------------------------------------------

_DATE_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)
_VENDOR_TIME_RE: Final = re.compile(
    r"(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}) ([AP]M)", re.ASCII | re.IGNORECASE
)
_CODE_RE: Final = re.compile(r"-?[0-9]{1,18}")  # longer is not a code
_VENDOR_ZONE_RE: Final = re.compile(r"([+-]?)(\d{1,2})\.(\d{2})", re.ASCII)


def search_form(*, offset: int = 0, limit: int = 20, **filters: Any) -> Form:
    """The form for one ``callbacks/search`` page. Raises ``ValueError`` on a bad argument."""
    unknown = set(filters) - set(SEARCH_FILTERS)
    if unknown:
        raise TypeError(f"unknown search filter(s): {', '.join(sorted(unknown))}")
    return page_form(filter_form(filters), offset=offset, limit=limit)


def page_form(filters: Form, *, offset: int, limit: int) -> Form:
    """Add a validated ``offset``/``limit`` to an already validated :func:`filter_form`."""
    return {
        "offset": str(_bounded_int(offset, "offset", 0, MAX_OFFSET)),
        "limit": str(_bounded_int(limit, "limit", 1, MAX_LIMIT)),
        **filters,
    }


def filter_form(filters: Filters) -> Form:
    """The filter fields of a search form, validated; ``None`` values are left out."""
    form: Form = {}
    start = filters.get("start_date")
    end = filters.get("end_date")
    if start is not None:
        form["start_date"] = date_text(start, "start_date")
    if end is not None:
        form["end_date"] = date_text(end, "end_date")
    if start is not None and end is not None and form["start_date"] > form["end_date"]:
        raise ValueError(f"start_date {form['start_date']} is after end_date {form['end_date']}")
    for name, field in (
        ("campaign_id", "campaign_id"),
        ("callback_id", "id"),
        ("lead_id", "lead_id"),
        ("list_id", "list_id"),
        ("user_id", "user_id"),
    ):
        value = filters.get(name)
        if value is not None:
            form[field] = id_text(value, name)
    if filters.get("recipient") is not None:
        form["recipient"] = recipient_of(filters["recipient"]).filter_value
    if filters.get("stage") is not None:
        form["stage"] = stage_filter_text(filters["stage"])
    return form


def insert_form(
    *,
    lead_id: str | int,
    recipient: Recipient | str,
    callback_time: datetime | str,
    callback_time_zone: float | str | timedelta | None = None,
    user_id: str | int | None = None,
    comments: str | None = None,
) -> Form:
    """The form for ``callbacks/insert``. The zone is required, given or derived."""
    when, zone = callback_time_fields(callback_time, callback_time_zone)
    if zone is None:
        raise ValueError(
            "callback_time_zone is required for a naive datetime or a string callback_time: "
            "the API needs the zone, and guessing this machine's would dial at the wrong hour"
        )
    form: Form = {
        "lead_id": id_text(lead_id, "lead_id"),
        "recipient": recipient_of(recipient).value,
        "callback_time_zone": zone,
        "callback_time": when,
    }
    if user_id is not None:
        form["user_id"] = id_text(user_id, "user_id")
    if comments is not None:
        form["comments"] = _comments(comments)
    return form


def update_form(
    callback_id: str | int,
    *,
    user_id: str | int | None = None,
    recipient: Recipient | str | None = None,
    comments: str | None = None,
    callback_time: datetime | str | None = None,
    callback_time_zone: float | str | timedelta | None = None,
    callback_status: str | None = None,
) -> Form:
    """The form for ``callbacks/update``; at least one field must change."""
    form: Form = {"callback_id": id_text(callback_id, "callback_id")}
    if user_id is not None:
        form["user_id"] = id_text(user_id, "user_id")
    if recipient is not None:
        form["recipient"] = recipient_of(recipient).value
    if comments is not None:
        form["comments"] = _comments(comments)
    if callback_time is not None:
        when, zone = callback_time_fields(callback_time, callback_time_zone)
        form["callback_time"] = when
        if zone is not None:
            form["callback_time_zone"] = zone
    elif callback_time_zone is not None:
        form["callback_time_zone"] = zone_text(callback_time_zone)
    if callback_status is not None:
        if not isinstance(callback_status, str) or callback_status.lower() != "dismissed":
            raise ValueError(f"callback_status can only be 'dismissed', not {callback_status!r}")
        form["callback_status"] = "dismissed"
    if len(form) == 1:
        raise ValueError("update needs at least one field to change")
    return form


def delete_form(callback_id: str | int) -> Form:
    """The form for ``callbacks/delete``."""
    return {"callback_id": id_text(callback_id, "callback_id")}


def _bounded_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


def date_text(value: object, name: str) -> str:
    """A ``date`` (or ``datetime``: its date) or ``YYYY-MM-DD`` text, as ``YYYY-MM-DD``."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and _DATE_RE.fullmatch(value):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise ValueError(f"{name} must be a date or 'YYYY-MM-DD', not {value!r}")


def id_text(value: object, name: str) -> str:
    """An id as the API wants it: non-empty text; an int becomes its decimal text."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.strip() and value == value.strip():
        return _utf8(value, name)
    raise ValueError(f"{name} must be a non-empty id string or non-negative int, not {value!r}")


def _utf8(value: str, name: str) -> str:
    """``value``, checked to encode as UTF-8: a lone surrogate (half of a character cut
    in two, as ``json.loads`` keeps it) would fail inside the transport, naming nothing."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as error:
            raise ValueError(
                f"{name} holds a lone surrogate at index {error.start} (a character cut in "
                "half), which cannot be sent"
            ) from None
    return value


def recipient_of(value: object) -> Recipient:
    """A :class:`Recipient` from a member or any casing of ``system``/``personal``."""
    try:
        return Recipient(value)  # type: ignore[arg-type]  # _missing_ handles any object
    except ValueError:
        raise ValueError(f"recipient must be 'system' or 'personal', not {value!r}") from None


def stage_filter_text(value: object) -> str:
    """A stage filter value: a :class:`Stage` or a spelling the live API accepts."""
    if isinstance(value, str):
        try:
            return Stage(value).value
        except ValueError:
            if value.strip().upper() in STAGE_FILTER_VALUES:
                return value.strip().upper()
    raise ValueError(
        f"stage must be one of {', '.join(sorted(STAGE_FILTER_VALUES))} (any case), not {value!r}"
    )


def _comments(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"comments must be a string, not {type(value).__name__}")
    return _utf8(value, "comments")


def zone_text(value: float | str | timedelta) -> str:
    """A UTC offset in the vendor's hours.minutes notation: -7 h -> ``-7.00``, +5:30 -> ``5.30``.

    Takes hours as a number (``-7.0``, ``5.5`` for +5:30), a ``timedelta``, or text already
    in the vendor's notation (``"-3.30"``, ``"+5.30"``). Offsets must be whole quarter hours
    between -12 and +14 h: ``5.3`` (5 h 18 min) is a mistake for ``5.5`` or ``"5.30"``.
    """
    if isinstance(value, timedelta):
        minutes_f = value.total_seconds() / 60
    elif isinstance(value, str):
        match = _VENDOR_ZONE_RE.fullmatch(value.strip())
        if not match or int(match[3]) >= 60:
            raise ValueError(f"callback_time_zone {value!r} is not hours.minutes like '-7.00'")
        sign = -1 if match[1] == "-" else 1
        minutes_f = sign * (int(match[2]) * 60 + int(match[3]))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            minutes_f = float(value) * 60
        except OverflowError:
            minutes_f = math.inf  # an int too big for a float: refused below
    else:
        raise ValueError(f"callback_time_zone must be hours, not {value!r}")
    if not math.isfinite(minutes_f):
        raise ValueError(f"callback_time_zone {value!r} is not a number of hours")
    minutes = round(minutes_f)
    if abs(minutes - minutes_f) > 1e-6 or minutes % 15:
        raise ValueError(
            f"callback_time_zone {value!r} is not a whole quarter hour "
            "(for +5:30 pass 5.5, '5.30' or timedelta(hours=5, minutes=30))"
        )
    if not -12 * 60 <= minutes <= 14 * 60:
        raise ValueError(f"callback_time_zone {value!r} is outside -12..+14 hours")
    sign_text = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign_text}{hours}.{rest:02d}"


def callback_time_fields(
    value: datetime | str, zone: float | str | timedelta | None
) -> tuple[str, str | None]:
    """``callback_time`` as ``YYYY-MM-DD hh:mm AM/PM`` and its zone, if given or derivable.

    An aware ``datetime`` gives its own offset when ``zone`` is omitted; given both, they
    must agree. Seconds are dropped: the API schedules to the minute.
    """
    zone_out = zone_text(zone) if zone is not None else None
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is not None:
            own = zone_text(offset)
            if zone_out is not None and zone_out != own:
                raise ValueError(
                    f"callback_time carries offset {own} but callback_time_zone is {zone_out}"
                )
            zone_out = own
        hour12 = value.hour % 12 or 12
        meridiem = "PM" if value.hour >= 12 else "AM"
        # date().isoformat(), not %Y: strftime leaves years below 1000 unpadded.
        day = value.date().isoformat()
        return f"{day} {hour12:02d}:{value.minute:02d} {meridiem}", zone_out
    if isinstance(value, str):
        match = _VENDOR_TIME_RE.fullmatch(value.strip())
        if match and 1 <= int(match[2]) <= 12 and int(match[3]) < 60:
            date_text(match[1], "callback_time")
            return f"{match[1]} {match[2]}:{match[3]} {match[4].upper()}", zone_out
    raise ValueError(f"callback_time must be a datetime or 'YYYY-MM-DD hh:mm AM/PM', not {value!r}")


# --- answer side ------------------------------------------------------------------------

_INVALID_CODES: Final = frozenset(
    {6006, 6023, 6026, 6031, 6042, 6070, 6071, 6072, 6073, 7230, 7231, 7237, 7258}
)
_NOT_FOUND_CODES: Final = frozenset({6001, 6038, 6074})
_AUTH_CODES: Final = frozenset({5001})


#: A PHP script saved with a byte order mark prints it before its JSON, which is sound;
#: orjson refuses it, so it is dropped (only after a failed parse: pages rarely carry one).
_BOM: Final = codecs.BOM_UTF8


def _without_boms(body: bytes) -> bytes:
    """``body`` past its leading BOMs (one per PHP file included, each saved with one)."""
    start = 0
    while body.startswith(_BOM, start):
        start += len(_BOM)
    return body[start:]


def decode_json(endpoint: str, body: bytes) -> Any:
    """Parse a 200 body. Not JSON (an HTML page, a body cut short) is retryable."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        if body.startswith(_BOM):
            return decode_json(endpoint, _without_boms(body))
        kind = "an empty body" if not body.strip() else "a body that is not JSON"
        raise MalformedResponseError(
            f"the server sent {kind}", endpoint=endpoint, retryable=True
        ) from None


def json_answer(endpoint: str, body: bytes) -> Mapping[str, Any]:
    """A 200 body as the JSON object of a successful answer, or the typed error it reports."""
    return check_success(endpoint, decode_json(endpoint, body))


def check_status(
    endpoint: str, status: int, headers: Mapping[str, str], body: bytes, now: datetime
) -> None:
    """Raise the typed error an HTTP status stands for; return quietly on 2xx."""
    if 200 <= status < 300:
        return
    if 300 <= status < 400:
        raise redirect_error(endpoint, status, headers.get("Location"))
    payload = _json_object(body)
    message = (_message(payload) if payload else None) or f"HTTP {status}"
    # The body's vendor code is kept whatever the status: the live API's auth failure
    # ({"code": 5001, "text": ...}) may arrive as HTTP 401 as well as 200.
    code = _code(payload.get("code")) if payload else None
    if status == 429:
        error = RateLimitError(message, code=code, endpoint=endpoint, status=status)
        error.retry_after = retry_after_seconds(headers.get("Retry-After"), now)
        raise error
    if status in (401, 403):
        raise AuthenticationError(message, code=code, endpoint=endpoint, status=status)
    if status >= 500:
        raise ServerError(message, code=code, endpoint=endpoint, status=status)
    if status == 404 and code in (None, 404) and _BARE_NOT_FOUND.fullmatch(message):
        # A bare "Not Found" (a proxy's or gateway's, or no text at all) is a missing
        # endpoint, not a missing callback: a NotFoundError here would let code that
        # reads it as "already deleted" pass over a delete that never ran. A code of 404
        # is a gateway echoing the status, not a vendor code (5001, 6xxx, 7xxx).
        raise ConvosoAPIError(
            f"{message}: the endpoint was not found; check base_url",
            endpoint=endpoint,
            status=status,
        )
    raise api_error(endpoint, {**(payload or {}), "error": message}, status=status)


#: The text of a 404 that names nothing missing: "HTTP 404" (no readable body), "Not
#: Found", "404 page not found"...
_BARE_NOT_FOUND: Final = re.compile(
    r"\W*(?:http\W*)?(?:404\W*)?(?:(?:page\W+)?not\W+found\W*)?", re.IGNORECASE
)


def redirect_error(endpoint: str, status: int, location: str | None) -> ConvosoAPIError:
    """A 3xx answer. It is never followed: a 307/308 would resend the form, token
    included, to wherever ``Location`` points, plain http or not. Nor is it retried: a
    redirect does not go away on its own. The query string is left out of the message."""
    target = (location or "").split("#", 1)[0].split("?", 1)[0].strip()
    where = f"a redirect to {target}" if target else "a redirect with no Location"
    return ConvosoAPIError(
        f"the API answered {where}; this client does not follow redirects (they would "
        "resend the auth token), so check base_url",
        endpoint=endpoint,
        status=status,
    )


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = orjson.loads(_without_boms(body))
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


#: An HTTP-date in C's asctime() form: ``Sun Nov  6 08:49:37 1994`` (RFC 9110 5.6.7).
_ASCTIME: Final = re.compile(r"[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}", re.ASCII)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds: a number of seconds or an HTTP-date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "inf" or "nan" would hand a caller sleeping on the hint a wait without end
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):  # a year too big for a C int overflows
        return None
    if when.tzinfo is None:
        # asctime ("Sun Nov  6 08:49:37 1994") names no zone, and is GMT (RFC 9110
        # 5.6.7); RFC 2822's "-0000" is a zone said to be unknown, so not a time.
        if not _ASCTIME.fullmatch(value):
            return None
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def check_success(endpoint: str, payload: Any) -> Mapping[str, Any]:
    """Return the JSON object of a successful answer, or raise its typed error."""
    if not isinstance(payload, dict):
        raise MalformedResponseError(
            f"expected a JSON object, got {type(payload).__name__}", endpoint=endpoint
        )
    success = payload.get("success")
    if _says_no(success):
        raise api_error(endpoint, payload)
    if success is None:
        if _looks_like_error(payload):
            raise api_error(endpoint, payload)
        return payload
    if _says_yes(success):
        return payload
    # A flag that is neither ("failed", "error", a list): never taken for a success. With
    # an error text or code it is that error, the server's text kept; else it is malformed.
    if "code" in payload or _message(payload) is not None:
        raise api_error(endpoint, payload)
    # Quoted whole or not at all: a quote cut short could end inside an echoed token,
    # which redaction (looking for the whole token) would then leave in the message.
    shown = repr(success)
    if len(shown) > 40:
        shown = f"a {type(success).__name__} of {len(shown)} characters"
    raise MalformedResponseError(f"'success' is neither true nor false: {shown}", endpoint=endpoint)


def _says_no(flag: Any) -> bool:
    """A ``success`` flag that reports failure, however the server spells it."""
    if isinstance(flag, str):
        return flag.strip().lower() in ("false", "0", "no", "")
    return flag is False or (isinstance(flag, int | float) and flag == 0)


def _says_yes(flag: Any) -> bool:
    """A ``success`` flag that reports success: true, a non-zero number, or such text."""
    if isinstance(flag, str):
        return flag.strip().lower() in ("true", "1", "yes", "ok")
    return flag is True or (isinstance(flag, int | float) and flag != 0 and flag == flag)


def _affirms_success(payload: Mapping[str, Any]) -> bool:
    """A write's answer (after :func:`check_success`) says the write was done.

    The documented answers carry ``success: true``; one with no flag counts only with a
    ``data`` object. Anything else (``{}``, ``{"success": null}``) is not the documented
    answer, and reporting a write done on it could lose a customer's callback.
    """
    flag = payload.get("success")
    return _says_yes(flag) if flag is not None else isinstance(payload.get("data"), dict)


def _looks_like_error(payload: Mapping[str, Any]) -> bool:
    """An answer with no ``success`` flag, no data, and an error code or message."""
    if "data" in payload or "results" in payload:
        return False
    # A code, or any key an error's text is read from: with no flag and no data, a body
    # that only says {"message": "Callback not found"} is that error, not a success.
    return "code" in payload or any(key in payload for key in _MESSAGE_KEYS)


def api_error(endpoint: str, payload: Mapping[str, Any], status: int = 200) -> ConvosoAPIError:
    """The typed error for a ``success: false`` body (code as number, string or absent)."""
    code = _code(payload.get("code"))
    message = _message(payload) or "the API reported a failure without a message"
    lowered = message.lower()
    cls: type[ConvosoAPIError]
    if code in _AUTH_CODES or ("token" in lowered and ("invalid" in lowered or "auth" in lowered)):
        cls = AuthenticationError
    elif code in _NOT_FOUND_CODES:
        cls = NotFoundError
    elif code in _INVALID_CODES or lowered.startswith("invalid"):
        cls = InvalidParameterError
    elif "not found" in lowered:
        cls = NotFoundError
    else:
        cls = ConvosoAPIError
    return cls(message, code=code, endpoint=endpoint, status=status)


def _code(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _CODE_RE.fullmatch(value.strip()):
        return int(value.strip())
    return None


#: Where an error body carries its text, in the order it is looked for.
_MESSAGE_KEYS: Final = ("text", "error", "message")


def _message(payload: Mapping[str, Any]) -> str | None:
    for key in _MESSAGE_KEYS:
        value = payload.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


@attrs.frozen
class PageBody:
    """A search answer whose envelope is read but whose records are not decoded yet.

    Splitting the two lets the paginator learn ``total`` and start the next requests the
    moment a body arrives, and decode its (up to 5000) records later, while other
    requests are in flight.
    """

    offset: int
    limit: int
    total: int
    records: list[Any]
    #: Scrubs the token from an error, as the client does to every error it raises:
    #: records are decoded after the call has returned, and a bad value is quoted.
    redact: Callable[[ConvosoError], None] = attrs.field(
        default=lambda error: None, eq=False, repr=False, kw_only=True
    )

    def __len__(self) -> int:
        return len(self.records)

    def decode(self, start: int = 0, stop: int | None = None) -> tuple[Callback, ...]:
        """Records ``start:stop`` as Callbacks; one that cannot be read is malformed."""
        try:
            return structure_records(self.records[start:stop])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            error = MalformedResponseError(f"a record could not be read: {exc}", endpoint=SEARCH)
            error.__cause__ = exc
        # Raised out here, where ``exc`` is not its context: redact drops the cause when it
        # quotes the token, and a raise inside the handler would chain it back.
        self.redact(error)
        raise error

    def page(self) -> CallbackPage:
        """The whole typed page."""
        return CallbackPage(self.offset, self.limit, self.total, self.decode())


def read_page(
    payload: Mapping[str, Any],
    *,
    offset: int,
    limit: int,
    redact: Callable[[ConvosoError], None] | None = None,
) -> PageBody:
    """Check a ``callbacks/search`` answer's shape, envelope or not, and read its counters.

    ``offset`` and ``limit`` are what was asked, used when the answer leaves them out;
    ``redact`` scrubs the token from the error of a record that cannot be decoded.
    """
    page: Any = payload
    if "results" not in page and isinstance(page.get("data"), dict):
        page = page["data"]
    results = page.get("results")
    if results is None and "total" in page and _counter(page["total"], "total") == 0:
        results = []
    if not isinstance(results, list):
        raise MalformedResponseError("'results' is missing or not a list", endpoint=SEARCH)
    total = _counter(page.get("total"), "total")
    if total > _ABSURD_TOTAL:
        raise MalformedResponseError(f"'total' of {total} is not believable", endpoint=SEARCH)
    return PageBody(
        offset=_counter(_given(page.get("offset"), offset), "offset"),
        limit=_counter(_given(page.get("limit"), limit), "limit"),
        total=total,
        records=results,
        **({} if redact is None else {"redact": redact}),
    )


def parse_page(
    body: bytes,
    *,
    offset: int,
    limit: int,
    redact: Callable[[ConvosoError], None] | None = None,
) -> PageBody:
    """A ``callbacks/search`` body, parsed and checked, its records not decoded yet."""
    return read_page(json_answer(SEARCH, body), offset=offset, limit=limit, redact=redact)


#: The documented answer's head: ``{"offset": 0, "limit": 20, "total": 150, "results": …``.
#: Anchored at the first brace, with only the two counters allowed before ``total``, so what
#: it finds is the top-level ``total`` and never a key inside a record.
_LEADING_TOTAL: Final = re.compile(
    rb'\s*\{\s*(?:"(?:offset|limit)"\s*:\s*"?\d+"?\s*,\s*)*"total"\s*:\s*"?(\d{1,10})"?\s*[,}]'
)


def peek_total(body: bytes) -> int | None:
    """``total`` read off the head of a search body without parsing it, or ``None``.

    Parsing a 5000-record page takes milliseconds; the paginator only needs ``total`` to
    send its next requests, so it peeks first and parses after they are on their way.
    A body shaped otherwise (an envelope, another key order, not JSON) gives ``None``, and
    the caller parses. The parse stays the authority: a body that peeks one total and
    parses to another is treated as a total that changed.
    """
    match = _LEADING_TOTAL.match(body)
    if match is None or int(match[1]) > _ABSURD_TOTAL:
        return None  # let the parse say what is wrong with it
    return int(match[1])


def decode_page(payload: Mapping[str, Any], *, offset: int, limit: int) -> CallbackPage:
    """A ``callbacks/search`` answer as a typed :class:`CallbackPage`."""
    return read_page(payload, offset=offset, limit=limit).page()


def _given(value: object, asked: int) -> object:
    return asked if value is None or value == "" else value


def _counter(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        if len(value.strip()) > 18:  # and int() refuses over 4300 digits
            raise MalformedResponseError(f"'{name}' is not believable", endpoint=SEARCH)
        number = int(value.strip())
    else:
        raise MalformedResponseError(
            f"'{name}' should be a non-negative integer, got {value!r}", endpoint=SEARCH
        )
    if number < 0:
        raise MalformedResponseError(f"'{name}' is negative ({number})", endpoint=SEARCH)
    return number


def decode_callback_id(endpoint: str, payload: Mapping[str, Any], fallback: str | None) -> str:
    """The callback id an insert or update answered with (``data.callback_id``)."""
    data = payload.get("data")
    candidates = [data.get("callback_id"), data.get("id")] if isinstance(data, dict) else []
    candidates += [payload.get("callback_id"), payload.get("id")]
    for value in candidates:
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 657.0 is "657", as in a search record
        # By the rules an id sent is checked by, so the id returned can be passed back.
        try:
            return id_text(value, "callback_id")
        except ValueError:
            continue  # absent, empty or not an id: try the next place
    if _affirms_success(payload):
        if fallback is not None:
            return fallback
        # The write was done: say so, or a caller may insert the callback again.
        raise MalformedResponseError(
            "the server reports success but its answer carries no readable callback_id: "
            "the callback was most likely created, so do not send it again blindly",
            endpoint=endpoint,
        )
    raise MalformedResponseError("the answer carries no callback_id", endpoint=endpoint)


def callback_id_answer(endpoint: str, body: bytes, fallback: str | None = None) -> str:
    """An insert or update body as the callback id it answered with, or its typed error."""
    return decode_callback_id(endpoint, json_answer(endpoint, body), fallback)


def delete_answer(body: bytes) -> None:
    """Check a ``callbacks/delete`` body (``{"success": true}``): return, or raise why not."""
    if not _affirms_success(json_answer(DELETE, body)):
        raise MalformedResponseError(
            "the answer does not say the callback was deleted", endpoint=DELETE
        )
