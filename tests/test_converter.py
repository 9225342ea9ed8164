"""Decoding ``callbacks/search`` answers: the recorded bodies and every live-API quirk."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoso_async import (
    Callback,
    CallbackPage,
    ConvosoError,
    MalformedResponseError,
    Recipient,
    Stage,
    _converter,
)
from convoso_async import _protocol as proto
from convoso_async._converter import converter, parse_time

from .samples import REFERENCE_RECORD

# The response example of POST /callbacks/search, verbatim from the reference.
DOCUMENTED_PAGE: dict[str, Any] = {
    "offset": 0,
    "limit": 20,
    "total": 150,
    "results": [
        dict(REFERENCE_RECORD),
        {
            "id": "658",
            "lead_id": "12346",
            "list_id": "333",
            "campaign_id": "111",
            "status": "ACTIVE",
            "created_at": "2026-03-02 11:00:00",
            "callback_time": "2026-03-04 10:00 AM",
            "modified_at": "2026-03-03 12:00:00",
            "user": "John Doe",
            "recipient": "personal",
            "comments": "Follow-up on previous call",
            "stage": "COMPLETED",
            "user_name": "john.doe@company.com",
            "campaign_name": "Sales Campaign",
        },
    ],
}


def page_of(*records: dict[str, Any], **root: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"offset": 0, "limit": 20, "total": len(records)}
    body.update(root)
    body["results"] = list(records)
    return body


def decode(payload: Any, *, offset: int = 0, limit: int = 20) -> CallbackPage:
    return proto.decode_page(proto.check_success(proto.SEARCH, payload), offset=offset, limit=limit)


def one(record: dict[str, Any]) -> Callback:
    return decode(page_of({"id": "1", **record})).results[0]


# --- the documented page -----------------------------------------------------------------


def test_documented_page_decodes_every_field() -> None:
    page = decode(copy.deepcopy(DOCUMENTED_PAGE))
    assert (page.offset, page.limit, page.total) == (0, 20, 150)
    assert len(page.results) == 2
    first, second = page.results
    assert first == Callback(
        id="657",
        lead_id="12345",
        list_id="333",
        campaign_id="111",
        status="ACTIVE",
        created_at=datetime(2026, 3, 3, 10, 0, 0),
        callback_time=datetime(2026, 3, 5, 14, 30),
        modified_at=datetime(2026, 3, 3, 14, 30, 0),
        user="Jane Smith",
        recipient=Recipient.SYSTEM,
        comments="Customer requested callback",
        stage=Stage.PENDING,
        user_name="jane.smith@company.com",
        campaign_name="Sales Campaign",
    )
    assert first.recipient is Recipient.SYSTEM
    assert first.stage is Stage.PENDING
    assert second.id == "658"
    assert second.callback_time == datetime(2026, 3, 4, 10, 0)
    assert second.recipient is Recipient.PERSONAL
    assert second.stage is Stage.COMPLETED
    assert dict(first.extra) == {}
    assert page.next_offset == 2


def test_results_are_a_tuple_of_callbacks() -> None:
    page = decode(copy.deepcopy(DOCUMENTED_PAGE))
    assert isinstance(page.results, tuple)
    assert all(isinstance(r, Callback) for r in page.results)


# --- envelope and counters ---------------------------------------------------------------


def test_page_inside_a_data_envelope_with_string_counters() -> None:
    inner = copy.deepcopy(DOCUMENTED_PAGE)
    inner.update(offset="40", limit="20", total="12250")
    page = decode({"success": True, "data": inner}, offset=40)
    assert (page.offset, page.limit, page.total) == (40, 20, 12250)
    assert [r.id for r in page.results] == ["657", "658"]


def test_counters_as_strings_without_envelope() -> None:
    page = decode(page_of({"id": "1"}, offset=" 5 ", limit="100", total="6"))
    assert (page.offset, page.limit, page.total) == (5, 100, 6)


def test_missing_offset_and_limit_fall_back_to_what_was_asked() -> None:
    page = decode({"total": 1, "results": [{"id": "1"}]}, offset=60, limit=30)
    assert (page.offset, page.limit) == (60, 30)


def test_no_results_but_total_zero_is_an_empty_page() -> None:
    page = decode({"success": True, "data": {"total": "0"}})
    assert page.results == ()
    assert page.total == 0


def test_empty_results_list() -> None:
    page = decode(page_of(total=0))
    assert page.results == ()


@pytest.mark.parametrize(
    "total",
    [-1, "-1", "many", None, 1.5, "1e3", True, [], 1_000_000_001, "99999999999"],
)
def test_bad_total_is_malformed(total: object) -> None:
    with pytest.raises(MalformedResponseError, match="total"):
        decode(page_of({"id": "1"}, total=total))


def test_missing_total_is_malformed() -> None:
    with pytest.raises(MalformedResponseError, match="total"):
        decode({"results": []})


@pytest.mark.parametrize("field", ["offset", "limit"])
@pytest.mark.parametrize("value", [-20, "x", 2.0])
def test_bad_offset_or_limit_is_malformed(field: str, value: object) -> None:
    with pytest.raises(MalformedResponseError, match=field):
        decode(page_of({"id": "1"}, **{field: value}))


@pytest.mark.parametrize("value", [None, ""])
def test_null_or_empty_offset_and_limit_fall_back_to_what_was_asked(value: object) -> None:
    page = proto.decode_page(
        {"total": 1, "offset": value, "limit": value, "results": [{"id": "1"}]},
        offset=40,
        limit=20,
    )
    assert (page.offset, page.limit) == (40, 20)


# Regression: str.isdigit() accepts "²" but int() does not.
@pytest.mark.parametrize("total", ["\u00b2", "\u2460", "1\u00b2"])
def test_digit_like_unicode_total_is_malformed_not_value_error(total: str) -> None:
    with pytest.raises(MalformedResponseError, match="total"):
        decode(page_of(total=total))


@pytest.mark.parametrize(
    "payload",
    [
        {"total": 1, "results": "657"},
        {"total": 1, "results": {"id": "657"}},
        {"total": 1},
        {"success": True, "data": {"total": 1}},
        {"success": True, "data": []},
        {},
    ],
)
def test_results_missing_or_not_a_list_is_malformed(payload: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError, match="results"):
        decode(payload)


@pytest.mark.parametrize("record", ["657", 657, None, ["657"]])
def test_a_record_that_is_not_an_object_is_malformed(record: object) -> None:
    with pytest.raises(MalformedResponseError, match="record"):
        decode({"total": 1, "results": [record]})


@pytest.mark.parametrize("record", [{}, {"id": None}, {"id": ""}, {"lead_id": "1"}])
def test_a_record_without_id_is_malformed(record: dict[str, Any]) -> None:
    with pytest.raises(MalformedResponseError, match="id"):
        decode({"total": 1, "results": [record]})


def test_malformed_page_error_is_not_retryable_and_names_the_endpoint() -> None:
    with pytest.raises(MalformedResponseError) as info:
        decode({"total": 1, "results": [{"id": "1", "callback_time": "next tuesday"}]})
    assert info.value.retryable is False
    assert info.value.endpoint == "callbacks/search"
    assert isinstance(info.value.__cause__, ValueError)


# --- record fields -----------------------------------------------------------------------


def test_numbers_where_strings_are_documented_become_text() -> None:
    record = one({"id": 657, "lead_id": 12345, "list_id": 333, "campaign_id": 111, "user": 7})
    assert (record.id, record.lead_id, record.list_id, record.campaign_id, record.user) == (
        "657",
        "12345",
        "333",
        "111",
        "7",
    )


def test_a_whole_float_where_a_string_is_documented_is_its_integer_text() -> None:
    # JSON 657.0 is the id "657", not "657.0": the record must still match the one the
    # id is looked up, updated or deleted by. A fraction is kept as it is.
    record = one({"id": 657.0, "lead_id": 12345.0, "user": -7.0, "comments": 1.5})
    assert (record.id, record.lead_id, record.user, record.comments) == (
        "657",
        "12345",
        "-7",
        "1.5",
    )


@pytest.mark.parametrize("value", [True, ["1"], {"a": 1}])
def test_non_scalar_where_a_string_is_documented_is_malformed(value: object) -> None:
    with pytest.raises(MalformedResponseError):
        one({"lead_id": value})


def test_missing_optional_fields_are_none() -> None:
    record = one({})
    assert record == Callback("1")


def test_null_fields_are_none() -> None:
    record = one({"lead_id": None, "stage": None, "recipient": None, "callback_time": None})
    assert (record.lead_id, record.stage, record.recipient, record.callback_time) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    "value",
    [
        *("", "  ", None, "0000-00-00 00:00:00", "0000-00-00", "0000-00-00 00:00"),
        # MySQL's zero date as other writers spell it
        *("0000-00-00T00:00:00", "0000-00-00 00:00:00.000000", "0000-00-00 12:00 AM"),
        # and in ISO 8601 with a zone, as the live API writes times on other endpoints
        *("0000-00-00T00:00:00Z", "0000-00-00T00:00:00-0800", "0000-00-00 00:00:00+00:00"),
    ],
)
@pytest.mark.parametrize("field", ["created_at", "modified_at", "callback_time"])
def test_never_set_times_are_none(field: str, value: str | None) -> None:
    assert getattr(one({field: value}), field) is None


def test_an_empty_text_field_stays_empty_unlike_an_empty_time() -> None:
    # "" is "never set" only for a time; a text field keeps what the server sent.
    record = one({"comments": "", "user": "", "campaign_name": None, "callback_time": ""})
    assert (record.comments, record.user) == ("", "")
    assert record.campaign_name is None
    assert record.callback_time is None


@pytest.mark.parametrize(
    "text",
    [
        *("0000-00-00 12:00 PM", "0000-00-00 12:00:00", "0000-00-00 12:00", "0000-00-00 00:01"),
        *("0000-00-00T12:00:00Z", "0000-00-00T00:01:00+05:30"),
    ],
)
def test_a_zero_date_with_a_time_other_than_midnight_is_not_a_time(text: str) -> None:
    # Only a 12-hour clock's 12:00 AM is midnight; 24-hour 12:00 is noon, so not "never set".
    with pytest.raises(ValueError):
        parse_time(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-05 02:30 PM", datetime(2026, 3, 5, 14, 30)),
        ("2026-03-05 02:30 pm", datetime(2026, 3, 5, 14, 30)),
        ("2026-03-05 02:30PM", datetime(2026, 3, 5, 14, 30)),
        ("2026-03-05 12:00 AM", datetime(2026, 3, 5, 0, 0)),
        ("2026-03-05 12:00 PM", datetime(2026, 3, 5, 12, 0)),
        ("2026-03-05 11:59 PM", datetime(2026, 3, 5, 23, 59)),
        ("2026-03-05 14:30:00", datetime(2026, 3, 5, 14, 30)),
        ("2026-03-05 00:00:00", datetime(2026, 3, 5, 0, 0)),
        (
            "2016-11-17T10:54:21-0800",
            datetime(2016, 11, 17, 10, 54, 21, tzinfo=timezone(timedelta(hours=-8))),
        ),
        (
            "2016-11-17T10:54:21+05:30",
            datetime(2016, 11, 17, 10, 54, 21, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
    ],
)
def test_callback_time_spellings(text: str, expected: datetime) -> None:
    value = one({"callback_time": text}).callback_time
    assert value == expected
    assert value is not None
    assert value.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # PHP's "g:i A" (12-hour hour without its leading zero)
        ("2026-03-05 2:30 PM", datetime(2026, 3, 5, 14, 30)),
        ("2026-03-05 9:05 am", datetime(2026, 3, 5, 9, 5)),
        ("2026-03-05 2:30PM", datetime(2026, 3, 5, 14, 30)),
        # and PHP's "G:i:s" (24-hour)
        ("2026-03-05 2:30:00", datetime(2026, 3, 5, 2, 30)),
        ("2026-03-05T9:05:07", datetime(2026, 3, 5, 9, 5, 7)),
    ],
)
@pytest.mark.parametrize("field", ["created_at", "modified_at", "callback_time"])
def test_a_one_digit_hour_is_read(field: str, text: str, expected: datetime) -> None:
    assert getattr(one({field: text}), field) == expected


@pytest.mark.parametrize("text", ["2026-03-05 2:3 PM", "2026-03-05 0:30 AM", "2026-03-05 2 PM"])
def test_a_one_digit_hour_is_still_checked(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_a_one_digit_hour_is_read_on_every_decode_path() -> None:
    # A full record takes the record path; two records with the same fields the column path.
    record = {**REFERENCE_RECORD, "callback_time": "2026-03-05 2:30 PM"}
    record_path = _converter._structure_fast(dict(record), _converter._fields_of)
    columns = _converter._structure_columns([dict(record), dict(REFERENCE_RECORD)])
    assert columns is not None
    assert record_path.callback_time == columns[0].callback_time == datetime(2026, 3, 5, 14, 30)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-05", datetime(2026, 3, 5)),  # a date alone: midnight, as documented
        ("20260305T143000", datetime(2026, 3, 5, 14, 30)),
        ("2026-W10-4T10:00", datetime(2026, 3, 5, 10, 0)),  # week 10, Thursday
    ],
)
@pytest.mark.parametrize("field", ["created_at", "modified_at", "callback_time"])
def test_other_iso_8601_forms_are_read_as_the_docstring_says(
    field: str, text: str, expected: datetime
) -> None:
    assert getattr(one({field: text}), field) == expected


def test_iso_offset_is_kept_aware_and_local_times_stay_naive() -> None:
    record = one({"created_at": "2016-11-17T10:54:21-0800", "modified_at": "2026-03-03 14:30:00"})
    assert record.created_at is not None
    assert record.created_at.utcoffset() == timedelta(hours=-8)
    assert record.modified_at is not None
    assert record.modified_at.tzinfo is None


@pytest.mark.parametrize(
    "text",
    [
        "next tuesday",
        "2026-03-05 13:30 PM",
        "2026-03-05 00:30 AM",
        "2026-02-30 10:00:00",
        "05/03/2026 10:00",
        "PM",
    ],
)
@pytest.mark.parametrize("field", ["created_at", "modified_at", "callback_time"])
def test_unparseable_time_is_malformed_never_guessed(field: str, text: str) -> None:
    with pytest.raises(MalformedResponseError, match="record"):
        one({field: text})


@pytest.mark.parametrize("value", [1772700000, 1.5, True, ["2026-03-05"]])
def test_time_that_is_not_a_string_is_malformed(value: object) -> None:
    with pytest.raises(MalformedResponseError):
        one({"callback_time": value})


@pytest.mark.parametrize(
    ("raw", "member"),
    [
        ("PENDING", Stage.PENDING),
        ("pending", Stage.PENDING),
        ("Dismissed", Stage.DISMISSED),
        ("PASTDUE", Stage.PAST_DUE),
        ("PAST_DUE", Stage.PAST_DUE),
        ("completed", Stage.COMPLETED),
    ],
)
def test_stage_spellings_become_members(raw: str, member: Stage) -> None:
    assert one({"stage": raw}).stage is member


def test_unknown_stage_is_kept_as_its_raw_string() -> None:
    stage = one({"stage": "MISSED"}).stage
    assert stage == "MISSED"
    assert type(stage) is str
    assert not isinstance(stage, Stage)


@pytest.mark.parametrize(
    ("raw", "member"),
    [("system", Recipient.SYSTEM), ("System", Recipient.SYSTEM), ("PERSONAL", Recipient.PERSONAL)],
)
def test_recipient_spellings_become_members(raw: str, member: Recipient) -> None:
    assert one({"recipient": raw}).recipient is member


def test_unknown_recipient_is_kept_as_its_raw_string() -> None:
    recipient = one({"recipient": "USERONLY"}).recipient
    assert recipient == "USERONLY"
    assert type(recipient) is str


@pytest.mark.parametrize("field", ["stage", "recipient"])
def test_enum_field_that_is_not_a_string_is_malformed(field: str) -> None:
    with pytest.raises(MalformedResponseError):
        one({field: 3})


def test_repeated_enum_values_decode_consistently() -> None:
    # The lookup table caches spellings; the second page must see the same answers.
    for _ in range(2):
        records = decode(
            page_of(
                {"id": "1", "stage": "Dismissed", "recipient": "USERONLY"},
                {"id": "2", "stage": "MISSED", "recipient": "System"},
            )
        ).results
        assert records[0].stage is Stage.DISMISSED
        assert records[0].recipient == "USERONLY"
        assert records[1].stage == "MISSED"
        assert records[1].recipient is Recipient.SYSTEM


def test_many_distinct_unknown_stage_spellings_are_all_kept() -> None:
    # The spelling cache is bounded; values past its bound must still decode correctly.
    records = [{"id": str(i), "stage": f"CUSTOM_{i}"} for i in range(1100)]
    records.append({"id": "last", "stage": "pastdue"})
    page = decode(page_of(*records))
    assert [r.stage for r in page.results[:-1]] == [f"CUSTOM_{i}" for i in range(1100)]
    assert page.results[-1].stage is Stage.PAST_DUE
    # ...and the cache does not grow with every spelling a server invents.
    assert len(_converter._STAGES) <= 1000


def test_extra_fields_are_kept_in_extra_and_documented_ones_are_not() -> None:
    extras = {
        "context": {"a": [1, 2]},
        "callback_seen": "1",
        "class": None,
        "phone_number": "5551234567",
        "directory_name": "x",
    }
    record = one({"lead_id": "12345", "stage": "PENDING", **extras})
    assert dict(record.extra) == extras
    assert "id" not in record.extra
    assert "lead_id" not in record.extra
    assert "stage" not in record.extra
    assert record.lead_id == "12345"


def test_extra_is_read_only() -> None:
    record = one({"phone_number": "555"})
    with pytest.raises(TypeError):
        record.extra["phone_number"] = "666"  # type: ignore[index]


def test_a_full_record_has_empty_extra() -> None:
    assert dict(decode(copy.deepcopy(DOCUMENTED_PAGE)).results[0].extra) == {}


def test_a_record_with_documented_fields_missing_and_one_extra() -> None:
    # Same key count as a full record, but not the same keys: the extra is still kept.
    record = dict(DOCUMENTED_PAGE["results"][0])
    del record["comments"]
    record["phone_number"] = "555"
    decoded = decode(page_of(record)).results[0]
    assert dict(decoded.extra) == {"phone_number": "555"}
    assert decoded.comments is None


# --- parse_time and the converter directly -------------------------------------------------


def test_parse_time_is_memoised_and_stable() -> None:
    first = parse_time("2026-03-05 02:30 PM")
    assert first == datetime(2026, 3, 5, 14, 30)
    assert parse_time("2026-03-05 02:30 PM") == first


def test_parse_time_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from convoso_async import _converter

    cache: dict[str, datetime | None] = {}
    monkeypatch.setattr(_converter, "_TIME_CACHE", cache)
    monkeypatch.setattr(_converter, "_TIME_CACHE_MAX", 3)
    for minute in range(5):
        assert parse_time(f"2026-03-05 10:{minute:02d}:00") == datetime(2026, 3, 5, 10, minute)
        assert len(cache) <= 3  # at every step, not only at the end


def test_parse_time_rejects_non_strings() -> None:
    with pytest.raises(ValueError, match="time string"):
        parse_time(20260305)


def test_converter_structures_optional_fields_through_registered_hooks() -> None:
    assert converter.structure("2026-03-05 14:30:00", datetime | None) == datetime(
        2026, 3, 5, 14, 30
    )
    assert converter.structure(12, str | None) == "12"
    assert converter.structure(None, str | None) is None
    assert converter.structure("pastdue", Stage | str | None) is Stage.PAST_DUE
    assert converter.structure("USERONLY", Recipient | str | None) == "USERONLY"
    with pytest.raises(ValueError, match="string"):
        converter.structure(True, str | None)
    # A whole record goes through the record hook, which keeps undocumented fields.
    assert converter.structure({"id": 7, "context": "x"}, Callback) == Callback(
        id="7", extra={"context": "x"}
    )


# --- property: arbitrary JSON never escapes as a non-Convoso error -----------------------

_STRINGS = [
    "",
    "0",
    "12",
    "-3",
    " 7 ",
    "PENDING",
    "PASTDUE",
    "Dismissed",
    "MISSED",
    "system",
    "USERONLY",
    "2026-03-05 02:30 PM",
    "2026-03-05 14:30:00",
    "2016-11-17T10:54:21-0800",
    "0000-00-00 00:00:00",
    "2026-03-05 13:30 PM",
    "false",
]
# Digit-like text that str.isdigit() accepts but int() does not.
_TRICKY_DIGITS = ["\u00b2", "--5", "\u2460"]


def _payloads(text: st.SearchStrategy[str], extra: list[str]) -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64),
        st.floats(allow_nan=True, allow_infinity=True),
        text,
        st.sampled_from(_STRINGS + extra),
    )
    json = st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4)
        ),
        max_leaves=12,
    )
    field_names = st.sampled_from(
        ["id", "lead_id", "stage", "recipient", "callback_time", "created_at", "comments", "x"]
    )
    records = st.one_of(json, st.dictionaries(field_names, json, max_size=6))
    pages = st.fixed_dictionaries(
        {},
        optional={
            "success": scalars,
            "offset": scalars,
            "limit": scalars,
            "total": scalars,
            "results": st.one_of(json, st.lists(records, max_size=4)),
            "code": scalars,
            "text": scalars,
            "error": scalars,
        },
    )
    return st.one_of(json, pages, st.builds(lambda p: {"success": True, "data": p}, pages))


def _check_page_or_convoso_error(payload: Any) -> None:
    try:
        page = decode(payload)
    except ConvosoError:
        return
    assert isinstance(page, CallbackPage)
    assert all(isinstance(record, Callback) for record in page.results)
    assert all(isinstance(n, int) and n >= 0 for n in (page.offset, page.limit, page.total))


_PROPERTY = settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@_PROPERTY
@given(payload=_payloads(st.text(alphabet=st.characters(max_codepoint=127), max_size=12), []))
def test_arbitrary_ascii_json_gives_a_page_or_a_convoso_error(payload: Any) -> None:
    _check_page_or_convoso_error(payload)


@_PROPERTY
@given(payload=_payloads(st.text(max_size=12), _TRICKY_DIGITS))
def test_arbitrary_json_gives_a_page_or_a_convoso_error(payload: Any) -> None:
    _check_page_or_convoso_error(payload)
