"""callbacks/search over HTTP: filters, paging, totals, order and every search error."""

from __future__ import annotations

import logging
import socket
from datetime import date

import pytest
from emulator_oracle import Post, expected_ids

from convoso_async.testing import ConvosoEmulator

DOCUMENTED_FIELDS = [
    "id",
    "lead_id",
    "list_id",
    "campaign_id",
    "status",
    "created_at",
    "callback_time",
    "modified_at",
    "user",
    "recipient",
    "comments",
    "stage",
    "user_name",
    "campaign_name",
]


async def search_ids(post: Post, emu: ConvosoEmulator, **fields: object) -> tuple[int, list[str]]:
    status, body = await post(emu, "search", limit=5000, **fields)
    assert status == 200, body
    return body["total"], [r["id"] for r in body["results"]]


async def test_defaults_and_page_shape(emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(emu, "search")
    assert status == 200
    assert set(body) == {"offset", "limit", "total", "results"}
    assert (body["offset"], body["limit"], body["total"]) == (0, 20, 3000)
    assert [r["id"] for r in body["results"]] == expected_ids(emu)[:20]
    record = body["results"][0]
    assert list(record) == DOCUMENTED_FIELDS
    assert all(isinstance(v, str) for v in record.values())


async def test_unfiltered_order_is_callback_time_then_id(emu: ConvosoEmulator, post: Post) -> None:
    total, ids = await search_ids(emu=emu, post=post)
    assert total == 3000
    assert ids == expected_ids(emu)
    # ids follow creation, not callback time, so id order is a different order.
    assert ids != sorted(ids, key=int)


async def test_pagination_walks_every_record_once(emu: ConvosoEmulator, post: Post) -> None:
    seen: list[str] = []
    for offset in range(0, 3000, 700):
        status, body = await post(emu, "search", offset=offset, limit=700)
        assert status == 200
        assert (body["offset"], body["limit"], body["total"]) == (offset, 700, 3000)
        seen += [r["id"] for r in body["results"]]
    assert seen == expected_ids(emu)
    _status, body = await post(emu, "search", offset=3000, limit=700)
    assert (body["total"], body["results"]) == (3000, [])


D5, D10, D12 = date(2026, 3, 5), date(2026, 3, 10), date(2026, 3, 12)
FILTER_CASES = [
    ({"stage": "PENDING"}, {"stages": ["PENDING"]}),
    ({"stage": "completed"}, {"stages": ["COMPLETED"]}),
    ({"stage": "PAST_DUE"}, {"stages": ["PAST_DUE"]}),
    ({"stage": "PastDue"}, {"stages": ["PAST_DUE"]}),
    ({"stage": "DISMISSED"}, {"stages": ["DISMISSED"]}),
    ({"recipient": "System"}, {"recipients": ["system"]}),
    ({"recipient": "PERSONAL"}, {"recipients": ["personal"]}),
    ({"campaign_id": "113"}, {"campaign_id": "113"}),
    ({"list_id": "340"}, {"list_id": "340"}),
    ({"user_id": "20005"}, {"user_id": "20005"}),
    (
        {"stage": "PENDING", "recipient": "system"},
        {"stages": ["PENDING"], "recipients": ["system"]},
    ),
    (
        {"campaign_id": "111", "stage": "COMPLETED", "user_id": "20003"},
        {"campaign_id": "111", "stages": ["COMPLETED"], "user_id": "20003"},
    ),
    ({"start_date": "2026-03-05", "end_date": "2026-03-05"}, {"start": D5, "end": D5}),
    ({"start_date": "2026-03-28"}, {"start": date(2026, 3, 28)}),
    ({"end_date": "2026-03-02"}, {"end": date(2026, 3, 2)}),
    (
        {
            "start_date": "2026-03-10",
            "end_date": "2026-03-12",
            "recipient": "personal",
            "list_id": "335",
        },
        {"start": D10, "end": D12, "recipients": ["personal"], "list_id": "335"},
    ),
]


@pytest.mark.parametrize(("fields", "oracle"), FILTER_CASES)
async def test_filters_match_the_oracle(
    emu: ConvosoEmulator, post: Post, fields: dict[str, str], oracle: dict[str, object]
) -> None:
    total, ids = await search_ids(post, emu, **fields)
    want = expected_ids(emu, **oracle)  # type: ignore[arg-type]
    assert 0 < total < 3000
    assert (total, ids) == (len(want), want)


async def test_date_filter_is_inclusive_on_the_callback_date(
    emu: ConvosoEmulator, post: Post
) -> None:
    total, ids = await search_ids(post, emu, start_date="2026-03-05", end_date="2026-03-06")
    days = {emu.store.get(i)["callback_time"][:10] for i in ids}  # type: ignore[index]
    assert days == {"2026-03-05", "2026-03-06"}
    assert total == 200  # 3000 records spread evenly over 30 days
    total, _ = await search_ids(post, emu, start_date="2026-03-06", end_date="2026-03-05")
    assert total == 0


async def test_lead_and_id_filters(emu: ConvosoEmulator, post: Post) -> None:
    some = emu.store.get(next(iter(emu.store)))
    assert some is not None
    total, ids = await search_ids(post, emu, lead_id=some["lead_id"])
    assert ids == expected_ids(emu, lead_id=some["lead_id"])
    assert some["id"] in ids
    assert total == len(ids) >= 1
    assert await search_ids(post, emu, id=some["id"]) == (1, [some["id"]])
    day = some["callback_time"][:10]
    assert await search_ids(post, emu, id=some["id"], end_date=day) == (1, [some["id"]])
    other = "COMPLETED" if some["stage"] != "COMPLETED" else "PENDING"
    assert await search_ids(post, emu, id=some["id"], stage=other) == (0, [])
    assert await search_ids(post, emu, id=some["id"], start_date="2030-01-01") == (0, [])
    _status, body = await post(emu, "search", id=some["id"], offset=1)
    assert (body["total"], body["results"]) == (1, [])


@pytest.mark.parametrize(
    "fields",
    [
        {"campaign_id": "999"},
        {"list_id": "1"},
        {"user_id": "1"},
        {"lead_id": "1"},
        {"id": "99"},
        {"id": "99999999"},
    ],
)
async def test_well_formed_unknown_ids_give_an_empty_page(
    emu: ConvosoEmulator, post: Post, fields: dict[str, str]
) -> None:
    status, body = await post(emu, "search", **fields)
    assert (status, body["total"], body["results"], body["offset"]) == (200, 0, [], 0)


async def test_total_counts_the_whole_filtered_set(emu: ConvosoEmulator, post: Post) -> None:
    want = expected_ids(emu, stages=["PENDING"])
    _status, body = await post(emu, "search", stage="PENDING", limit=7, offset=21)
    assert body["total"] == len(want) > 28
    assert [r["id"] for r in body["results"]] == want[21:28]


async def test_offset_and_limit_caps_are_accepted(emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(emu, "search", offset=50000, limit=5000)
    assert (status, body["offset"], body["limit"], body["results"]) == (200, 50000, 5000, [])
    status, body = await post(emu, "search", offset=0, limit=1)
    assert len(body["results"]) == 1


async def test_empty_optional_fields_count_as_absent(emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(emu, "search", start_date="", stage="", offset="", limit="")
    assert (status, body["total"], body["limit"]) == (200, 3000, 20)


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        ({"campaign_id": "abc"}, 6026, "Invalid campaign ID"),
        ({"list_id": "3.5"}, 6042, "Invalid list ID"),
        ({"user_id": "-4"}, 6006, "Invalid user ID"),
        ({"lead_id": "x1"}, 6070, "Invalid lead ID"),
        ({"id": "12a"}, 6073, "Invalid callback ID"),
        ({"start_date": "2026-3-1"}, 6031, "Invalid date format"),
        ({"end_date": "2026-02-30"}, 6031, "Invalid date format"),
        ({"start_date": "03/01/2026"}, 6031, "Invalid date format"),
        ({"offset": "50001"}, 7231, "Invalid offset value"),
        ({"offset": "-1"}, 7231, "Invalid offset value"),
        ({"offset": "ten"}, 7231, "Invalid offset value"),
        ({"limit": "5001"}, 7230, "Invalid limit value"),
        ({"limit": "many"}, 7230, "Invalid limit value"),
        ({"limit": "0"}, 7258, "Limit must be at least 1"),
        ({"limit": "-3"}, 7258, "Limit must be at least 1"),
        ({"stage": "LATE"}, None, "Invalid callback stage"),
        ({"recipient": "Everyone"}, None, "Invalid recipient"),
    ],
)
async def test_search_errors(
    emu: ConvosoEmulator, post: Post, fields: dict[str, str], code: int | None, message: str
) -> None:
    status, body = await post(emu, "search", **fields)
    assert status == 200
    assert body["success"] is False
    assert body.get("code") == code
    assert body["error"].startswith(message)
    assert "results" not in body


async def test_invalid_token_is_a_business_error(emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(emu, "search", auth_token="wrong")
    assert (status, body) == (
        200,
        {"success": False, "code": 5001, "error": "Invalid authentication token"},
    )
    status, body = await post(emu, "insert", auth_token="")
    assert (status, body["code"]) == (200, 5001)


async def test_missing_token_is_http_401(emu: ConvosoEmulator, post: Post) -> None:
    status, body = await post(emu, "search", token=False, limit=5)
    assert status == 401
    assert body["success"] is False


async def test_unknown_path_and_method(emu: ConvosoEmulator, http: object) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    async with http.post(emu.url("export"), data={"auth_token": emu.auth_token}) as response:
        assert response.status == 404
    async with http.get(emu.url("search")) as response:
        assert response.status == 405
    assert emu.requests == []


async def test_first_value_of_a_repeated_field_wins(emu: ConvosoEmulator, http: object) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    form = [("auth_token", emu.auth_token), ("stage", "PENDING"), ("stage", "COMPLETED")]
    async with http.post(emu.url("search"), data=form) as response:
        body = await response.json()
    assert body["total"] == len(expected_ids(emu, stages=["PENDING"]))
    assert emu.requests[-1].form == {"auth_token": "***", "stage": "PENDING"}


async def test_multipart_file_fields_are_ignored(emu: ConvosoEmulator, http: object) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    form = aiohttp.FormData()
    form.add_field("auth_token", emu.auth_token)
    form.add_field("limit", b"3", filename="limit.txt")
    async with http.post(emu.url("search"), data=form) as response:
        body = await response.json()
    assert (body["limit"], len(body["results"])) == (20, 20)
    assert emu.requests[-1].form == {"auth_token": "***"}


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"auth_token=emulator-token&comments=Jos\xe9"),
        ("application/x-www-form-urlencoded; charset=bogus", b"auth_token=emulator-token"),
        ("multipart/form-data", b"--xx\r\nbroken"),
    ],
    ids=["raw-latin-1-byte", "unknown-charset", "multipart-without-boundary"],
)
async def test_an_undecodable_body_is_a_quiet_400(
    emu: ConvosoEmulator,
    http: object,
    caplog: pytest.LogCaptureFixture,
    content_type: str,
    body: bytes,
) -> None:
    import aiohttp

    assert isinstance(http, aiohttp.ClientSession)
    emu.script(["status_503"])
    headers = {"Content-Type": content_type}
    async with http.post(emu.url("search"), data=body, headers=headers) as response:
        assert response.status == 400
        assert await response.json() == {"success": False, "error": "Malformed form body"}
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []  # no traceback
    assert (emu.requests, emu.scripted_pending) == ([], 1)  # no fault drawn, nothing logged


def _binds_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except (OSError, AttributeError):  # no IPv6 here (AttributeError: built without it)
        return False
    return True


@pytest.mark.skipif(not _binds_ipv6_loopback(), reason="cannot bind ::1")
async def test_an_ipv6_host_is_bracketed_in_the_url(post: Post) -> None:
    async with ConvosoEmulator(records=10, host="::1") as emu:
        assert emu.base_url == f"http://[::1]:{emu.port}/v1"
        status, body = await post(emu, "search")
    assert (status, body["total"]) == (200, 10)
