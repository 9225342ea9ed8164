"""``live_dialect=True``: the shapes the live API is known to send (reference, last section)."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from emulator_oracle import Post, expected_ids

from convoso_async.testing import ConvosoEmulator

LIVE_EXTRAS = {
    "context",
    "callback_seen",
    "class",
    "phone_number",
    "directory_name",
    "campaign_type",
    "status_name",
}


async def test_page_is_wrapped_with_string_counters(live_emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(live_emu, "search", limit=50, offset=10)
    assert status == 200
    assert set(body) == {"success", "data"}
    assert body["success"] is True
    page = body["data"]
    assert (page["offset"], page["limit"], page["total"]) == ("10", "50", "3000")
    assert [r["id"] for r in page["results"]] == expected_ids(live_emu)[10:60]
    assert set(page["results"][0]) >= LIVE_EXTRAS
    assert re.fullmatch(r"\d{10}", page["results"][0]["phone_number"])


async def test_records_drift_like_the_live_api(live_emu: ConvosoEmulator) -> None:
    records = list(live_emu.store.records())
    stages = Counter(r["stage"] for r in records)
    recipients = Counter(r["recipient"] for r in records)
    assert set(stages) == {
        "COMPLETED",
        "PAST_DUE",
        "PASTDUE",
        "PENDING",
        "DISMISSED",
        "Dismissed",
        "MISSED",
    }
    assert 0 < stages["MISSED"] < 0.05 * len(records)
    assert set(recipients) == {"system", "System", "personal", "USERONLY"}
    assert 0 < recipients["USERONLY"] < 0.05 * len(records)
    times_24h = [r for r in records if not r["callback_time"].endswith(("AM", "PM"))]
    assert 0.05 * len(records) < len(times_24h) < 0.15 * len(records)
    assert all(re.fullmatch(r"\S+ \d\d:\d\d:00", r["callback_time"]) for r in times_24h)
    null_modified = [r for r in records if r["modified_at"] is None]
    assert 0.02 * len(records) < len(null_modified) < 0.08 * len(records)


async def test_missed_is_outside_the_four_documented_stages(
    live_emu: ConvosoEmulator, post: Post
) -> None:
    totals = {}
    for stage in ("COMPLETED", "PAST_DUE", "PENDING", "DISMISSED", "MISSED", "PASTDUE"):
        _, body = await post(live_emu, "search", stage=stage, limit=5000)
        results = body["data"]["results"]
        totals[stage] = int(body["data"]["total"])
        assert [r["id"] for r in results] == expected_ids(
            live_emu, stages=["PAST_DUE", "PASTDUE"] if "PAST" in stage else [stage]
        )
    documented = sum(totals[s] for s in ("COMPLETED", "PAST_DUE", "PENDING", "DISMISSED"))
    assert documented + totals["MISSED"] == 3000
    assert totals["MISSED"] > 0
    assert totals["PASTDUE"] == totals["PAST_DUE"]
    _, body = await post(live_emu, "search", stage="Dismissed", limit=5000)
    assert {r["stage"] for r in body["data"]["results"]} == {"DISMISSED", "Dismissed"}


async def test_recipient_filter_is_case_insensitive_and_useronly_is_apart(
    live_emu: ConvosoEmulator, post: Post
) -> None:
    _, system = await post(live_emu, "search", recipient="System", limit=5000)
    assert {r["recipient"] for r in system["data"]["results"]} == {"system", "System"}
    _, personal = await post(live_emu, "search", recipient="personal", limit=1)
    _, useronly = await post(live_emu, "search", recipient="USERONLY", limit=5000)
    assert {r["recipient"] for r in useronly["data"]["results"]} == {"USERONLY"}
    counts = [int(b["data"]["total"]) for b in (system, personal, useronly)]
    assert sum(counts) == 3000


async def test_date_filter_covers_24_hour_times(live_emu: ConvosoEmulator, post: Post) -> None:
    _, body = await post(
        live_emu, "search", start_date="2026-03-07", end_date="2026-03-08", limit=5000
    )
    ids = [r["id"] for r in body["data"]["results"]]
    assert ids == expected_ids(live_emu, start=date(2026, 3, 7), end=date(2026, 3, 8))
    assert any(not r["callback_time"].endswith("M") for r in body["data"]["results"])


@pytest.mark.parametrize(
    ("endpoint", "fields", "body"),
    [
        ("search", {"stage": "LATE"}, {"success": False, "text": "Invalid callback stage"}),
        (
            "search",
            {"start_date": "yesterday"},
            {
                "success": False,
                "code": "6031",
                "text": "Invalid date format for start_date, expected YYYY-MM-DD",
            },
        ),
        (
            "search",
            {"auth_token": "bad"},
            {"success": False, "code": "5001", "text": "Auth token is invalid"},
        ),
        (
            "delete",
            {"callback_id": "1"},
            {"success": False, "code": 6074, "text": "Callback not found"},
        ),
        (
            "insert",
            {"auth_token": "bad"},
            {"success": False, "code": 5001, "text": "Auth token is invalid"},
        ),
    ],
)
async def test_live_error_bodies(
    live_emu: ConvosoEmulator,
    post: Post,
    endpoint: str,
    fields: dict[str, str],
    body: dict[str, object],
) -> None:
    assert await post(live_emu, endpoint, **fields) == (200, body)


async def test_live_insert_and_update_answers(live_emu: ConvosoEmulator, post: Post) -> None:
    _, body = await post(
        live_emu,
        "insert",
        lead_id="77",
        recipient="personal",
        callback_time="2026-03-09 11:45 AM",
        callback_time_zone="-6.00",
    )
    new_id = body["data"]["callback_id"]
    assert body == {"success": True, "data": {"callback_id": new_id}}
    record = live_emu.store.get(new_id)
    assert record is not None
    assert set(record) >= LIVE_EXTRAS
    assert (record["callback_seen"], record["class"]) == ("0", "PERSONAL")
    assert (record["context"], record["status_name"]) == ("CALLBACK", "Active")
    # An update rewrites a 24-hour time in the 12-hour form it was given.
    target = next(r["id"] for r in live_emu.store.records() if not r["callback_time"].endswith("M"))
    _, body = await post(
        live_emu, "update", callback_id=target, callback_time="2026-03-09 01:05 PM"
    )
    assert body["success"] is True
    assert live_emu.store.get(target)["callback_time"] == "2026-03-09 01:05 PM"  # type: ignore[index]
