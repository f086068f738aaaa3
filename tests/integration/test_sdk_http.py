"""The connector SDK's HTTP client against a real HTTP server (uvicorn on 127.0.0.1) that
answers with the failures real APIs give: 5xx bursts, 429 with Retry-After (seconds and
HTTP dates), spent rate-limit budgets, refused credentials, bodies that are not JSON, and
answers slower than the read timeout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from hub.errors import FatalError, RetriableError
from hub.sdk.http import HttpClient, HttpStatusError, RetryPolicy, parse_retry_after
from hub.serving import serve

FAST = RetryPolicy(
    attempts=4, backoff_initial=0.01, backoff_max=0.05, jitter=0.01, read_timeout=0.5
)


@dataclass
class Script:
    """What the server answers, one entry per request (the last one repeats)."""

    answers: dict[str, list[tuple[int, dict[str, str], str]]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)


def build_app(script: Script) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> JSONResponse:
        await asyncio.sleep(2)
        return JSONResponse({"late": True})

    @app.get("/{name}")
    async def scripted(name: str, request: Request) -> Response:
        script.queries.append(str(request.url.query))
        n = script.seen.get(name, 0)
        script.seen[name] = n + 1
        answers = script.answers[name]
        status, headers, body = answers[min(n, len(answers) - 1)]
        return Response(body, status_code=status, headers=headers, media_type="application/json")

    return app


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Script]]:
    script = Script()
    with serve(build_app(script)) as url:
        yield url, script


def client(url: str, **kw: object) -> HttpClient:
    return HttpClient(url, name="test-api", policy=FAST, **kw)  # type: ignore[arg-type]


OK: tuple[int, dict[str, str], str] = (200, {}, '{"ok": true}')


def test_a_5xx_burst_is_retried_until_the_answer_comes(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["burst"] = [(503, {}, "{}"), (502, {}, "{}"), (500, {}, "{}"), OK]
    with client(url) as http:
        assert http.get_json("/burst") == {"ok": True}
    assert script.seen["burst"] == 4


def test_a_5xx_that_does_not_end_is_retriable_with_the_status_in_the_message(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers["down"] = [(503, {}, "{}")]
    with client(url) as http, pytest.raises(RetriableError) as caught:
        http.get_json("/down")
    assert script.seen["down"] == FAST.attempts
    assert caught.value.message == "test-api: GET /down: HTTP 503 after 4 attempts"


def test_429_waits_what_retry_after_says(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["limited"] = [(429, {"Retry-After": "1"}, "{}"), OK]
    started = time.monotonic()
    with client(url) as http:
        assert http.get_json("/limited") == {"ok": True}
    assert time.monotonic() - started >= 1.0  # not the 0.01 s backoff
    assert script.seen["limited"] == 2


def test_retry_after_as_an_http_date() -> None:
    now = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=7), usegmt=True)
    assert parse_retry_after(later, now.timestamp()) == pytest.approx(7.0)
    assert parse_retry_after("3", now.timestamp()) == 3.0
    assert parse_retry_after("soon", now.timestamp()) is None


def test_a_long_retry_after_goes_back_to_the_worker_without_sleeping(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers["closed"] = [(429, {"Retry-After": "120"}, "{}")]
    started = time.monotonic()
    with client(url) as http, pytest.raises(RetriableError) as caught:
        http.get_json("/closed")
    assert time.monotonic() - started < 5
    assert script.seen["closed"] == 1
    assert caught.value.retry_after == pytest.approx(120.0)


def test_a_spent_budget_waits_for_the_reset_before_the_next_request(
    server: tuple[str, Script],
) -> None:
    url, script = server
    script.answers["budget"] = [
        (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"}, '{"page": 1}'),
        (200, {"X-RateLimit-Remaining": "99"}, '{"page": 2}'),
    ]
    slept: list[float] = []
    with client(url, sleep=slept.append) as http:
        assert http.get_json("/budget") == {"page": 1}
        assert http.get_json("/budget") == {"page": 2}
    # what is left of the window: a loaded machine may take seconds between the calls
    assert len(slept) == 1
    assert 10.0 < slept[0] <= 20.0


def test_hubspot_style_interval_header_sets_the_wait(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["hubspot"] = [
        (
            200,
            {
                "X-HubSpot-RateLimit-Remaining": "0",
                "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            },
            "[]",
        ),
        OK,
    ]
    slept: list[float] = []
    with client(url, sleep=slept.append) as http:
        http.get_json("/hubspot")
        http.get_json("/hubspot")
    assert len(slept) == 1  # a window far longer than a loaded machine's pause in between
    assert 5.0 < slept[0] <= 10.0


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_at_once_with_an_actionable_message(
    server: tuple[str, Script], status: int
) -> None:
    url, script = server
    script.answers[f"auth{status}"] = [(status, {}, '{"error": "token expired"}')]
    with client(url) as http, pytest.raises(FatalError) as caught:
        http.get_json(f"/auth{status}")
    assert script.seen[f"auth{status}"] == 1
    assert "credentials were refused" in caught.value.message
    assert "token expired" not in caught.value.message  # never the body


def test_other_client_errors_carry_their_status(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["missing"] = [(404, {}, "{}")]
    with client(url) as http, pytest.raises(HttpStatusError) as caught:
        http.get_json("/missing")
    assert caught.value.status == 404
    assert script.seen["missing"] == 1


def test_a_body_that_is_not_json_is_retried_then_given_up(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["garbled"] = [(200, {}, '{"results": [1, 2'), OK]
    with client(url) as http:
        assert http.get_json("/garbled") == {"ok": True}
    script.answers["html"] = [(200, {}, "<html>maintenance</html>")]
    with client(url) as http, pytest.raises(RetriableError) as caught:
        http.get_json("/html")
    assert "not JSON" in caught.value.message
    assert script.seen["html"] == FAST.attempts


def test_an_answer_slower_than_the_read_timeout_is_retried_then_given_up(
    server: tuple[str, Script],
) -> None:
    url, _ = server
    started = time.monotonic()
    with client(url) as http, pytest.raises(RetriableError) as caught:
        http.get_json("/slow")
    assert "timed out" in caught.value.message
    assert time.monotonic() - started < FAST.attempts * 2  # each attempt gave up at 0.5 s


def test_messages_never_carry_the_query_string(server: tuple[str, Script]) -> None:
    url, script = server
    script.answers["search"] = [(500, {}, "{}")]
    with client(url) as http, pytest.raises(RetriableError) as caught:
        http.get_json("/search", params={"email": "ada@example.com"})
    assert "ada@example.com" in script.queries[-1].replace("%40", "@")  # it was sent
    assert "example.com" not in caught.value.message


def test_a_server_that_is_not_there_is_retriable() -> None:
    from hub.broker import free_port

    with client(f"http://127.0.0.1:{free_port()}") as http, pytest.raises(RetriableError) as caught:
        http.get_json("/anything")
    assert "connection failed" in caught.value.message
