"""A Zendesk Support API simulator: a real HTTP server (FastAPI) for tests, the bench and
the demo. ``python -m connectors.zendesk.simulator --port 8765`` runs it.

What it reproduces, as the API documents it:

- ``GET /api/v2/incremental/tickets/cursor.json`` and ``/incremental/users/cursor.json``:
  cursor-based incremental exports (``start_time`` first, then ``cursor``; ``per_page`` up
  to 1000; ``after_cursor``/``after_url``/``before_cursor``/``before_url``/
  ``end_of_stream``; ``exclude_deleted``; deleted tickets come with status ``deleted``).
  Items are ordered by (generated_timestamp | updated_at, id); the last minute is left out;
  a ``start_time`` less than a minute ago is refused (400).
- ``GET /api/v2/incremental/organizations.json``: the time-based export (``start_time``,
  ``end_time``, ``next_page``, ``count``, ``end_of_stream``); a page never splits a second,
  so the next page, which starts *at* ``end_time``, repeats the items of that second.
- ``GET /api/v2/incremental/ticket_events.json``: the time-based ticket event export, one
  ``Audit`` event per comment (its ``child_events`` hold the ``Comment`` event only with
  ``include=comment_events``); events of deleted tickets are left out, as the comments
  endpoint answers 404 for them.
- ``GET /api/v2/tickets/{id}/comments.json``: cursor pagination (``page[size]`` up to 100,
  ``page[after]``, ``meta``/``links``) or offset pagination (``page``, ``per_page``,
  ``next_page``, ``count``); 404 ``RecordNotFound`` for a deleted or unknown ticket.
- ``GET /api/v2/users/me.json`` (an anonymous user without credentials),
  ``/api/v2/users.json`` (cursor pagination) and ``/api/v2/users/{id}.json``.
- Auth: API token (basic ``{email}/token:{token}``) or OAuth bearer; 401 ``Couldn't
  authenticate you`` / ``invalid_token`` when refused or expired; 403 for a non-admin on
  the exports.
- Rate limits: the export endpoints' own (10 requests a minute) and the account's (700 a
  minute), in fixed windows; ``X-Rate-Limit``/``X-Rate-Limit-Remaining`` and
  ``ratelimit-limit``/``-remaining``/``-reset`` on every answer; 429 with ``Retry-After``.

Misbehaviour is switchable per test through ``Faults`` (constructor, or ``POST
/_sim/faults`` with a JSON object of its fields): 5xx bursts, a server that stays down,
429 forever, slow answers, malformed JSON, expired credentials. ``GET /_sim/stats`` counts
what was served; ``POST /_sim/tickets/{id}/touch`` changes a ticket (and may add a comment).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request, Response

from connectors.zendesk.dataset import Dataset, generate, iso
from connectors.zendesk.sim_pages import Index, PageError, cursor_page, list_page, public, time_page

__all__ = ["Faults", "Simulator", "create_app", "main"]

API = "/api/v2"


@dataclass
class Faults:
    """What goes wrong, switchable while the server runs."""

    fail_next: int = 0  # the next N API requests answer fail_status
    fail_status: int = 503
    down: bool = False  # every API request answers 503
    throttle: bool = False  # every API request answers 429 (Retry-After: retry_after)
    retry_after: int = 7
    slow_next: int = 0  # the next N API requests wait slow_seconds before answering
    stall_after: int | None = None  # after N more API requests, every one hangs (until
    # this is set back to None, or slow_seconds passed)
    slow_seconds: float = 0.0
    malformed_next: int = 0  # the next N 200 answers carry a truncated JSON body
    expired: bool = False  # the credentials are refused (expired token)
    export_limit: int = 10  # requests per window on the incremental exports (0: none)
    account_limit: int = 700  # requests per window on the whole API (0: none)
    window_seconds: float = 60.0
    recent_seconds: int = 60  # the exports leave out changes this recent


@dataclass
class _Window:
    limit: int
    start: float = 0.0
    used: int = 0

    def take(self, now: float, window: float) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds to reset) for one request at ``now``."""
        begin = math.floor(now / window) * window
        if begin != self.start:
            self.start, self.used = begin, 0
        reset = max(1, math.ceil(begin + window - now))
        if self.used >= self.limit:
            return False, 0, reset
        self.used += 1
        return True, self.limit - self.used, reset


@dataclass
class Simulator:
    dataset: Dataset = field(default_factory=generate)
    email: str = "admin@example.com"
    api_token: str = "sim-api-token"  # noqa: S105 - the simulator's own test credential
    oauth_token: str = "sim-oauth-token"  # noqa: S105
    role: str = "admin"
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self, dataset: Dataset | None = None, faults: Faults | None = None) -> None:
        """Start again from ``dataset`` with ``faults`` (default: the current ones), with
        zero counts and fresh rate-limit windows."""
        if dataset is not None:
            self.dataset = dataset
        if faults is not None:
            self.faults = faults
        self.tickets = Index(self.dataset.tickets)
        self.users = Index(self.dataset.users)
        self.organizations = Index(self.dataset.organizations)
        self.comments = self.dataset.comments
        self.ticket_events = Index(ticket_events(self.tickets.by_id, self.comments))
        self.stats: Counter[str] = Counter()
        self._windows: dict[str, _Window] = {}

    # -- changes (tests and demo) --------------------------------------------------------------

    def touch_ticket(
        self, ticket_id: int, *, at: int, status: str | None = None, comment: str | None = None
    ) -> None:
        """A change of the ticket at ``at`` (Unix seconds), with a new comment maybe."""
        ticket = self.tickets.by_id[ticket_id]
        ticket["updated_at"] = iso(at)
        ticket["generated_timestamp"] = ticket["_ts"] = at
        if status is not None:
            ticket["status"] = status
        if comment is not None:
            thread = self.comments.setdefault(ticket_id, [])
            cid = max([c["id"] for c in thread] + [ticket_id]) + 1_000_000
            thread.append(
                {
                    "id": cid,
                    "type": "Comment",
                    "author_id": ticket.get("requester_id"),
                    "body": comment,
                    "html_body": f"<p>{comment}</p>",
                    "plain_body": comment,
                    "public": True,
                    "attachments": [],
                    "audit_id": cid + 1,
                    "via": {"channel": "web", "source": {}},
                    "created_at": iso(at),
                    "metadata": {"system": {}, "custom": {}},
                }
            )
        self.tickets.rebuild()
        self.ticket_events = Index(ticket_events(self.tickets.by_id, self.comments))

    # -- gatekeeping ---------------------------------------------------------------------------

    def _authorized(self, header: str | None) -> bool | None:
        """True: accepted; False: refused; None: no credentials sent."""
        if not header:
            return None
        if self.faults.expired:
            return False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == self.oauth_token
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value).decode().partition(":")
            except (ValueError, UnicodeDecodeError, binascii.Error):
                return False
            return user == f"{self.email}/token" and secret == self.api_token
        return False

    def _limit(self, bucket: str, limit: int) -> tuple[bool, int, int]:
        window = self._windows.get(bucket)
        if window is None or window.limit != limit:
            window = self._windows[bucket] = _Window(limit)
        return window.take(time.time(), self.faults.window_seconds)

    async def guard(
        self, request: Request, route: str, *, export: bool, me: bool = False
    ) -> Response | None:
        """An early answer (a fault, a refusal, a limit) or None to go on."""
        f = self.faults
        self.stats["requests"] += 1
        self.stats[f"route:{route}"] += 1
        if f.slow_next > 0:
            f.slow_next -= 1
            self.stats["slow"] += 1
            await asyncio.sleep(f.slow_seconds)
        if f.stall_after is not None:
            if f.stall_after > 0:
                f.stall_after -= 1
            else:
                self.stats["stalled"] += 1
                deadline = time.monotonic() + f.slow_seconds
                while self.faults.stall_after == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        if f.down or f.fail_next > 0:
            status = 503 if f.down else f.fail_status
            f.fail_next = max(0, f.fail_next - 1)
            self.stats[f"status:{status}"] += 1
            return _error(status, "ServiceUnavailable", "Zendesk is unavailable, try again")
        auth = self._authorized(request.headers.get("authorization"))
        if auth is False or (auth is None and not me):
            self.stats["status:401"] += 1
            if f.expired or request.headers.get("authorization", "").lower().startswith("bearer"):
                return Response(
                    json.dumps(
                        {
                            "error": "invalid_token",
                            "error_description": "The access "
                            "token provided is expired, revoked, malformed or invalid.",
                        }
                    ),
                    status_code=401,
                    media_type="application/json",
                )
            return Response(
                '{"error":"Couldn\'t authenticate you"}',
                status_code=401,
                media_type="application/json",
            )
        if f.throttle:
            self.stats["status:429"] += 1
            return _error(
                429, "TooManyRequests", "Rate limit exceeded", {"Retry-After": str(f.retry_after)}
            )
        headers: dict[str, str] = {}
        if f.account_limit:
            ok, remaining, reset = self._limit("account", f.account_limit)
            limit = str(f.account_limit)
            headers = {
                "X-Rate-Limit": limit,
                "X-Rate-Limit-Remaining": str(remaining),
                "ratelimit-limit": limit,
                "ratelimit-remaining": str(remaining),
                "ratelimit-reset": str(reset),
            }
            if not ok:
                self.stats["status:429"] += 1
                return _error(
                    429,
                    "APIRateLimitExceeded",
                    "Number of allowed API requests per minute exceeded",
                    {**headers, "Retry-After": str(reset)},
                )
        if export and f.export_limit:
            ok, _, reset = self._limit("export", f.export_limit)
            if not ok:
                self.stats["status:429"] += 1
                self.stats["export_429"] += 1
                return _error(
                    429,
                    "APIRateLimitExceeded",
                    "Number of allowed incremental export API requests per minute exceeded",
                    {**headers, "Retry-After": str(reset)},
                )
        if export and self.role != "admin":
            return _error(403, "Forbidden", "You do not have access to this page")
        request.state.headers = headers
        return None

    def reply(self, request: Request, body: bytes) -> Response:
        headers = getattr(request.state, "headers", {})
        if self.faults.malformed_next > 0:
            self.faults.malformed_next -= 1
            self.stats["malformed"] += 1
            body = body[: max(1, len(body) // 2)]
        self.stats["status:200"] += 1
        return Response(body, status_code=200, headers=headers, media_type="application/json")

    # -- pages ---------------------------------------------------------------------------

    def page(self, request: Request, built: bytes | PageError) -> Response:
        if isinstance(built, PageError):
            self.stats[f"status:{built.status}"] += 1
            return _error(built.status, built.error, built.description)
        return self.reply(request, built)

    def export(self, request: Request, name: str) -> Response:
        cutoff = int(time.time()) - self.faults.recent_seconds
        url = _url(request)
        q = request.query_params
        if name == "organizations":
            return self.page(request, time_page(self.organizations, name, q, url, cutoff))
        if name == "ticket_events":
            built = time_page(self.ticket_events, name, q, url, cutoff)
            if q.get("include") != "comment_events" and not isinstance(built, PageError):
                events = json.loads(built)  # without the include, no comment child events
                for event in events[name]:
                    event["child_events"] = [
                        c for c in event["child_events"] if c.get("event_type") != "Comment"
                    ]
                built = json.dumps(events).encode()
            return self.page(request, built)
        index = self.tickets if name == "tickets" else self.users
        return self.page(request, cursor_page(index, name, q, url, cutoff))

    def comments_page(self, request: Request, ticket_id: int) -> Response:
        ticket = self.tickets.by_id.get(ticket_id)
        if ticket is None or ticket.get("status") == "deleted":
            return self.page(request, PageError(404, "RecordNotFound", "Not found"))
        thread = self.comments.get(ticket_id, [])
        return self.reply(
            request, list_page("comments", thread, request.query_params, _url(request))
        )

    def users_page(self, request: Request) -> Response:
        users = [public(u) for u in sorted(self.users.by_id.values(), key=lambda u: u["_id"])]
        return self.reply(request, list_page("users", users, request.query_params, _url(request)))

    def me(self, request: Request) -> Response:
        if not request.headers.get("authorization"):
            anonymous = {
                "id": None,
                "name": "Anonymous user",
                "email": "invalid@example.com",
                "role": "end-user",
            }
            return self.reply(request, json.dumps({"user": anonymous}).encode())
        me = next((u for u in self.users.items if u.get("role") == "admin"), None)
        user = {
            **{k: v for k, v in (me or {}).items() if not k.startswith("_")},
            "id": (me or {}).get("id", 1),
            "email": self.email,
            "role": self.role,
        }
        return self.reply(request, json.dumps({"user": user}).encode())


def ticket_events(
    tickets: dict[int, dict[str, Any]], comments: dict[int, list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """The ticket event export's items: one ``Audit`` event per comment (the audit that
    added it), ordered by its time; deleted tickets' events left out."""
    events = []
    for ticket_id, thread in comments.items():
        ticket = tickets.get(ticket_id)
        if ticket is None or ticket.get("status") == "deleted":
            continue
        for c in thread:
            at = int(datetime.fromisoformat(c["created_at"]).timestamp())
            audit = c.get("audit_id") or c["id"] + 1
            child = {k: c[k] for k in c if k not in ("metadata", "audit_id", "type")}
            events.append(
                {
                    "_id": audit,
                    "_ts": at,
                    "id": audit,
                    "ticket_id": ticket_id,
                    "timestamp": at,
                    "created_at": c["created_at"],
                    "updater_id": c.get("author_id"),
                    "via": c.get("via"),
                    "system": {},
                    "metadata": c.get("metadata") or {},
                    "event_type": "Audit",
                    "child_events": [{**child, "event_type": "Comment", "type": c.get("type")}],
                }
            )
    return events


def _url(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{request.url.path}"


def _error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps({"error": error, "description": description})
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def create_app(sim: Simulator) -> FastAPI:
    """The simulator's HTTP app (serve it with uvicorn)."""
    app = FastAPI(title="Zendesk Support API simulator", openapi_url=None, docs_url=None)

    @app.get(f"{API}/incremental/tickets/cursor.json")
    async def tickets_export(request: Request) -> Response:
        return await sim.guard(request, "tickets_export", export=True) or sim.export(
            request, "tickets"
        )

    @app.get(f"{API}/incremental/users/cursor.json")
    async def users_export(request: Request) -> Response:
        return await sim.guard(request, "users_export", export=True) or sim.export(request, "users")

    @app.get(f"{API}/incremental/organizations.json")
    async def organizations_export(request: Request) -> Response:
        return await sim.guard(request, "organizations_export", export=True) or sim.export(
            request, "organizations"
        )

    @app.get(f"{API}/incremental/ticket_events.json")
    async def ticket_events_export(request: Request) -> Response:
        return await sim.guard(request, "ticket_events_export", export=True) or sim.export(
            request, "ticket_events"
        )

    @app.get(f"{API}/tickets/{{ticket_id}}/comments.json")
    async def comments(ticket_id: int, request: Request) -> Response:
        return await sim.guard(request, "comments", export=False) or sim.comments_page(
            request, ticket_id
        )

    @app.get(f"{API}/users/me.json")
    async def me(request: Request) -> Response:
        return await sim.guard(request, "me", export=False, me=True) or sim.me(request)

    @app.get(f"{API}/users.json")
    async def users(request: Request) -> Response:
        return await sim.guard(request, "users", export=False) or sim.users_page(request)

    @app.get(f"{API}/users/{{user_id}}.json")
    async def user(user_id: int, request: Request) -> Response:
        early = await sim.guard(request, "user", export=False)
        if early is not None:
            return early
        found = sim.users.by_id.get(user_id)
        if found is None:
            return _error(404, "RecordNotFound", "Not found")
        public = {k: v for k, v in found.items() if not k.startswith("_")}
        return sim.reply(request, json.dumps({"user": public}).encode())

    @app.post("/_sim/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        changes = await request.json()
        known = {f.name for f in fields(Faults)}
        for name, value in dict(changes).items():
            if name in known:
                setattr(sim.faults, name, value)
        return asdict(sim.faults)

    @app.get("/_sim/stats")
    async def stats() -> dict[str, int]:
        return dict(sim.stats)

    @app.post("/_sim/tickets/{ticket_id}/touch")
    async def touch(ticket_id: int, request: Request) -> dict[str, Any]:
        change = await request.json()
        sim.touch_ticket(
            ticket_id,
            at=int(change.get("at", time.time() - 120)),
            status=change.get("status"),
            comment=change.get("comment"),
        )
        return {"ticket_id": ticket_id}

    return app


def main(argv: list[str] | None = None) -> None:
    """Run the simulator: ``python -m connectors.zendesk.simulator --port 8765``."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--users", type=int, default=80)
    parser.add_argument("--organizations", type=int, default=12)
    parser.add_argument("--bad-share", type=float, default=0.04)
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="no export or account limit (for the bench)"
    )
    args = parser.parse_args(argv)
    data = generate(
        args.seed,
        tickets=args.tickets,
        users=args.users,
        organizations=args.organizations,
        bad_share=args.bad_share,
    )
    faults = Faults(export_limit=0, account_limit=0) if args.no_rate_limits else Faults()
    sim = Simulator(data, faults=faults)
    uvicorn.run(
        create_app(sim),
        host=args.host,
        port=args.port,
        log_level="warning",
        ws="none",
        access_log=False,
    )


if __name__ == "__main__":
    main()
