"""ConvosoClient end to end over aioresponses: forms sent, answers decoded, retry rules.

``mock_api.requests`` records what the client sent; the form is the ``data`` keyword.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from itertools import pairwise
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aioresponses import CallbackResult, aioresponses
from yarl import URL

from convoso_async import (
    AuthenticationError,
    Callback,
    ConvosoAPIError,
    ConvosoClient,
    ConvosoError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    RateLimitError,
    Recipient,
    RetryPolicy,
    ServerError,
    Stage,
    TransportError,
)

from .conftest import BASE, TOKEN, raw_server
from .samples import REFERENCE_RECORD, drain

SEARCH_URL = f"{BASE}/callbacks/search"
INSERT_URL = f"{BASE}/callbacks/insert"
UPDATE_URL = f"{BASE}/callbacks/update"
DELETE_URL = f"{BASE}/callbacks/delete"

RECORD = dict(REFERENCE_RECORD)
PAGE = {"offset": 0, "limit": 20, "total": 1, "results": [RECORD]}
WHEN = datetime(2026, 3, 5, 14, 30)


@pytest.fixture(autouse=True)
def _seeded_jitter() -> Iterator[None]:
    state = random.getstate()
    random.seed(99)
    yield
    random.setstate(state)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVOSO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("CONVOSO_BASE_URL", raising=False)


def sent(mock_api: aioresponses) -> list[tuple[str, dict[str, str]]]:
    """Every request made, as (url, form) pairs, the form decoded from the body sent."""
    requests = [
        (str(url), call.kwargs)
        for (method, url), calls in mock_api.requests.items()
        for call in calls
        if method == "POST"
    ]
    for _, kwargs in requests:
        assert kwargs["data"].content_type == "application/x-www-form-urlencoded"
    return [
        (url, dict(parse_qsl(kwargs["data"].decode(), keep_blank_values=True)))
        for url, kwargs in requests
    ]


def count(mock_api: aioresponses) -> int:
    return sum(len(calls) for calls in mock_api.requests.values())


def refused() -> aiohttp.ClientConnectorError:
    key = SimpleNamespace(host="api.test", port=443, ssl=True, is_ssl=True)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connection refused"))  # type: ignore[arg-type]


def make_client(policy: RetryPolicy, **kwargs: Any) -> ConvosoClient:
    return ConvosoClient(TOKEN, base_url=BASE, retry=policy, **kwargs)


# --- endpoints: happy paths and forms ----------------------------------------------------


async def test_search_page_sends_the_form_and_decodes_the_page(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(fast_retry) as client:
        page = await client.callbacks.search_page()
    assert page.total == 1
    assert page.results == (
        Callback(
            id="657",
            lead_id="12345",
            list_id="333",
            campaign_id="111",
            status="ACTIVE",
            created_at=datetime(2026, 3, 3, 10, 0),
            callback_time=WHEN,
            modified_at=datetime(2026, 3, 3, 14, 30),
            user="Jane Smith",
            recipient=Recipient.SYSTEM,
            comments="Customer requested callback",
            stage=Stage.PENDING,
            user_name="jane.smith@company.com",
            campaign_name="Sales Campaign",
        ),
    )
    assert sent(mock_api) == [
        (SEARCH_URL, {"offset": "0", "limit": "20", "auth_token": TOKEN}),
    ]


async def test_search_page_sends_every_filter(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload={"success": True, "data": {**PAGE, "offset": "100"}})
    async with make_client(fast_retry) as client:
        page = await client.callbacks.search_page(
            offset=100,
            limit=50,
            start_date=date(2026, 3, 1),
            end_date="2026-03-05",
            campaign_id=111,
            callback_id="657",
            lead_id="12345",
            list_id=333,
            recipient="personal",
            user_id="22222",
            stage="pastdue",
        )
    assert page.offset == 100
    ((url, form),) = sent(mock_api)
    assert url == SEARCH_URL
    assert form == {
        "offset": "100",
        "limit": "50",
        "start_date": "2026-03-01",
        "end_date": "2026-03-05",
        "campaign_id": "111",
        "id": "657",
        "lead_id": "12345",
        "list_id": "333",
        "recipient": "Personal",
        "user_id": "22222",
        "stage": "PAST_DUE",
        "auth_token": TOKEN,
    }


async def test_search_page_falls_back_to_the_requested_offset_and_limit(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload={"total": "1", "results": [RECORD]})
    async with make_client(fast_retry) as client:
        page = await client.callbacks.search_page(offset=40, limit=10)
    assert (page.offset, page.limit, page.total) == (40, 10, 1)


async def test_insert_sends_the_form_and_returns_the_new_id(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": "657"}})
    async with make_client(fast_retry) as client:
        new_id = await client.callbacks.insert(
            lead_id="12345",
            recipient=Recipient.SYSTEM,
            callback_time=WHEN,
            callback_time_zone=-7.0,
            comments="Customer requested callback",
        )
    assert new_id == "657"
    assert sent(mock_api) == [
        (
            INSERT_URL,
            {
                "lead_id": "12345",
                "recipient": "system",
                "callback_time_zone": "-7.00",
                "callback_time": "2026-03-05 02:30 PM",
                "comments": "Customer requested callback",
                "auth_token": TOKEN,
            },
        )
    ]


async def test_insert_personal_with_aware_datetime_derives_the_zone(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": 700}})
    when = datetime(2026, 3, 6, 10, 0, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    async with make_client(fast_retry) as client:
        new_id = await client.callbacks.insert(
            lead_id=12345, user_id=22222, recipient="Personal", callback_time=when
        )
    assert new_id == "700"
    ((_, form),) = sent(mock_api)
    assert form["callback_time_zone"] == "5.30"
    assert form["callback_time"] == "2026-03-06 10:00 AM"
    assert form["recipient"] == "personal"
    assert form["user_id"] == "22222"


async def test_insert_answer_without_an_id_is_malformed(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(INSERT_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        with pytest.raises(MalformedResponseError, match="callback_id"):
            await client.callbacks.insert(
                lead_id="1", recipient="system", callback_time=WHEN, callback_time_zone=-7
            )
    assert count(mock_api) == 1


async def test_update_sends_every_field_and_returns_the_id(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(UPDATE_URL, payload={"success": True, "data": {"callback_id": "9999"}})
    async with make_client(fast_retry) as client:
        result = await client.callbacks.update(
            9999,
            callback_time="2026-03-05 02:30 PM",
            callback_time_zone=-7,
            comments="moved",
            user_id="5",
            recipient=Recipient.PERSONAL,
            callback_status="dismissed",
        )
    assert result == "9999"
    assert sent(mock_api) == [
        (
            UPDATE_URL,
            {
                "callback_id": "9999",
                "user_id": "5",
                "recipient": "personal",
                "comments": "moved",
                "callback_time": "2026-03-05 02:30 PM",
                "callback_time_zone": "-7.00",
                "callback_status": "dismissed",
                "auth_token": TOKEN,
            },
        )
    ]


async def test_update_without_an_id_in_the_answer_returns_the_callback_id(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(UPDATE_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        assert await client.callbacks.update("9999", comments="x") == "9999"


async def test_delete_sends_the_callback_id(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(DELETE_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        assert await client.callbacks.delete(9999) is None
    assert sent(mock_api) == [(DELETE_URL, {"callback_id": "9999", "auth_token": TOKEN})]


async def test_counters_track_requests_and_retries(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, status=503)
    mock_api.post(SEARCH_URL, payload=PAGE)
    mock_api.post(DELETE_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        await client.callbacks.search_page()
        await client.callbacks.delete("1")
        assert (client.requests_sent, client.retries) == (3, 1)


# --- API failures ------------------------------------------------------------------------

CALLS: dict[str, Any] = {
    "delete": lambda c: c.callbacks.delete("1"),
    "update": lambda c: c.callbacks.update("1", comments="x"),
    "search": lambda c: c.callbacks.search_page(),
    "insert": lambda c: c.callbacks.insert(
        lead_id="1", recipient="system", callback_time=WHEN, callback_time_zone=-7
    ),
}


@pytest.mark.parametrize(
    ("url", "call", "body", "cls", "code"),
    [
        (
            DELETE_URL,
            "delete",
            {"success": False, "code": 6074, "error": "Callback not found"},
            NotFoundError,
            6074,
        ),
        (
            UPDATE_URL,
            "update",
            {"success": False, "code": "6073", "text": "Invalid callback ID"},
            InvalidParameterError,
            6073,
        ),
        (
            SEARCH_URL,
            "search",
            {"success": False, "code": 5001, "text": "Auth token is invalid"},
            AuthenticationError,
            5001,
        ),
        (
            INSERT_URL,
            "insert",
            {"success": False, "message": "Invalid timezone offset"},
            InvalidParameterError,
            None,
        ),
        # No flag, the text only in "message": an error all the same.
        (UPDATE_URL, "update", {"message": "Callback not found"}, NotFoundError, None),
        (DELETE_URL, "delete", {"message": "Callback not found"}, NotFoundError, None),
    ],
)
async def test_success_false_raises_its_typed_error_without_retry(
    mock_api: aioresponses,
    fast_retry: RetryPolicy,
    url: str,
    call: str,
    body: dict[str, Any],
    cls: type[ConvosoAPIError],
    code: int | None,
) -> None:
    mock_api.post(url, payload=body, repeat=True)
    async with make_client(fast_retry) as client:
        request = CALLS[call](client)
        with pytest.raises(cls) as info:
            await request
    assert type(info.value) is cls
    assert info.value.code == code
    assert info.value.endpoint == url.removeprefix(f"{BASE}/")
    assert count(mock_api) == 1


# Neither a success flag of another spelling nor an answer that does not say it succeeded
# is a success: delete used to return as done, update with the id it was given.
@pytest.mark.parametrize(
    ("url", "call", "body", "cls"),
    [
        (DELETE_URL, "delete", {"success": "failed", "error": "Callback not found"}, NotFoundError),
        (
            UPDATE_URL,
            "update",
            {"success": "error", "text": "Invalid callback ID"},
            InvalidParameterError,
        ),
        (DELETE_URL, "delete", {}, MalformedResponseError),
        (UPDATE_URL, "update", {}, MalformedResponseError),
        (INSERT_URL, "insert", {"success": "maybe"}, MalformedResponseError),
    ],
)
async def test_an_answer_that_does_not_say_it_succeeded_is_no_success(
    mock_api: aioresponses,
    fast_retry: RetryPolicy,
    url: str,
    call: str,
    body: dict[str, Any],
    cls: type[ConvosoError],
) -> None:
    mock_api.post(url, payload=body, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(cls):
            await CALLS[call](client)
    assert count(mock_api) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_http_401_and_403_are_authentication_errors_not_retried(
    mock_api: aioresponses, fast_retry: RetryPolicy, status: int
) -> None:
    mock_api.post(SEARCH_URL, status=status, payload={"error": "Invalid authentication token"})
    async with make_client(fast_retry) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.callbacks.search_page()
    assert info.value.status == status
    assert count(mock_api) == 1


@pytest.mark.parametrize("status", [400, 404])
async def test_other_4xx_are_not_retried(
    mock_api: aioresponses, fast_retry: RetryPolicy, status: int
) -> None:
    mock_api.post(SEARCH_URL, status=status, body="nope", repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(ConvosoAPIError) as info:
            await client.callbacks.search_page()
    assert info.value.status == status
    assert count(mock_api) == 1


async def test_json_array_body_is_malformed_and_not_retried(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, body="[1, 2, 3]", repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(MalformedResponseError) as info:
            await client.callbacks.search_page()
    assert info.value.retryable is False
    assert count(mock_api) == 1


async def test_wrong_page_shape_is_malformed_and_not_retried(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload={"total": 1, "results": "oops"}, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(MalformedResponseError):
            await client.callbacks.search_page()
    assert count(mock_api) == 1


# --- search(): pages parsed when the walk reaches them -----------------------------------


def page_of(offset: int, total: int, ids: list[str]) -> dict[str, object]:
    return {
        "offset": offset,
        "limit": 2,
        "total": total,
        "results": [{**RECORD, "id": i} for i in ids],
    }


async def test_a_page_found_unreadable_when_reached_is_fetched_again(
    mock_api: aioresponses, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.post(SEARCH_URL, payload=page_of(0, 4, ["1", "2"]))
    mock_api.post(SEARCH_URL, body=b"<html>502 Bad Gateway</html>")  # a 200 that is not JSON
    mock_api.post(SEARCH_URL, payload=page_of(2, 4, ["3", "4"]))
    async with make_client(fast_retry) as client:
        with caplog.at_level(logging.INFO, logger="convoso_async"):
            got = await client.callbacks.search(page_size=2, concurrency=1).collect()
        retries = client.retries
    assert [c.id for c in got] == ["1", "2", "3", "4"]
    assert [form["offset"] for _, form in sent(mock_api)] == ["0", "2", "2"]
    assert retries == 1
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert (
        logging.WARNING,
        "the search page at offset 2 could not be read when the walk reached it "
        "(callbacks/search: the server sent a body that is not JSON)",
    ) in messages
    # The retry itself is told as every retry is, once it is certain to be made.
    assert any(
        level == logging.INFO and "attempt 1 of 3" in text and "retrying in" in text
        for level, text in messages
    )


async def test_the_first_pages_total_is_read_off_its_head_before_it_is_parsed(
    mock_api: aioresponses, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    """The walk needs only ``total`` to send its next requests, so it reads it off the
    head of the first body and parses that body once they have left. A first body that
    then proves unreadable is fetched again after the second page's request, not
    before: the second request went out on the peeked total."""
    torn = b'{"offset": 0, "limit": 2, "total": 4, "results": [{"id": "1", <html>'
    mock_api.post(SEARCH_URL, body=torn)
    mock_api.post(SEARCH_URL, payload=page_of(2, 4, ["3", "4"]))
    mock_api.post(SEARCH_URL, payload=page_of(0, 4, ["1", "2"]))
    async with make_client(fast_retry) as client:
        with caplog.at_level(logging.WARNING, logger="convoso_async"):
            got = await client.callbacks.search(page_size=2, concurrency=1).collect()
    assert [form["offset"] for _, form in sent(mock_api)] == ["0", "2", "0"]
    assert [c.id for c in got] == ["1", "2", "3", "4"]
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith("the search page at offset 0 could not be read")


async def test_pages_of_a_walk_keep_the_asked_offset_and_limit_when_the_server_omits_them(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    # As search_page() does: an answer without them is read as the page that was asked for.
    for ids in (["1", "2"], ["3"]):
        mock_api.post(
            SEARCH_URL, payload={"total": 3, "results": [{**RECORD, "id": i} for i in ids]}
        )
    async with make_client(fast_retry) as client:
        pages = [page async for page in client.callbacks.search(page_size=2, concurrency=1).pages()]
    asked = [(int(form["offset"]), int(form["limit"])) for _, form in sent(mock_api)]
    assert asked == [(0, 2), (2, 1)]  # the last request asks only for the one record left
    assert [(p.offset, p.limit) for p in pages] == asked
    assert [[c.id for c in p.results] for p in pages] == [["1", "2"], ["3"]]


async def test_search_stops_after_max_items(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=page_of(0, 6, ["1", "2"]))
    mock_api.post(SEARCH_URL, payload=page_of(2, 6, ["3", "4"]))
    mock_api.post(SEARCH_URL, payload=page_of(4, 6, ["5", "6"]))
    async with make_client(fast_retry) as client:
        got = await client.callbacks.search(page_size=2, max_items=3, concurrency=1).collect()
    assert [c.id for c in got] == ["1", "2", "3"]
    assert [form["offset"] for _, form in sent(mock_api)] == ["0", "2"]


async def test_export_sends_its_filters_with_every_request(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """Each filter export() takes reaches the probe and the page requests alike: one
    left behind would export callbacks the caller did not ask for."""

    def answer(url: URL, **kwargs: Any) -> CallbackResult:
        form = dict(parse_qsl(kwargs["data"].decode()))
        offset, limit = int(form["offset"]), int(form["limit"])
        records = [{**RECORD, "id": str(n)} for n in (1, 2)][offset : offset + limit]
        return CallbackResult(
            payload={"offset": offset, "limit": limit, "total": 2, "results": records}
        )

    mock_api.post(SEARCH_URL, callback=answer, repeat=True)
    filters = {
        "campaign_id": "11",
        "list_id": "22",
        "user_id": "33",
        "lead_id": "44",
        "recipient": "System",
        "stage": "PENDING",
    }
    async with make_client(fast_retry) as client:
        export = client.callbacks.export(date(2026, 3, 1), date(2026, 3, 5), **filters)
        got = [c.id async for c in export]
    assert got == ["1", "2"]
    forms = [form for _, form in sent(mock_api)]
    assert len(forms) == 2  # the probe (limit=1), then the one page
    for form in forms:
        assert {name: form.get(name) for name in filters} == filters
        assert (form["start_date"], form["end_date"]) == ("2026-03-01", "2026-03-05")


async def test_search_takes_no_more_requests_at_a_time_than_the_client_allows(
    fast_retry: RetryPolicy,
) -> None:
    # Documented: concurrency is never more than the client's max_concurrency; the pages
    # it would hold beyond that would only wait for a slot, holding memory.
    client = make_client(fast_retry, max_concurrency=3)
    assert client.callbacks.search(concurrency=16).concurrency == 3
    assert client.callbacks.search(concurrency=2).concurrency == 2
    await client.close()


async def test_a_page_found_unreadable_with_no_attempt_left_claims_no_second_fetch(
    mock_api: aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    # With attempts=1 the page is not fetched again: the log said it was ("fetching it
    # again"), followed by the next page's POST, which looked like that fetch.
    mock_api.post(SEARCH_URL, payload=page_of(0, 4, ["1", "2"]))
    mock_api.post(SEARCH_URL, body=b"<html>502 Bad Gateway</html>")
    async with make_client(RetryPolicy(attempts=1)) as client:
        with (
            caplog.at_level(logging.DEBUG, logger="convoso_async"),
            pytest.raises(MalformedResponseError),
        ):
            await client.callbacks.search(page_size=2, concurrency=1).collect()
    assert count(mock_api) == 2
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert messages == [
        "the search page at offset 2 could not be read when the walk reached it "
        "(callbacks/search: the server sent a body that is not JSON)"
    ]


async def test_a_page_found_to_be_an_api_error_when_reached_raises_it_unretried(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=page_of(0, 4, ["1", "2"]))
    mock_api.post(SEARCH_URL, payload={"success": False, "code": 6026, "text": "Invalid"})
    async with make_client(fast_retry) as client:
        pager = client.callbacks.search(page_size=2, concurrency=1)
        got: list[str] = []
        with pytest.raises(InvalidParameterError):
            await drain(pager, got)
    assert got == ["1", "2"]
    assert pager.next_offset == 2
    assert count(mock_api) == 2


async def test_the_token_echoed_in_a_page_error_is_redacted(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=page_of(0, 4, ["1", "2"]))
    mock_api.post(SEARCH_URL, payload={"success": False, "error": f"bad token {TOKEN}"})
    async with make_client(fast_retry) as client:
        with pytest.raises(ConvosoError) as info:
            await client.callbacks.search(page_size=2, concurrency=1).collect()
    assert TOKEN not in str(info.value)
    assert TOKEN not in repr(info.value.args)


# --- retry rules -------------------------------------------------------------------------


async def test_429_then_200_succeeds_with_two_requests(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, status=429, headers={"Retry-After": "0"})
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(fast_retry) as client:
        page = await client.callbacks.search_page()
    assert page.total == 1
    assert count(mock_api) == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_transient_5xx_is_retried(
    mock_api: aioresponses, fast_retry: RetryPolicy, status: int
) -> None:
    mock_api.post(SEARCH_URL, status=status, body="<html>down</html>")
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(fast_retry) as client:
        assert (await client.callbacks.search_page()).total == 1
    assert count(mock_api) == 2


@pytest.mark.parametrize("body", ["<html><body>Bad gateway</body></html>", "", '{"total": 1, "res'])
async def test_200_that_is_not_json_is_retried_then_succeeds(
    mock_api: aioresponses, fast_retry: RetryPolicy, body: str
) -> None:
    mock_api.post(SEARCH_URL, body=body, content_type="text/html")
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(fast_retry) as client:
        assert (await client.callbacks.search_page()).total == 1
    assert count(mock_api) == 2


async def test_rate_limit_error_after_attempts_are_spent(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, status=429, headers={"Retry-After": "100"}, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(RateLimitError) as info:
            await client.callbacks.search_page()
    assert info.value.retry_after == 100.0
    assert count(mock_api) == fast_retry.attempts


async def test_a_retry_after_date_beyond_the_calendar_is_ignored_not_a_crash(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """An HTTP-date whose year overflows made the 429 escape as an OverflowError."""
    date = "Mon, 01 Jan 99999999999 00:00:00 GMT"
    mock_api.post(SEARCH_URL, status=429, headers={"Retry-After": date}, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(RateLimitError) as info:
            await client.callbacks.search_page()
    assert info.value.retry_after is None
    assert count(mock_api) == fast_retry.attempts


async def test_server_error_after_attempts_are_spent(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, status=503, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(ServerError) as info:
            await client.callbacks.search_page()
    assert info.value.status == 503
    assert count(mock_api) == fast_retry.attempts


async def test_malformed_error_after_attempts_are_spent(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, body="<html>", repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(MalformedResponseError) as info:
            await client.callbacks.search_page()
    assert info.value.retryable is True
    assert count(mock_api) == fast_retry.attempts


@pytest.mark.parametrize(
    ("exception", "was_sent"),
    [
        (refused(), False),
        (aiohttp.ConnectionTimeoutError(), False),
        (aiohttp.ServerDisconnectedError(), True),
        (TimeoutError(), True),
        (aiohttp.ClientPayloadError("cut short"), True),
    ],
)
async def test_transport_error_after_attempts_are_spent(
    mock_api: aioresponses, fast_retry: RetryPolicy, exception: Exception, was_sent: bool
) -> None:
    mock_api.post(SEARCH_URL, exception=exception, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(TransportError) as info:
            await client.callbacks.search_page()
    assert info.value.sent is was_sent
    assert info.value.retryable is True
    assert info.value.endpoint == "callbacks/search"
    assert info.value.__cause__ is exception
    assert count(mock_api) == fast_retry.attempts


async def test_timeout_is_reported_as_timed_out(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, exception=TimeoutError(), repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(TransportError, match="timed out"):
            await client.callbacks.search_page()


async def test_tls_failure_is_not_retried(mock_api: aioresponses, fast_retry: RetryPolicy) -> None:
    key = SimpleNamespace(host="api.test", port=443, ssl=True, is_ssl=True)
    error = aiohttp.ClientConnectorCertificateError(key, ValueError("self-signed"))  # type: ignore[arg-type]
    mock_api.post(SEARCH_URL, exception=error, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(TransportError, match="TLS") as info:
            await client.callbacks.search_page()
    assert (info.value.sent, info.value.retryable) == (False, False)
    assert count(mock_api) == 1


async def test_retry_after_is_capped_at_max_wait(mock_api: aioresponses) -> None:
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.01)
    mock_api.post(SEARCH_URL, status=429, headers={"Retry-After": "100"})
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(policy) as client:
        page = await asyncio.wait_for(client.callbacks.search_page(), timeout=2)
    assert page.total == 1
    assert count(mock_api) == 2


# --- the insert rule ---------------------------------------------------------------------


async def _insert(client: ConvosoClient) -> str:
    return await client.callbacks.insert(
        lead_id="12345", recipient="system", callback_time=WHEN, callback_time_zone=-7
    )


@pytest.mark.parametrize(
    ("response", "error"),
    [
        ({"exception": aiohttp.ServerDisconnectedError()}, TransportError),
        ({"exception": TimeoutError()}, TransportError),
        ({"status": 500}, ServerError),
        ({"status": 503}, ServerError),
        ({"body": "<html>"}, MalformedResponseError),
    ],
)
async def test_insert_is_not_retried_after_an_ambiguous_failure(
    mock_api: aioresponses,
    fast_retry: RetryPolicy,
    response: dict[str, Any],
    error: type[ConvosoError],
) -> None:
    mock_api.post(INSERT_URL, **response)
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": "657"}})
    async with make_client(fast_retry) as client:
        with pytest.raises(error):
            await _insert(client)
    assert count(mock_api) == 1


@pytest.mark.parametrize(
    "response",
    [
        {"exception": refused()},
        {"exception": aiohttp.ConnectionTimeoutError()},
        {"status": 429},
    ],
)
async def test_insert_is_retried_when_provably_not_processed(
    mock_api: aioresponses, fast_retry: RetryPolicy, response: dict[str, Any]
) -> None:
    mock_api.post(INSERT_URL, **response)
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": "657"}})
    async with make_client(fast_retry) as client:
        assert await _insert(client) == "657"
    assert count(mock_api) == 2


async def test_update_and_delete_are_retried_after_a_disconnect(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(UPDATE_URL, exception=aiohttp.ServerDisconnectedError())
    mock_api.post(UPDATE_URL, payload={"success": True})
    mock_api.post(DELETE_URL, exception=aiohttp.ServerDisconnectedError())
    mock_api.post(DELETE_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        assert await client.callbacks.update("9", comments="x") == "9"
        await client.callbacks.delete("9")
    assert count(mock_api) == 4


async def test_a_retry_is_logged_under_the_endpoint_that_failed(
    mock_api: aioresponses, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    mock_api.post(UPDATE_URL, status=503)
    mock_api.post(UPDATE_URL, payload={"success": True})
    async with make_client(fast_retry) as client:
        with caplog.at_level(logging.INFO, logger="convoso_async"):
            assert await client.callbacks.update("9", comments="x") == "9"
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert line.startswith("callbacks/update failed (attempt 1 of 3)")


# --- deadline and budget -----------------------------------------------------------------


async def test_deadline_stops_retrying(mock_api: aioresponses) -> None:
    policy = RetryPolicy(
        attempts=1000, initial_wait=0.01, max_wait=0.01, deadline=0.3, retry_budget=None
    )
    mock_api.post(SEARCH_URL, status=503, repeat=True)
    async with make_client(policy) as client:
        # 0.3 s, not less: on a loaded machine the first attempt must still get sent.
        with pytest.raises(ServerError):
            await asyncio.wait_for(client.callbacks.search_page(), timeout=5)
    assert 1 <= count(mock_api) < 1000


async def test_calls_whose_deadline_passes_in_the_queue_fail_unsent_and_free_their_slot(
    mock_api: aioresponses,
) -> None:
    """One slot, 0.2 s between starts, a 0.05 s deadline: the second call holds the slot
    waiting for the rate limiter, the third waits for the slot; both run out of time."""
    mock_api.post(DELETE_URL, payload={"success": True}, repeat=True)
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, deadline=0.05)
    async with make_client(policy, max_concurrency=1, rate_limit=5) as client:
        calls = (client.callbacks.delete("1") for _ in range(3))
        outcomes = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 1.0)
        assert outcomes[0] is None
        for queued_out in outcomes[1:]:
            assert isinstance(queued_out, TransportError)
            assert not queued_out.sent
            assert not queued_out.retryable  # no time is left: a retry could not help
            assert "deadline passed" in str(queued_out)
        assert not client._slots.locked()  # the slot taken while the limiter was due is back
        assert client.requests_sent == 1  # the calls that ran out of time sent nothing
    assert count(mock_api) == 1


async def test_retry_budget_stops_retries_once_spent(mock_api: aioresponses) -> None:
    policy = RetryPolicy(attempts=10, initial_wait=0.001, max_wait=0.002, retry_budget=10)
    mock_api.post(SEARCH_URL, status=503, repeat=True)
    async with make_client(policy) as client:
        with pytest.raises(ServerError):
            await client.callbacks.search_page()
        assert count(mock_api) == 3  # two retries at cost 5 from a budget of 10
        with pytest.raises(ServerError):
            await client.callbacks.search_page()
    assert count(mock_api) == 4  # the budget is client-wide: no retry left


# --- concurrency and rate limit ----------------------------------------------------------


async def test_max_concurrency_bounds_requests_in_flight(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    in_flight = 0
    peak = 0

    async def slow(url: URL, **kwargs: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(5):
            await asyncio.sleep(0)  # yield to the other tasks, no real wait
        in_flight -= 1

    mock_api.post(SEARCH_URL, payload=PAGE, callback=slow, repeat=True)
    async with make_client(fast_retry, max_concurrency=2) as client:
        pages = await asyncio.gather(*(client.callbacks.search_page() for _ in range(10)))
    assert len(pages) == 10
    assert peak == 2


async def test_rate_limit_spaces_request_starts(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE, repeat=True)
    loop = asyncio.get_running_loop()
    async with make_client(fast_retry, rate_limit=200) as client:
        started = loop.time()
        await asyncio.gather(*(client.callbacks.search_page() for _ in range(5)))
        elapsed = loop.time() - started
    assert elapsed >= 4 / 200 * 0.9  # four intervals of 5 ms between five starts
    assert count(mock_api) == 5


async def test_rate_limit_spaces_the_starts_of_calls_queued_for_a_slot(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """One slot, a slow first request: the calls queued behind it must still go out
    1/rate apart when it frees, not back to back."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    async def record(url: URL, **kwargs: Any) -> None:
        starts.append(loop.time())
        if len(starts) == 1:
            await asyncio.sleep(0.5)  # five intervals: every other call is queued

    mock_api.post(DELETE_URL, payload={"success": True}, callback=record, repeat=True)
    async with make_client(fast_retry, rate_limit=10, max_concurrency=1) as client:
        await asyncio.gather(*(client.callbacks.delete("1") for _ in range(4)))
    gaps = [later - earlier for earlier, later in pairwise(starts)]
    assert len(gaps) == 3
    # Back to back they would be ~1 ms apart. The starts are read after the limiter, so
    # a loaded machine can delay one and shorten the next gap: half an interval of slack
    # (50 ms) keeps the test about the limiter, not about the scheduler.
    assert min(gaps) >= 1 / 10 * 0.5


async def test_rate_limit_waits_only_for_what_is_left_of_the_interval(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """Two starts a second, the second call made 0.4 s after the first: it must start at
    0.5 s, when its turn comes, not a whole interval after it was made (0.9 s)."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []

    def record(url: URL, **kwargs: Any) -> None:
        starts.append(loop.time())

    mock_api.post(DELETE_URL, payload={"success": True}, callback=record, repeat=True)
    async with make_client(fast_retry, rate_limit=2) as client:
        await client.callbacks.delete("1")
        await asyncio.sleep(0.4)  # idle for most of the interval: the scenario, not a wait
        await client.callbacks.delete("2")
    (gap,) = [later - earlier for earlier, later in pairwise(starts)]
    # Waiting a whole interval would put it at 0.9 s or later; up to 0.35 s of slack for a
    # loaded machine below that.
    assert 0.5 * 0.9 <= gap < 0.85


async def _until_asleep_in_the_limiter(client: ConvosoClient, sleepers: int) -> None:
    """Yield to the loop until ``sleepers`` calls are waiting in the rate limiter (the one
    at the head of the line asleep on the client's close() event, the others in line for
    their turn); bounded, and no time goes by."""
    closing: Any = client._closing
    line: Any = client._limiter._turns  # type: ignore[union-attr]

    def waiting() -> int:
        return len(closing._waiters or ()) + len(line._waiters or ())

    for _ in range(1000):
        if waiting() >= sleepers:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{waiting()} calls reached the limiter, not {sleepers}")


async def test_cancelled_calls_waiting_on_the_rate_limit_do_not_delay_later_ones(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(DELETE_URL, payload={"success": True}, repeat=True)
    # A slot for every call: the limiter is passed after the slot is taken, so with the
    # default 8 slots only 8 calls would reach it, and 8 leftover claims (0.8 s) would
    # still fit in the 1 s allowed below.
    async with make_client(fast_retry, rate_limit=10, max_concurrency=51) as client:
        await client.callbacks.delete("1")
        queued = [asyncio.create_task(client.callbacks.delete("1")) for _ in range(50)]
        await _until_asleep_in_the_limiter(client, 50)  # every task is waiting for its turn
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        # The next start is at most one 0.1 s interval away; the 50 cancelled calls would
        # otherwise have pushed it out by 5 s.
        await asyncio.wait_for(client.callbacks.delete("1"), timeout=1.0)
    assert count(mock_api) == 2


# --- configuration -----------------------------------------------------------------------


def test_token_and_base_url_fall_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CONVOSO_BASE_URL", BASE)
    client = ConvosoClient()
    assert client.base_url == URL(BASE)
    assert client._transport._token == TOKEN


async def test_environment_token_is_sent(
    monkeypatch: pytest.MonkeyPatch, mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("CONVOSO_BASE_URL", BASE)
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with ConvosoClient(retry=fast_retry) as client:
        await client.callbacks.search_page()
    ((_, form),) = sent(mock_api)
    assert form["auth_token"] == "from-env"


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("CONVOSO_BASE_URL", "https://env.example/v1")
    client = ConvosoClient("explicit", base_url=BASE)
    assert client.base_url == URL(BASE)
    assert client._transport._token == "explicit"


def test_an_empty_token_passed_is_an_error_even_with_one_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only a token not passed (None) falls back: an empty one (a blank config value) must
    # not be quietly swapped for whatever token the environment holds.
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", "from-env")
    with pytest.raises(ValueError, match="no auth token"):
        ConvosoClient("", base_url=BASE)


@pytest.mark.parametrize("blank", ["", "  "])
def test_an_empty_base_url_passed_is_an_error_not_the_environments_or_convosos(
    monkeypatch: pytest.MonkeyPatch, blank: str
) -> None:
    # An unset variable read into base_url= must not send the token to another API.
    monkeypatch.setenv("CONVOSO_BASE_URL", "http://127.0.0.1:8787/v1")
    with pytest.raises(ValueError, match="base_url is empty"):
        ConvosoClient(TOKEN, base_url=blank)
    monkeypatch.delenv("CONVOSO_BASE_URL")
    with pytest.raises(ValueError, match="base_url is empty"):
        ConvosoClient(TOKEN, base_url=blank)


def test_default_base_url_is_convoso(no_env: None) -> None:
    assert ConvosoClient(TOKEN).base_url == URL("https://api.convoso.com/v1")


@pytest.mark.parametrize("token", [None, ""])
def test_no_token_is_a_value_error(no_env: None, token: str | None) -> None:
    with pytest.raises(ValueError, match="CONVOSO_AUTH_TOKEN"):
        ConvosoClient(token)


@pytest.mark.parametrize("token", [b"s3cret-token-value", 12345])
def test_a_token_that_is_not_text_is_a_value_error(no_env: None, token: object) -> None:
    """A bytes token (read from a file or a secrets store in binary) was taken, sent, and
    then broke every failure with a TypeError from the redaction of its error."""
    with pytest.raises(ValueError, match="auth_token must be a string") as info:
        ConvosoClient(token)  # type: ignore[arg-type]
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.convoso.com/v1",
        "http://10.0.0.1/v1",
        "http://localhost.evil.example/v1",
        "ftp://api.test/v1",
        "https:///v1",
        "api.convoso.com/v1",
    ],
)
def test_insecure_or_odd_base_url_is_a_value_error(no_env: None, url: str) -> None:
    with pytest.raises(ValueError, match="https") as info:
        ConvosoClient(TOKEN, base_url=url)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/v1",
        "http://LOCALHOST/v1",
        "http://127.0.0.1/v1",
        "http://127.0.0.5:9000/v1",
        "http://[::1]:8000/v1",
        "https://api.convoso.com/v1",
        "https://10.0.0.1/v1",
    ],
)
def test_https_or_loopback_http_base_url_is_accepted(no_env: None, url: str) -> None:
    assert ConvosoClient(TOKEN, base_url=url).base_url == URL(url)


async def test_blanks_around_base_url_are_dropped(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    # A value pasted into an env file with a trailing blank used to be sent as %20.
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with ConvosoClient(TOKEN, base_url=f"  {BASE} \t", retry=fast_retry) as client:
        await client.callbacks.search_page()
    ((url, _),) = sent(mock_api)
    assert url == SEARCH_URL


@pytest.mark.parametrize("url", [f"{BASE}?region=us", f"{BASE}#v2"])
def test_a_base_url_with_a_query_or_fragment_is_a_value_error(no_env: None, url: str) -> None:
    # Endpoints are joined onto the path, so the query would be dropped without a word.
    with pytest.raises(ValueError, match="query or fragment"):
        ConvosoClient(TOKEN, base_url=url)


def test_a_token_in_a_base_url_query_is_not_quoted_in_the_error(no_env: None) -> None:
    # The API's examples are written as query strings (auth_token=abc123&...), so a pasted
    # URL may carry the token: the message names the URL, not its query.
    with pytest.raises(ValueError, match="query or fragment") as info:
        ConvosoClient(TOKEN, base_url=f"{BASE}?auth_token=pasted-secret-42")
    assert "pasted-secret-42" not in str(info.value)
    assert "api.test/v1" in str(info.value)


def test_credentials_in_base_url_are_in_no_repr_or_error(no_env: None) -> None:
    client = ConvosoClient(TOKEN, base_url="https://ops:hunter2@api.example/v1")
    assert "hunter2" not in repr(client)
    assert "api.example/v1" in repr(client)
    with pytest.raises(ValueError, match="https") as info:
        ConvosoClient(TOKEN, base_url="http://ops:hunter2@api.example/v1")
    assert "hunter2" not in str(info.value)
    assert "api.example/v1" in str(info.value)


async def test_trailing_slash_on_base_url_is_tolerated(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with ConvosoClient(TOKEN, base_url=BASE + "/", retry=fast_retry) as client:
        await client.callbacks.search_page()
    ((url, _),) = sent(mock_api)
    assert url == SEARCH_URL


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1.0}, "timeout"),
        ({"rate_limit": 0}, "rate_limit"),
        ({"rate_limit": -5}, "rate_limit"),
        # Not numbers: each once escaped as a TypeError naming no option ('<' not
        # supported...), or was taken as 1 (True); a dict for retry as an AttributeError.
        ({"timeout": None}, "timeout"),
        ({"timeout": "30"}, "timeout"),
        ({"timeout": True}, "timeout"),
        ({"rate_limit": "5"}, "rate_limit"),
        ({"rate_limit": True}, "rate_limit"),
        ({"retry": {"attempts": 3}}, "retry"),
    ],
)
def test_bad_client_options_are_value_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConvosoClient(TOKEN, base_url=BASE, **kwargs)


def test_default_retry_policy() -> None:
    assert ConvosoClient(TOKEN, base_url=BASE).retry == RetryPolicy()


# --- validation before sending -----------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.callbacks.search_page(limit=0),
        lambda c: c.callbacks.search_page(limit=5001),
        lambda c: c.callbacks.search_page(offset=-1),
        lambda c: c.callbacks.search_page(offset=50_001),
        lambda c: c.callbacks.search_page(start_date="2026-03-05", end_date="2026-03-01"),
        lambda c: c.callbacks.search_page(start_date="2026-3-1"),
        lambda c: c.callbacks.search_page(stage="ACTIVE"),
        lambda c: c.callbacks.search_page(recipient="everyone"),
        lambda c: c.callbacks.search_page(callback_id=""),
        lambda c: c.callbacks.insert(lead_id="1", recipient="system", callback_time=WHEN),
        lambda c: c.callbacks.insert(
            lead_id="1", recipient="system", callback_time=WHEN, callback_time_zone=15
        ),
        lambda c: c.callbacks.insert(
            lead_id="1", recipient="system", callback_time="2026-03-05 14:30", callback_time_zone=0
        ),
        lambda c: c.callbacks.update("1"),
        lambda c: c.callbacks.update("1", callback_status="completed"),
        lambda c: c.callbacks.update("1", callback_time_zone=5.3),
        lambda c: c.callbacks.delete(" "),
    ],
)
async def test_validation_errors_raise_before_any_request(
    mock_api: aioresponses, fast_retry: RetryPolicy, call: Any
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE, repeat=True)
    async with make_client(fast_retry) as client:
        with pytest.raises(ValueError):
            await call(client)
    assert mock_api.requests == {}


# --- the token never leaks ---------------------------------------------------------------


def test_token_is_not_in_repr(fast_retry: RetryPolicy) -> None:
    client = make_client(fast_retry)
    assert TOKEN not in repr(client)
    assert TOKEN not in str(client)
    assert "api.test" in repr(client)


@pytest.mark.parametrize(
    "response",
    [
        {"status": 401, "payload": {"error": "Invalid authentication token"}},
        {"status": 429, "headers": {"Retry-After": "1"}},
        {"status": 503, "body": "down"},
        {"status": 404, "body": "nope"},
        {"body": "<html>"},
        {"payload": {"success": False, "code": 6074, "text": "Callback not found"}},
        {"payload": {"total": 1, "results": [{"id": "1", "callback_time": "soon"}]}},
        {"exception": refused()},
        {"exception": aiohttp.ServerDisconnectedError()},
        {"exception": TimeoutError()},
    ],
)
async def test_token_is_not_in_errors_or_logs(
    mock_api: aioresponses,
    fast_retry: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
    response: dict[str, Any],
) -> None:
    caplog.set_level(logging.DEBUG, logger="convoso_async")
    mock_api.post(SEARCH_URL, repeat=True, **response)
    async with make_client(fast_retry) as client:
        with pytest.raises(ConvosoError) as info:
            await client.callbacks.search_page(lead_id="12345")
    error = info.value
    assert TOKEN not in str(error)
    assert TOKEN not in repr(error)
    assert TOKEN not in repr(pickle.loads(pickle.dumps(error)))
    assert caplog.records, "expected DEBUG request logs"
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    assert TOKEN not in caplog.text


async def test_debug_log_names_the_request_but_not_token_or_comments(
    mock_api: aioresponses, fast_retry: RetryPolicy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="convoso_async")
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": "657"}})
    async with make_client(fast_retry) as client:
        await client.callbacks.insert(
            lead_id="12345",
            recipient="system",
            callback_time=WHEN,
            callback_time_zone=-7,
            comments="customer says call after 5",
        )
    messages = [r.getMessage() for r in caplog.records]
    assert any("POST callbacks/insert" in m and "lead_id=12345" in m for m in messages)
    assert any("answered HTTP 200" in m for m in messages)
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    assert TOKEN not in caplog.text
    assert "customer says call after 5" not in caplog.text


async def test_token_echoed_by_the_server_is_not_in_the_error(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(
        SEARCH_URL,
        payload={"success": False, "code": 5001, "text": f"Auth token {TOKEN} is invalid"},
    )
    async with make_client(fast_retry) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.callbacks.search_page()
    assert TOKEN not in str(info.value)


# --- session ownership and closing -------------------------------------------------------


async def test_caller_owned_session_is_used_and_not_closed(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE)
    session = aiohttp.ClientSession()
    try:
        async with make_client(fast_retry, session=session) as client:
            await client.callbacks.search_page()
            assert client._transport._session is session
        assert client.closed
        assert not session.closed
    finally:
        await session.close()
    assert count(mock_api) == 1


async def test_a_caller_session_that_raises_for_status_still_gets_typed_errors(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """A session built with ``raise_for_status=True`` must not turn the API's HTTP errors
    into aiohttp's: a 401 is an AuthenticationError, not a transport failure retried, and
    an insert's 429 is retried as the rule allows."""
    mock_api.post(SEARCH_URL, status=401, payload={"success": False, "text": "Bad token"})
    mock_api.post(INSERT_URL, status=429, headers={"Retry-After": "0"})
    mock_api.post(INSERT_URL, payload={"success": True, "data": {"callback_id": "77"}})
    async with (
        aiohttp.ClientSession(raise_for_status=True) as session,
        make_client(fast_retry, session=session) as client,
    ):
        with pytest.raises(AuthenticationError) as info:
            await client.callbacks.search_page()
        assert info.value.status == 401
        assert client.requests_sent == 1
        new_id = await client.callbacks.insert(
            lead_id="1", recipient="system", callback_time=WHEN, callback_time_zone=-7
        )
    assert new_id == "77"
    assert client.requests_sent == 3


async def test_own_session_is_closed_by_async_with(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE)
    async with make_client(fast_retry) as client:
        await client.callbacks.search_page()
        session = client._transport._session
        assert session is not None
        assert not session.closed
    assert session.closed
    assert client.closed


async def test_own_session_is_closed_by_close(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE)
    client = make_client(fast_retry)
    await client.callbacks.search_page()
    session = client._transport._session
    assert session is not None
    await client.close()
    assert session.closed
    await client.close()  # closing twice is harmless
    assert client.closed


async def test_closing_an_unused_client_opens_nothing(fast_retry: RetryPolicy) -> None:
    client = make_client(fast_retry)
    assert not client.closed
    await client.close()
    assert client.closed
    assert client._transport._session is None


async def test_session_is_closed_even_when_the_block_raises(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    mock_api.post(SEARCH_URL, status=404, body="nope")
    with pytest.raises(ConvosoAPIError):
        async with make_client(fast_retry) as client:
            await client.callbacks.search_page()
    assert client._transport._session is not None
    assert client._transport._session.closed


@pytest.mark.parametrize("close_with", ["close", "async_with"])
async def test_a_closed_client_raises_runtime_error(
    mock_api: aioresponses, fast_retry: RetryPolicy, close_with: str
) -> None:
    mock_api.post(SEARCH_URL, payload=PAGE, repeat=True)
    client = make_client(fast_retry)
    if close_with == "close":
        await client.close()
    else:
        async with client:
            pass
    with pytest.raises(RuntimeError, match="closed"):
        await client.callbacks.search_page()
    assert mock_api.requests == {}
    assert client.requests_sent == 0


# --- accounting when one client is shared ------------------------------------------------


async def _until_queued_for_a_slot(client: ConvosoClient, waiters: int) -> None:
    """Yield to the loop until ``waiters`` calls are queued for a concurrency slot."""
    slots: Any = client._slots
    # The semaphore has no hook to wait on; each pass yields once, no time goes by.
    while len(slots._waiters or ()) < waiters:  # noqa: ASYNC110
        await asyncio.sleep(0)


@pytest.mark.parametrize("ends_by", ["cancel", "deadline"])
async def test_a_retry_that_never_leaves_the_queue_is_not_counted_as_sent(
    mock_api: aioresponses, ends_by: str
) -> None:
    """One slot. A's first request fails with 503; B, queued behind it, takes the slot and
    holds it; A's retry queues behind B and ends there (cancelled, or out of time). It was
    never sent: neither ``requests_sent`` nor ``retries`` may count it."""
    gate, b_sending = asyncio.Event(), asyncio.Event()
    policy = RetryPolicy(
        initial_wait=0.001,
        max_wait=0.001,
        deadline=0.05 if ends_by == "deadline" else None,
        retry_budget=None,
    )
    async with make_client(policy, max_concurrency=1) as client:
        b_task: asyncio.Task[None] | None = None

        async def first_fails(url: URL, **kwargs: Any) -> CallbackResult:
            nonlocal b_task
            b_task = asyncio.create_task(client.callbacks.delete("2"))
            await _until_queued_for_a_slot(client, 1)  # B waits for the slot A holds
            return CallbackResult(status=503, body="busy")

        async def holds_the_slot(url: URL, **kwargs: Any) -> CallbackResult:
            b_sending.set()
            await gate.wait()
            return CallbackResult(payload={"success": True})

        mock_api.post(SEARCH_URL, callback=first_fails)
        mock_api.post(DELETE_URL, callback=holds_the_slot)
        a_task = asyncio.create_task(client.callbacks.search_page())
        await b_sending.wait()
        await _until_queued_for_a_slot(client, 1)  # A's retry, behind B
        if ends_by == "cancel":
            a_task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await a_task
        else:
            with pytest.raises(TransportError, match="deadline passed"):
                await a_task
        gate.set()
        assert b_task is not None
        await b_task
        assert count(mock_api) == 2
        assert (client.requests_sent, client.retries) == (2, 0)


async def test_a_call_whose_turn_comes_after_its_deadline_is_not_sent_or_counted(
    mock_api: aioresponses,
) -> None:
    """One slot. A's request blocks the loop past B's deadline, so B is handed the slot
    (its wake-up queued as A releases it) before its deadline's timer has run: B must
    fail there, unsent and uncounted, rather than count a request the transport refuses."""
    b_task: asyncio.Task[None] | None = None
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, deadline=0.05)
    async with make_client(policy, max_concurrency=1) as client:

        async def blocks_past_bs_deadline(url: URL, **kwargs: Any) -> CallbackResult:
            nonlocal b_task
            b_task = asyncio.create_task(client.callbacks.delete("2"))
            await _until_queued_for_a_slot(client, 1)
            # Blocking on purpose: B's deadline passes with no turn of the loop.
            time.sleep(0.1)  # noqa: ASYNC251
            return CallbackResult(payload={"success": True})

        mock_api.post(DELETE_URL, callback=blocks_past_bs_deadline)
        await client.callbacks.delete("1")
        assert b_task is not None
        with pytest.raises(TransportError, match="deadline passed") as info:
            await b_task
        assert not info.value.sent
        assert (client.requests_sent, client.retries) == (1, 0)
        assert client._slots._value == 1  # type: ignore[attr-defined]
    assert count(mock_api) == 1


async def test_a_call_cancelled_while_queued_for_a_slot_gives_none_back(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """One slot, held by A. B, queued for it, is cancelled there: it took no slot, so it
    must give none back, or C would then go out beside A. (A deadline that passes in the
    queue ends the wait the same way, by cancelling it.)"""
    gate = asyncio.Event()
    in_flight = 0

    async def held(url: URL, **kwargs: Any) -> CallbackResult:
        nonlocal in_flight
        in_flight += 1
        try:
            await gate.wait()
        finally:
            in_flight -= 1
        return CallbackResult(payload={"success": True})

    mock_api.post(DELETE_URL, callback=held, repeat=True)
    async with make_client(fast_retry, max_concurrency=1) as client:
        slots: Any = client._slots
        a = asyncio.create_task(client.callbacks.delete("1"))
        b = asyncio.create_task(client.callbacks.delete("2"))
        await _until_queued_for_a_slot(client, 1)
        b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        c = asyncio.create_task(client.callbacks.delete("3"))
        for _ in range(1000):  # until C is queued, or has gone out beside A; no time passes
            if len(slots._waiters or ()) == 1 or in_flight == 2:
                break
            await asyncio.sleep(0)
        assert in_flight == 1
        gate.set()
        await asyncio.gather(a, c)
    assert count(mock_api) == 2


async def test_close_fails_calls_waiting_for_the_rate_limiter_or_a_slot_at_once(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """One slot, one start every 10 s: the second call holds the slot asleep in the rate
    limiter, the third waits for the slot. close() must end both now, not after they
    have each waited out their turn only to find the client closed."""
    mock_api.post(DELETE_URL, payload={"success": True}, repeat=True)
    client = make_client(fast_retry, max_concurrency=1, rate_limit=0.1)
    await client.callbacks.delete("1")
    queued = [asyncio.create_task(client.callbacks.delete("1")) for _ in range(2)]
    await _until_queued_for_a_slot(client, 1)  # the second is in the limiter, the third here
    loop = asyncio.get_running_loop()
    closed_at = loop.time()
    await client.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*queued, return_exceptions=True), 2.0)
    # Timed as well: a limiter that kept looping until its start came, without yielding,
    # would block the loop (and so wait_for's own timeout) for the full 10 s.
    assert loop.time() - closed_at < 2.0
    for outcome in outcomes:
        assert isinstance(outcome, RuntimeError)
        assert "closed" in str(outcome)
    assert (count(mock_api), client.requests_sent) == (1, 1)
    assert client._slots._value == 1  # type: ignore[attr-defined]


async def test_close_with_a_request_in_flight_sends_and_counts_nothing_queued_behind_it() -> None:
    """A real server holds A's request; B waits for the one slot. close() cuts A's
    connection while it closes the pool, which frees the slot: B must then fail as
    closed, sent by no one and counted by no one (close() says so before it closes the
    pool, so no call slips into the window while the pool is closing)."""
    arrived, release = asyncio.Event(), asyncio.Event()

    async def hold(writer: asyncio.StreamWriter, body: bytes) -> None:
        arrived.set()
        await release.wait()

    async with raw_server(hold) as (base, bodies):
        client = ConvosoClient(
            TOKEN, base_url=base, retry=RetryPolicy(attempts=1), max_concurrency=1
        )
        try:
            a = asyncio.create_task(client.callbacks.delete("1"))
            await arrived.wait()
            b = asyncio.create_task(client.callbacks.delete("2"))
            await _until_queued_for_a_slot(client, 1)
            await client.close()
            outcomes = await asyncio.wait_for(asyncio.gather(a, b, return_exceptions=True), 5)
        finally:
            release.set()  # the server waits for its handlers on the way out
        assert isinstance(outcomes[0], TransportError)  # its connection was cut
        assert isinstance(outcomes[1], RuntimeError)
        assert "closed" in str(outcomes[1])
        assert client.requests_sent == 1
    assert len(bodies) == 1


async def test_close_ends_a_retrys_backoff_at_once(mock_api: aioresponses) -> None:
    """A 429 asking for 100 s (capped at 10): close() must not leave the call asleep for
    10 s only to fail then."""
    answered = asyncio.Event()

    def too_many(url: URL, **kwargs: Any) -> CallbackResult:
        answered.set()
        return CallbackResult(status=429, headers={"Retry-After": "100"}, body="slow down")

    mock_api.post(SEARCH_URL, callback=too_many, repeat=True)
    client = make_client(RetryPolicy(initial_wait=10, max_wait=10))
    call = asyncio.create_task(client.callbacks.search_page())
    await answered.wait()
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        await asyncio.wait_for(call, 2.0)
    assert (count(mock_api), client.requests_sent, client.retries) == (1, 1, 0)


def test_a_client_used_from_a_second_event_loop_says_so(
    mock_api: aioresponses, fast_retry: RetryPolicy
) -> None:
    """Its session, slots and close() event belong to the loop that first used it: from
    another loop (a second ``asyncio.run``, a test on its own loop) it must say so
    rather than fail deep inside aiohttp or asyncio."""
    mock_api.post(DELETE_URL, payload={"success": True}, repeat=True)
    client = make_client(fast_retry, max_concurrency=1)

    async def two_calls() -> None:
        await asyncio.gather(client.callbacks.delete("1"), client.callbacks.delete("2"))

    asyncio.run(two_calls())
    with pytest.raises(RuntimeError, match="used in another event loop"):
        asyncio.run(two_calls())
    asyncio.run(client.close())  # best effort, from anywhere: it must not raise
    assert client.closed
    assert count(mock_api) == 2
