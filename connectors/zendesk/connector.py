"""Zendesk Support (ticketing) as a source connector: the service department's cases.

Streams (one source partition each, ``{"stream": name}``, each with its own cursor):

- ``tickets``: the cursor-based incremental ticket export, each ticket's status mapped to
  the CRM case status through ``policies/case_status.yaml``; a status the policy does not
  map goes to quarantine with the reason, never coerced.
- ``ticket_comments``: with ``comments.source=tickets`` (the default), the ticket export
  walked again and, for each changed ticket, its comments (``/tickets/{id}/comments.json``,
  cursor-paged, oldest first: one request per ticket); with ``comments.source=events``, the
  time-based incremental ticket event export with ``include=comment_events`` (1,000 events
  a request), each ``Comment`` child event one comment. Both give the same record ids.
- ``users``: the cursor-based incremental user export.
- ``organizations``: the time-based incremental organization export.

**Cursors resume exactly.** The exports order items by (timestamp, id). A record's cursor
is where its page was requested from (``cursor`` — the export's own — or ``start_time``)
plus the (timestamp, id) of the record, ``after``; a resume requests that page again and
skips up to that item (the item itself when it is still there, else everything not after
it). The last record of a page carries the page's ``after_cursor`` instead, so a resume
there starts on the next page. The comment stream adds ``partial`` = [timestamp, ticket id,
comment id] while a ticket's comments are half read. The time-based export (organizations)
repeats, on the next page, the items sharing the page's last second; the cursor
``{"start_time", "after_id"}`` skips them, so nothing is read twice.

Comments are immutable at the source; when a ticket changes again its comments are read
again and keep their record ids (the same event ids downstream: idempotent consumers drop
the copies). Tickets whose id or generated_timestamp cannot be read are skipped by the
comment stream (the ticket stream quarantines them).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from connectors.zendesk.client import ExportPacer, ZendeskClient, zendesk_auth
from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.policy import load_case_status_policy
from connectors.zendesk.records import (
    ReadItem,
    SortKey,
    read_comment,
    read_organization,
    read_ticket,
    read_user,
)
from connectors.zendesk.webhooks import webhook_spec
from hub.errors import ConfigError, FatalError
from hub.sdk.http import RetryPolicy
from hub.sdk.streams import (
    Cursor,
    OffsetReader,
    SourceConnectorBase,
    SourcePartition,
    SourceRecord,
    Stream,
)
from hub.webhooks.base import WebhookSpec

log = logging.getLogger(__name__)

T = TypeVar("T")


def _key(value: Any) -> SortKey | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return (value[0], value[1])
    return None


def _after(items: list[T], after: SortKey | None, key_of: Callable[[T], SortKey | None]) -> list[T]:
    """The items past ``after``: after the item itself when it is still there, else from
    the first whose key is greater (the item moved on: it changed since)."""
    if after is None:
        return items
    for i, item in enumerate(items):
        if key_of(item) == after:
            return items[i + 1 :]
    for i, item in enumerate(items):
        k = key_of(item)
        if k is not None and k > after:
            return items[i:]
    return []


def _ticket_key(raw: Any) -> SortKey | None:
    if not isinstance(raw, dict):
        return None
    ts, tid = raw.get("generated_timestamp"), raw.get("id")
    if type(ts) is int and type(tid) is int:
        return (ts, tid)
    return None


def _raw(item: Any) -> bytes:
    return json.dumps(item, ensure_ascii=False, sort_keys=True, default=str).encode()


class ZendeskConnector(SourceConnectorBase):
    """Plugin ``zendesk`` (entry point group ``crm_hub.connectors``)."""

    Config = ZendeskConfig
    version = "0.1.0"

    @classmethod
    def webhooks(cls, config: ZendeskConfig) -> WebhookSpec | None:
        """Ticket events pushed by a Zendesk webhook (see ``webhooks``); None without
        ``webhook.secret``."""
        return webhook_spec(config)

    def __init__(self, config: ZendeskConfig, *, sleep: Callable[[float], None] = time.sleep):
        self.config = config
        self.name = config.name
        self.department = config.department
        self.policy = load_case_status_policy(config.case_status_policy)
        self._sleep = sleep
        self.retry = RetryPolicy(
            read_timeout=config.read_timeout_seconds,
            attempts=config.retry_attempts,
            backoff_initial=config.retry_backoff_seconds,
            backoff_max=max(config.retry_backoff_seconds, 20.0),
            jitter=config.retry_backoff_seconds,
            max_wait=config.retry_max_wait_seconds,
        )
        self.pacer = ExportPacer(
            config.export_rate_limit,
            config.export_rate_window_seconds,
            max_wait=config.retry_max_wait_seconds,
            sleep=sleep,
        )
        self.requests = 0  # HTTP requests made, retries included
        self._next_read: dict[str, float] = {}
        c = config
        every = (
            Stream(
                "tickets",
                c.tickets_topic,
                "crm.service.ticket.changed.v1",
                "service/TicketChanged",
                ("ticket_id",),
                "generated_timestamp",
                c.department,
            ),
            Stream(
                "ticket_comments",
                c.ticket_comments_topic,
                "crm.service.ticket_comment.added.v1",
                "service/TicketCommentAdded",
                ("comment_id",),
                None,
                c.department,
            ),
            Stream(
                "users",
                c.users_topic,
                "crm.service.user.changed.v1",
                "service/SupportUserChanged",
                ("user_id",),
                "updated_at",
                c.department,
            ),
            Stream(
                "organizations",
                c.organizations_topic,
                "crm.service.organization.changed.v1",
                "service/OrganizationChanged",
                ("organization_id",),
                "updated_at",
                c.department,
            ),
        )
        self._streams = tuple(s for s in every if s.name in c.select)

    def streams(self) -> Sequence[Stream]:
        return self._streams

    def _client(self) -> ZendeskClient:
        auth, headers = zendesk_auth(
            email=self.config.email,
            api_token=self.config.api_token,
            oauth_token=self.config.oauth_token,
        )
        return ZendeskClient(
            self.config.api_root,
            auth=auth,
            headers=headers,
            policy=self.retry,
            pacer=self.pacer,
            sleep=self._sleep,
            name=f"zendesk:{self.name}",
        )

    def check(self) -> None:
        """``/users/me.json``: the credentials work and belong to an admin (the exports
        are for admins). Zendesk answers an anonymous user (no id) to a call whose
        credentials it did not take."""
        with self._client() as client:
            try:
                user = client.me()
            finally:
                self.requests += client.requests
        if user.get("id") is None:
            raise FatalError(
                f"connector {self.name}: Zendesk took the call as anonymous; check email and "
                "api.token (or oauth.token)"
            )
        if user.get("role") != "admin":
            raise FatalError(
                f"connector {self.name}: the incremental exports need an admin's credentials; "
                "these are an agent's or an end user's"
            )

    def partitions(self, offsets: OffsetReader) -> list[SourcePartition]:
        now = time.monotonic()
        return [
            p
            for p in super().partitions(offsets)
            if self._next_read.get(str(p.partition["stream"]), 0.0) <= now
        ]

    def fetch_stream(self, stream: Stream, cursor: Cursor | None) -> Iterator[SourceRecord]:
        reader = {
            "tickets": self._tickets,
            "ticket_comments": self._comments,
            "users": self._users,
            "organizations": self._organizations,
        }[stream.name]
        position = self._checked(stream.name, dict(cursor or {}))
        with self._client() as client:
            try:
                yield from reader(client, stream, position)
            finally:
                self.requests += client.requests
        self._next_read[stream.name] = time.monotonic() + self.config.poll_interval_seconds

    def _checked(self, stream: str, cursor: dict[str, Any]) -> dict[str, Any]:
        """The stored cursor, if it is one this connector writes (an offset altered by hand
        may not be): ``ConfigError`` naming the stream, never quoting the cursor."""
        ok = (
            isinstance(cursor.get("cursor", ""), str)
            and type(cursor.get("start_time", 0)) is int
            and cursor.get("start_time", 0) >= 0
            and (cursor.get("after") is None or _key(cursor["after"]) is not None)
            and (cursor.get("after_id") is None or type(cursor["after_id"]) is int)
            and (
                cursor.get("partial") is None
                or (
                    isinstance(cursor["partial"], list)
                    and len(cursor["partial"]) == 3
                    and all(type(v) is int for v in cursor["partial"])
                )
            )
        )
        if not ok:
            raise ConfigError(
                f"connector {self.name}: the stored cursor of stream {stream} is not one this "
                "connector writes; reset the stream's offset (crmhub connectors offsets)"
            )
        return cursor

    # -- records ------------------------------------------------------------------------

    @staticmethod
    def _record(
        stream: Stream, item: ReadItem, raw: Any, cursor: dict[str, Any] | None
    ) -> SourceRecord:
        if item.reasons:
            return SourceRecord(
                record_id=item.record_id,
                key=item.key,
                stream=stream,
                cursor=cursor,
                reasons=item.reasons,
                raw=_raw(raw),
                event_time=item.event_time,
                error_class=item.error_class,
            )
        return SourceRecord(
            record_id=item.record_id,
            value=item.value,
            key=item.key,
            stream=stream,
            cursor=cursor,
            event_time=item.event_time,
        )

    def _export_params(self, resource: str) -> dict[str, Any]:
        if resource == "tickets" and self.config.exclude_deleted:
            return {"exclude_deleted": "true"}
        return {}

    # -- cursor-based exports: tickets, users -------------------------------------------------

    def _pages(
        self, client: ZendeskClient, resource: str, cursor: dict[str, Any]
    ) -> Iterator[tuple[dict[str, Any], list[Any], dict[str, Any], bool]]:
        """(where the page was asked from, its items, where the next read starts, last)."""
        page_cursor = cursor.get("cursor") if isinstance(cursor.get("cursor"), str) else None
        start = int(cursor.get("start_time", self.config.start_time))
        while True:
            here: dict[str, Any] = (
                {"cursor": page_cursor} if page_cursor is not None else {"start_time": start}
            )
            page = client.cursor_export(
                resource,
                cursor=page_cursor,
                start_time=start,
                per_page=self.config.page_size,
                params=self._export_params(resource),
            )
            nxt = {"cursor": page.after_cursor} if page.after_cursor is not None else here
            yield here, page.items, nxt, page.end_of_stream
            if page.end_of_stream:
                return
            if page.after_cursor is None:
                raise FatalError(
                    f"connector {self.name}: the {resource} export gave neither an "
                    "after_cursor nor end_of_stream"
                )
            page_cursor = page.after_cursor

    def _cursor_stream(
        self,
        client: ZendeskClient,
        stream: Stream,
        cursor: dict[str, Any],
        resource: str,
        read: Callable[[Any], ReadItem],
    ) -> Iterator[SourceRecord]:
        after = _key(cursor.get("after"))
        for here, raw_items, nxt, _last in self._pages(client, resource, cursor):
            pairs = _after([(raw, read(raw)) for raw in raw_items], after, lambda p: p[1].sort_key)
            after = None
            for i, (raw, item) in enumerate(pairs):
                if i == len(pairs) - 1:
                    at: dict[str, Any] | None = nxt
                elif item.sort_key is not None:
                    at = {**here, "after": list(item.sort_key)}
                else:
                    at = None  # not a resume point: its position cannot be read
                yield self._record(stream, item, raw, at)
            if not pairs:
                yield SourceRecord.at(nxt)

    def _tickets(
        self, client: ZendeskClient, stream: Stream, cursor: dict[str, Any]
    ) -> Iterator[SourceRecord]:
        policy = self.policy
        yield from self._cursor_stream(
            client, stream, cursor, "tickets", lambda raw: read_ticket(raw, policy)
        )

    def _users(
        self, client: ZendeskClient, stream: Stream, cursor: dict[str, Any]
    ) -> Iterator[SourceRecord]:
        yield from self._cursor_stream(client, stream, cursor, "users", read_user)

    # -- comments of changed tickets -------------------------------------------------------

    def _comments(
        self, client: ZendeskClient, stream: Stream, cursor: dict[str, Any]
    ) -> Iterator[SourceRecord]:
        events = self.config.comments_source == "events"
        if (cursor.get("source") == "events") != events and cursor:
            raise ConfigError(
                f"connector {self.name}: the stored cursor of stream ticket_comments was "
                f"written with another comments.source; reset the stream's offset (crmhub "
                "connectors offsets) to read with comments.source="
                f"{self.config.comments_source}"
            )
        if events:
            yield from self._comment_events(client, stream, cursor)
            return
        after = _key(cursor.get("after"))
        partial = cursor.get("partial")
        half: tuple[SortKey, int] | None = None
        if isinstance(partial, list) and len(partial) == 3 and all(type(v) is int for v in partial):
            half = ((partial[0], partial[1]), partial[2])
        for here, raw_items, nxt, _last in self._pages(client, "tickets", cursor):
            keyed = [(k, raw) for raw in raw_items if (k := _ticket_key(raw)) is not None]
            todo = _after(keyed, after, lambda p: p[0])
            if half is not None:  # the half-read ticket first (if it has not moved on)
                at = next((i for i, (k, _) in enumerate(keyed) if k == half[0]), None)
                if at is not None:
                    todo = keyed[at:]
            done = after
            for k, _raw_ticket in todo:
                skip = half[1] if half is not None and half[0] == k else 0
                yield from self._ticket_comments(client, stream, here, done, k, skip)
                done = k
            after, half = None, None
            yield SourceRecord.at(nxt)

    def _ticket_comments(
        self,
        client: ZendeskClient,
        stream: Stream,
        here: dict[str, Any],
        done: SortKey | None,
        ticket: SortKey,
        skip_through: int,
    ) -> Iterator[SourceRecord]:
        """The comments of one ticket after comment id ``skip_through``; the last one's
        cursor marks the ticket done, the others mark it half read."""
        ticket_id = ticket[1]
        base = {**here, "after": list(done)} if done is not None else dict(here)
        finished = {**here, "after": list(ticket)}
        emitted = False
        for comments, has_more in client.ticket_comments(
            ticket_id, page_size=self.config.comments_page_size
        ):
            todo = [c for c in comments if (cid := _id_of(c)) is None or cid > skip_through]
            for j, raw in enumerate(todo):
                item = read_comment(raw, ticket_id)
                cid = _id_of(raw)
                if not has_more and j == len(todo) - 1:
                    at: dict[str, Any] | None = finished
                elif cid is not None:
                    at = {**base, "partial": [ticket[0], ticket_id, cid]}
                else:
                    at = None
                emitted = True
                yield self._record(stream, item, raw, at)
        if not emitted:
            yield SourceRecord.at(finished)

    def _comment_events(
        self, client: ZendeskClient, stream: Stream, cursor: dict[str, Any]
    ) -> Iterator[SourceRecord]:
        """Comments from the ticket event export. An event's position is (timestamp, event
        id); the cursor of its last comment is that position (``source: events``), the
        comments before it in the same event are no resume point."""

        def expand(event: Any) -> tuple[SortKey | None, list[tuple[Any, ReadItem]]]:
            if not isinstance(event, dict):
                return None, []
            ticket_id, children = event.get("ticket_id"), event.get("child_events")
            if type(ticket_id) is not int or not isinstance(children, list):
                return _event_key(event), []
            out = []
            for child in children:
                if isinstance(child, dict) and child.get("event_type") == "Comment":
                    comment = {
                        **child,
                        "type": child.get("type") or "Comment",
                        "created_at": child.get("created_at") or event.get("created_at"),
                        "via": child.get("via") or event.get("via"),
                    }
                    out.append((comment, read_comment(comment, ticket_id)))
            return _event_key(event), out

        yield from self._time_stream(
            client,
            stream,
            cursor,
            "ticket_events",
            expand,
            params={"include": "comment_events"},
            mark={"source": "events"},
        )

    # -- time-based exports: organizations, ticket events -------------------------------------

    def _organizations(
        self, client: ZendeskClient, stream: Stream, cursor: dict[str, Any]
    ) -> Iterator[SourceRecord]:
        def expand(raw: Any) -> tuple[SortKey | None, list[tuple[Any, ReadItem]]]:
            item = read_organization(raw)
            return item.sort_key, [(raw, item)]

        yield from self._time_stream(client, stream, cursor, "organizations", expand)

    def _time_stream(
        self,
        client: ZendeskClient,
        stream: Stream,
        cursor: dict[str, Any],
        resource: str,
        expand: Callable[[Any], tuple[SortKey | None, list[tuple[Any, ReadItem]]]],
        *,
        params: dict[str, Any] | None = None,
        mark: dict[str, Any] | None = None,
    ) -> Iterator[SourceRecord]:
        """A time-based export: items ordered by (timestamp, id), each giving its position
        and records; the last record of an item carries the item's position as the cursor
        ``{start_time, after_id}`` (plus ``mark``), so a resume skips what was read (a page
        never splits a second and the next repeats it: the position skips those too)."""
        start = int(cursor.get("start_time", self.config.start_time))
        after_id = cursor.get("after_id")
        after: SortKey | None = (start, after_id) if isinstance(after_id, int) else None
        mark = mark or {}
        while True:
            page = client.time_export(
                resource, start_time=start, per_page=self.config.page_size, params=params
            )
            expanded = [expand(raw) for raw in page.items]
            for key, out in _after(expanded, after, lambda e: e[0]):
                at = {**mark, "start_time": key[0], "after_id": key[1]} if key else None
                for j, (raw, item) in enumerate(out):
                    yield self._record(stream, item, raw, at if j == len(out) - 1 else None)
                if not out and at is not None:
                    yield SourceRecord.at(at)
            if page.end_of_stream:
                return
            keys = [k for k, _ in expanded if k is not None]
            last = max(keys) if keys else None
            if last is not None and (after is None or last > after):
                start, after = last[0], last
            elif last is not None and last[0] == start:
                # The page held only items of second `start`, all read (a page never
                # splits a second): go on from the next second.
                start, after = start + 1, None
            else:
                raise FatalError(
                    f"connector {self.name}: the {resource} export makes no progress at "
                    f"start_time {start}"
                )


def _event_key(raw: Any) -> SortKey | None:
    """A ticket event's position in the export: (timestamp, id)."""
    if not isinstance(raw, dict):
        return None
    ts, event_id = raw.get("timestamp"), raw.get("id")
    if type(ts) is int and type(event_id) is int:
        return ts, event_id
    return None


def _id_of(raw: Any) -> int | None:
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if type(value) is int else None
