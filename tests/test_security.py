"""Bad input in, typed errors out; the token stays secret; TLS is verified.

* Validation: what tests/test_client.py and tests/test_protocol.py do not already cover,
  through the public client methods, each with zero requests sent.
* Malformed answers, through the whole client path over aioresponses: every one is a
  typed ``ConvosoError``, never ``KeyError``/``TypeError``/``AttributeError``/``ValueError``,
  retried only when the body was not JSON at all. Plus a hypothesis property over
  arbitrary JSON bodies (derandomized, so CI replays the same examples).
* Secrets: a full faulted run (search walk, export, inserts, failures, the CLI) at DEBUG
  on every logger, with the token nowhere in logs, exception text, reprs or CLI output.
* Transport security: http:// only for loopback; a redirect is a typed error, never
  followed (a 307/308 would resend the token); a real TLS server with a self-signed
  certificate is refused by the client's own session, and a caller's session is used as
  given.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import pickle
import shutil
import ssl
import subprocess
import traceback
from collections.abc import AsyncIterator, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import orjson
import pytest
from aiohttp import web
from aioresponses import CallbackResult, aioresponses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convoso_async import (
    AuthenticationError,
    Callback,
    CallbackPage,
    ConvosoAPIError,
    ConvosoClient,
    ConvosoError,
    InvalidParameterError,
    MalformedResponseError,
    NotFoundError,
    RetryPolicy,
    ServerError,
    TransportError,
)
from convoso_async import cli as cli_module
from convoso_async.testing import ConvosoEmulator, Faults

from .conftest import BASE, TOKEN, raw_server
from .samples import API_FIELDS

SEARCH_URL = f"{BASE}/callbacks/search"
INSERT_URL = f"{BASE}/callbacks/insert"
FAST = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
AWARE = datetime(2026, 3, 5, 14, 30, tzinfo=timezone(timedelta(hours=-7)))
NOT_TYPED = (KeyError, TypeError, AttributeError, ValueError, IndexError)


def make_client(**kwargs: Any) -> ConvosoClient:
    options: dict[str, Any] = {"base_url": BASE, "retry": FAST, **kwargs}
    return ConvosoClient(TOKEN, **options)


def sent(mock_api: aioresponses) -> int:
    return sum(len(calls) for calls in mock_api.requests.values())


# --- validation before anything is sent ---------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.callbacks.search_page(limit=True), id="limit-bool"),
        pytest.param(lambda c: c.callbacks.search_page(limit="20"), id="limit-str"),
        pytest.param(lambda c: c.callbacks.search_page(offset=1.0), id="offset-float"),
        pytest.param(lambda c: c.callbacks.search_page(end_date="2026-02-30"), id="end-date"),
        pytest.param(lambda c: c.callbacks.search_page(start_date=20260301), id="date-int"),
        pytest.param(lambda c: c.callbacks.search_page(stage="MISSING"), id="stage"),
        pytest.param(lambda c: c.callbacks.search_page(user_id=-5), id="user-id-negative"),
        pytest.param(lambda c: c.callbacks.search_page(campaign_id=" 1"), id="campaign-space"),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time="2026-03-05 02:30 PM"
            ),
            id="insert-string-time-without-zone",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE, callback_time_zone=-5
            ),
            id="insert-zone-disagrees-with-aware-time",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE.replace(tzinfo=None),
                callback_time_zone=-12.25,
            ),
            id="insert-zone-below-minus-12",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system",
                callback_time=datetime(2026, 3, 5, 9, 0, tzinfo=timezone(timedelta(hours=14.5))),
            ),
            id="insert-aware-offset-above-plus-14",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time="2026-03-05 13:30 PM",
                callback_time_zone=-7,
            ),
            id="insert-hour-13-pm",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time="2026-02-30 01:30 PM",
                callback_time_zone=-7,
            ),
            id="insert-no-such-day",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="agent", callback_time=AWARE
            ),
            id="insert-recipient",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(lead_id="", recipient="system", callback_time=AWARE),
            id="insert-empty-lead",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE, comments=5
            ),
            id="insert-comments-not-text",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE.replace(tzinfo=None),
                callback_time_zone="-7",
            ),
            id="insert-zone-text-without-minutes",
        ),
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE.replace(tzinfo=None),
                callback_time_zone=float("nan"),
            ),
            id="insert-zone-nan",
        ),
        pytest.param(
            lambda c: c.callbacks.update("1", callback_time="tomorrow"), id="update-time"
        ),
        pytest.param(
            lambda c: c.callbacks.update("1", callback_time_zone=14.25), id="update-zone"
        ),
        pytest.param(lambda c: c.callbacks.update(-1, comments="x"), id="update-id"),
        pytest.param(lambda c: c.callbacks.delete(True), id="delete-id-bool"),
    ],
)  # fmt: skip
async def test_a_bad_argument_is_a_value_error_before_any_request(
    mock_api: aioresponses, call: Any
) -> None:
    mock_api.post(SEARCH_URL, payload={"total": 0, "results": []}, repeat=True)
    async with make_client() as client:
        with pytest.raises(ValueError):
            await call(client)
    assert sent(mock_api) == 0


@pytest.mark.parametrize(
    ("call", "name"),
    [
        pytest.param(
            lambda c: c.callbacks.insert(
                lead_id="1", recipient="system", callback_time=AWARE, comments="hi \ud83d"
            ),
            "comments",
            id="insert-comments",
        ),
        pytest.param(lambda c: c.callbacks.update("1", comments="\udc00"), "comments", id="update"),
        pytest.param(lambda c: c.callbacks.delete("7\ud800"), "callback_id", id="delete"),
        pytest.param(lambda c: c.callbacks.search_page(lead_id="\ud800"), "lead_id", id="search"),
    ],
)  # fmt: skip
async def test_text_with_a_lone_surrogate_is_named_before_anything_is_counted_or_sent(
    mock_api: aioresponses, call: Any, name: str
) -> None:
    # Half an emoji (json.loads keeps a lone surrogate) cannot be encoded; it used to
    # fail inside the transport as a UnicodeEncodeError naming no argument, counted sent.
    mock_api.post(SEARCH_URL, payload={"total": 0, "results": []}, repeat=True)
    async with make_client() as client:
        with pytest.raises(ValueError, match=f"{name} holds a lone surrogate"):
            await call(client)
        assert client.requests_sent == 0
    assert sent(mock_api) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit": 0},
        {"start_date": "2026-03-05", "end_date": "2026-03-01"},
        {"stage": "ACTIVE"},
        {"recipient": "everyone"},
        {"page_size": 5_001},
        {"concurrency": 0},
    ],
)
async def test_a_bad_search_walk_fails_at_the_call_not_the_first_page(
    mock_api: aioresponses, kwargs: dict[str, Any]
) -> None:
    mock_api.post(SEARCH_URL, payload={"total": 0, "results": []}, repeat=True)
    async with make_client() as client:
        with pytest.raises((ValueError, TypeError)):
            client.callbacks.search(**kwargs)
    assert sent(mock_api) == 0


# --- malformed answers: typed, never a bare Python error ---------------------------------

RECORD = {"id": "657", "lead_id": "12345", "callback_time": "2026-03-05 02:30 PM"}


def page(*records: Any, **root: Any) -> dict[str, Any]:
    return {"offset": 0, "limit": 20, "total": len(records), "results": list(records), **root}


@pytest.mark.parametrize(
    ("response", "error", "requests"),
    [
        ({"body": "<html><body>Service unavailable</body></html>",
          "content_type": "text/html"}, MalformedResponseError, 3),
        ({"body": ""}, MalformedResponseError, 3),
        ({"body": "   \n"}, MalformedResponseError, 3),
        ({"body": b"\xff\xfe\x00garbage"}, MalformedResponseError, 3),
        ({"body": '{"total": 1, "results": [{"id": "6'}, MalformedResponseError, 3),
        ({"body": "[" * 5000 + "]" * 5000}, MalformedResponseError, 3),
        ({"body": '{"total": 1e400, "results": []}'}, MalformedResponseError, 3),
        ({"body": '{"total": 123456789012345678901234567890, "results": []}'},
         MalformedResponseError, 1),
        ({"body": "[]"}, MalformedResponseError, 1),
        ({"body": '[{"id": "657"}]'}, MalformedResponseError, 1),
        ({"body": "null"}, MalformedResponseError, 1),
        ({"body": '"ok"'}, MalformedResponseError, 1),
        ({"body": "42"}, MalformedResponseError, 1),
        ({"payload": {}}, MalformedResponseError, 1),
        ({"payload": {"success": True}}, MalformedResponseError, 1),
        ({"payload": {"success": True, "data": []}}, MalformedResponseError, 1),
        ({"payload": {"success": True, "data": "none"}}, MalformedResponseError, 1),
        ({"payload": {"total": 1, "results": "657"}}, MalformedResponseError, 1),
        ({"payload": {"total": 1, "results": {"0": RECORD}}}, MalformedResponseError, 1),
        ({"payload": {"total": 1, "results": None}}, MalformedResponseError, 1),
        ({"payload": page("657")}, MalformedResponseError, 1),
        ({"payload": page(None)}, MalformedResponseError, 1),
        ({"payload": page(["657"])}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total=-1)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total="-1")}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total=10**18)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total=1.5)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total=True)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total="many")}, MalformedResponseError, 1),
        ({"payload": page(RECORD, total=None)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, offset=-20)}, MalformedResponseError, 1),
        ({"payload": page(RECORD, limit={"n": 1})}, MalformedResponseError, 1),
        ({"payload": page({"lead_id": "1"})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "id": None})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "id": {"v": 1}})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "callback_time": "soon"})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "callback_time": "2026-02-30 02:30 PM"})},
         MalformedResponseError, 1),
        ({"payload": page({**RECORD, "created_at": 1741180000})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "modified_at": ["2026-03-03"]})},
         MalformedResponseError, 1),
        ({"payload": page({**RECORD, "stage": ["PENDING"]})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "recipient": {"x": 1}})}, MalformedResponseError, 1),
        ({"payload": page({**RECORD, "comments": {"x": 1}})}, MalformedResponseError, 1),
        ({"payload": {"success": False}}, ConvosoAPIError, 1),
        ({"payload": {"success": "false", "code": "abc", "error": 7}}, ConvosoAPIError, 1),
        ({"payload": {"success": False, "code": [6074], "text": "Callback not found"}},
         NotFoundError, 1),
        ({"status": 404, "body": "<html>Not Found</html>"}, ConvosoAPIError, 1),
        ({"status": 401, "body": ""}, AuthenticationError, 1),
        ({"status": 500, "body": "[1, 2"}, ServerError, 3),
        ({"status": 418, "payload": ["teapot"]}, ConvosoAPIError, 1),
    ],
)  # fmt: skip
async def test_a_malformed_search_answer_is_a_typed_error(
    mock_api: aioresponses, response: dict[str, Any], error: type[Exception], requests: int
) -> None:
    mock_api.post(SEARCH_URL, repeat=True, **response)
    async with make_client() as client:
        with pytest.raises(ConvosoError) as info:
            await client.callbacks.search_page()
    assert type(info.value) is error
    assert not isinstance(info.value, NOT_TYPED)
    assert sent(mock_api) == requests


@pytest.mark.parametrize(
    "payload",
    [
        {"success": True},
        {"success": True, "data": {}},
        {"success": True, "data": {"callback_id": ""}},
        {"success": True, "data": {"callback_id": None}},
        {"success": True, "data": {"callback_id": True}},
        {"success": True, "data": {"callback_id": {"id": "657"}}},
        {"success": True, "data": ["657"]},
        ["657"],
    ],
)
async def test_an_insert_answer_without_a_readable_id_is_malformed_and_not_resent(
    mock_api: aioresponses, payload: Any
) -> None:
    mock_api.post(INSERT_URL, repeat=True, payload=payload)
    async with make_client() as client:
        with pytest.raises(MalformedResponseError):
            await client.callbacks.insert(lead_id="1", recipient="system", callback_time=AWARE)
    assert sent(mock_api) == 1


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**63 - 1)
        | st.floats(allow_nan=False, allow_infinity=False)
    )
    text = st.sampled_from(
        ["", "657", "0", "-1", "PENDING", "Dismissed", "system", "USERONLY",
         "2026-03-05 02:30 PM", "2026-03-05 14:30:00", "0000-00-00 00:00:00",
         "2016-11-17T10:54:21-0800", "soon", "\u00b2"]
    ) | st.text(max_size=8)  # fmt: skip
    return st.recursive(
        scalars | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


FIELDS = list(API_FIELDS)


def _bodies() -> st.SearchStrategy[Any]:
    record = st.fixed_dictionaries(
        {"id": st.one_of(st.integers(0, 10**6).map(str), st.integers(0, 10**6), _json_values())},
        optional={name: _json_values() for name in FIELDS[1:]},
    )
    records = st.lists(record | _json_values(), max_size=4)
    counter = st.one_of(st.integers(-5, 10**10), st.integers(0, 99).map(str), _json_values())
    page_body = st.fixed_dictionaries(
        {"results": records | _json_values()},
        optional={"total": counter, "offset": counter, "limit": counter},
    )
    enveloped = st.fixed_dictionaries(
        {"success": st.sampled_from([True, "true", None]), "data": page_body | _json_values()}
    )
    return st.one_of(page_body, enveloped, _json_values())


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=_bodies())
def test_any_json_body_through_the_client_is_a_page_or_a_convoso_error(
    mock_api: aioresponses, body: Any
) -> None:
    """The whole path (aiohttp response -> status -> JSON -> envelope -> records) only ever
    returns a page of Callbacks or raises a ConvosoError, in one request (JSON is never
    retried)."""
    raw = orjson.dumps(body)
    mock_api.clear()
    mock_api.requests.clear()
    mock_api.post(SEARCH_URL, callback=lambda url, **kw: CallbackResult(body=raw), repeat=True)

    async def run() -> CallbackPage | ConvosoError:
        async with make_client() as client:
            try:
                return await client.callbacks.search_page()
            except ConvosoError as error:
                return error

    outcome = asyncio.run(run())
    assert sent(mock_api) == 1
    if isinstance(outcome, CallbackPage):
        assert outcome.total >= 0
        assert all(isinstance(c, Callback) and isinstance(c.id, str) for c in outcome.results)
    else:
        assert not isinstance(outcome, NOT_TYPED)


# --- the token stays secret ---------------------------------------------------------------

SECRET = "tok-7f3a9c-SECRET-4d1e"


def _texts_of(error: BaseException) -> list[str]:
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    if isinstance(error, ConvosoError):
        texts.append(repr(pickle.loads(pickle.dumps(error))))
        texts.extend(str(v) for v in vars(error).values())
    return texts


async def test_the_token_is_in_no_log_error_repr_or_cli_output_of_a_faulted_run(
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # the root logger: aiohttp's loggers too
    caplog.set_level(logging.DEBUG, logger="convoso_async")
    texts: list[str] = []
    errors: list[BaseException] = []
    emu = ConvosoEmulator(records=3_000, seed=9, days=10, auth_token=SECRET)
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.002)
    async with (
        emu,
        ConvosoClient(SECRET, base_url=emu.base_url, retry=policy, timeout=0.3) as client,
    ):
        texts += [repr(client), str(client), repr(client.callbacks), repr(client.retry)]
        emu.faults = Faults(retry_after=0, hang_seconds=5)
        # A search walk through every transient fault.
        emu.script(["status_429", "status_500", None, "status_502", "reset", "status_503",
                    "cut_body", "status_504", "truncated_json", None])  # fmt: skip
        got = await client.callbacks.search(page_size=500, concurrency=3).collect()
        assert len(got) == 3_000
        # An export, faulted too.
        emu.script(["status_503", None, "reset"])
        export = client.callbacks.export(date(2026, 3, 1), date(2026, 3, 10), page_size=1000)
        exported = [c.id async for c in export]
        assert len(exported) == 3_000
        texts += [repr(export), repr(export.progress)]
        # Inserts: retried on 429, not resent after a drop.
        emu.script(["status_429"], paths="/callbacks/insert")
        await client.callbacks.insert(lead_id="1", recipient="system", callback_time=AWARE)
        # Failures of every kind.
        calls = client.callbacks
        failures: list[tuple[list[str], Any]] = [
            (["drop_after_process"], lambda: calls.insert(
                lead_id="2", recipient="system", callback_time=AWARE)),
            (["status_503"] * 3, calls.search_page),
            (["truncated_json"] * 3, calls.search_page),
            (["business_error"], calls.search_page),
            (["hang"], lambda: calls.insert(
                lead_id="3", recipient="system", callback_time=AWARE)),
            ([], lambda: calls.update("999999999", comments="x")),
            ([], lambda: calls.delete("999999999")),
        ]  # fmt: skip
        for steps, call in failures:
            emu.script(steps)
            with pytest.raises(ConvosoError) as info:
                await call()
            errors.append(info.value)
        assert [type(e) for e in errors] == [
            TransportError, ServerError, MalformedResponseError, ConvosoAPIError,
            TransportError, NotFoundError, NotFoundError,
        ]  # fmt: skip
    # A client with a stale token: rejected, and that token is secret too.
    stale = SECRET + "-stale"
    emu2 = ConvosoEmulator(records=10, auth_token=SECRET)
    async with emu2, ConvosoClient(stale, base_url=emu2.base_url, retry=policy) as bad:
        with pytest.raises(AuthenticationError) as info:
            await bad.callbacks.search_page()
        errors.append(info.value)
        texts.append(repr(bad))
    # The CLI, verbose, exporting through faults and then failing.
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", SECRET)
    monkeypatch.setattr(cli_module, "ConvosoClient", functools.partial(ConvosoClient, retry=policy))
    emu3 = ConvosoEmulator(records=500, seed=2, days=5, auth_token=SECRET)
    async with emu3:
        emu3.faults = Faults(retry_after=0)
        emu3.script(["status_503", "reset", None, "cut_body"])
        argv = [
            *("export", "--start-date", "2026-03-01", "--end-date", "2026-03-05"),
            *("--base-url", emu3.base_url, "--page-size", "100", "--verbose", "--output"),
        ]
        ok = await asyncio.to_thread(cli_module.main, [*argv, str(tmp_path / "ok.jsonl")])
        emu3.faults = Faults(status_503=1.0)
        failed = await asyncio.to_thread(cli_module.main, [*argv, str(tmp_path / "no.jsonl")])
    assert (ok, failed) == (0, 1)
    cli_output = capsys.readouterr()
    assert "ServerError" in cli_output.err
    assert len((tmp_path / "ok.jsonl").read_text().splitlines()) == 500

    for error in errors:
        texts += _texts_of(error)
    texts += [record.getMessage() for record in caplog.records]
    texts += [caplog.text, cli_output.out, cli_output.err]
    assert len(caplog.records) > 100  # DEBUG really was on: request and retry lines
    assert any("retrying in" in r.getMessage() for r in caplog.records)
    leaked = [text for text in texts if SECRET in text or stale in text]
    assert leaked == []
    # The run was real: the token was sent, and accepted, hundreds of times.
    assert len(emu.requests) > 30
    assert all(r.form.get("auth_token") == "***" for r in emu.requests)


# A token that form-encoding changes: '/', '+', '=' and a space.
ODD_TOKEN = "SECRET/TOKEN+1=2 3"
ODD_SPELLINGS = (
    ODD_TOKEN,
    quote_plus(ODD_TOKEN),  # SECRET%2FTOKEN%2B1%3D2+3, as the form carries it
    quote(ODD_TOKEN, safe=""),  # SECRET%2FTOKEN%2B1%3D2%203
    quote(ODD_TOKEN),  # SECRET/TOKEN%2B1%3D2%203, as a path carries it
    # Percent-escapes in lower-case hex, as some servers re-encode them.
    quote_plus(ODD_TOKEN).replace("%2F", "%2f").replace("%2B", "%2b").replace("%3D", "%3d"),
    quote(ODD_TOKEN, safe="").replace("%2F", "%2f").replace("%2B", "%2b"),
)


def _leaks(texts: list[str]) -> list[str]:
    return [spelling for spelling in ODD_SPELLINGS if any(spelling in text for text in texts)]


@pytest.mark.parametrize(
    ("status", "expected"),
    [(200, ConvosoAPIError), (400, ConvosoAPIError), (401, AuthenticationError),
     (500, ServerError), (503, ServerError)],
)  # fmt: skip
async def test_an_encoded_token_echoed_by_the_server_is_redacted(
    mock_api: aioresponses, status: int, expected: type[ConvosoError]
) -> None:
    # (The echoed "auth_token" makes a 200 or 400 read as an AuthenticationError, a
    # ConvosoAPIError all the same.)
    """The server echoes the token raw, form-encoded, path-encoded and in lower-case
    hex: no spelling survives in str, repr, args, attributes, pickle or traceback."""
    echo = " | ".join(ODD_SPELLINGS)
    body = {"success": False, "error": f"Required fields are missed: auth_token={echo}"}
    mock_api.post(SEARCH_URL, status=status, payload=body, repeat=True)
    policy = RetryPolicy(attempts=2, initial_wait=0.001, max_wait=0.002)
    async with ConvosoClient(ODD_TOKEN, base_url=BASE, retry=policy) as client:
        with pytest.raises(ConvosoError) as info:
            await client.callbacks.search_page()
    error = info.value
    assert isinstance(error, expected)
    assert str(error).count("***") == len(ODD_SPELLINGS)
    assert "Required fields are missed" in str(error)
    texts = [*_texts_of(error), repr(error.args), *(str(arg) for arg in error.args)]
    assert _leaks(texts) == []


async def test_a_server_echoing_the_real_form_body_leaks_no_token_to_the_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real sockets and the real CLI at --verbose: the server puts the raw form body
    (the token form-encoded in it) into its error text."""
    bodies: list[str] = []

    async def echo(request: web.Request) -> web.StreamResponse:
        bodies.append((await request.read()).decode())
        text = f"Required fields are missed: {bodies[-1]}"
        return web.json_response({"success": False, "code": 6023, "error": text})

    app = web.Application()
    app.router.add_post("/v1/callbacks/search", echo)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        monkeypatch.setenv("CONVOSO_AUTH_TOKEN", ODD_TOKEN)
        argv = ["search", "--base-url", base, "--verbose"]
        code = await asyncio.to_thread(cli_module.main, argv)
    finally:
        await runner.cleanup()
    out = capsys.readouterr()
    assert code == 1
    assert any(quote_plus(ODD_TOKEN) in body for body in bodies)  # it really was echoed
    assert "Required fields are missed" in out.err
    assert _leaks([out.out, out.err]) == []


# Answers whose bad line is the request body, as a broken server that echoes it sends:
# aiohttp's parser quotes the line, form-encoded token and all, in its error.
BROKEN_ANSWERS = {
    "header-line": b"HTTP/1.1 200 OK\r\n%s\r\nContent-Length: 2\r\n\r\n{}",
    "status-line": b"HTTP/1.1 2x0 %s\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("answer", BROKEN_ANSWERS.values(), ids=BROKEN_ANSWERS.keys())
async def test_a_parser_error_quoting_the_echoed_form_leaks_no_token(
    caplog: pytest.LogCaptureFixture, answer: bytes
) -> None:
    """A real socket and aiohttp's own parser: the transport's error is retried, logged,
    chained and raised with no spelling of the token in any of them."""
    caplog.set_level(logging.DEBUG)  # the root logger: aiohttp's loggers too
    caplog.set_level(logging.DEBUG, logger="convoso_async")

    async def echo(writer: asyncio.StreamWriter, body: bytes) -> None:
        writer.write(answer % body)

    async with (
        raw_server(echo) as (base, bodies),
        ConvosoClient(ODD_TOKEN, base_url=base, retry=FAST) as client,
    ):
        with pytest.raises(TransportError) as info:
            await client.callbacks.search_page()
    assert len(bodies) == FAST.attempts
    assert quote_plus(ODD_TOKEN).encode() in bodies[0]  # it really was echoed
    error = info.value
    assert "no complete answer" in str(error)
    assert "***" in str(error)
    assert error.__cause__ is None
    assert error.__suppress_context__
    assert "failed (attempt 1 of 3)" in caplog.text
    texts = [*_texts_of(error), repr(error.args), *_chained_texts(error), caplog.text]
    assert _leaks(texts) == []


def _chained_texts(error: BaseException, seen: set[int] | None = None) -> list[str]:
    """str and repr of every exception chained to ``error``, shown in a traceback or not."""
    seen = seen if seen is not None else {id(error)}
    texts: list[str] = []
    for link in (error.__cause__, error.__context__):
        if link is not None and id(link) not in seen:
            seen.add(id(link))
            texts += [str(link), repr(link), *_chained_texts(link, seen)]
    return texts


def test_redaction_covers_every_string_an_error_holds() -> None:
    errors: list[ConvosoError] = [
        ConvosoAPIError(f"echo {quote_plus(ODD_TOKEN)}", endpoint=f"x/{quote(ODD_TOKEN)}"),
        MalformedResponseError(f"body {quote(ODD_TOKEN, safe='')}", endpoint=ODD_TOKEN),
        TransportError(f"no answer from {ODD_SPELLINGS[3]}"),
    ]
    for error in errors:
        error.redact(ODD_TOKEN)
        assert _leaks([*_texts_of(error), repr(error.args)]) == []
        assert "***" in str(error)


def test_redaction_finds_the_token_deep_in_the_chain_and_drops_the_whole_chain() -> None:
    """The token only in an exception two links down (a context's cause): found there,
    and the chain goes, context and all, as ``raise ... from None`` would."""
    deep = ValueError(f"bad value {quote_plus(ODD_TOKEN)}")
    middle = KeyError("record")
    middle.__cause__ = deep
    error = MalformedResponseError("a record could not be read", endpoint="callbacks/search")
    error.__context__ = middle  # raised inside a handler, not "from"
    assert not error.__suppress_context__
    error.redact(ODD_TOKEN)
    assert (error.__cause__, error.__context__) == (None, None)
    assert error.__suppress_context__  # a later raise in a handler shows no context
    assert str(error) == "callbacks/search: a record could not be read"


def test_redaction_of_an_error_without_the_token_keeps_it_whole() -> None:
    cause = ValueError("next tuesday")
    error = MalformedResponseError("a record could not be read: next tuesday")
    error.__cause__ = cause
    for secret in (ODD_TOKEN, ""):  # "" (no token) must not match between every character
        error.redact(secret)
        assert str(error) == "a record could not be read: next tuesday"
        assert error.__cause__ is cause


@pytest.mark.parametrize(
    "url",
    [
        "http://0.0.0.0:8080/v1",
        "http://127.0.0.1.nip.io/v1",
        "http://localhost@api.convoso.com/v1",
        "http://[fe80::1]/v1",
        "http://192.168.1.10/v1",
        "HTTP://API.CONVOSO.COM/v1",
    ],
)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.delenv("CONVOSO_BASE_URL", raising=False)
    with pytest.raises(ValueError, match="https") as info:
        ConvosoClient(SECRET, base_url=url)
    assert SECRET not in str(info.value)


def test_plain_http_from_the_environment_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOSO_BASE_URL", "http://api.convoso.com/v1")
    monkeypatch.setenv("CONVOSO_AUTH_TOKEN", SECRET)
    with pytest.raises(ValueError, match="https") as info:
        ConvosoClient()
    assert SECRET not in str(info.value)


# --- redirects: never followed, since a 307/308 resends the form, token and all ------------

EVIL = "http://evil.example/v1/callbacks/search"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_a_typed_error_and_is_not_followed(
    mock_api: aioresponses, status: int
) -> None:
    """One request, to the base URL: the redirect's target gets nothing, not even after a
    retry (a redirect will not go away). The message names the target without its query."""
    mock_api.post(SEARCH_URL, status=status, headers={"Location": f"{EVIL}?sig=abc#frag"})
    mock_api.post(EVIL, payload={"offset": 0, "limit": 20, "total": 0, "results": []})
    async with make_client() as client:
        with pytest.raises(ConvosoAPIError) as info:
            await client.callbacks.search_page()
    error = info.value
    assert type(error) is ConvosoAPIError
    assert error.status == status
    assert f"redirect to {EVIL};" in str(error)
    assert "does not follow redirects" in str(error)
    assert "base_url" in str(error)
    assert "sig=abc" not in str(error)
    assert "frag" not in str(error)
    assert sent(mock_api) == 1
    assert [str(url) for _, url in mock_api.requests] == [SEARCH_URL]


async def test_a_redirect_without_a_location_is_a_typed_error_too(
    mock_api: aioresponses,
) -> None:
    mock_api.post(SEARCH_URL, status=302, payload={"success": False, "code": 6074})
    async with make_client() as client:
        with pytest.raises(ConvosoAPIError, match="redirect with no Location") as info:
            await client.callbacks.search_page()
    assert type(info.value) is ConvosoAPIError  # not NotFoundError from the body's code
    assert sent(mock_api) == 1


async def test_a_real_307_to_another_host_sends_that_host_nothing() -> None:
    """Real aiohttp, real sockets: server A answers 307 to server B; B must see no request.
    (aiohttp would follow it and resend the form, token included, to B.)"""
    seen_a: list[bytes] = []
    seen_b: list[bytes] = []

    async def to_b(request: web.Request) -> web.StreamResponse:
        seen_a.append(await request.read())
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{b_port}/v1/callbacks/insert?x=1")

    async def record(request: web.Request) -> web.StreamResponse:
        seen_b.append(await request.read())
        return web.json_response({"success": True, "data": {"callback_id": "1"}})

    runners = []
    try:
        for handler in (to_b, record):
            app = web.Application()
            app.router.add_post("/v1/callbacks/insert", handler)
            runner = web.AppRunner(app, access_log=None, handle_signals=False)
            await runner.setup()
            runners.append(runner)
            await web.TCPSite(runner, "127.0.0.1", 0).start()
        a_port, b_port = (r.addresses[0][1] for r in runners)
        base = f"http://127.0.0.1:{a_port}/v1"
        async with ConvosoClient(SECRET, base_url=base, retry=FAST) as client:
            with pytest.raises(ConvosoAPIError, match="does not follow redirects") as info:
                await client.callbacks.insert(lead_id="1", recipient="system", callback_time=AWARE)
    finally:
        for runner in runners:
            await runner.cleanup()
    assert info.value.status == 307
    assert f"127.0.0.1:{b_port}/v1/callbacks/insert;" in str(info.value)
    assert "x=1" not in str(info.value)
    assert len(seen_a) == 1
    assert seen_b == []


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (no CA trusts it)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
async def tls_emulator(
    certificate: tuple[Path, Path],
) -> AsyncIterator[tuple[ConvosoEmulator, str]]:
    """The emulator's API served over HTTPS with the self-signed certificate."""
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    emu = ConvosoEmulator(records=50, seed=1, auth_token=SECRET)
    runner = web.AppRunner(emu._handler.build_app(), access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        yield emu, f"https://127.0.0.1:{runner.addresses[0][1]}/v1"
    finally:
        await runner.cleanup()


async def test_the_clients_own_session_verifies_tls(
    tls_emulator: tuple[ConvosoEmulator, str],
) -> None:
    """An unverifiable certificate is a TransportError at once: not retried, and no
    request (so no token) reached the server."""
    emu, url = tls_emulator
    async with ConvosoClient(SECRET, base_url=url, retry=FAST) as client:
        with pytest.raises(TransportError, match="TLS") as info:
            await client.callbacks.search_page()
        session = client._transport._session
        assert session is not None
        assert session.connector._ssl is True  # type: ignore[union-attr]  # default verification
    assert info.value.sent is False
    assert info.value.retryable is False
    assert client.requests_sent == 1
    assert emu.requests == []


async def test_a_callers_session_is_used_as_given(
    tls_emulator: tuple[ConvosoEmulator, str], certificate: tuple[Path, Path]
) -> None:
    """Trusting the certificate is the caller's choice, made through their own session."""
    emu, url = tls_emulator
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    for connector in (aiohttp.TCPConnector(ssl=trusting), aiohttp.TCPConnector(ssl=False)):
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            ConvosoClient(SECRET, base_url=url, retry=FAST, session=session) as client,
        ):
            page = await client.callbacks.search_page(limit=5)
            assert client._transport._session is session
            assert len(page.results) == 5
        assert session.closed  # closed by its owner's `async with`, not by the client
    assert len(emu.requests) == 2


async def test_a_callers_session_outlives_the_client(
    tls_emulator: tuple[ConvosoEmulator, str],
) -> None:
    emu, url = tls_emulator
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=False)) as session:
        async with ConvosoClient(SECRET, base_url=url, retry=FAST, session=session) as client:
            await client.callbacks.search_page(limit=1)
        assert client.closed
        assert not session.closed
        async with session.post(f"{url}/callbacks/search", data={"auth_token": SECRET}) as r:
            assert r.status == 200
    assert len(emu.requests) == 2


@pytest.fixture(autouse=True)
def _no_leftover_cli_logging() -> Iterator[None]:
    yield
    logging.getLogger("convoso_async").setLevel(logging.NOTSET)


@pytest.mark.parametrize("view", ["search_page", "search", "pages"])
async def test_a_record_quoting_the_token_is_redacted_in_its_decode_error(
    mock_api: aioresponses, view: str
) -> None:
    """Records are decoded after the call has returned; the error of one that cannot be
    read quotes the bad value, which here is the echoed token in every spelling."""
    echo = " | ".join(ODD_SPELLINGS)
    body = {"total": 1, "results": [{"id": "1", "callback_time": f"auth_token={echo}"}]}
    mock_api.post(SEARCH_URL, payload=body, repeat=True)
    async with ConvosoClient(ODD_TOKEN, base_url=BASE, retry=FAST) as client:
        views = {
            "search_page": client.callbacks.search_page,
            "search": client.callbacks.search().collect,
            "pages": lambda: _drain(client.callbacks.search().pages()),
        }
        with pytest.raises(MalformedResponseError) as info:
            await views[view]()
    assert "a record could not be read" in str(info.value)
    assert "***" in str(info.value)
    assert _leaks([*_texts_of(info.value), *_chained_texts(info.value)]) == []


async def _drain(pages: AsyncIterator[CallbackPage]) -> None:
    async for _ in pages:
        pass


async def test_a_record_error_without_the_token_keeps_its_cause(mock_api: aioresponses) -> None:
    body = {"total": 1, "results": [{"id": "1", "callback_time": "next tuesday"}]}
    mock_api.post(SEARCH_URL, payload=body, repeat=True)
    async with make_client() as client:
        with pytest.raises(MalformedResponseError) as info:
            await client.callbacks.search_page()
    assert isinstance(info.value.__cause__, ValueError)
    assert "next tuesday" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b'{"total": "' + b"9" * 5000 + b'", "results": []}',
        b'{"offset": "' + b"1" * 19 + b'", "total": 1, "results": []}',
    ],
    ids=["total-5000-digits", "offset-19-digits"],
)
async def test_a_counter_with_too_many_digits_is_malformed(
    mock_api: aioresponses, body: bytes
) -> None:
    mock_api.post(SEARCH_URL, body=body, repeat=True)
    async with make_client() as client:
        with pytest.raises(MalformedResponseError, match="not believable"):
            await client.callbacks.search_page()


async def test_an_error_code_with_thousands_of_digits_is_no_code(mock_api: aioresponses) -> None:
    body = b'{"success": false, "code": "' + b"7" * 4400 + b'", "text": "Invalid lead"}'
    mock_api.post(INSERT_URL, body=body, repeat=True)
    async with make_client() as client:
        with pytest.raises(InvalidParameterError) as info:
            await client.callbacks.insert(lead_id="1", recipient="system", callback_time=AWARE)
    assert info.value.code is None
    assert sent(mock_api) == 1


@pytest.mark.parametrize("option", ["timeout", "rate_limit"])
@pytest.mark.parametrize("value", [math.inf, math.nan])
def test_a_client_refuses_non_finite_timeout_and_rate_limit(option: str, value: float) -> None:
    with pytest.raises(ValueError, match=option):
        make_client(**{option: value})


async def test_a_huge_integer_zone_is_a_value_error_before_any_request(
    mock_api: aioresponses,
) -> None:
    async with make_client() as client:
        with pytest.raises(ValueError, match="callback_time_zone"):
            await client.callbacks.insert(
                lead_id="1",
                recipient="system",
                callback_time="2026-03-05 02:30 PM",
                callback_time_zone=10**400,
            )
    assert sent(mock_api) == 0
