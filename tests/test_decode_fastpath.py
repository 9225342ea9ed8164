"""The decoder's fast path must build the same genuine, frozen Callback as the slow one."""

from __future__ import annotations

import gc

import attrs
import pytest

from convoso_async import Callback, Recipient, Stage
from convoso_async._converter import _structure_callback, _structure_slow, structure_records

from .samples import REFERENCE_RECORD

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
