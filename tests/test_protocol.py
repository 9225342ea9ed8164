"""The sans-I/O protocol: request forms, validation, and the mapping of failures to errors.

Pure functions, tested without a network on the bodies the reference documents.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convoso_async import (
    AuthenticationError,
    ConvosoAPIError,
    ConvosoError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    PaginationLimitError,
    RateLimitError,
    Recipient,
    ServerError,
    Stage,
    TransportError,
)
from convoso_async import _protocol as proto

from .samples import REFERENCE_RECORD

NOW = datetime(2026, 3, 5, 12, 0, 0, tzinfo=UTC)

# --- search_form / filter_form -----------------------------------------------------------


def test_search_form_defaults_to_first_page_of_twenty() -> None:
    assert proto.search_form() == {"offset": "0", "limit": "20"}


def test_search_form_never_contains_the_token() -> None:
    assert "auth_token" not in proto.search_form(stage="PENDING", lead_id="1")


def test_search_form_sends_every_filter_under_its_wire_name() -> None:
    form = proto.search_form(
        offset=40,
        limit=50,
        start_date=date(2026, 3, 1),
        end_date="2026-03-05",
        campaign_id=111,
        callback_id="657",
        lead_id="12345",
        list_id=333,
        recipient=Recipient.SYSTEM,
        user_id="22222",
        stage=Stage.PENDING,
    )
    assert form == {
        "offset": "40",
        "limit": "50",
        "start_date": "2026-03-01",
        "end_date": "2026-03-05",
        "campaign_id": "111",
        "id": "657",
        "lead_id": "12345",
        "list_id": "333",
        "recipient": "System",
        "user_id": "22222",
        "stage": "PENDING",
    }


def test_search_form_leaves_out_none_filters() -> None:
    form = proto.search_form(campaign_id=None, stage=None, recipient=None, start_date=None)
    assert form == {"offset": "0", "limit": "20"}


def test_search_form_callback_id_is_sent_as_id() -> None:
    form = proto.search_form(callback_id=9)
    assert form["id"] == "9"
    assert "callback_id" not in form


def test_search_form_unknown_filter_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="campain_id"):
        proto.search_form(campain_id="1")


@pytest.mark.parametrize(("offset", "limit"), [(0, 1), (50_000, 5_000), (123, 4999)])
def test_search_form_accepts_bounds(offset: int, limit: int) -> None:
    form = proto.search_form(offset=offset, limit=limit)
    assert form["offset"] == str(offset)
    assert form["limit"] == str(limit)


@pytest.mark.parametrize("limit", [0, -1, 5_001, 10**6])
def test_search_form_rejects_limit_outside_1_to_5000(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        proto.search_form(limit=limit)


@pytest.mark.parametrize("offset", [-1, 50_001])
def test_search_form_rejects_offset_outside_0_to_50000(offset: int) -> None:
    with pytest.raises(ValueError, match="offset"):
        proto.search_form(offset=offset)


@pytest.mark.parametrize(
    "kwargs",
    [{"limit": True}, {"offset": False}, {"limit": 20.0}, {"offset": "0"}, {"limit": None}],
)
def test_search_form_rejects_bools_and_non_integers_as_counters(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        proto.search_form(**kwargs)


def test_filter_form_start_after_end_is_rejected() -> None:
    with pytest.raises(ValueError, match="after"):
        proto.filter_form({"start_date": "2026-03-05", "end_date": "2026-03-01"})


def test_filter_form_same_start_and_end_is_accepted() -> None:
    form = proto.filter_form({"start_date": "2026-03-05", "end_date": date(2026, 3, 5)})
    assert form == {"start_date": "2026-03-05", "end_date": "2026-03-05"}


def test_filter_form_datetime_becomes_its_date() -> None:
    form = proto.filter_form({"start_date": datetime(2026, 3, 1, 23, 59)})
    assert form == {"start_date": "2026-03-01"}


@pytest.mark.parametrize(
    "bad",
    ["2026-3-1", "2026-02-30", "2026/03/01", "03-01-2026", "", "2026-03-01 ", 20260301, None],
)
def test_date_text_rejects_malformed_dates(bad: object) -> None:
    with pytest.raises(ValueError, match="start_date"):
        proto.date_text(bad, "start_date")


@pytest.mark.parametrize("field", ["start_date", "end_date"])
def test_filter_form_malformed_date_names_the_argument(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        proto.filter_form({field: "2026-02-30"})


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Stage.PENDING, "PENDING"),
        (Stage.PAST_DUE, "PAST_DUE"),
        ("completed", "COMPLETED"),
        ("Dismissed", "DISMISSED"),
        ("PASTDUE", "PAST_DUE"),
        ("MISSED", "MISSED"),
        ("missed", "MISSED"),
        (" missed ", "MISSED"),
    ],
)
def test_stage_filter_accepts_members_and_known_live_values(value: object, wire: str) -> None:
    assert proto.filter_form({"stage": value}) == {"stage": wire}


@pytest.mark.parametrize("value", ["ACTIVE", "", "PEND", 1, True])
def test_stage_filter_rejects_unknown_values(value: object) -> None:
    with pytest.raises(ValueError, match="stage"):
        proto.filter_form({"stage": value})


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Recipient.SYSTEM, "System"),
        (Recipient.PERSONAL, "Personal"),
        ("system", "System"),
        ("PERSONAL", "Personal"),
        ("System", "System"),
    ],
)
def test_recipient_filter_is_spelled_capitalised(value: object, wire: str) -> None:
    assert proto.filter_form({"recipient": value}) == {"recipient": wire}


@pytest.mark.parametrize("value", ["USERONLY", "", 1])
def test_recipient_rejects_unknown_values(value: object) -> None:
    with pytest.raises(ValueError, match="recipient"):
        proto.filter_form({"recipient": value})


@pytest.mark.parametrize(("value", "wire"), [(0, "0"), (12345, "12345"), ("abc-1", "abc-1")])
def test_id_text_accepts_ints_and_strings(value: object, wire: str) -> None:
    assert proto.id_text(value, "lead_id") == wire


@pytest.mark.parametrize("value", ["", "   ", " 12", "12 ", -1, True, 1.0, None, b"12"])
def test_id_text_rejects_empty_whitespace_negative_and_non_ids(value: object) -> None:
    with pytest.raises(ValueError, match="lead_id"):
        proto.id_text(value, "lead_id")


@pytest.mark.parametrize("name", ["campaign_id", "callback_id", "lead_id", "list_id", "user_id"])
def test_filter_form_validates_every_id_filter(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        proto.filter_form({name: " "})


# --- zone_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (-7, "-7.00"),
        (-7.0, "-7.00"),
        (5.5, "5.30"),
        ("+5.30", "5.30"),
        ("5.30", "5.30"),
        ("-3.30", "-3.30"),
        (" -8.00 ", "-8.00"),
        (0, "0.00"),
        (-0.5, "-0.30"),
        (5.75, "5.45"),
        (14, "14.00"),
        (-12, "-12.00"),
        (timedelta(hours=5, minutes=30), "5.30"),
        (timedelta(hours=-3, minutes=-30), "-3.30"),
        (timedelta(0), "0.00"),
        ("-7.00", "-7.00"),
    ],
)
def test_zone_text_writes_hours_dot_minutes(value: object, wire: str) -> None:
    assert proto.zone_text(value) == wire  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "value",
    [
        5.3,  # 5 h 18 min: a mistake for 5.5 or "5.30"
        15,
        -12.25,
        14.25,
        "15.00",
        "-12.15",
        "5.3",
        "5:30",
        "5.60",
        "seven",
        "",
        timedelta(hours=5, minutes=10),
        timedelta(hours=5, minutes=30, seconds=30),  # not rounded to 5.30: a mistake
        timedelta(hours=15),
        True,
        None,
        [5],
    ],
)
def test_zone_text_rejects_bad_offsets(value: object) -> None:
    with pytest.raises(ValueError, match="callback_time_zone"):
        proto.zone_text(value)  # type: ignore[arg-type]


def test_zone_text_rejects_infinity_with_value_error() -> None:
    with pytest.raises(ValueError):
        proto.zone_text(float("inf"))


def test_zone_text_rejects_nan_with_value_error() -> None:
    with pytest.raises(ValueError):
        proto.zone_text(float("nan"))


# --- callback_time_fields ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "wire"),
    [
        (datetime(2026, 3, 5, 14, 30), "2026-03-05 02:30 PM"),
        (datetime(2026, 3, 6, 10, 0), "2026-03-06 10:00 AM"),
        (datetime(2026, 3, 5, 0, 0), "2026-03-05 12:00 AM"),
        (datetime(2026, 3, 5, 12, 0), "2026-03-05 12:00 PM"),
        (datetime(2026, 3, 5, 0, 5), "2026-03-05 12:05 AM"),
        (datetime(2026, 3, 5, 23, 59, 59), "2026-03-05 11:59 PM"),
        (datetime(2026, 3, 5, 1, 2), "2026-03-05 01:02 AM"),
        (datetime(2026, 3, 5, 11, 59), "2026-03-05 11:59 AM"),
    ],
)
def test_callback_time_datetime_is_the_vendors_12_hour_clock(when: datetime, wire: str) -> None:
    assert proto.callback_time_fields(when, None) == (wire, None)


# strftime's %Y does not pad years below 1000 on glibc ("999-03-05"): the date is written
# as ISO text, always YYYY-MM-DD, as the API documents.
@pytest.mark.parametrize(
    ("when", "wire"),
    [
        (datetime(999, 3, 5, 14, 30), "0999-03-05 02:30 PM"),
        (datetime(1, 1, 1, 0, 0), "0001-01-01 12:00 AM"),
    ],
)
def test_callback_time_date_is_always_four_digit_years(when: datetime, wire: str) -> None:
    assert proto.callback_time_fields(when, -7) == (wire, "-7.00")


def test_callback_time_aware_datetime_derives_the_zone() -> None:
    when = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-7)))
    assert proto.callback_time_fields(when, None) == ("2026-03-05 02:30 PM", "-7.00")


def test_callback_time_aware_datetime_with_half_hour_zone() -> None:
    when = datetime(2026, 3, 5, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert proto.callback_time_fields(when, None) == ("2026-03-05 09:00 AM", "5.30")


def test_callback_time_aware_datetime_with_agreeing_zone_is_accepted() -> None:
    when = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-7)))
    assert proto.callback_time_fields(when, "-7.00") == ("2026-03-05 02:30 PM", "-7.00")
    assert proto.callback_time_fields(when, -7) == ("2026-03-05 02:30 PM", "-7.00")


def test_callback_time_aware_datetime_with_disagreeing_zone_is_rejected() -> None:
    when = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-7)))
    with pytest.raises(ValueError, match="offset"):
        proto.callback_time_fields(when, -5)


def test_callback_time_vendor_string_is_kept() -> None:
    assert proto.callback_time_fields("2026-03-05 02:30 PM", -7.0) == (
        "2026-03-05 02:30 PM",
        "-7.00",
    )


@pytest.mark.parametrize("text", ["2026-03-05 12:00 PM", "2026-03-05 01:00 AM"])
def test_callback_time_vendor_string_takes_every_hour_of_the_12_hour_clock(text: str) -> None:
    assert proto.callback_time_fields(text, 0) == (text, "0.00")


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-05 14:30",
        "2026-03-05 14:30 PM",
        "2026-03-05 00:30 AM",
        "2026-03-05 02:60 PM",
        "2026-02-30 02:30 PM",
        "2026-3-5 02:30 PM",
        "2026-03-05 2:30 PM",
        "2026-03-05T02:30 PM",
        "",
        1772700000,
        date(2026, 3, 5),
    ],
)
def test_callback_time_rejects_malformed_times(bad: object) -> None:
    with pytest.raises(ValueError, match="callback_time"):
        proto.callback_time_fields(bad, -7)  # type: ignore[arg-type]


def test_callback_time_rejects_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        proto.callback_time_fields("2026-03-05 \u0660\u0662:30 PM", -7)


# --- insert_form -------------------------------------------------------------------------


def test_insert_form_matches_the_documented_example() -> None:
    form = proto.insert_form(
        lead_id="12345",
        recipient=Recipient.SYSTEM,
        callback_time=datetime(2026, 3, 5, 14, 30),
        callback_time_zone=-7.0,
        comments="Customer requested callback",
    )
    assert form == {
        "lead_id": "12345",
        "recipient": "system",
        "callback_time_zone": "-7.00",
        "callback_time": "2026-03-05 02:30 PM",
        "comments": "Customer requested callback",
    }


def test_insert_form_personal_with_user_and_string_time() -> None:
    form = proto.insert_form(
        lead_id=12345,
        user_id=22222,
        recipient="Personal",
        callback_time="2026-03-06 10:00 AM",
        callback_time_zone="-6.00",
    )
    assert form == {
        "lead_id": "12345",
        "user_id": "22222",
        "recipient": "personal",
        "callback_time_zone": "-6.00",
        "callback_time": "2026-03-06 10:00 AM",
    }


def test_insert_form_aware_datetime_supplies_the_zone() -> None:
    when = datetime(2026, 3, 5, 9, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    form = proto.insert_form(lead_id="1", recipient="system", callback_time=when)
    assert form["callback_time_zone"] == "5.30"
    assert form["callback_time"] == "2026-03-05 09:00 AM"


@pytest.mark.parametrize("when", [datetime(2026, 3, 5, 14, 30), "2026-03-05 02:30 PM"])
def test_insert_form_without_a_zone_is_rejected(when: object) -> None:
    with pytest.raises(ValueError, match="callback_time_zone is required"):
        proto.insert_form(lead_id="1", recipient="system", callback_time=when)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lead_id": ""}, "lead_id"),
        ({"lead_id": None}, "lead_id"),
        ({"recipient": "USERONLY"}, "recipient"),
        ({"callback_time_zone": 15}, "callback_time_zone"),
        ({"user_id": " "}, "user_id"),
        ({"comments": 5}, "comments"),
        ({"callback_time": "tomorrow"}, "callback_time"),
    ],
)
def test_insert_form_validation_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {
        "lead_id": "1",
        "recipient": "system",
        "callback_time": datetime(2026, 3, 5, 14, 30),
        "callback_time_zone": -7,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        proto.insert_form(**args)  # type: ignore[arg-type]


# --- update_form / delete_form -----------------------------------------------------------


def test_update_form_matches_the_documented_example() -> None:
    form = proto.update_form(
        9999,
        callback_time=datetime(2026, 3, 5, 14, 30),
        callback_time_zone=-7,
        comments="Customer requested callback",
    )
    assert form == {
        "callback_id": "9999",
        "callback_time": "2026-03-05 02:30 PM",
        "callback_time_zone": "-7.00",
        "comments": "Customer requested callback",
    }


def test_update_form_every_field() -> None:
    form = proto.update_form(
        "9999",
        user_id=5,
        recipient="PERSONAL",
        comments="",
        callback_time="2026-03-05 02:30 PM",
        callback_time_zone="+5.30",
        callback_status="Dismissed",
    )
    assert form == {
        "callback_id": "9999",
        "user_id": "5",
        "recipient": "personal",
        "comments": "",
        "callback_time": "2026-03-05 02:30 PM",
        "callback_time_zone": "5.30",
        "callback_status": "dismissed",
    }


def test_update_form_time_without_zone_sends_no_zone() -> None:
    form = proto.update_form("1", callback_time=datetime(2026, 3, 5, 0, 0))
    assert form == {"callback_id": "1", "callback_time": "2026-03-05 12:00 AM"}


def test_update_form_zone_alone_is_sent() -> None:
    assert proto.update_form("1", callback_time_zone=timedelta(hours=-5)) == {
        "callback_id": "1",
        "callback_time_zone": "-5.00",
    }


def test_update_form_aware_time_derives_zone() -> None:
    when = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-8)))
    form = proto.update_form("1", callback_time=when)
    assert form["callback_time_zone"] == "-8.00"


def test_update_form_with_nothing_to_change_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        proto.update_form("1")


@pytest.mark.parametrize("status", ["completed", "DELETED", "", 1])
def test_update_form_callback_status_only_dismissed(status: object) -> None:
    with pytest.raises(ValueError, match="callback_status"):
        proto.update_form("1", callback_status=status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"callback_id": ""}, "callback_id"),
        ({"callback_id": -3}, "callback_id"),
        ({"user_id": ""}, "user_id"),
        ({"recipient": "nobody"}, "recipient"),
        ({"callback_time_zone": 5.3}, "callback_time_zone"),
        ({"callback_time": "2026-02-30 02:30 PM"}, "callback_time"),
    ],
)
def test_update_form_validation_errors(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"callback_id": "1", "comments": "x"}
    args.update(kwargs)
    callback_id = args.pop("callback_id")
    with pytest.raises(ValueError, match=match):
        proto.update_form(callback_id, **args)  # type: ignore[arg-type]


def test_delete_form() -> None:
    assert proto.delete_form(9999) == {"callback_id": "9999"}
    assert proto.delete_form("abc") == {"callback_id": "abc"}


@pytest.mark.parametrize("bad", ["", " 1", None, -1])
def test_delete_form_rejects_bad_ids(bad: object) -> None:
    with pytest.raises(ValueError, match="callback_id"):
        proto.delete_form(bad)  # type: ignore[arg-type]


# --- api_error / check_success -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (6026, InvalidParameterError),  # invalid campaign ID
        (6042, InvalidParameterError),  # invalid list ID
        (6006, InvalidParameterError),  # invalid / no such user ID
        (6031, InvalidParameterError),  # invalid date format
        (6070, InvalidParameterError),  # invalid lead ID
        (6071, InvalidParameterError),  # invalid callback time format
        (6072, InvalidParameterError),  # invalid timezone
        (6073, InvalidParameterError),  # invalid callback ID
        (6074, NotFoundError),  # callback not found
        (6001, NotFoundError),  # no such lead
        (6038, NotFoundError),  # no such callback
        (6023, InvalidParameterError),  # required fields are missed
        (7230, InvalidParameterError),  # invalid limit
        (7231, InvalidParameterError),  # invalid offset
        (7237, InvalidParameterError),  # invalid callback_time
        (7258, InvalidParameterError),  # invalid limit
        (5001, AuthenticationError),  # auth token is invalid
    ],
)
@pytest.mark.parametrize("as_text", [False, True])
def test_every_documented_code_maps_to_its_class(
    code: int, cls: type[ConvosoAPIError], as_text: bool
) -> None:
    # A neutral message, so only the code decides the class.
    payload = {"success": False, "code": str(code) if as_text else code, "text": "Request failed"}
    with pytest.raises(cls) as info:
        proto.check_success(proto.SEARCH, payload)
    assert type(info.value) is cls
    assert info.value.code == code
    assert isinstance(info.value.code, int)
    assert info.value.message == "Request failed"
    assert info.value.endpoint == "callbacks/search"


@pytest.mark.parametrize(
    ("message", "cls"),
    [
        ("Invalid authentication token", AuthenticationError),
        ("Auth token is invalid", AuthenticationError),
        ("Invalid token", AuthenticationError),
        ("Auth token expired", AuthenticationError),
        ("Callback not found", NotFoundError),
        ("Lead not found", NotFoundError),
        ("Invalid callback time format", InvalidParameterError),
        ("Invalid timezone offset", InvalidParameterError),
        ("Invalid callback stage", InvalidParameterError),
        ("Something else went wrong", ConvosoAPIError),
    ],
)
def test_documented_error_messages_without_code_map_to_their_class(
    message: str, cls: type[ConvosoAPIError]
) -> None:
    error = proto.api_error(proto.UPDATE, {"success": False, "error": message})
    assert type(error) is cls
    assert error.code is None
    assert error.message == message


@pytest.mark.parametrize("key", ["text", "error", "message"])
def test_error_message_is_read_from_text_error_or_message(key: str) -> None:
    error = proto.api_error(proto.INSERT, {"success": False, key: "  Lead not found  "})
    assert error.message == "Lead not found"
    assert "Lead not found" in str(error)


def test_error_message_prefers_text_then_error_then_message() -> None:
    payload = {"success": False, "message": "third", "error": "second", "text": "first"}
    assert proto.api_error(proto.SEARCH, payload).message == "first"
    payload = {"success": False, "message": "third", "error": "  ", "text": None}
    assert proto.api_error(proto.SEARCH, payload).message == "third"


def test_error_without_any_message_has_a_generic_one() -> None:
    error = proto.api_error(proto.DELETE, {"success": False})
    assert type(error) is ConvosoAPIError
    assert error.code is None
    assert "without a message" in error.message


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (6074, 6074),
        ("6074", 6074),
        (" 6074 ", 6074),
        (None, None),
        ("", None),
        ("abc", None),
        (True, None),
        ([6074], None),
        (60.74, None),
    ],
)
def test_code_is_always_int_or_none(raw: object, code: int | None) -> None:
    error = proto.api_error(proto.SEARCH, {"success": False, "code": raw, "error": "failed"})
    assert error.code == code
    assert error.code is None or type(error.code) is int


# Regression: str.isdigit() accepts "²", and lstrip("-") accepted "--5"; int() then raised.
@pytest.mark.parametrize("raw", ["--5", "\u00b2", "\u2460", "6\u00b2", "- 5"])
def test_odd_code_strings_never_escape_as_value_error(raw: str) -> None:
    with pytest.raises(ConvosoAPIError) as info:
        proto.check_success(proto.SEARCH, {"success": False, "code": raw, "text": "failed"})
    assert info.value.code is None


@pytest.mark.parametrize(
    "flag", [False, 0, 0.0, "false", "False", "FALSE", "0", "no", " false ", ""]
)
def test_check_success_recognises_falsy_success_flags(flag: object) -> None:
    with pytest.raises(ConvosoAPIError):
        proto.check_success(proto.DELETE, {"success": flag, "error": "Callback not found"})


@pytest.mark.parametrize("flag", [False, 0, "false"])
def test_a_falsy_success_flag_without_any_text_is_still_the_apis_failure(flag: object) -> None:
    with pytest.raises(ConvosoAPIError, match="without a message") as info:
        proto.check_success(proto.DELETE, {"success": flag})
    assert type(info.value) is ConvosoAPIError


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True},
        {"success": True, "data": {"callback_id": "657"}},
        {"offset": 0, "limit": 20, "total": 0, "results": []},
        {"success": "true"},
        {"success": 1},
        {"success": "TRUE", "data": {"callback_id": "9"}},
    ],
)
def test_check_success_returns_the_object_of_a_success(payload: dict[str, object]) -> None:
    assert proto.check_success(proto.SEARCH, payload) is payload


@pytest.mark.parametrize("payload", [[], [1, 2], "ok", 1, None, True])
def test_check_success_on_a_non_object_is_malformed_and_not_retryable(payload: object) -> None:
    with pytest.raises(MalformedResponseError) as info:
        proto.check_success(proto.SEARCH, payload)
    assert info.value.retryable is False
    assert info.value.endpoint == "callbacks/search"


# --- decode_json -------------------------------------------------------------------------


def test_decode_json_parses_an_object() -> None:
    assert proto.decode_json(proto.SEARCH, b'{"success": true}') == {"success": True}


def test_decode_json_of_a_json_array_is_returned_for_check_success_to_reject() -> None:
    payload = proto.decode_json(proto.SEARCH, b"[1, 2]")
    with pytest.raises(MalformedResponseError) as info:
        proto.check_success(proto.SEARCH, payload)
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (b"", "empty body"),
        (b"   \n", "empty body"),
        (b"<html><body>502 Bad Gateway</body></html>", "not JSON"),
        (b'{"success": true, "data": {"callback_id": "6', "not JSON"),
        (b"\xff\xfe", "not JSON"),
    ],
)
def test_decode_json_of_non_json_is_malformed_and_retryable(body: bytes, kind: str) -> None:
    with pytest.raises(MalformedResponseError, match=kind) as info:
        proto.decode_json(proto.INSERT, body)
    assert info.value.retryable is True
    assert info.value.endpoint == "callbacks/insert"


# --- parse_page / peek_total ------------------------------------------------------------

#: The reference's example answer, pretty-printed as the vendor's page shows it.
REFERENCE_PAGE = {"offset": 0, "limit": 20, "total": 150, "results": [dict(REFERENCE_RECORD)]}


def test_parse_page_reads_the_counters_and_keeps_records_for_later() -> None:
    body = json.dumps(REFERENCE_PAGE, indent=2).encode()
    page = proto.parse_page(body, offset=0, limit=20)
    assert (page.offset, page.limit, page.total, len(page)) == (0, 20, 150, 1)
    assert page.decode()[0].id == "657"


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("stage", ["PENDING"], "stage must be a string, got list"),
        ("recipient", {"v": "system"}, "recipient must be a string, got dict"),
        ("callback_time", ["2026-03-05 02:30 PM"], "expected a time string, got list"),
        ("created_at", {}, "expected a time string, got dict"),
    ],
)
@pytest.mark.parametrize("others", [0, 3])  # a record alone, or among plain ones
def test_a_list_or_object_where_text_belongs_names_what_is_wrong(
    field: str, value: object, says: str, others: int
) -> None:
    # The memo lookups failed such a value as "unhashable type: 'list'".
    bad = {**REFERENCE_RECORD, field: value}
    page = {"total": others + 1, "results": [*[dict(REFERENCE_RECORD)] * others, bad]}
    with pytest.raises(MalformedResponseError, match=says):
        proto.parse_page(json.dumps(page).encode(), offset=0, limit=20).decode()


def test_parse_page_raises_the_typed_error_of_a_failure_answer() -> None:
    body = b'{"success": false, "code": 6026, "text": "Invalid campaign ID"}'
    with pytest.raises(InvalidParameterError):
        proto.parse_page(body, offset=0, limit=20)


@pytest.mark.parametrize(
    ("body", "total"),
    [
        (json.dumps(REFERENCE_PAGE, indent=2).encode(), 150),
        (json.dumps(REFERENCE_PAGE, separators=(",", ":")).encode(), 150),
        (b'{"total": "7", "results": []}', 7),
        (b'{"limit": 5, "offset": 10, "total": 0}', 0),
    ],
)
def test_peek_total_reads_a_leading_total_as_the_parse_would(body: bytes, total: int) -> None:
    assert proto.peek_total(body) == total
    assert proto.parse_page(body, offset=0, limit=20).total == total


@pytest.mark.parametrize(
    "body",
    [
        b'{"results": [{"id": "1", "total": 5}], "total": 1}',  # the records come first
        b'{"data": {"offset": 0, "total": 3, "results": []}}',  # an envelope
        b'{"success": false, "total": 3}',
        b'{"total": -1, "results": []}',
        b'{"total": 1e3, "results": []}',
        b'{"total": 9999999999, "results": []}',  # not believable: the parse will say so
        b"<html>502</html>",
        b"",
    ],
)
def test_peek_total_declines_any_other_shape(body: bytes) -> None:
    assert proto.peek_total(body) is None


_COUNTER = st.one_of(st.integers(0, 10**9), st.integers(0, 10**9).map(str))


@settings(derandomize=True, max_examples=300)
@given(
    counters=st.fixed_dictionaries({"offset": _COUNTER, "limit": _COUNTER, "total": _COUNTER}),
    order=st.permutations(["offset", "limit", "total", "results"]),
    record=st.dictionaries(st.sampled_from(["id", "total", "offset"]), _COUNTER),
)
def test_peek_total_never_disagrees_with_the_parse(
    counters: dict[str, object], order: list[str], record: dict[str, object]
) -> None:
    answer = {**counters, "results": [record]}
    body = json.dumps({key: answer[key] for key in order}).encode()
    peeked = proto.peek_total(body)
    assert peeked is None or peeked == int(str(counters["total"]))
    if order.index("total") < order.index("results"):
        assert peeked is not None  # a total ahead of the records is always found


# --- check_status ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_check_status_is_quiet_on_2xx(status: int) -> None:
    assert proto.check_status(proto.SEARCH, status, {}, b"", NOW) is None


@pytest.mark.parametrize("status", [300, 301, 308, 399])
def test_check_status_every_3xx_is_a_redirect_error(status: int) -> None:
    headers = {"Location": "https://elsewhere.test/v1?x=1"}
    with pytest.raises(ConvosoAPIError, match=r"a redirect to https://elsewhere\.test/v1;") as info:
        proto.check_status(proto.SEARCH, status, headers, b"", NOW)
    assert (type(info.value), info.value.status) == (ConvosoAPIError, status)
    # A fragment is left out as the query string is: either may carry what it should not.
    headers = {"Location": "https://elsewhere.test/v1#auth_token=x?y"}
    with pytest.raises(ConvosoAPIError, match=r"a redirect to https://elsewhere\.test/v1;"):
        proto.check_status(proto.SEARCH, status, headers, b"", NOW)


@pytest.mark.parametrize("status", [401, 403])
def test_check_status_401_and_403_are_authentication_errors(status: int) -> None:
    body = b'{"success": false, "error": "Invalid authentication token"}'
    with pytest.raises(AuthenticationError) as info:
        proto.check_status(proto.SEARCH, status, {}, body, NOW)
    assert info.value.status == status
    assert info.value.message == "Invalid authentication token"
    assert f"HTTP {status}" in str(info.value)


def test_check_status_error_without_body_message_names_the_status() -> None:
    with pytest.raises(AuthenticationError, match="HTTP 401"):
        proto.check_status(proto.SEARCH, 401, {}, b"<html>nope</html>", NOW)


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 599])
def test_check_status_5xx_is_a_server_error(status: int) -> None:
    with pytest.raises(ServerError) as info:
        proto.check_status(proto.SEARCH, status, {}, b"oops", NOW)
    assert info.value.status == status


def test_check_status_429_with_retry_after_seconds() -> None:
    with pytest.raises(RateLimitError) as info:
        proto.check_status(proto.SEARCH, 429, {"Retry-After": "7"}, b"", NOW)
    assert info.value.retry_after == 7.0
    assert info.value.status == 429


def test_check_status_429_with_retry_after_http_date() -> None:
    headers = {"Retry-After": "Thu, 05 Mar 2026 12:00:30 GMT"}
    with pytest.raises(RateLimitError) as info:
        proto.check_status(proto.SEARCH, 429, headers, b"", NOW)
    assert info.value.retry_after == pytest.approx(30.0)


def test_check_status_429_without_retry_after() -> None:
    with pytest.raises(RateLimitError) as info:
        proto.check_status(proto.SEARCH, 429, {}, b"", NOW)
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (b'{"error": "Callback not found"}', NotFoundError),
        (b'{"error": "Invalid callback stage"}', InvalidParameterError),
        (b"Bad Request", ConvosoAPIError),
        (b"[]", ConvosoAPIError),
    ],
)
def test_check_status_other_4xx_is_classified_by_message(
    body: bytes, cls: type[ConvosoAPIError]
) -> None:
    with pytest.raises(cls) as info:
        proto.check_status(proto.UPDATE, 404, {}, body, NOW)
    assert type(info.value) is cls
    assert info.value.status == 404


# A wrong base_url meets a proxy's or gateway's 404. Taken for a missing callback, code
# that reads NotFoundError as "already deleted" would pass over a delete that never ran.
@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body><h1>404 Not Found</h1></body></html>",
        b"404: Not Found",
        b'{"message": "Not Found"}',
        b'{"error": "404 page not found"}',
        # A gateway echoing the status as its code: 404 is no vendor code (those are 5001,
        # 6xxx, 7xxx), so the body still names nothing missing.
        b'{"code": 404, "message": "Not Found"}',
        b'{"code": "404", "error": "Not Found"}',
    ],
)
def test_check_status_a_bare_404_is_a_missing_endpoint_not_a_missing_callback(
    body: bytes,
) -> None:
    with pytest.raises(ConvosoAPIError, match="check base_url") as info:
        proto.check_status(proto.DELETE, 404, {}, body, NOW)
    assert type(info.value) is ConvosoAPIError
    assert info.value.status == 404


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": false, "code": 6074, "error": "Not Found"}',
        b'{"success": false, "error": "Callback not found"}',
        b'{"code": "6038", "text": "not found"}',
    ],
)
def test_check_status_a_404_naming_a_missing_callback_is_not_found(body: bytes) -> None:
    with pytest.raises(NotFoundError) as info:
        proto.check_status(proto.DELETE, 404, {}, body, NOW)
    assert info.value.status == 404


def test_check_status_4xx_keeps_the_vendor_code_from_the_body() -> None:
    body = b'{"success": false, "code": 6026, "text": "Campaign does not exist"}'
    with pytest.raises(InvalidParameterError) as info:
        proto.check_status(proto.SEARCH, 400, {}, body, NOW)
    assert info.value.code == 6026


# The live API's auth failure ({"code": 5001, "text": ...}) may come with HTTP 401/403, and a
# 500 or 429 may carry a vendor code too: the code is the body's, whatever the status.
@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (401, AuthenticationError),
        (403, AuthenticationError),
        (429, RateLimitError),
        (500, ServerError),
    ],
)
@pytest.mark.parametrize("code", [5001, "5001"])
def test_check_status_keeps_the_vendor_code_on_every_error_status(
    status: int, cls: type[ConvosoAPIError], code: object
) -> None:
    body = json.dumps({"success": False, "code": code, "text": "Auth token is invalid"}).encode()
    with pytest.raises(cls) as info:
        proto.check_status(proto.SEARCH, status, {}, body, NOW)
    assert info.value.code == 5001
    assert info.value.message == "Auth token is invalid"
    assert info.value.status == status


def test_a_body_behind_a_byte_order_mark_is_read_as_json() -> None:
    """A PHP script saved with a BOM prints it before sound JSON: page, answer and error
    body are read as if it were not there."""
    bom = b"\xef\xbb\xbf"
    page = {"offset": "0", "limit": "20", "total": "1", "results": [dict(REFERENCE_RECORD)]}
    parsed = proto.parse_page(bom + json.dumps(page).encode(), offset=0, limit=20)
    assert [callback.id for callback in parsed.page().results] == [REFERENCE_RECORD["id"]]
    assert proto.json_answer(proto.DELETE, bom + b'{"success": true}') == {"success": True}
    error = {"success": False, "code": 5001, "text": "Auth token is invalid"}
    with pytest.raises(AuthenticationError, match="Auth token is invalid"):
        proto.check_status(proto.SEARCH, 401, {}, bom + json.dumps(error).encode(), NOW)
    with pytest.raises(MalformedResponseError, match="not JSON"):
        proto.decode_json(proto.SEARCH, bom + b"<html>")  # a BOM does not make JSON of HTML


def test_a_body_behind_many_byte_order_marks_is_read_or_refused_with_a_typed_error() -> None:
    """Each BOM was dropped by a recursive call: a body of a few thousand of them (10 kB)
    escaped as a RecursionError, and an error body behind two lost its code and text."""
    bom = b"\xef\xbb\xbf"
    assert proto.json_answer(proto.DELETE, bom * 5000 + b'{"success": true}') == {"success": True}
    with pytest.raises(MalformedResponseError, match="not JSON") as info:
        proto.decode_json(proto.SEARCH, bom * 5000 + b"<html>")
    assert info.value.retryable
    error = {"success": False, "code": 6074, "text": "Callback not found"}
    with pytest.raises(NotFoundError, match="Callback not found"):
        proto.check_status(proto.DELETE, 404, {}, bom * 2 + json.dumps(error).encode(), NOW)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0.0),
        ("2.5", 2.5),
        (" 120 ", 120.0),
        ("-3", 0.0),
        ("Thu, 05 Mar 2026 12:01:00 GMT", 60.0),
        ("Thu, 05 Mar 2026 11:00:00 GMT", 0.0),  # in the past
        (None, None),
        ("", None),
        ("soon", None),
        # RFC 9110 5.6.7: a recipient accepts the obsolete RFC 850 and asctime forms too
        ("Thursday, 05-Mar-26 12:01:00 GMT", 60.0),
        ("Thu Mar  5 12:01:00 2026", 60.0),
        ("Thu Mar 15 12:00:00 2026", 864000.0),
        ("Thu, 05 Mar 2026 12:01:00 -0000", None),  # RFC 2822 "unknown zone": naive
        ("Thu Mar  5 12:01:00 2026 tomorrow", None),
        ("inf", None),  # a caller sleeping on the hint would never wake
        ("1e400", None),
        ("NaN", None),
    ],
)
def test_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert proto.retry_after_seconds(value, NOW) == seconds


# --- decode_callback_id ------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True, "data": {"callback_id": "657"}},
        {"success": True, "data": {"callback_id": 657}},
        {"success": True, "data": {"id": "657"}},
        {"success": True, "callback_id": "657"},
        {"success": True, "id": 657},
        {"success": True, "data": {"callback_id": ""}, "id": "657"},
        {"success": True, "data": {"callback_id": 657.0}},  # as a search record reads it
    ],
)
def test_decode_callback_id_finds_the_id(payload: dict[str, object]) -> None:
    assert proto.decode_callback_id(proto.INSERT, payload, None) == "657"


def test_callback_id_answer_reads_a_body() -> None:
    body = b'{"success": true, "data": {"callback_id": 657}}'
    assert proto.callback_id_answer(proto.INSERT, body) == "657"
    assert proto.callback_id_answer(proto.UPDATE, b'{"success": true}', "9999") == "9999"
    # No flag, but the id: a write the answer says was done (README, "Endpoints").
    assert proto.callback_id_answer(proto.INSERT, b'{"callback_id": "657"}') == "657"
    assert proto.callback_id_answer(proto.UPDATE, b'{"id": 657}', "9999") == "657"
    with pytest.raises(NotFoundError):
        proto.callback_id_answer(proto.INSERT, b'{"success": false, "code": 6001}')
    with pytest.raises(MalformedResponseError):
        proto.callback_id_answer(proto.INSERT, b'{"success": true}')


# Flagless error bodies whose text is only in "message" (the reference says to accept
# text, error and message): update must not report them as a success with the fallback
# id, nor delete as done.
@pytest.mark.parametrize(
    ("body", "cls"),
    [
        (b'{"message": "Callback not found"}', NotFoundError),
        (b'{"message": "Invalid callback time format"}', InvalidParameterError),
        (b'{"message": "Invalid authentication token"}', AuthenticationError),
        (b'{"message": "Something went wrong"}', ConvosoAPIError),
    ],
)
def test_a_flagless_error_with_only_a_message_fails_update_and_delete(
    body: bytes, cls: type[ConvosoAPIError]
) -> None:
    with pytest.raises(cls) as update:
        proto.callback_id_answer(proto.UPDATE, body, "9999")
    assert update.value.message == json.loads(body)["message"]
    with pytest.raises(cls):
        proto.json_answer(proto.DELETE, body)


# The documented success bodies, with a "message" added, stay successes.
@pytest.mark.parametrize(
    "body",
    [
        b'{"success": true, "message": "Callback deleted"}',
        b'{"success": true, "data": {"callback_id": "9999"}, "message": "Callback updated"}',
        b'{"data": {"callback_id": "9999"}, "message": "Callback updated"}',
    ],
)
def test_a_success_body_that_carries_a_message_is_still_a_success(body: bytes) -> None:
    assert proto.callback_id_answer(proto.UPDATE, body, "9999") == "9999"
    assert proto.json_answer(proto.DELETE, body) == json.loads(body)


def test_a_search_page_that_carries_a_message_is_still_a_page() -> None:
    body = b'{"offset": 0, "limit": 20, "total": 0, "results": [], "message": "No callbacks"}'
    assert proto.parse_page(body, offset=0, limit=20).total == 0


# A "success" flag that is neither true nor false ("failed", "error", a list...) was taken
# for a success: delete reported done and update returned its own id, with the server's
# error text thrown away. A body that carries an error text or code is that error...
def _every_answer(body: bytes) -> tuple[Callable[[], object], ...]:
    """``body`` read as each endpoint's answer: the same flag rules hold for all four."""
    return (
        lambda: proto.json_answer(proto.DELETE, body),
        lambda: proto.callback_id_answer(proto.UPDATE, body, "9999"),
        lambda: proto.callback_id_answer(proto.INSERT, body),
        lambda: proto.parse_page(body, offset=0, limit=20),
    )


@pytest.mark.parametrize(
    ("payload", "cls"),
    [
        ({"success": "failed", "error": "Callback not found"}, NotFoundError),
        ({"success": "error", "code": 6073, "text": "Invalid callback ID"}, InvalidParameterError),
        ({"success": [], "code": "5001", "text": "Auth token is invalid"}, AuthenticationError),
        ({"success": {}, "message": "Something went wrong"}, ConvosoAPIError),
    ],
)
def test_a_flag_neither_true_nor_false_with_an_error_text_is_that_error(
    payload: dict[str, object], cls: type[ConvosoAPIError]
) -> None:
    for answer in _every_answer(json.dumps(payload).encode()):
        with pytest.raises(cls) as info:
            answer()
        assert type(info.value) is cls
        assert info.value.message == proto._message(payload)


# ... and one without either is not the documented JSON.
@pytest.mark.parametrize(
    "payload",
    [
        {"success": "maybe"},
        {"success": []},
        {"success": {"ok": True}},
        {"success": "pending", "data": {"callback_id": "9999"}},
    ],
)
def test_a_flag_neither_true_nor_false_is_malformed(payload: dict[str, object]) -> None:
    for answer in _every_answer(json.dumps(payload).encode()):
        with pytest.raises(MalformedResponseError, match="success") as info:
            answer()
        assert info.value.retryable is False


def test_a_long_flag_quoted_in_the_error_cannot_leave_part_of_the_token_behind() -> None:
    """The flag's text was cut at 40 characters: a server echoing the form into it left
    the token cut in two, which redaction (looking for the whole token) could not find."""
    token = "s3cr3tT0kenABCDEFGHIJKLMNOPQRSTUV"
    body = json.dumps({"success": f"auth_token={token}&callback_id=1"}).encode()
    for answer in _every_answer(body):
        with pytest.raises(MalformedResponseError, match="success") as info:
            answer()
        assert "neither true nor false: a str of " in str(info.value)  # described, not quoted
        assert "callback_id" not in str(info.value)
        info.value.redact(token)
        assert token[:8] not in str(info.value)
        assert token[:8] not in repr(info.value)
    with pytest.raises(MalformedResponseError, match="'maybe'"):
        proto.json_answer(proto.DELETE, b'{"success": "maybe"}')  # a short one is quoted


@pytest.mark.parametrize("flag", [True, "true", " TRUE ", 1, "1", "yes", "ok"])
def test_true_success_flags_are_a_success(flag: object) -> None:
    payload = {"success": flag, "data": {"callback_id": "657"}}
    assert proto.check_success(proto.INSERT, payload) is payload


# A write is done only when its answer says so: the documented bodies carry success: true
# (or, tolerated, a data object). {} is not the documented answer of any endpoint, and
# delete took it for done, update for done with its own id.
@pytest.mark.parametrize(
    "body", [b"{}", b'{"success": null}', b'{"status": "queued"}', b'{"data": null}']
)
def test_a_write_answer_that_does_not_say_it_succeeded_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedResponseError) as update:
        proto.callback_id_answer(proto.UPDATE, body, "9999")
    assert update.value.retryable is False
    with pytest.raises(MalformedResponseError):
        proto.delete_answer(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"success": true}',
        b'{"success": "true"}',
        b'{"success": 1, "message": "Callback deleted"}',
        b'{"data": {"callback_id": "9999"}}',
    ],
)
def test_delete_answer_accepts_an_answer_that_says_it_succeeded(body: bytes) -> None:
    assert proto.delete_answer(body) is None


# The id an insert returns is one the client takes back (update, delete): text that is
# blank, padded, or a negative number is not an id, and was returned as the new id.
@pytest.mark.parametrize("value", ["  ", " 657", "657\n", -5, 657.5])
def test_decode_callback_id_refuses_what_is_not_an_id(value: object) -> None:
    payload = {"success": True, "data": {"callback_id": value}}
    with pytest.raises(MalformedResponseError, match="callback_id"):
        proto.decode_callback_id(proto.INSERT, payload, None)


def test_decode_callback_id_uses_the_fallback_for_update() -> None:
    assert proto.decode_callback_id(proto.UPDATE, {"success": True}, "9999") == "9999"


@pytest.mark.parametrize(
    "payload",
    [{"success": True}, {"success": True, "data": {"callback_id": True}}, {"data": []}],
)
def test_decode_callback_id_without_an_id_is_malformed(payload: dict[str, object]) -> None:
    with pytest.raises(MalformedResponseError, match="callback_id"):
        proto.decode_callback_id(proto.INSERT, payload, None)


def test_an_insert_answered_success_without_an_id_says_it_was_likely_created() -> None:
    # A caller told only "malformed" might insert again, and the customer be dialled twice.
    with pytest.raises(MalformedResponseError, match="most likely created") as info:
        proto.decode_callback_id(proto.INSERT, {"success": True, "data": {}}, None)
    assert not info.value.retryable
    with pytest.raises(MalformedResponseError) as failed:
        proto.decode_callback_id(proto.INSERT, {"data": []}, None)
    assert "most likely created" not in str(failed.value)


# --- exceptions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ConvosoAPIError("boom", code=1, endpoint="callbacks/search", status=200),
        AuthenticationError("Invalid authentication token", endpoint="x", status=401),
        NotFoundError("Callback not found", code=6074, endpoint="callbacks/update"),
        InvalidParameterError("Invalid timezone offset", code=6072),
        ServerError("HTTP 503", endpoint="callbacks/search", status=503),
        RateLimitError("slow down", status=429),
    ],
)
def test_api_errors_pickle_round_trip(error: ConvosoAPIError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert clone.code == error.code
    assert clone.message == error.message
    assert clone.endpoint == error.endpoint
    assert clone.status == error.status
    assert str(clone) == str(error)


def test_api_error_str_names_endpoint_code_and_non_200_status() -> None:
    error = ConvosoAPIError("Callback not found", code=6074, endpoint="callbacks/delete")
    assert str(error) == "callbacks/delete: Callback not found (code 6074)"
    error = ServerError("Bad gateway", endpoint="callbacks/search", status=502)
    assert str(error) == "callbacks/search: Bad gateway [HTTP 502]"
    # A body without text leaves the status as the message: it is said once, not twice.
    with pytest.raises(ServerError) as info:
        proto.check_status(proto.SEARCH, 503, {}, b"", NOW)
    assert str(info.value) == "callbacks/search: HTTP 503"
    assert (info.value.message, info.value.status) == ("HTTP 503", 503)
    body = b'{"success": false, "code": 77}'
    with pytest.raises(ServerError) as info:
        proto.check_status(proto.SEARCH, 500, {}, body, NOW)
    assert str(info.value) == "callbacks/search: HTTP 500 (code 77)"
    assert str(ConvosoAPIError("bare")) == "bare"
    # A failure a 200 carried (success: false) shows no status: 200 is not the failure.
    error = proto.api_error(proto.UPDATE, {"success": False, "code": 6074, "text": "No such"})
    assert (str(error), error.status) == ("callbacks/update: No such (code 6074)", 200)
    # The errors that are not the server's answer name their endpoint too.
    error = MalformedResponseError("not JSON", endpoint="callbacks/search")
    assert str(error) == "callbacks/search: not JSON"
    error = TransportError("refused", endpoint="callbacks/insert", sent=False)
    assert str(error) == "callbacks/insert: refused"
    assert str(MalformedResponseError("bare")) == str(TransportError("bare")) == "bare"


def test_rate_limit_error_pickle_keeps_retry_after() -> None:
    error = RateLimitError("slow down", status=429)
    error.retry_after = 7.0
    assert pickle.loads(pickle.dumps(error)).retry_after == 7.0


@pytest.mark.parametrize(
    "error",
    [
        MalformedResponseError("bad", endpoint="callbacks/search", retryable=True),
        TransportError("refused", endpoint="callbacks/insert", sent=False, retryable=True),
        ConvosoError("plain"),
    ],
)
def test_other_errors_pickle_round_trip(error: ConvosoError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    for attr in ("endpoint", "retryable", "sent"):
        if hasattr(error, attr):
            assert getattr(clone, attr) == getattr(error, attr)


def test_pagination_limit_error_pickle_round_trip() -> None:
    error = PaginationLimitError("too many", total=100_000, reachable=55_000)
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is PaginationLimitError
    assert (clone.total, clone.reachable, str(clone)) == (100_000, 55_000, "too many")
