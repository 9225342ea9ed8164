"""The decoder's fast paths (record by record, and a column at a time for a whole slice)
must build the same genuine, frozen Callbacks as the slow one, and fail the same way."""

from __future__ import annotations

import gc
import random
from typing import Any

import attrs
import pytest

from convoso_async import Callback, Recipient, Stage, _converter
from convoso_async._converter import (
    _memoised,
    _structure_callback,
    _structure_columns,
    _structure_slow,
    structure_records,
)

from .samples import API_FIELDS, REFERENCE_RECORD

DOCUMENTED = REFERENCE_RECORD


def test_fast_and_slow_paths_agree_on_the_documented_record() -> None:
    fast, slow = _structure_callback(dict(DOCUMENTED)), _structure_slow(dict(DOCUMENTED))
    assert fast == slow
    assert type(fast) is Callback
    assert fast.stage is Stage.PENDING
    assert fast.recipient is Recipient.SYSTEM


def test_a_built_record_is_a_real_frozen_hashable_callback() -> None:
    built = _structure_callback(dict(DOCUMENTED))
    assert isinstance(built, Callback)
    assert built == Callback(**{**attrs.asdict(built, recurse=False)})
    assert hash(built) == hash(Callback(**attrs.asdict(built, recurse=False)))
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.id = "1"  # type: ignore[misc]
    assert "Callback(id='657'" in repr(built)


@pytest.mark.parametrize(
    "change",
    [
        {"lead_id": 12345},  # a number where a string is documented
        {"comments": None},
        {"context": "x"},  # an extra field: 15 keys
        {"id": ""},
    ],
)
def test_records_off_the_fast_path_still_decode_or_fail_the_same_way(
    change: dict[str, object],
) -> None:
    record = {**DOCUMENTED, **change}
    try:
        expected = _structure_slow(dict(record))
    except ValueError:
        with pytest.raises(ValueError):
            _structure_callback(dict(record))
        return
    assert _structure_callback(dict(record)) == expected


@pytest.mark.parametrize(
    "field",
    [
        "id",
        "lead_id",
        "list_id",
        "campaign_id",
        "status",
        "user",
        "comments",
        "user_name",
        "campaign_name",
    ],
)
def test_a_number_in_any_text_field_of_a_full_record_becomes_text_on_the_record_path(
    field: str,
) -> None:
    # Records of different shapes in one slice go record by record; a full record there
    # takes the fast path, which must still turn a number into text, never keep it.
    records = [{**DOCUMENTED, field: 42}, {**DOCUMENTED, "id": "658", "context": "x"}]
    assert _structure_columns(records) is None
    decoded = structure_records(records)
    assert getattr(decoded[0], field) == "42"
    assert decoded[0] == _structure_slow(records[0])


def test_a_record_missing_a_field_with_an_extra_one_keeps_the_extra() -> None:
    record = {k: v for k, v in DOCUMENTED.items() if k != "comments"} | {"context": "c"}
    built = _structure_callback(record)
    assert built.comments is None
    assert dict(built.extra) == {"context": "c"}


@pytest.mark.parametrize("enabled", [True, False])
def test_decoding_restores_the_garbage_collector_state(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        structure_records([dict(DOCUMENTED)])
        assert gc.isenabled() is enabled
        with pytest.raises(ValueError):
            structure_records(["not a record"])
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()


def _varied_records(count: int, seed: int) -> list[dict[str, Any]]:
    """Records with exactly the documented fields and every spelling the rules accept."""
    rng = random.Random(seed)
    spellings: dict[str, list[Any]] = {
        "lead_id": ["12345", 12345, 12345.0, None, ""],
        "comments": ["Customer requested callback", None, "", 7],
        "created_at": [
            "2026-03-03 10:00:00",
            None,
            "0000-00-00 00:00:00",
            "2016-11-17T10:54:21-0800",
        ],
        "modified_at": ["2026-03-03 14:30:00", "", "2026-03-05 02:30 PM"],
        "callback_time": [
            f"2026-03-{rng.randint(1, 28):02d} 0{rng.randint(1, 9)}:30 PM" for _ in range(5)
        ]
        + ["2026-03-05 14:30:00", None],
        "stage": ["PENDING", "Dismissed", "PASTDUE", "MISSED", None],
        "recipient": ["system", "PERSONAL", "USERONLY", None],
    }
    return [
        {
            **DOCUMENTED,
            "id": str(1000 + index),
            **{field: rng.choice(values) for field, values in spellings.items()},
        }
        for index in range(count)
    ]


def test_a_slice_of_plain_records_goes_a_column_at_a_time_and_matches_the_slow_path() -> None:
    records = [{**DOCUMENTED, "id": str(index)} for index in range(1, 300)]
    decoded = _structure_columns(records)
    assert decoded is not None
    assert list(decoded) == [_structure_slow(record) for record in records]
    assert {type(callback) for callback in decoded} == {Callback}


@pytest.mark.parametrize("seed", range(5))
def test_columns_with_nulls_numbers_and_other_spellings_match_the_slow_path(seed: int) -> None:
    records = _varied_records(200, seed)
    decoded = _structure_columns(records)
    assert decoded is not None  # read value by value within their column, not declined
    assert list(decoded) == [_structure_slow(record) for record in records]
    assert structure_records(records) == decoded


@pytest.mark.parametrize(
    ("count", "passes"),
    [(1, []), (2, []), (4, []), (5, [5]), (6, [6]), (504, [500]), (505, [500, 5])],
)
def test_only_pieces_of_five_records_or_more_go_a_column_at_a_time(
    count: int, passes: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A column pass has a fixed cost that a lookup by id (one record) would pay in full.
    records = [{**DOCUMENTED, "id": str(index), "context": "x"} for index in range(count)]
    column_passes: list[int] = []

    def counted(chunk: list[Any]) -> Any:
        column_passes.append(len(chunk))
        return _structure_columns(chunk)

    monkeypatch.setattr(_converter, "_structure_columns", counted)
    assert list(structure_records(records)) == [_structure_slow(record) for record in records]
    assert column_passes == passes  # pieces of 500; a piece under five goes record by record


@pytest.mark.parametrize(
    "shape",
    [
        {**DOCUMENTED, "context": "inbound", "callback_seen": "0"},  # as the live API sends
        {k: v for k, v in DOCUMENTED.items() if k not in ("comments", "stage")},
        {k: v for k, v in DOCUMENTED.items() if k != "user"} | {"class": "A"},
    ],
)
def test_records_sharing_undocumented_or_missing_fields_go_a_column_at_a_time(
    shape: dict[str, Any],
) -> None:
    records = [{**shape, "id": str(index), "context": f"c{index}"} for index in range(1, 40)]
    decoded = _structure_columns(records)
    assert decoded is not None
    assert list(decoded) == [_structure_slow(record) for record in records]
    assert [dict(callback.extra) for callback in decoded] == [
        {k: v for k, v in record.items() if k not in API_FIELDS} for record in records
    ]
    with pytest.raises(TypeError):
        decoded[0].extra["context"] = "changed"  # type: ignore[index]


def test_a_long_page_is_decoded_in_pieces_that_each_choose_their_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = [{**DOCUMENTED, "id": str(index)} for index in range(1, 1300)]
    records[700] = {**records[700], "context": "only here"}
    one_by_one: list[object] = []
    record_path = _converter._structure_fast

    def counted(record: Any, fields_of: Any) -> Callback:
        one_by_one.append(record)
        return record_path(record, fields_of)

    monkeypatch.setattr(_converter, "_structure_fast", counted)
    assert list(structure_records(records)) == [_structure_slow(record) for record in records]
    chunk = _converter._COLUMN_CHUNK
    start = 700 // chunk * chunk
    assert one_by_one == records[start : start + chunk]  # only the odd record's piece


@pytest.mark.parametrize(
    "odd",
    [
        {**DOCUMENTED, "context": "x"},  # an extra field
        {k: v for k, v in DOCUMENTED.items() if k != "comments"},  # a field missing
        {k: v for k, v in DOCUMENTED.items() if k != "comments"} | {"context": "x"},
        {**DOCUMENTED, "id": ""},  # no id: the record path says which record
    ],
)
def test_a_slice_with_an_irregular_record_is_decoded_record_by_record(odd: dict[str, Any]) -> None:
    records = [dict(DOCUMENTED), dict(odd), {**DOCUMENTED, "id": "658"}]
    assert _structure_columns(records) is None
    try:
        expected = [_structure_slow(record) for record in records]
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            structure_records(records)
        return
    assert list(structure_records(records)) == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [("created_at", "yesterday"), ("callback_time", "soon"), ("lead_id", [1]), ("stage", 3)],
)
def test_a_bad_value_in_a_slice_fails_as_the_record_path_does(field: str, value: object) -> None:
    bad = {**DOCUMENTED, field: value}
    with pytest.raises(ValueError) as expected:
        _structure_slow(bad)
    records = [dict(DOCUMENTED), bad]
    with pytest.raises(ValueError) as raised:
        structure_records(records)
    assert str(raised.value) == str(expected.value)


def test_a_memo_that_will_not_store_sends_the_slice_record_by_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(KeyError):
        _memoised({}, lambda value: None, ("a",))

    def unstored(value: object) -> object:
        return value  # as a full table does: the value is answered but not kept

    monkeypatch.setattr(_converter, "_stage", unstored)
    records = [{**DOCUMENTED, "stage": "NEVER_SEEN_STAGE"}]
    assert structure_records(records)[0].stage == "NEVER_SEEN_STAGE"


@pytest.mark.parametrize("field", ["created_at", "modified_at"])
@pytest.mark.parametrize("separator", ["\u00a0", "\u00e9"])
def test_a_stamp_reads_the_same_whether_or_not_its_record_has_an_extra_field(
    field: str, separator: str
) -> None:
    """``fromisoformat`` takes any one character between date and time; the fast paths
    read stamps with it, so the record path must too, or a page's fate hung on whether
    some record carried an undocumented field."""
    plain = {**DOCUMENTED, field: f"2026-03-03{separator}10:00:00"}
    extra = {**plain, "context": "x"}
    assert _structure_callback(dict(extra)) == attrs.evolve(
        _structure_callback(dict(plain)), extra={"context": "x"}
    )
    assert structure_records([plain, extra])[1] == _structure_slow(extra)
