"""HubSpot's API as the connector reads it, on ``hub.sdk.http.HttpClient``.

- Auth: a private app's access token as ``Authorization: Bearer``.
- Paging: CRM lists and campaigns by ``paging.next.after``; search by ``after`` (an offset,
  10,000 results at most per query); e-mail events by ``offset`` while ``hasMore``.
- Rate limits: ``HttpClient`` honours ``Retry-After`` and HubSpot's
  ``X-HubSpot-RateLimit-Remaining``/``-Interval-Milliseconds``. A 429's JSON body says which
  limit was hit (``policyName``); ``HubSpotAuth`` turns it into the wait it implies, as a
  ``Retry-After`` on the answer: the rolling 10-second window, one second for the search
  endpoints' per-second limit (their answers carry no rate-limit headers), and the next
  midnight of the account's time zone for the daily limit (longer than any retry here: the
  read stops with a ``RetriableError`` whose ``retry_after`` the worker waits out).
"""

from __future__ import annotations

import json
import math
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from prometheus_client import Counter
from pydantic import SecretStr

from hub.errors import FatalError
from hub.sdk.http import HttpClient, RetryPolicy

RATE_LIMITED = Counter(
    "hub_hubspot_rate_limited_total", "HubSpot 429 answers by policy", ["connector", "policy"]
)

_INTERVAL_HEADER = "x-hubspot-ratelimit-interval-milliseconds"


def seconds_until_midnight(now: datetime, tz: ZoneInfo) -> float:
    local = now.astimezone(tz)
    midnight = (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1.0, (midnight - local).total_seconds())


class HubSpotAuth(httpx.Auth):
    """Bearer auth, and the meaning of HubSpot's 429 bodies as a ``Retry-After``."""

    requires_response_body = True

    def __init__(self, token: SecretStr, *, connector: str, timezone: ZoneInfo) -> None:
        self._token = token
        self._connector = connector
        self._tz = timezone

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        response = yield request
        if response.status_code == 429 and "retry-after" not in response.headers:
            wait = self.wait_for(response)
            if wait is not None:
                response.headers["Retry-After"] = str(math.ceil(wait))

    def wait_for(self, response: httpx.Response) -> float | None:
        try:
            body = json.loads(response.content)
        except ValueError:
            body = {}
        policy = str(body.get("policyName") or "") if isinstance(body, dict) else ""
        known = policy in ("DAILY", "SECONDLY", "TEN_SECONDLY_ROLLING")
        RATE_LIMITED.labels(self._connector, policy if known else "other").inc()
        if policy == "DAILY":
            return seconds_until_midnight(datetime.now(self._tz), self._tz)
        if policy == "SECONDLY":
            return 1.0
        interval = response.headers.get(_INTERVAL_HEADER)
        if interval is not None:
            try:
                return float(interval) / 1000.0
            except ValueError:
                return None
        return None


@dataclass(frozen=True, slots=True)
class Page:
    results: list[dict[str, Any]]
    after: str | None  # the next page's token; None: the last page
    total: int | None = None  # search and campaigns only


@dataclass(frozen=True, slots=True)
class EventsPage:
    events: list[dict[str, Any]]
    offset: str | None  # None: no more


class HubSpotClient:
    """The endpoints the connector reads (one client per connector; not thread-safe)."""

    def __init__(
        self,
        base_url: str,
        token: SecretStr,
        *,
        name: str,
        policy: RetryPolicy,
        timezone: ZoneInfo,
    ) -> None:
        self.name = name
        self.http = HttpClient(
            base_url,
            name=f"hubspot:{name}",
            auth=HubSpotAuth(token, connector=name, timezone=timezone),
            headers={"Accept": "application/json"},
            policy=policy,
        )

    def close(self) -> None:
        self.http.close()

    # -- CRM objects ---------------------------------------------------------------------------

    def list_page(
        self,
        object_type: str,
        *,
        properties: Sequence[str],
        limit: int,
        after: str | None = None,
        archived: bool = False,
    ) -> Page:
        params: dict[str, Any] = {"limit": limit, "properties": ",".join(properties)}
        if after:
            params["after"] = after
        if archived:
            params["archived"] = "true"
        body = self.http.get_json(f"/crm/v3/objects/{object_type}", params)
        return Page(_results(body, self._where("list", object_type)), _next_after(body))

    def search_page(
        self,
        object_type: str,
        *,
        filters: Sequence[Mapping[str, Any]],
        sort: str,
        properties: Sequence[str],
        limit: int,
        after: str | None = None,
    ) -> Page:
        payload: dict[str, Any] = {
            "filterGroups": [{"filters": list(filters)}],
            "sorts": [{"propertyName": sort, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": limit,
        }
        if after:
            payload["after"] = after
        body = self.http.request_json("POST", f"/crm/v3/objects/{object_type}/search", json=payload)
        where = self._where("search", object_type)
        total = body.get("total") if isinstance(body, dict) else None
        if not isinstance(total, int):
            raise FatalError(f"{where}: the answer has no total")
        return Page(_results(body, where), _next_after(body), total)

    def company_associations(self, contact_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        """contact id -> its company associations (``toObjectId``, ``associationTypes``),
        through the v4 batch read (ids without any come back as errors: left out)."""
        if not contact_ids:
            return {}
        body = self.http.request_json(
            "POST",
            "/crm/v4/associations/contacts/companies/batch/read",
            json={"inputs": [{"id": i} for i in contact_ids]},
        )
        where = self._where("associations", "contacts")
        out: dict[str, list[dict[str, Any]]] = {}
        for item in _results(body, where):
            source = item.get("from")
            targets = item.get("to")
            if not isinstance(source, dict) or not isinstance(targets, list):
                raise FatalError(f"{where}: an association result has no from/to")
            out.setdefault(str(source.get("id")), []).extend(targets)
        return out

    # -- marketing ------------------------------------------------------------------------------

    def campaigns_page(self, *, limit: int, after: str | None, properties: Sequence[str]) -> Page:
        params: dict[str, Any] = {"limit": limit, "sort": "updatedAt"}
        if properties:
            params["properties"] = ",".join(properties)
        if after:
            params["after"] = after
        body = self.http.get_json("/marketing/v3/campaigns", params)
        return Page(_results(body, self._where("campaigns", "")), _next_after(body))

    def email_events_page(
        self, *, start_ms: int, end_ms: int, limit: int, offset: str | None
    ) -> EventsPage:
        params: dict[str, Any] = {
            "startTimestamp": start_ms,
            "endTimestamp": end_ms,
            "limit": limit,
        }
        if offset:
            params["offset"] = offset
        body = self.http.get_json("/email/public/v1/events", params)
        where = self._where("email events", "")
        events = body.get("events") if isinstance(body, dict) else None
        if not isinstance(events, list):
            raise FatalError(f"{where}: the answer has no events list")
        more = bool(body.get("hasMore"))
        token = body.get("offset")
        if more and not isinstance(token, str):
            raise FatalError(f"{where}: hasMore without an offset")
        return EventsPage(list(events), token if more else None)  # bad ones: quarantined

    def _where(self, what: str, object_type: str) -> str:
        return f"hubspot:{self.name}: {what} {object_type}".rstrip()


def _results(body: Any, where: str) -> list[dict[str, Any]]:
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        raise FatalError(f"{where}: the answer has no results list")
    return results


def _next_after(body: dict[str, Any]) -> str | None:
    paging = body.get("paging")
    if not isinstance(paging, dict):
        return None
    nxt = paging.get("next")
    if not isinstance(nxt, dict):
        return None
    after = nxt.get("after")
    return str(after) if after not in (None, "") else None


__all__ = ["EventsPage", "HubSpotAuth", "HubSpotClient", "Page", "seconds_until_midnight"]
