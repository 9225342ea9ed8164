"""The typed models: enums equal to their wire strings, frozen and slotted records."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime

import attrs
import pytest

from convoso_async import Callback, CallbackPage, Recipient, Stage
from convoso_async._converter import structure_records
from convoso_async._models import CALLBACK_FIELDS

from .samples import REFERENCE_RECORD


@pytest.mark.parametrize(
    ("member", "wire"),
    [
        (Stage.COMPLETED, "COMPLETED"),
        (Stage.PAST_DUE, "PAST_DUE"),
        (Stage.PENDING, "PENDING"),
        (Stage.DISMISSED, "DISMISSED"),
    ],
)
def test_stage_members_equal_their_wire_string(member: Stage, wire: str) -> None:
    assert member == wire
    assert str(member) == wire
    assert isinstance(member, str)


def test_stage_has_exactly_the_four_documented_members() -> None:
    assert [m.value for m in Stage] == ["COMPLETED", "PAST_DUE", "PENDING", "DISMISSED"]


@pytest.mark.parametrize(
    ("spelling", "member"),
    [
        ("pending", Stage.PENDING),
        ("Dismissed", Stage.DISMISSED),
        ("PASTDUE", Stage.PAST_DUE),
        ("pastdue", Stage.PAST_DUE),
        ("past-due", Stage.PAST_DUE),
        ("past due", Stage.PAST_DUE),
        (" completed ", Stage.COMPLETED),
        ("PAST_DUE", Stage.PAST_DUE),
    ],
)
def test_stage_lookup_is_forgiving(spelling: str, member: Stage) -> None:
    assert Stage(spelling) is member


@pytest.mark.parametrize("value", ["MISSED", "", "done", 1, None])
def test_stage_lookup_rejects_unknown_values(value: object) -> None:
    with pytest.raises(ValueError):
        Stage(value)  # type: ignore[arg-type]


def test_recipient_members_equal_the_record_spelling() -> None:
    assert Recipient.SYSTEM == "system"
    assert Recipient.PERSONAL == "personal"
    assert [m.value for m in Recipient] == ["system", "personal"]


@pytest.mark.parametrize(
    ("spelling", "member"),
    [
        ("System", Recipient.SYSTEM),
        ("SYSTEM", Recipient.SYSTEM),
        (" system ", Recipient.SYSTEM),
        ("Personal", Recipient.PERSONAL),
        ("pErSoNaL", Recipient.PERSONAL),
    ],
)
def test_recipient_lookup_ignores_case(spelling: str, member: Recipient) -> None:
    assert Recipient(spelling) is member


@pytest.mark.parametrize("value", ["USERONLY", "", "sys", 0, None])
def test_recipient_lookup_rejects_unknown_values(value: object) -> None:
    with pytest.raises(ValueError):
        Recipient(value)  # type: ignore[arg-type]


def test_recipient_filter_value_is_capitalised_for_search() -> None:
    assert Recipient.SYSTEM.filter_value == "System"
    assert Recipient.PERSONAL.filter_value == "Personal"


def test_callback_fields_are_the_api_names_in_order() -> None:
    # The vendor reference's example record lists every documented field, in its order.
    assert tuple(REFERENCE_RECORD) == CALLBACK_FIELDS


def test_callback_optional_fields_default_to_none_and_extra_to_empty() -> None:
    record = Callback("657")
    assert record.id == "657"
    assert all(getattr(record, name) is None for name in CALLBACK_FIELDS[1:])
    assert dict(record.extra) == {}


def test_callback_is_frozen() -> None:
    record = Callback("657", stage=Stage.PENDING)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        record.stage = Stage.COMPLETED  # type: ignore[misc]
    assert record.stage is Stage.PENDING


def test_callback_is_slotted() -> None:
    record = Callback("657")
    assert not hasattr(record, "__dict__")
    with pytest.raises((AttributeError, attrs.exceptions.FrozenInstanceError)):
        record.surprise = 1  # type: ignore[attr-defined]


def test_default_extra_mapping_is_read_only() -> None:
    record = Callback("1")
    with pytest.raises(TypeError):
        record.extra["x"] = 1  # type: ignore[index]
    assert "x" not in Callback("2").extra


def test_callbacks_compare_by_value() -> None:
    when = datetime(2026, 3, 5, 14, 30)
    first = Callback("657", callback_time=when, stage=Stage.PENDING)
    second = Callback("657", callback_time=when, stage="PENDING")
    assert first == second
    assert first != Callback("658", callback_time=when, stage=Stage.PENDING)


def test_frozen_callbacks_are_hashable() -> None:
    when = datetime(2026, 3, 5, 14, 30)
    first = Callback("657", callback_time=when, stage=Stage.PENDING)
    second = Callback("657", callback_time=when, stage="PENDING")
    assert hash(first) == hash(second)
    assert len({first, second}) == 1


def test_callback_page_is_frozen_and_slotted() -> None:
    page = CallbackPage(offset=0, limit=20, total=0, results=())
    assert not hasattr(page, "__dict__")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        page.total = 5  # type: ignore[misc]


def test_a_page_repr_counts_its_records_rather_than_printing_them() -> None:
    """A full page printed every record: 5000 of them made a ~2.4 MB repr, and so a
    log line or a traceback showing the page."""
    record = structure_records([dict(REFERENCE_RECORD)])[0]
    page = CallbackPage(offset=40, limit=5000, total=9001, results=(record,) * 5000)
    assert repr(page) == "CallbackPage(offset=40, limit=5000, total=9001, results=<5000 Callback>)"
    assert repr(CallbackPage(0, 20, 0, ())) == (
        "CallbackPage(offset=0, limit=20, total=0, results=<0 Callback>)"
    )
    assert "Jane Smith" in repr(record)  # a record on its own still shows its fields


@pytest.mark.parametrize(
    ("offset", "count", "expected"),
    [(0, 0, 0), (0, 2, 2), (40, 20, 60), (100, 3, 103)],
)
def test_next_offset_is_offset_plus_records_received(
    offset: int, count: int, expected: int
) -> None:
    results = tuple(Callback(str(i)) for i in range(count))
    page = CallbackPage(offset=offset, limit=20, total=1000, results=results)
    assert page.next_offset == expected


def test_next_offset_counts_records_not_limit_on_a_short_page() -> None:
    page = CallbackPage(offset=0, limit=100, total=2, results=(Callback("1"), Callback("2")))
    assert page.next_offset == 2


def test_callbacks_and_pages_pickle_and_deepcopy_with_their_extra_fields() -> None:
    """A record goes to a worker process or a cache like any value: ``extra`` is a
    read-only mapping proxy, which pickle cannot take, so it travels as a dict and comes
    back read-only."""
    decoded = structure_records([{**REFERENCE_RECORD, "context": {"a": [1, 2]}}])[0]
    page = CallbackPage(offset=0, limit=20, total=2, results=(decoded, Callback("1")))
    for clone in (pickle.loads(pickle.dumps(page)), copy.deepcopy(page)):
        assert clone == page
        first = clone.results[0]
        assert type(first) is Callback
        assert dict(first.extra) == {"context": {"a": [1, 2]}}
        assert hash(first) == hash(decoded)
        with pytest.raises(TypeError):
            first.extra["x"] = 1  # type: ignore[index]
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            first.id = "2"  # type: ignore[misc]
        assert clone.results[1].extra == {}
