"""The real ConvosoClient against the emulator on 127.0.0.1, end to end.

Every test runs twice: against the documented API and against the live API's dialect
(the ``data`` envelope, counters as strings, ``text`` errors, drifting enum spellings,
extra fields). Faults are scripted, so each run is the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone

import aiohttp
import pytest

from convoso_async import (
    AuthenticationError,
    ConvosoAPIError,
    ConvosoClient,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    PaginationLimitError,
    RateLimitError,
    Recipient,
    RetryPolicy,
    Stage,
    TransportError,
)
from convoso_async._retry import RetryBudget
from convoso_async.testing import ConvosoEmulator, Faults

FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)


@pytest.fixture(params=[False, True], ids=["documented", "live-dialect"])
async def emu(request: pytest.FixtureRequest) -> AsyncIterator[ConvosoEmulator]:
    async with ConvosoEmulator(records=1200, seed=11, live_dialect=request.param) as emulator:
        yield emulator


def client_for(emu: ConvosoEmulator, **kwargs: object) -> ConvosoClient:
    options: dict[str, object] = {"base_url": emu.base_url, "retry": FAST, **kwargs}
    return ConvosoClient(emu.auth_token, **options)  # type: ignore[arg-type]


async def test_a_full_walk_yields_exactly_the_store(emu: ConvosoEmulator) -> None:
    async with client_for(emu) as client:
        pager = client.callbacks.search(page_size=100, concurrency=4)
        got = [callback.id async for callback in pager]
    assert sorted(got) == sorted(emu.store.ids())
    assert len(got) == len(set(got)) == len(emu.store)
    assert pager.total == len(emu.store)


async def test_records_decode_field_by_field(emu: ConvosoEmulator) -> None:
    async with client_for(emu) as client:
        page = await client.callbacks.search_page(limit=50)
    for callback in page.results:
        raw = emu.store.get(callback.id)
        assert raw is not None
        assert callback.lead_id == raw["lead_id"]
        assert callback.campaign_name == raw["campaign_name"]
        assert str(callback.stage).upper().replace("PASTDUE", "PAST_DUE") == str(
            raw["stage"]
        ).upper().replace("PASTDUE", "PAST_DUE")
        assert isinstance(callback.callback_time, datetime)
        extra = set(raw) - {
            "id", "lead_id", "list_id", "campaign_id", "status", "created_at",
            "callback_time", "modified_at", "user", "recipient", "comments", "stage",
            "user_name", "campaign_name",
        }  # fmt: skip
        assert set(callback.extra) == extra


async def test_filters_narrow_the_search_like_the_store(emu: ConvosoEmulator) -> None:
    async with client_for(emu) as client:
        pending = await client.callbacks.search(stage=Stage.PENDING, page_size=500).collect()
        day = await client.callbacks.search(
            start_date=date(2026, 3, 3), end_date="2026-03-04", page_size=500
        ).collect()
        personal = await client.callbacks.search(
            recipient=Recipient.PERSONAL, page_size=500
        ).collect()
    assert pending
    assert all(c.stage == Stage.PENDING for c in pending)
    assert day
    assert all(
        c.callback_time is not None
        and date(2026, 3, 3) <= c.callback_time.date() <= date(2026, 3, 4)
        for c in day
    )
    assert personal
    assert all(c.recipient == Recipient.PERSONAL for c in personal)


async def test_insert_update_delete_change_what_search_sees(emu: ConvosoEmulator) -> None:
    before = len(emu.store)
    async with client_for(emu) as client:
        new_id = await client.callbacks.insert(
            lead_id="12345",
            recipient=Recipient.SYSTEM,
            callback_time=datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-7))),
            comments="Customer requested callback",
        )
        assert len(emu.store) == before + 1
        found = await client.callbacks.search_page(callback_id=new_id)
        assert [c.id for c in found.results] == [new_id]
        assert found.results[0].comments == "Customer requested callback"
        assert await client.callbacks.update(new_id, comments="moved") == new_id
        assert (await client.callbacks.search_page(callback_id=new_id)).results[0].comments == (
            "moved"
        )
        await client.callbacks.delete(new_id)
        assert new_id not in emu.store
        with pytest.raises(NotFoundError) as info:
            await client.callbacks.delete(new_id)
    assert info.value.code == 6074


async def test_a_wrong_token_is_an_authentication_error(emu: ConvosoEmulator) -> None:
    async with ConvosoClient("wrong-token", base_url=emu.base_url, retry=FAST) as client:
        with pytest.raises(AuthenticationError):
            await client.callbacks.search_page()
    assert len(emu.requests) == 1  # never retried


@pytest.mark.parametrize(
    "session_options",
    [{"headers": {"Content-Type": "application/json"}}, {"skip_auto_headers": ["Content-Type"]}],
    ids=["json-default-header", "content-type-skipped"],
)
async def test_a_callers_session_headers_do_not_unmake_the_form(
    emu: ConvosoEmulator, session_options: dict[str, object]
) -> None:
    """A session set up for a JSON API still sends our form as a form: with its default
    Content-Type the server could not read the token and answered 'token required'."""
    async with (
        aiohttp.ClientSession(**session_options) as session,  # type: ignore[arg-type]
        client_for(emu, session=session) as client,
    ):
        page = await client.callbacks.search_page(limit=5)
    assert len(page.results) == 5
    assert len(emu.requests) == 1


async def test_server_validation_errors_are_typed(emu: ConvosoEmulator) -> None:
    async with client_for(emu) as client:
        with pytest.raises(InvalidParameterError) as info:
            await client.callbacks.search_page(campaign_id="not-a-number")
    assert info.value.code == 6026


@pytest.mark.parametrize(
    "fault", ["status_429", "status_500", "status_502", "status_503", "status_504", "reset",
              "cut_body", "truncated_json"],
)  # fmt: skip
async def test_transient_faults_are_retried_for_a_search(emu: ConvosoEmulator, fault: str) -> None:
    emu.faults = Faults(retry_after=0)
    emu.script([fault, fault])
    async with client_for(emu) as client:
        page = await client.callbacks.search_page(limit=5)
    assert len(page.results) == 5
    assert len(emu.requests) == 3


async def test_faults_past_the_budget_raise_the_typed_error(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(retry_after=0)
    emu.script(["status_429"] * 3)
    async with client_for(emu) as client:
        with pytest.raises(RateLimitError) as info:
            await client.callbacks.search_page()
    assert info.value.retry_after == 0
    assert len(emu.requests) == 3


async def test_a_business_error_is_not_retried(emu: ConvosoEmulator) -> None:
    emu.script(["business_error"])
    async with client_for(emu) as client:
        with pytest.raises(ConvosoAPIError):
            await client.callbacks.search_page()
    assert len(emu.requests) == 1


async def test_an_insert_processed_then_dropped_is_not_resent(emu: ConvosoEmulator) -> None:
    before = len(emu.store)
    emu.script(["drop_after_process"])
    async with client_for(emu) as client:
        with pytest.raises(TransportError) as info:
            await client.callbacks.insert(
                lead_id="12345",
                recipient="system",
                callback_time="2026-03-05 02:30 PM",
                callback_time_zone=-7,
            )
    assert info.value.sent is True
    assert len(emu.requests) == 1
    assert len(emu.store) == before + 1  # exactly one callback: no second dial


async def test_a_paginated_walk_survives_faults_without_loss_or_repeat(
    emu: ConvosoEmulator,
) -> None:
    emu.faults = Faults(retry_after=0)
    emu.script(["status_503", None, "reset", None, "truncated_json", "cut_body"])
    async with client_for(
        emu, retry=RetryPolicy(attempts=4, initial_wait=0.001, max_wait=0.01)
    ) as client:
        got = [c.id async for c in client.callbacks.search(page_size=100, concurrency=3)]
    assert sorted(got) == sorted(emu.store.ids())


async def test_a_page_whose_json_was_cut_is_fetched_again_when_the_walk_reaches_it(
    emu: ConvosoEmulator,
) -> None:
    """The body arrives whole at the HTTP level, so the request looks done; the walk finds
    the JSON cut when it parses the page, and fetches that one page again."""
    async with client_for(emu) as client:
        clean = [c.id async for c in client.callbacks.search(page_size=100, concurrency=1)]
        emu.reset_stats()
        emu.script([None, "truncated_json"])
        got = [c.id async for c in client.callbacks.search(page_size=100, concurrency=1)]
        assert client.retries == 1
    assert got == clean
    offsets = [r.form["offset"] for r in emu.requests]
    assert offsets[:2] == ["0", "100"]
    assert offsets.count("100") == 2  # that page alone, once more
    assert len(offsets) == len(emu.store) // 100 + 1


async def test_a_page_fetched_again_waits_for_a_place_among_the_walks_requests(
    emu: ConvosoEmulator,
) -> None:
    """The first page's JSON arrives cut, after the next two requests have left on the
    total read off its head (the documented shape): the third request waits for one."""
    emu.faults = Faults(latency=0.02)
    emu.script(["truncated_json"])
    async with client_for(emu, max_concurrency=8) as client:
        got = await client.callbacks.search(page_size=100, concurrency=2).collect()
    assert len(got) == len(emu.store)
    assert emu.max_in_flight == 2


async def test_a_page_fetched_again_makes_only_the_attempts_its_call_has_left(
    emu: ConvosoEmulator,
) -> None:
    """The body that proves unreadable was the call's third attempt: of 3, none is left."""
    emu.faults = Faults(retry_after=0)
    emu.script(["status_503", "status_503", "truncated_json"])
    async with client_for(emu) as client:  # FAST: 3 attempts
        with pytest.raises(MalformedResponseError):
            await client.callbacks.search(page_size=2000).collect()
        assert client.retries == 2
    assert len(emu.requests) == 3


async def test_a_page_fetched_again_after_a_retry_makes_only_the_attempts_left(
    emu: ConvosoEmulator,
) -> None:
    """The unreadable body was the call's second attempt: of 3, one is left, and the
    page gets 3 requests in all, not 3 more after the 2 it had."""
    emu.faults = Faults(retry_after=0)
    emu.script(["status_503", "truncated_json", "truncated_json", "truncated_json"])
    async with client_for(emu) as client:  # FAST: 3 attempts
        with pytest.raises(MalformedResponseError):
            await client.callbacks.search(page_size=2000).collect()
        assert client.retries == 2
    assert len(emu.requests) == 3


async def test_a_page_fetched_again_spends_one_retry_and_earns_no_second_refund(
    emu: ConvosoEmulator,
) -> None:
    """One call, one success: the refund came when the unreadable body landed."""
    emu.script(["truncated_json"])
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01, retry_budget=10)
    async with client_for(emu, retry=policy) as client:
        got = await client.callbacks.search(page_size=2000).collect()  # one page
        assert client._budget is not None
        assert client._budget.available == 10 - RetryBudget.RETRY_COST
    assert len(got) == len(emu.store)
    assert len(emu.requests) == 2


@pytest.mark.parametrize(
    "policy",
    [RetryPolicy(attempts=1), RetryPolicy(attempts=5, retry_budget=0)],
    ids=["one-attempt", "no-budget"],
)
async def test_a_page_is_not_fetched_again_when_the_policy_allows_no_retry(
    emu: ConvosoEmulator, policy: RetryPolicy
) -> None:
    emu.script(["truncated_json"])
    async with client_for(emu, retry=policy) as client:
        with pytest.raises(MalformedResponseError):
            await client.callbacks.search(page_size=2000).collect()
    assert len(emu.requests) == 1


async def test_requests_in_flight_never_exceed_max_concurrency(emu: ConvosoEmulator) -> None:
    emu.faults = Faults(latency=0.02)
    async with client_for(emu, max_concurrency=3) as client:
        got = await client.callbacks.search(page_size=50, concurrency=8).collect()
    assert len(got) == len(emu.store)
    assert emu.max_in_flight == 3


async def test_the_cap_is_enforced_against_a_real_server() -> None:
    async with (
        ConvosoEmulator(records=55_001, seed=2, days=40) as emu,
        client_for(emu) as client,
    ):
        with pytest.raises(PaginationLimitError):
            await client.callbacks.search(page_size=5000).collect()
        assert len(emu.requests) == 1
        got = await client.callbacks.search(page_size=5000, truncate=True).collect()
    assert len(got) == 55_000
    assert all(int(r.form["offset"]) <= 50_000 for r in emu.requests)
    assert all(int(r.form["limit"]) <= 5_000 for r in emu.requests)


async def test_an_unknown_lead_is_a_not_found_error(emu: ConvosoEmulator) -> None:
    before = len(emu.store)
    async with client_for(emu) as client:
        with pytest.raises(NotFoundError) as info:
            await client.callbacks.insert(
                lead_id="0", recipient="system", callback_time="2026-03-05 02:30 PM",
                callback_time_zone=-7,
            )  # fmt: skip
    assert info.value.code == 6001
    assert "Lead not found" in info.value.message
    assert len(emu.store) == before
    assert len(emu.requests) == 1
