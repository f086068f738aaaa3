"""BambooHR's API on the hub's ``HttpClient``: change tracking, employee fields, custom reports.

- Auth: HTTP Basic with the API key as the user name and any password (``x``).
- ``Accept: application/json`` on every request (BambooHR answers XML otherwise).
- ``since`` is sent in the documented UTC form ``yyyy-mm-ddThh:mm:ssZ`` (no ``+`` to encode).
- Rate limits: BambooHR publishes no quota and no remaining-budget headers; a limited request
  answers 429 (503 before 2026-09-16) with ``Retry-After``, which ``HttpClient`` honours
  (retried after the wait when short, else ``RetriableError(retry_after=…)`` to the worker).
- 401/403: ``FatalError`` (key revoked or its user lost access); 404 on one employee: the
  employee was deleted between the change list and the fetch (``EmployeeGone``).

Messages never carry the key, a query string or a body.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hub.errors import FatalError
from hub.sdk.http import HttpClient, HttpStatusError, RetryPolicy

__all__ = [
    "ACTIONS",
    "BambooHRClient",
    "ChangedEmployee",
    "EmployeeGone",
    "format_since",
    "parse_timestamp",
]

ACTIONS = frozenset({"Inserted", "Updated", "Deleted"})
_ZERO = timedelta(0)


class EmployeeGone(Exception):
    """The employee no longer exists (404): deleted after it was listed as changed."""


def format_since(when: datetime) -> str:
    """``2024-01-02T03:04:05Z``: the documented UTC form of ``since``."""
    if when.utcoffset() != _ZERO:
        when = when.astimezone(UTC)
    return when.isoformat()[:19] + "Z"  # isoformat: ~5x faster than strftime


def parse_timestamp(value: Any) -> datetime | None:
    """A BambooHR timestamp (``…+00:00``, ``…Z``, ``…+0000``) as aware UTC, else None."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) == 24 and text[19] in "+-" and text[22] != ":":
        text = f"{text[:22]}:{text[22:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class ChangedEmployee:
    """One entry of ``employees/changed``. ``problem`` names what is wrong with it, if any
    (the entry then goes to quarantine; ``last_changed`` may be None)."""

    employee_id: str
    action: str
    last_changed: datetime | None
    problem: str | None = None

    @property
    def sort_key(self) -> tuple[datetime, int, str]:
        when = self.last_changed or datetime.min.replace(tzinfo=UTC)
        number = int(self.employee_id) if self.employee_id.isdigit() else -1
        return (when, number, self.employee_id)


def _entries(body: Any) -> list[ChangedEmployee]:
    if not isinstance(body, Mapping):
        raise FatalError("bamboohr: employees/changed answered something other than an object")
    raw = body.get("employees")
    if raw in (None, [], {}):  # nothing changed (an empty PHP array serialises as [])
        return []
    if not isinstance(raw, Mapping):
        raise FatalError("bamboohr: employees/changed has no 'employees' map")
    out = []
    for key, item in raw.items():
        entry = item if isinstance(item, Mapping) else {}
        employee_id = str(entry.get("id") or key)
        action = str(entry.get("action") or "")
        when = parse_timestamp(entry.get("lastChanged"))
        problem = None
        if action not in ACTIONS:
            problem = "bamboohr.action"
        elif when is None:
            problem = "bamboohr.last_changed"
        elif not employee_id.isdigit():
            problem = "bamboohr.id"
        out.append(ChangedEmployee(employee_id, action, when, problem))
    return out


class BambooHRClient:
    """The three calls the connector makes. Thread-safe: one ``HttpClient`` per thread."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        name: str = "bamboohr",
        policy: RetryPolicy | None = None,
        only_current: bool = True,
    ) -> None:
        self._base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._auth = (api_key, "x")
        self._name = name
        self._policy = policy
        self._only_current = "true" if only_current else "false"
        self._local = threading.local()
        self._clients: list[HttpClient] = []
        self._clients_lock = threading.Lock()
        self._closed_requests = 0  # made by clients closed since

    @property
    def http(self) -> HttpClient:
        client: HttpClient | None = getattr(self._local, "client", None)
        if client is None:
            client = HttpClient(
                self._base_url,
                name=self._name,
                auth=self._auth,
                headers={"Accept": "application/json"},
                policy=self._policy,
            )
            self._local.client = client
            with self._clients_lock:
                self._clients.append(client)
        return client

    @property
    def requests(self) -> int:
        """Requests made so far by every thread, retries included."""
        with self._clients_lock:
            return self._closed_requests + sum(c.requests for c in self._clients)

    def close(self) -> None:
        with self._clients_lock:
            for client in self._clients:
                self._closed_requests += client.requests
                client.close()
            self._clients.clear()
        self._local = threading.local()

    def changed(self, since: datetime, kind: str | None = None) -> list[ChangedEmployee]:
        """Employees changed at or after ``since`` (``kind``: inserted, updated, deleted)."""
        params = {"since": format_since(since)}
        if kind is not None:
            params["type"] = kind
        return _entries(self.http.get_json("v1/employees/changed", params=params))

    def employee(self, employee_id: str, fields: Iterable[str]) -> dict[str, Any]:
        """The employee's ``id`` and the requested fields (BambooHR drops unknown ones)."""
        params = {"fields": ",".join(fields), "onlyCurrent": self._only_current}
        try:
            body = self.http.get_json(f"v1/employees/{employee_id}", params=params)
        except HttpStatusError as exc:
            if exc.status == 404:
                raise EmployeeGone(employee_id) from None
            raise
        if not isinstance(body, dict):
            raise FatalError("bamboohr: an employee answer is not a JSON object")
        return body

    def report(self, fields: Iterable[str], since: datetime) -> list[dict[str, Any]]:
        """Every employee changed at or after ``since`` with the requested fields, in one
        custom report (the documented bulk read)."""
        payload = {
            "title": "crm-hub employees",
            "fields": list(fields),
            "filters": {"lastChanged": {"includeNull": "no", "value": format_since(since)}},
        }
        body = self.http.request_json(
            "POST",
            "v1/reports/custom",
            params={"format": "JSON", "onlyCurrent": self._only_current},
            json=payload,
        )
        rows = body.get("employees") if isinstance(body, Mapping) else None
        if not isinstance(rows, list):
            raise FatalError("bamboohr: a custom report answer has no 'employees' list")
        return [r for r in rows if isinstance(r, dict)]
