"""Synthetic data (determinism, spread, formats) and the store's reading interface."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime

import pytest
from emulator_oracle import callback_moment

from convoso_async.testing import CallbackStore, ConvosoEmulator
from convoso_async.testing._data import build_store, day_counts
from convoso_async.testing._store import ID_BASE, MAX_ROWS, Query

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
CALLBACK_12H = re.compile(r"\d{4}-\d{2}-\d{2} (0[1-9]|1[0-2]):[0-5]\d (AM|PM)")


def store(records: int = 2000, seed: int = 7, **kwargs: object) -> CallbackStore:
    options: dict[str, object] = {"start_date": date(2026, 3, 1), "days": 30} | kwargs
    return build_store(records, seed=seed, **options)  # type: ignore[arg-type]


def test_same_seed_same_store_and_different_seed_different_store() -> None:
    first, again, other = store(seed=7), store(seed=7), store(seed=8)
    assert list(first.records()) == list(again.records())
    assert first.users == again.users
    assert list(first.records()) != list(other.records())
    assert first.users != other.users


def test_records_look_like_the_api() -> None:
    records = list(store().records())
    assert len(records) == 2000
    assert {r["stage"] for r in records} == {"COMPLETED", "PAST_DUE", "PENDING", "DISMISSED"}
    assert {r["recipient"] for r in records} == {"system", "personal"}
    assert {r["status"] for r in records} == {"ACTIVE", "INACTIVE"}
    assert len({r["campaign_name"] for r in records}) == 8
    assert len({r["list_id"] for r in records}) == 24
    assert len({r["user_name"] for r in records}) == 40
    assert len({r["id"] for r in records}) == 2000
    for r in records:
        assert r["id"].isdigit()
        assert r["lead_id"].isdigit()
        assert CALLBACK_12H.fullmatch(r["callback_time"]), r
        assert TIMESTAMP.fullmatch(r["created_at"]), r
        assert TIMESTAMP.fullmatch(r["modified_at"]), r
        assert r["created_at"] < r["modified_at"] or r["created_at"] == r["modified_at"]
        created = datetime.fromisoformat(r["created_at"])
        assert created < callback_moment(r["callback_time"])
        assert re.fullmatch(r"[a-z]+\.[a-z]+@company\.com", r["user_name"])
        assert r["user"].replace(" ", "").isalpha()
        assert (r["status"] == "INACTIVE") == (r["stage"] == "DISMISSED")
    # ids follow created_at.
    by_id = sorted(records, key=lambda r: int(r["id"]))
    assert [r["created_at"] for r in by_id] == sorted(r["created_at"] for r in records)
    # Leads keep their list: the same lead never shows up in two lists.
    lists_by_lead: dict[str, set[str]] = {}
    for r in records:
        lists_by_lead.setdefault(r["lead_id"], set()).add(r["list_id"])
    assert all(len(v) == 1 for v in lists_by_lead.values())
    assert len(lists_by_lead) < 2000  # some leads have several callbacks


def test_records_spread_evenly_over_the_range() -> None:
    days = Counter(r["callback_time"][:10] for r in store(records=3010).records())
    assert sorted(days) == [f"2026-03-{d:02d}" for d in range(1, 31)]
    assert days["2026-03-01"] == days["2026-03-10"] == 101
    assert days["2026-03-11"] == days["2026-03-30"] == 100


def test_hot_days_get_exact_counts() -> None:
    hot = {date(2026, 3, 3): 900, date(2026, 3, 20): 0, date(2026, 4, 2): 5}
    days = Counter(r["callback_time"][:10] for r in store(records=1000, hot_days=hot).records())
    assert days["2026-03-03"] == 900
    assert days["2026-03-20"] == 0
    assert days["2026-04-02"] == 5
    assert sum(days.values()) == 1000
    assert len(days) == 2 + 28  # the other 95 spread over the 28 non-hot days of March


@pytest.mark.parametrize(
    ("records", "days", "hot", "message"),
    [
        (-1, 30, None, "records must be"),
        (10, 0, None, "records must be"),
        (10, 30, {date(2026, 3, 1): -1}, "must be >= 0"),
        (10, 30, {date(2026, 3, 1): 11}, "more callbacks than records"),
        (10, 1, {date(2026, 3, 1): 5}, "nowhere to put"),
        # Refused before a record is drawn, not by the store once built (minutes, GiBs).
        (MAX_ROWS + 1, 30, None, f"at most {MAX_ROWS} callbacks"),
    ],
)
def test_day_counts_rejects_impossible_spreads(
    records: int, days: int, hot: dict[date, int] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        day_counts(records, date(2026, 3, 1), days, hot)


def test_day_counts_all_hot_is_fine_when_nothing_remains() -> None:
    assert day_counts(5, date(2026, 3, 1), 1, {date(2026, 3, 1): 5}) == [
        (date(2026, 3, 1).toordinal(), 5)
    ]


def test_empty_store_and_reference_tables() -> None:
    empty = store(records=0)
    assert len(empty) == 0
    assert list(empty) == []
    assert empty.search(Query()) == (0, [])
    assert len(empty.users) == 40
    assert empty.campaign_code(111) == 0
    assert empty.list_code(333) == 0
    assert empty.user_code(20001) == 0
    assert empty.campaign_code(1) is None


def test_store_reading_interface() -> None:
    s = store(records=50)
    ids = s.ids()
    first = next(ids)
    assert first in s
    assert int(first) in s
    assert "nope" not in s
    assert 3.5 not in s
    assert s.get("nope") is None
    assert s.get(first) == next(s.records())
    assert list(s) == [r["id"] for r in s.records()]
    assert s.user_id_of("1") is None
    assert s.user_id_of(first) == s.users[s.user_code(s.user_id_of(first) or 0) or 0].id


def test_store_rejects_bad_construction() -> None:
    with pytest.raises(ValueError, match="at least one"):
        CallbackStore(users=[], campaigns=[], lists=[])
    s = store(records=3)
    with pytest.raises(ValueError, match="differ in length"):
        s.load(
            minute=s.minute,
            created=s.created[:1],
            modified=s.modified,
            lead=s.lead,
            user=s.user,
            stage_spelling=s.stage_spelling,
            recipient_spelling=s.recipient_spelling,
            status=s.status,
            clock24=s.clock24,
            comment=s.comment,
        )


def test_store_row_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from convoso_async.testing import _store

    s = store(records=3)
    monkeypatch.setattr(_store, "MAX_ROWS", 3)
    with pytest.raises(OverflowError):
        s.insert(lead_id=1, recipient=0, minute=0)
    with pytest.raises(ValueError, match="at most 3"):
        store(records=4)


async def test_emulator_constructor_passes_data_options() -> None:
    emu = ConvosoEmulator(records=60, seed=3, start_date=date(2025, 12, 30), days=3)
    days = Counter(r["callback_time"][:10] for r in emu.store.records())
    assert days == {"2025-12-30": 20, "2025-12-31": 20, "2026-01-01": 20}
    assert emu.port == 0
    with pytest.raises(RuntimeError, match="not running"):
        _ = emu.base_url
    await emu.close()  # closing an emulator that never started is a no-op


def test_store_writes_on_unknown_ids_report_false() -> None:
    s = store(records=5)
    assert s.update("1", comments="x") is False
    assert s.delete(ID_BASE + 5) is False
    assert len(s) == 5


async def test_start_is_idempotent_and_a_busy_port_fails_cleanly() -> None:
    async with ConvosoEmulator(records=1) as first:
        url = first.base_url
        await first.start()
        assert first.base_url == url
        second = ConvosoEmulator(port=first.port)
        with pytest.raises(OSError, match="address already in use"):
            await second.start()
        with pytest.raises(RuntimeError):
            _ = second.base_url
        await second.close()
