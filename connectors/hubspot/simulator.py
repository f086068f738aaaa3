"""A local HubSpot: a real HTTP server (FastAPI) that reproduces the documented shapes and
failures of the endpoints the ``hubspot`` connector reads.

Endpoints: ``GET /crm/v3/objects/{contacts|companies}`` (``limit`` ≤ 100, ``after`` paging,
``properties``, ``archived``), ``GET /crm/v3/objects/{type}/{id}``, ``POST
/crm/v3/objects/{type}/search`` (see ``simquery``), ``POST
/crm/v4/associations/{from}/{to}/batch/read`` and ``GET
/crm/v4/objects/{type}/{id}/associations/{toType}``, ``GET /marketing/v3/campaigns`` and
``GET /email/public/v1/events`` (``startTimestamp``/``endTimestamp``, ``offset``/``hasMore``,
``limit`` ≤ 1000).

Auth: ``Authorization: Bearer <private app token>``; a missing or wrong token is a 401
``INVALID_AUTHENTICATION``, an expired one a 401 ``EXPIRED_AUTHENTICATION``. Rate limits:
a rolling 10-second budget per token (``X-HubSpot-RateLimit-Max/-Remaining/
-Interval-Milliseconds``), a daily one (``X-HubSpot-RateLimit-Daily/-Daily-Remaining``) and
the search endpoints' own per-second limit (no rate-limit headers on search answers, as
HubSpot sends none there); over a limit the answer is a 429 with HubSpot's JSON error body
(``errorType: RATE_LIMIT``, ``policyName``). Misbehaviour is switchable per test through
``Simulator.faults`` / ``Simulator.limits`` or ``POST /_sim/faults`` / ``/_sim/limits``:
5xx bursts, a server that stays down, slow answers, malformed JSON, an expired token, 429
forever. ``/_sim/*`` is the admin surface (no auth; bind to 127.0.0.1 only).

Run it: ``python -m connectors.hubspot.simulator --port 8990 --contacts 5000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
import uuid
from bisect import bisect_left, bisect_right
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from connectors.hubspot.simdata import MODIFIED_PROPERTY, Account, CrmObject, generate, iso
from connectors.hubspot.simquery import BadRequest, SearchRequest, run_search, tiebreak

LIST_MAX_LIMIT = 100
EVENTS_MAX_LIMIT = 1000
CAMPAIGNS_MAX_LIMIT = 100
ASSOCIATION_BATCH_MAX = 1000


@dataclass
class Faults:
    """Misbehaviour, switched on per test. Counters count down per request."""

    fail_next: int = 0  # answer this many requests with ``fail_status``
    fail_status: int = 503
    down: bool = False  # every request: 503
    slow_next: int = 0  # delay this many answers by ``slow_seconds``
    slow_seconds: float = 0.0
    malformed_next: int = 0  # this many 200 answers with a body that is not JSON
    expired_token: bool = False
    always_429: bool = False  # every request: 429 TEN_SECONDLY_ROLLING
    path_prefix: str = ""  # faults apply only to paths starting with this


@dataclass
class Limits:
    """HubSpot's documented limits for a private app (Professional); None: unlimited."""

    burst_max: int | None = 190
    burst_interval_ms: int = 10_000
    daily_max: int | None = 1_000_000
    search_per_second: int | None = 5


@dataclass
class Stats:
    requests: int = 0
    by_endpoint: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    rate_limited: Counter[str] = field(default_factory=Counter)  # by policyName
    log: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic, path, status)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(data, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, category: str, **extra: Any) -> Response:
    body = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
        **extra,
    }
    return _json(body, status)


class Simulator:
    """The state behind the app: the account's data, the token, faults, limits, stats."""

    def __init__(
        self,
        account: Account | None = None,
        *,
        token: str = "pat-na1-simulator-token",  # noqa: S107 - the simulator's own fake token
        faults: Faults | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.account = account or generate()
        self.token = token
        self.faults = faults or Faults()
        self.limits = limits or Limits()
        self.stats = Stats()
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._search_window: deque[float] = deque()
        self._daily = 0
        self._ids: dict[tuple[str, bool], list[int]] = {}
        self._index: dict[tuple[str, str], list[tuple[int, bytes, int]]] = {}
        self.created_index: list[int] | None = None  # e-mail events' created times

    # -- data changes (tests and the demo) ------------------------------------------------

    def _dirty(self) -> None:
        self._ids.clear()
        self._index.clear()

    def touch(self, object_type: str, ids: list[int], at_ms: int | None = None) -> None:
        """Modify objects now (or at ``at_ms``): their last-modified time moves."""
        with self._lock:
            objects = self.account.objects(object_type)
            now = at_ms if at_ms is not None else int(time.time() * 1000)
            for i in ids:
                obj = objects[i]
                obj.updated = now
                obj.properties["hs_lead_status" if object_type == "contacts" else "industry"] = (
                    "IN_PROGRESS" if object_type == "contacts" else "RETAIL"
                )
            self._index.clear()

    def add(self, object_type: str, obj: CrmObject) -> None:
        with self._lock:
            self.account.objects(object_type)[obj.id] = obj
            self._dirty()

    def archive(self, object_type: str, ids: list[int], at_ms: int | None = None) -> None:
        with self._lock:
            now = at_ms if at_ms is not None else int(time.time() * 1000)
            for i in ids:
                self.account.objects(object_type)[i].archived_at = now
                self.account.associations.pop(i, None)
            self._dirty()

    def search(self, object_type: str, query: SearchRequest) -> tuple[int, list[CrmObject]]:
        """Run a search; a range of the modified time is read from a sorted index."""
        objects = self.account.objects(object_type)
        if query.bounds is None:
            return run_search(
                query, object_type, (objects[i] for i in self.ids(object_type, False))
            )
        lo, lo_in, hi, hi_in = query.bounds
        index = self._modified_index(object_type)
        start, end = 0, len(index)
        if lo is not None:
            start = (
                bisect_left(index, (lo, b"")) if lo_in else bisect_right(index, (lo, b"\xff" * 8))
            )
        if hi is not None:
            end = bisect_right(index, (hi, b"\xff" * 8)) if hi_in else bisect_left(index, (hi, b""))
        chosen = index[start : max(start, end)]
        ascending = query.sort == (MODIFIED_PROPERTY[object_type], False)
        if query.exact and ascending:  # the index slice is the answer, in order
            page = chosen[query.offset : query.offset + query.limit]
            return len(chosen), [objects[oid] for _, _, oid in page]
        return run_search(
            query, object_type, (objects[oid] for _, _, oid in chosen), presorted=ascending
        )

    def _modified_index(self, object_type: str) -> list[tuple[int, bytes, int]]:
        key = ("modified", object_type)
        found = self._index.get(key)
        if found is None:
            found = sorted(
                (o.updated, tiebreak(o.id), o.id)
                for o in self.account.objects(object_type).values()
                if o.archived_at is None
            )
            self._index[key] = found
        return found

    def ids(self, object_type: str, archived: bool) -> list[int]:
        key = (object_type, archived)
        found = self._ids.get(key)
        if found is None:
            objects = self.account.objects(object_type)
            found = sorted(i for i, o in objects.items() if (o.archived_at is not None) == archived)
            self._ids[key] = found
        return found

    # -- the gate every API request passes --------------------------------------------------

    def _faulty(self, path: str) -> bool:
        return path.startswith(self.faults.path_prefix)

    def gate(self, request: Request, endpoint: str) -> tuple[Response | None, dict[str, str]]:
        """(an answer that replaces the endpoint's, headers to add to the endpoint's)."""
        path = request.url.path
        with self._lock:
            self.stats.requests += 1
            self.stats.by_endpoint[endpoint] += 1
            f = self.faults
            if self._faulty(path):
                if f.down:
                    return _error(503, "Service Unavailable", "SERVICE_UNAVAILABLE"), {}
                if f.fail_next > 0:
                    f.fail_next -= 1
                    return _error(f.fail_status, "internal error", "INTERNAL_ERROR"), {}
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.token}":
                return _error(
                    401,
                    "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication.",
                    "INVALID_AUTHENTICATION",
                ), {}
            if f.expired_token and self._faulty(path):
                return _error(
                    401, "The OAuth token used to make this call expired.", "EXPIRED_AUTHENTICATION"
                ), {}
            if f.always_429 and self._faulty(path):
                return self._limited("TEN_SECONDLY_ROLLING", self._headers(0)), {}
            return self._rate_limit(endpoint == "search")

    def _headers(self, remaining: int) -> dict[str, str]:
        lim = self.limits
        out = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(lim.burst_interval_ms),
            "X-HubSpot-RateLimit-Max": str(lim.burst_max or 1_000_000),
            "X-HubSpot-RateLimit-Remaining": str(max(0, remaining)),
        }
        if lim.daily_max is not None:
            out["X-HubSpot-RateLimit-Daily"] = str(lim.daily_max)
            out["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, lim.daily_max - self._daily))
        return out

    def _limited(self, policy: str, headers: dict[str, str]) -> Response:
        self.stats.rate_limited[policy] += 1
        label = {"DAILY": "daily", "SECONDLY": "secondly"}.get(policy, policy.lower())
        body = {
            "status": "error",
            "message": f"You have reached your {label} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        return _json(body, 429, headers)

    def _rate_limit(self, search: bool) -> tuple[Response | None, dict[str, str]]:
        lim = self.limits
        now = time.monotonic()
        if lim.daily_max is not None and self._daily >= lim.daily_max:
            return self._limited("DAILY", self._headers(0)), {}
        if search and lim.search_per_second is not None:
            while self._search_window and now - self._search_window[0] >= 1.0:
                self._search_window.popleft()
            if len(self._search_window) >= lim.search_per_second:
                return self._limited("SECONDLY", {}), {}  # search answers carry no headers
            self._search_window.append(now)
        remaining = 1_000_000
        if lim.burst_max is not None and not search:  # search has its own limit
            interval = lim.burst_interval_ms / 1000
            while self._window and now - self._window[0] >= interval:
                self._window.popleft()
            if len(self._window) >= lim.burst_max:
                return self._limited("TEN_SECONDLY_ROLLING", self._headers(0)), {}
            self._window.append(now)
            remaining = lim.burst_max - len(self._window)
        self._daily += 1
        return None, ({} if search else self._headers(remaining))

    async def answer(self, request: Request, endpoint: str, build: Any) -> Response:
        """Gate, then build the body (a callable returning a Response), then misbehave."""
        early, headers = self.gate(request, endpoint)
        if early is not None:
            self._record(request, early.status_code)
            return early
        path = request.url.path
        slow = malformed = False
        with self._lock:
            if self._faulty(path) and self.faults.slow_next > 0:
                self.faults.slow_next -= 1
                slow = True
            if self._faulty(path) and self.faults.malformed_next > 0:
                self.faults.malformed_next -= 1
                malformed = True
        if slow:
            await asyncio.sleep(self.faults.slow_seconds)
        try:
            response: Response = build()
        except BadRequest as exc:
            response = _error(400, str(exc), "VALIDATION_ERROR")
        if malformed and response.status_code == 200:
            response = Response(b'{"results": [{"id": "1", "propert', media_type="application/json")
        response.headers.update(headers)
        self._record(request, response.status_code)
        return response

    def _record(self, request: Request, status: int) -> None:
        with self._lock:
            self.stats.by_status[status] += 1
            self.stats.log.append((time.monotonic(), request.url.path, status))


def _properties(request: Request) -> list[str] | None:
    values = request.query_params.getlist("properties")
    names = [p.strip() for v in values for p in v.split(",") if p.strip()]
    return names or None


def _limit(request: Request, default: int, maximum: int) -> int:
    raw = request.query_params.get("limit")
    try:
        limit = int(raw) if raw is not None else default
    except ValueError:
        raise BadRequest("limit must be a number") from None
    if not 0 < limit <= maximum:
        raise BadRequest(f"limit must be between 1 and {maximum}")
    return limit


def create_app(sim: Simulator) -> FastAPI:
    """The FastAPI app serving ``sim`` (see the module doc)."""
    from connectors.hubspot.simroutes import add_routes

    app = FastAPI(title="HubSpot simulator", docs_url=None, redoc_url=None, openapi_url=None)
    add_routes(app, sim)

    @app.post("/_sim/faults")
    async def set_faults(request: Request) -> Response:
        body = await request.json()
        known = {f.name for f in fields(Faults)}
        with sim._lock:
            for key, value in dict(body).items():
                if key in known:
                    setattr(sim.faults, key, value)
        return _json(asdict(sim.faults))

    @app.post("/_sim/limits")
    async def set_limits(request: Request) -> Response:
        body = await request.json()
        known = {f.name for f in fields(Limits)}
        with sim._lock:
            for key, value in dict(body).items():
                if key in known:
                    setattr(sim.limits, key, value)
        return _json(asdict(sim.limits))

    @app.post("/_sim/touch")
    async def touch(request: Request) -> Response:
        body = await request.json()
        sim.touch(str(body["objectType"]), [int(i) for i in body["ids"]], body.get("atMs"))
        return _json({"touched": len(body["ids"])})

    @app.get("/_sim/stats")
    async def stats() -> Response:
        s = sim.stats
        return _json(
            {
                "requests": s.requests,
                "byEndpoint": dict(s.by_endpoint),
                "byStatus": {str(k): v for k, v in s.by_status.items()},
                "rateLimited": dict(s.rate_limited),
            }
        )

    return app


def paging(after: str | None, link: str) -> dict[str, Any]:
    return {"paging": {"next": {"after": after, "link": f"{link}?after={after}"}}} if after else {}


def find_position(ids: list[int], after: str | None) -> int:
    if after is None:
        return 0
    try:
        return bisect_left(ids, int(after))
    except ValueError:
        raise BadRequest("after is not a valid paging token") from None


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="A local HubSpot API for tests and demos")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8990)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--companies", type=int, default=40)
    parser.add_argument("--campaigns", type=int, default=6)
    parser.add_argument("--events-per-contact", type=float, default=2.0)
    parser.add_argument("--token", default="pat-na1-simulator-token")
    parser.add_argument("--no-limits", action="store_true", help="no rate limits (benchmarks)")
    args = parser.parse_args(argv)
    account = generate(
        args.seed,
        contacts=args.contacts,
        companies=args.companies,
        campaigns=args.campaigns,
        events_per_contact=args.events_per_contact,
    )
    limits = Limits(None, 10_000, None, None) if args.no_limits else Limits()
    sim = Simulator(account, token=args.token, limits=limits)
    uvicorn.run(
        create_app(sim),
        host=args.host,
        port=args.port,
        log_level="warning",
        ws="none",
        access_log=False,
    )


__all__ = ["Faults", "Limits", "Simulator", "create_app", "iso", "main"]

if __name__ == "__main__":
    main()
