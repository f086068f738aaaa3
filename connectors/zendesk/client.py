"""The Zendesk Support API client: incremental exports, ticket comments, authentication.

Built on ``hub.sdk.http.HttpClient`` (timeouts, retries with backoff and jitter, 429 and
``Retry-After``, the account-wide ``ratelimit-remaining``/``ratelimit-reset`` budget,
errors by recovery). What is Zendesk's own:

- **Authentication**: an API token (HTTP basic, user ``{email}/token``, password the
  token) or an OAuth access token (``Authorization: Bearer``).
- **Cursor-based incremental exports** (tickets, users): the first request carries
  ``start_time`` (Unix seconds), every later one ``cursor`` = the previous page's
  ``after_cursor`` (``after_url`` is the same request as a URL); ``end_of_stream: true``
  ends the read, and that page's ``after_cursor`` is where the next read starts.
- **Time-based incremental exports** (organizations): ``start_time``, then the page's
  ``end_time`` as the next ``start_time`` (``next_page`` is that URL) until
  ``end_of_stream``. The next page starts *at* ``end_time``, so items sharing that second
  come again: the connector skips what it already read (see ``connector.py``).
- **The export endpoints' own limit** (10 requests a minute; 30 with the High Volume
  add-on), which no response header announces before the 429: ``ExportPacer`` spaces the
  export requests ``window / limit`` seconds apart, so a read never collects one. A 429
  still comes back with ``Retry-After`` (another client on the account) and is honoured
  by ``HttpClient``.
- **Ticket comments**: ``/api/v2/tickets/{id}/comments.json`` with cursor pagination
  (``page[size]`` up to 100, ``meta.has_more``, ``meta.after_cursor``). A ticket deleted
  since the export listed it answers 404: it has no comments to read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from hub.errors import FatalError, RetriableError
from hub.sdk.http import HttpClient, HttpStatusError, RetryPolicy

__all__ = [
    "CursorPage",
    "ExportPacer",
    "TimePage",
    "ZendeskClient",
    "zendesk_auth",
]

API = "/api/v2"


@dataclass(frozen=True, slots=True)
class CursorPage:
    """One page of a cursor-based incremental export."""

    items: list[Any]
    after_cursor: str | None
    end_of_stream: bool


@dataclass(frozen=True, slots=True)
class TimePage:
    """One page of a time-based incremental export."""

    items: list[Any]
    end_time: int | None
    end_of_stream: bool


class ExportPacer:
    """Export requests spaced ``window / limit`` seconds apart: never more than ``limit``
    in any window (a fixed window, as the server counts, or a sliding one), so a full read
    collects no 429, and each wait is short (6 s at Zendesk's 10 a minute). A wait longer
    than ``max_wait`` is not slept: ``RetriableError(retry_after=…)`` hands it to the
    connect worker, which can stop meanwhile."""

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        max_wait: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = window / limit
        self.max_wait = max_wait
        self._sleep = sleep
        self._clock = clock
        self._next = float("-inf")  # the earliest time of the next export request
        self.waits: list[float] = []  # every wait slept, for tests and metrics

    def acquire(self) -> None:
        now = self._clock()
        wait = self._next - now
        if wait > 0:
            if wait > self.max_wait:
                raise RetriableError(
                    "zendesk: waiting for the incremental export limit", retry_after=wait
                )
            self.waits.append(wait)
            self._sleep(wait)
            now = self._clock()
        self._next = max(now, self._next) + self.interval


def zendesk_auth(
    *, email: str | None, api_token: SecretStr | None, oauth_token: SecretStr | None
) -> tuple[httpx.Auth | None, dict[str, str]]:
    """(auth, headers) for an API token (basic ``{email}/token``) or an OAuth token."""
    if oauth_token is not None:
        return None, {"Authorization": f"Bearer {oauth_token.get_secret_value()}"}
    if email is None or api_token is None:
        raise FatalError("zendesk: give email and api.token, or oauth.token")
    return httpx.BasicAuth(f"{email}/token", api_token.get_secret_value()), {}


def _shape(where: str, what: str) -> FatalError:
    return FatalError(
        f"zendesk: {where} answered without {what}; is base.url a Zendesk Support API?"
    )


class ZendeskClient:
    """One per connector (not thread-safe, as ``HttpClient``)."""

    def __init__(
        self,
        base_url: str,
        *,
        auth: httpx.Auth | None,
        headers: Mapping[str, str],
        policy: RetryPolicy,
        pacer: ExportPacer,
        sleep: Callable[[float], None] = time.sleep,
        name: str = "zendesk",
    ) -> None:
        self.http = HttpClient(
            base_url.rstrip("/"),
            name=name,
            auth=auth,
            headers={"Accept": "application/json", **headers},
            policy=policy,
            sleep=sleep,
        )
        self.pacer = pacer  # shared by every client of one connector: the limit is the account's

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ZendeskClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def requests(self) -> int:
        return self.http.requests

    # -- calls ----------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The authenticated user (``/users/me.json``): one cheap authenticated call."""
        body = self.http.get_json(f"{API}/users/me.json")
        user = body.get("user") if isinstance(body, dict) else None
        if not isinstance(user, dict):
            raise _shape("/users/me.json", "a user")
        return user

    def cursor_export(
        self,
        resource: str,
        *,
        cursor: str | None,
        start_time: int | None,
        per_page: int,
        params: Mapping[str, Any] | None = None,
    ) -> CursorPage:
        """One page of ``/incremental/{resource}/cursor.json`` (tickets, users)."""
        query: dict[str, Any] = {"per_page": per_page, **(params or {})}
        if cursor is not None:
            query["cursor"] = cursor
        else:
            query["start_time"] = start_time or 0
        path = f"{API}/incremental/{resource}/cursor.json"
        self.pacer.acquire()
        body = self.http.get_json(path, query)
        items = body.get(resource) if isinstance(body, dict) else None
        if not isinstance(items, list) or "end_of_stream" not in body:
            raise _shape(path, f"'{resource}' and 'end_of_stream'")
        after = body.get("after_cursor")
        return CursorPage(
            items, after if isinstance(after, str) else None, bool(body["end_of_stream"])
        )

    def time_export(
        self,
        resource: str,
        *,
        start_time: int,
        per_page: int,
        params: dict[str, Any] | None = None,
    ) -> TimePage:
        """One page of ``/incremental/{resource}.json`` (organizations, ticket_events)."""
        path = f"{API}/incremental/{resource}.json"
        self.pacer.acquire()
        query = {"start_time": start_time, "per_page": per_page, **(params or {})}
        body = self.http.get_json(path, query)
        items = body.get(resource) if isinstance(body, dict) else None
        if not isinstance(items, list) or "end_of_stream" not in body:
            raise _shape(path, f"'{resource}' and 'end_of_stream'")
        end = body.get("end_time")
        return TimePage(
            items,
            end if isinstance(end, int) and not isinstance(end, bool) else None,
            bool(body["end_of_stream"]),
        )

    def ticket_comments(
        self, ticket_id: int, *, page_size: int
    ) -> Iterator[tuple[list[Any], bool]]:
        """The comments of one ticket, page by page, oldest first: (comments, has_more).
        A ticket that is gone (404) has none."""
        path = f"{API}/tickets/{ticket_id}/comments.json"
        query: dict[str, Any] = {"page[size]": page_size}
        while True:
            try:
                body = self.http.get_json(path, query)
            except HttpStatusError as exc:
                if exc.status == 404:
                    return
                raise
            comments = body.get("comments") if isinstance(body, dict) else None
            if not isinstance(comments, list):
                raise _shape("/tickets/{id}/comments.json", "'comments'")
            meta = body.get("meta") or {}
            has_more = bool(meta.get("has_more")) if isinstance(meta, dict) else False
            after = meta.get("after_cursor") if isinstance(meta, dict) else None
            yield comments, has_more and isinstance(after, str)
            if not (has_more and isinstance(after, str)):
                return
            query = {"page[size]": page_size, "page[after]": after}
