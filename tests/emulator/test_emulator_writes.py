"""insert / update / delete over HTTP: validation, error codes, and effect on later searches."""

from __future__ import annotations

from datetime import date

import pytest
from emulator_oracle import Post, expected_ids

from convoso_async.testing import ConvosoEmulator

GOOD_INSERT = {
    "lead_id": "12345",
    "recipient": "system",
    "callback_time_zone": "-7.00",
    "callback_time": "2026-03-05 02:30 PM",
    "comments": "Customer requested callback",
}


async def test_insert_is_visible_to_search_in_order(emu: ConvosoEmulator, post: Post) -> None:
    before = expected_ids(emu)
    status, body = await post(emu, "insert", **GOOD_INSERT, user_id="20004")
    assert status == 200
    assert body["success"] is True
    new_id = body["data"]["callback_id"]
    assert new_id.isdigit()
    assert new_id not in before
    assert len(emu.store) == 3001
    record = emu.store.get(new_id)
    assert record == {
        "id": new_id,
        "lead_id": "12345",
        "list_id": str(333 + 12345 % 24),
        "campaign_id": str(111 + (12345 % 24) // 3),
        "status": "ACTIVE",
        "created_at": "2026-02-20 09:30:15",
        "callback_time": "2026-03-05 02:30 PM",
        "modified_at": "2026-02-20 09:30:15",
        "user": emu.store.users[3].name,
        "recipient": "system",
        "comments": "Customer requested callback",
        "stage": "PENDING",
        "user_name": emu.store.users[3].email,
        "campaign_name": emu.store.campaigns[(12345 % 24) // 3].name,
    }
    # A later search sees it, at its place in (callback_time, id) order.
    status, page = await post(emu, "search", lead_id="12345")
    assert [r["id"] for r in page["results"]] == [new_id]
    status, page = await post(
        emu, "search", limit=5000, start_date="2026-03-05", end_date="2026-03-05"
    )
    ids = [r["id"] for r in page["results"]]
    assert new_id in ids
    assert ids == expected_ids(emu, start=date(2026, 3, 5), end=date(2026, 3, 5))
    assert emu.store.user_id_of(new_id) == 20004


async def test_insert_during_a_walk_shifts_later_pages(emu: ConvosoEmulator, post: Post) -> None:
    _, first = await post(emu, "search", limit=100)
    last_of_first = first["results"][-1]
    _, body = await post(emu, "insert", **{**GOOD_INSERT, "callback_time": "2026-03-01 07:00 AM"})
    _, second = await post(emu, "search", limit=100, offset=100)
    # The new callback sorts onto page one, so page two now starts with page one's last.
    assert second["results"][0]["id"] == last_of_first["id"]
    assert second["total"] == 3001
    assert body["data"]["callback_id"] in expected_ids(emu)[:100]


async def test_insert_with_personal_recipient_and_no_user(emu: ConvosoEmulator, post: Post) -> None:
    fields = {**GOOD_INSERT, "recipient": "Personal", "callback_time_zone": "+5.30"}
    del fields["comments"]
    _, body = await post(emu, "insert", **fields)
    record = emu.store.get(body["data"]["callback_id"])
    assert record is not None
    assert (record["recipient"], record["user"], record["user_name"], record["comments"]) == (
        "personal",
        "",
        "",
        "",
    )
    assert emu.store.user_id_of(record["id"]) is None


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"lead_id": None}, 6023, "Required fields are missed: lead_id"),
        ({"recipient": None, "callback_time": None}, 6023, "Required fields are missed"),
        ({"callback_time_zone": None}, 6023, "Required fields are missed: callback_time_zone"),
        ({"lead_id": "L-1"}, 6070, "Invalid lead ID"),
        ({"callback_time": "2026-03-05 14:30"}, 6071, "Invalid callback time format"),
        ({"callback_time": "2026-03-05 2:30 PM"}, 6071, "Invalid callback time format"),
        ({"callback_time": "2026-02-30 02:30 PM"}, 6071, "Invalid callback time format"),
        ({"callback_time": "2026-03-05 13:30 PM"}, 6071, "Invalid callback time format"),
        ({"callback_time_zone": "-13.00"}, 6072, "Invalid timezone offset"),
        ({"callback_time_zone": "+14.30"}, 6072, "Invalid timezone offset"),
        ({"callback_time_zone": "5.75"}, 6072, "Invalid timezone offset"),
        ({"callback_time_zone": "5.3"}, 6072, "Invalid timezone offset"),
        ({"callback_time_zone": "EST"}, 6072, "Invalid timezone offset"),
        ({"user_id": "99"}, 6006, "No such user"),
        ({"user_id": "abc"}, 6006, "No such user"),
        ({"recipient": "useronly"}, None, "Invalid recipient"),
    ],
)
async def test_insert_errors_leave_the_store_alone(
    emu: ConvosoEmulator, post: Post, change: dict[str, str | None], code: int | None, message: str
) -> None:
    fields = {**GOOD_INSERT, **change}
    status, body = await post(emu, "insert", **{k: v for k, v in fields.items() if v is not None})
    assert status == 200
    assert body["success"] is False
    assert body.get("code") == code
    assert body["error"].startswith(message)
    assert len(emu.store) == 3000


@pytest.mark.parametrize(
    "zone", ["-7.00", "-12.00", "+14.00", "0.00", "5.30", "+5.30", "-3", "9.45"]
)
async def test_insert_accepts_time_zones(emu: ConvosoEmulator, post: Post, zone: str) -> None:
    _, body = await post(emu, "insert", **{**GOOD_INSERT, "callback_time_zone": zone})
    assert body["success"] is True


@pytest.mark.parametrize(
    ("time", "shown"),
    [
        ("2026-03-05 12:00 AM", "2026-03-05 12:00 AM"),
        ("2026-03-05 12:59 PM", "2026-03-05 12:59 PM"),
    ],
)
async def test_insert_round_trips_noon_and_midnight(
    emu: ConvosoEmulator, post: Post, time: str, shown: str
) -> None:
    _, body = await post(emu, "insert", **{**GOOD_INSERT, "callback_time": time})
    new_id = body["data"]["callback_id"]
    assert emu.store.get(new_id)["callback_time"] == shown  # type: ignore[index]
    day = time[:10]
    ids = expected_ids(emu, start=date.fromisoformat(day), end=date.fromisoformat(day))
    _, page = await post(emu, "search", start_date=day, end_date=day, limit=5000)
    assert [r["id"] for r in page["results"]] == ids
    position = ids.index(new_id)
    assert position == 0 if "AM" in time else 0 < position < len(ids) - 1


async def test_update_changes_fields_and_order(emu: ConvosoEmulator, post: Post) -> None:
    target = expected_ids(emu)[0]
    status, body = await post(
        emu,
        "update",
        callback_id=target,
        callback_time="2026-04-15 09:15 AM",
        callback_time_zone="-5.00",
        comments="Moved",
        recipient="PERSONAL",
        user_id="20010",
    )
    assert (status, body) == (200, {"success": True, "data": {"callback_id": target}})
    record = emu.store.get(target)
    assert record is not None
    assert record["callback_time"] == "2026-04-15 09:15 AM"
    assert (record["comments"], record["recipient"]) == ("Moved", "personal")
    assert record["modified_at"] == "2026-02-20 09:30:15"
    assert emu.store.user_id_of(target) == 20010
    assert expected_ids(emu)[-1] == target
    _, page = await post(emu, "search", limit=5000, offset=0)
    assert page["results"][-1]["id"] == target
    _, page = await post(emu, "search", user_id="20010", recipient="personal", limit=5000)
    assert target in [r["id"] for r in page["results"]]
    assert [r["id"] for r in page["results"]] == expected_ids(
        emu, user_id="20010", recipients=["personal"]
    )


async def test_update_dismisses(emu: ConvosoEmulator, post: Post) -> None:
    target = expected_ids(emu, stages=["PENDING"])[0]
    _, body = await post(emu, "update", callback_id=target, callback_status="Dismissed")
    assert body["success"] is True
    record = emu.store.get(target)
    assert record is not None
    assert (record["stage"], record["status"]) == ("DISMISSED", "INACTIVE")
    _, page = await post(emu, "search", stage="PENDING", limit=5000)
    assert target not in [r["id"] for r in page["results"]]
    _, page = await post(emu, "search", stage="DISMISSED", id=target)
    assert page["total"] == 1


@pytest.mark.parametrize("endpoint", ["update", "delete"])
@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({}, 6023, "Required fields are missed: callback_id"),
        ({"callback_id": "abc"}, 6073, "Invalid callback ID"),
        ({"callback_id": "42"}, 6074, "Callback not found"),
    ],
)
async def test_update_and_delete_errors(
    emu: ConvosoEmulator,
    post: Post,
    endpoint: str,
    fields: dict[str, str],
    code: int,
    message: str,
) -> None:
    status, body = await post(emu, endpoint, **fields)
    assert (status, body["success"], body["code"]) == (200, False, code)
    assert body["error"].startswith(message)
    assert len(emu.store) == 3000


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"callback_time": "tomorrow"}, 6071, "Invalid callback time format"),
        ({"callback_time_zone": "+99"}, 6072, "Invalid timezone offset"),
        ({"user_id": "1"}, 6006, "No such user"),
        ({"recipient": "nobody"}, None, "Invalid recipient"),
        ({"callback_status": "completed"}, None, "Invalid callback status"),
    ],
)
async def test_update_validation_changes_nothing(
    emu: ConvosoEmulator, post: Post, fields: dict[str, str], code: int | None, message: str
) -> None:
    target = expected_ids(emu)[5]
    before = emu.store.get(target)
    status, body = await post(emu, "update", callback_id=target, **fields)
    assert (status, body["success"], body.get("code"), body["error"]) == (200, False, code, message)
    assert emu.store.get(target) == before


async def test_delete_removes_from_search_and_store(emu: ConvosoEmulator, post: Post) -> None:
    target = expected_ids(emu, stages=["COMPLETED"])[3]
    status, body = await post(emu, "delete", callback_id=target)
    assert (status, body) == (200, {"success": True})
    assert target not in emu.store
    assert emu.store.get(target) is None
    assert len(emu.store) == 2999
    assert target not in list(emu.store)
    _, page = await post(emu, "search", id=target)
    assert page["total"] == 0
    _, page = await post(emu, "search", stage="COMPLETED", limit=5000)
    assert [r["id"] for r in page["results"]] == expected_ids(emu, stages=["COMPLETED"])
    _, page = await post(emu, "search", limit=1)
    assert page["total"] == 2999
    status, body = await post(emu, "delete", callback_id=target)
    assert body["code"] == 6074
    status, body = await post(emu, "update", callback_id=target, comments="x")
    assert body["code"] == 6074
