"""A BambooHR API simulator: a real HTTP server (FastAPI) that answers as BambooHR documents.

What it reproduces (documentation.bamboohr.com: Technical Overview, Get Changed Employee IDs,
Get Employee, Request Custom Report, Planned Changes to the API):

- Both documented URL forms: ``/api/gateway.php/{companyDomain}/v1/...`` (the gateway form
  of the older docs and of most integrations) and ``/api/v1/...`` (the form of the current
  docs, where the company is the host name ``{companyDomain}.bamboohr.com``; here the one
  simulated company). An unknown company domain answers 404.
- HTTP Basic auth with the API key as the user name and any password. No or an unknown key:
  401; a key whose user lost access: 403. Error details go in the ``X-BambooHR-Error-Message``
  header with an empty body.
- JSON only when the request's ``Accept`` asks for it; XML otherwise (BambooHR's default).
- ``GET v1/employees/changed?since=<ISO 8601>[&type=inserted|updated|deleted]``: ``latest``
  and an ``employees`` map of id -> ``{id, action, lastChanged}``, every employee whose last
  change is at or after ``since`` (newest first); no paging. ``since`` in one of the five
  documented forms (a ``+`` offset must be sent as ``%2B``), else 400.
- ``GET v1/employees/{id}?fields=a,b&onlyCurrent=``: ``id`` plus the requested fields; unknown
  fields are silently left out; an unknown or deleted id is 404.
- ``POST v1/reports/custom?format=JSON``: ``{title, fields, employees}`` for the requested
  fields, filtered on ``lastChanged`` (the documented bulk read).
- Rate limiting: more than ``rate_limit`` requests per ``rate_window`` seconds per key answer
  429 (since 2026-09-16; 503 before: ``rate_status``) with ``Retry-After`` in seconds.

Misbehaviour, switchable per test through the constructor (``Faults``) or the admin endpoints
under ``/_sim`` (no auth; the simulator binds to 127.0.0.1): the next N answers with given
statuses (5xx bursts), a server that stays down, answers slower than a client's timeout, a
200 whose body is truncated JSON, answers carrying fields nobody asked for (``overshare``),
revoked keys, and changes to the data between reads (update, insert, delete). ``/_sim/stats``
counts requests by route and status.

Run it: ``python -m connectors.bamboohr.simulator --port 8089 --employees 500`` (API key from
``BAMBOOHR_SIM_API_KEY``, default ``sim-key``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree as ET

import uvicorn
from fastapi import FastAPI, Request, Response

from connectors.bamboohr.simdata import SENSITIVE_FIELDS, Company, generate_company, iso_seconds

__all__ = ["Faults", "Simulator", "SimulatorServer", "parse_since"]

ERROR_HEADER = "X-BambooHR-Error-Message"
_SINCE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(Z|[+-]\d{2}:?\d{2})$")
_TYPES = ("inserted", "updated", "deleted")


def parse_since(text: str) -> datetime | None:
    """One of the five documented ``since`` forms as an aware datetime, else None."""
    match = _SINCE.match(text)
    if match is None:
        return None
    zone = match.group(7)
    if zone != "Z" and ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    try:
        return datetime.fromisoformat(text[:19] + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None


@dataclass
class Faults:
    """How the simulator misbehaves. Counts are consumed one per API request."""

    statuses: list[int] = field(default_factory=list)  # answer these next (one each)
    retry_after: float | None = None  # Retry-After on those answers
    down: int | None = None  # answer this status to every API request until cleared
    down_after: int | None = None  # after this many more API requests, go ``down`` (503)
    slow: int = 0  # the next N answers are late by ``delay`` seconds
    delay: float = 0.0
    malformed: int = 0  # the next N 200 answers carry truncated JSON
    overshare: bool = False  # employee answers carry sensitive fields nobody asked for
    rate_limit: int | None = None  # requests per window per key (None: unlimited)
    rate_window: float = 1.0
    rate_status: int = 429  # 429 since 2026-09-16; 503 before

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault(s): {', '.join(unknown)}")
        for name, value in changes.items():
            setattr(self, name, value)


@dataclass
class _Window:
    started: float
    count: int = 0


class Simulator:
    """One simulated company behind the BambooHR API. ``app()`` builds the FastAPI app."""

    def __init__(
        self,
        company: Company | None = None,
        *,
        api_keys: dict[str, str] | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.company = company or generate_company()
        # key -> "ok" | "revoked" (401) | "no-access" (403)
        self.api_keys = dict(api_keys or {"sim-key": "ok"})
        self._faults = faults or Faults()
        self.stats: Counter[str] = Counter()  # "route status" -> answers
        self.requested_fields: Counter[str] = Counter()  # field name -> times asked for
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()

    # -- admin ----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        """New faults; rate-limit windows start again."""
        with self._lock:
            self._faults = value
            self._windows.clear()

    def requests(self, route: str | None = None, status: int | None = None) -> int:
        """API answers so far, optionally of one route ("changed", "employee", "report",
        "auth") and/or one status."""
        total = 0
        for key, n in self.stats.items():
            r, s = key.split(" ")
            if (route is None or r == route) and (status is None or int(s) == status):
                total += n
        return total

    # -- the API --------------------------------------------------------------------------

    def _answer(
        self, route: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        with self._lock:
            self.stats[f"{route} {status}"] += 1
        media = "application/json" if body[:1] in (b"{", b"[") else "application/xml"
        return Response(body, status_code=status, headers=headers, media_type=media)

    def _error(self, route: str, status: int, message: str, **headers: str) -> Response:
        return self._answer(route, status, b"", {ERROR_HEADER: message, **headers})

    def _gate(self, route: str, request: Request, company: str | None) -> Response | None:
        """Faults, company, auth and rate limit; None when the request may go on."""
        faults = self.faults
        with self._lock:
            if faults.down_after is not None:
                faults.down_after -= 1
                if faults.down_after < 0:
                    faults.down, faults.down_after = faults.down or 503, None
        if faults.down is not None:
            return self._error(route, faults.down, "Service temporarily unavailable")
        with self._lock:
            status = faults.statuses.pop(0) if faults.statuses else None
        if status is not None:
            extra = {"Retry-After": f"{faults.retry_after:g}"} if faults.retry_after else {}
            return self._error(route, status, "Simulated failure", **extra)
        if company is not None and company != self.company.domain:
            return self._error(route, 404, "Company not found")
        key = _api_key(request.headers.get("authorization"))
        state = self.api_keys.get(key or "")
        if state is None or state == "revoked":
            return self._error("auth", 401, "Invalid API key")
        if state != "ok":
            return self._error("auth", 403, "Insufficient permissions")
        return self._throttle(route, key or "")

    def _throttle(self, route: str, key: str) -> Response | None:
        limit = self.faults.rate_limit
        if limit is None:
            return None
        now = time.monotonic()
        window = self.faults.rate_window
        with self._lock:
            current = self._windows.get(key)
            if current is None or now - current.started >= window:
                current = self._windows[key] = _Window(now)
            current.count += 1
            over = current.count > limit
            wait = max(1, math.ceil(window - (now - current.started)))
        if over:
            return self._error(
                route, self.faults.rate_status, "Rate limit exceeded", **{"Retry-After": str(wait)}
            )
        return None

    async def _late(self) -> None:
        with self._lock:
            late = self.faults.slow > 0
            if late:
                self.faults.slow -= 1
        if late:
            await asyncio.sleep(self.faults.delay)

    def _json(self, route: str, payload: Any) -> Response:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        with self._lock:
            broken = self.faults.malformed > 0
            if broken:
                self.faults.malformed -= 1
        if broken:
            body = body[: max(1, len(body) // 2)]
        return self._answer(route, 200, body)

    async def changed(self, request: Request, company: str | None) -> Response:
        refused = self._gate("changed", request, company)
        if refused is not None:
            return refused
        since_text = request.query_params.get("since")
        since = parse_since(since_text) if since_text else None
        if since is None:
            return self._error("changed", 400, "Invalid or missing 'since' parameter")
        kind = request.query_params.get("type")
        if kind is not None and kind.lower() not in _TYPES:
            return self._error("changed", 400, "Invalid 'type' parameter")
        await self._late()
        entries = sorted(
            (
                (change.last_changed, employee_id, change.action)
                for employee_id, change in self.company.changes.items()
                if change.last_changed >= since
                and (kind is None or change.action.lower() == kind.lower())
            ),
            reverse=True,  # newest first
        )
        latest = iso_seconds(entries[0][0]) if entries else iso_seconds(since)
        if not _wants_json(request):
            root = ET.Element("employees", latest=latest)
            for when, employee_id, action in entries:
                ET.SubElement(
                    root, "employee", id=employee_id, action=action, lastChanged=iso_seconds(when)
                )
            return self._answer("changed", 200, ET.tostring(root, xml_declaration=True))
        employees = {
            employee_id: {"id": employee_id, "action": action, "lastChanged": iso_seconds(when)}
            for when, employee_id, action in entries
        }
        return self._json("changed", {"latest": latest, "employees": employees})

    async def employee(self, request: Request, company: str | None, employee_id: str) -> Response:
        refused = self._gate("employee", request, company)
        if refused is not None:
            return refused
        await self._late()
        wanted = [f for f in (request.query_params.get("fields") or "").split(",") if f]
        self.requested_fields.update(wanted)
        if employee_id == "0":  # the key's own employee: an integration user has none
            return self._json("employee", {"id": "0"})
        record = self.company.employees.get(employee_id)
        if record is None:
            return self._error("employee", 404, "Employee not found")
        out: dict[str, Any] = {"id": employee_id}
        for name in wanted:
            if name in record:
                out[name] = record[name] if record[name] != "" else None
        if self.faults.overshare:
            out.update({name: record[name] for name in SENSITIVE_FIELDS if name in record})
        if not _wants_json(request):
            root = ET.Element("employee", id=employee_id)
            for name, value in out.items():
                if name != "id":
                    ET.SubElement(root, "field", id=name).text = "" if value is None else value
            return self._answer("employee", 200, ET.tostring(root, xml_declaration=True))
        return self._json("employee", out)

    async def report(self, request: Request, company: str | None) -> Response:
        refused = self._gate("report", request, company)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.body())
            wanted = [str(f) for f in body["fields"]]
        except (ValueError, KeyError, TypeError):
            return self._error("report", 400, "Invalid report request")
        self.requested_fields.update(wanted)
        if (request.query_params.get("format") or "").upper() != "JSON":
            return self._error("report", 400, "Only format=JSON is simulated")
        await self._late()
        since: datetime | None = None
        changed_filter = (body.get("filters") or {}).get("lastChanged") or {}
        if changed_filter.get("value"):
            since = parse_since(str(changed_filter["value"]))
            if since is None:
                return self._error("report", 400, "Invalid lastChanged filter")
        rows = []
        for employee_id, record in self.company.employees.items():
            change = self.company.changes[employee_id]
            if since is not None and change.last_changed < since:
                continue
            row: dict[str, Any] = {"id": employee_id}
            for name in wanted:
                if name == "lastChanged":
                    row[name] = iso_seconds(change.last_changed)
                elif name in record:
                    row[name] = record[name] if record[name] != "" else None
            if self.faults.overshare:
                row.update({n: record[n] for n in SENSITIVE_FIELDS if n in record})
            rows.append(row)
        known = [f for f in wanted if f == "lastChanged" or any(f in r for r in rows)]
        return self._json(
            "report",
            {
                "title": str(body.get("title") or "Report"),
                "fields": [{"id": f, "type": "text", "name": f} for f in known],
                "employees": rows,
            },
        )

    # -- the app --------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI(title="BambooHR simulator", docs_url=None, redoc_url=None, openapi_url=None)
        sim = self

        for prefix in ("/api/gateway.php/{company}/v1", "/api/v1"):

            @app.get(prefix + "/employees/changed")
            async def changed(request: Request) -> Response:
                return await sim.changed(request, request.path_params.get("company"))

            @app.get(prefix + "/employees/{employee_id}")
            async def employee(request: Request, employee_id: str) -> Response:
                return await sim.employee(request, request.path_params.get("company"), employee_id)

            @app.post(prefix + "/reports/custom")
            async def report(request: Request) -> Response:
                return await sim.report(request, request.path_params.get("company"))

        @app.get("/_sim/stats")
        async def stats() -> dict[str, int]:
            return dict(sim.stats)

        @app.post("/_sim/faults")
        async def set_faults(request: Request) -> Response:
            try:
                sim.faults.update(dict(await request.json()))
            except (ValueError, TypeError) as exc:
                return Response(str(exc), status_code=400)
            return Response(status_code=204)

        @app.delete("/_sim/faults")
        async def clear_faults() -> Response:
            sim.faults = Faults()
            return Response(status_code=204)

        @app.post("/_sim/employees")
        async def change_employee(request: Request) -> dict[str, str]:
            body = dict(await request.json())
            values = dict(body.get("values") or {})
            if body.get("id"):
                sim.company.update(str(body["id"]), values)
                return {"id": str(body["id"])}
            return {"id": sim.company.insert(values)}

        @app.delete("/_sim/employees/{employee_id}")
        async def delete_employee(employee_id: str) -> Response:
            sim.company.delete(employee_id)
            return Response(status_code=204)

        @app.put("/_sim/keys/{key}")
        async def set_key(key: str, request: Request) -> Response:
            sim.api_keys[key] = str(dict(await request.json())["status"])
            return Response(status_code=204)

        return app


def _wants_json(request: Request) -> bool:
    return "json" in (request.headers.get("accept") or "").lower()


def _api_key(header: str | None) -> str | None:
    """The user name of a Basic ``Authorization`` header (BambooHR's API key)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:
        return None
    return decoded.split(":", 1)[0] or None


class SimulatorServer:
    """The simulator on a real uvicorn server in a background thread (tests, bench, demo)."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self.host = host
        self.port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def gateway_url(self) -> str:
        """Base URL in the gateway form: ``…/api/gateway.php/{companyDomain}/``."""
        return f"{self.url}/api/gateway.php/{self.simulator.company.domain}/"

    def start(self) -> SimulatorServer:
        if not self.port:
            from hub.broker import free_port

            self.port = free_port()
        config = uvicorn.Config(
            self.simulator.app(),
            host=self.host,
            port=self.port,
            log_level="warning",
            ws="none",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bamboohr-sim", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the BambooHR simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)

    @contextmanager
    def running(self) -> Iterator[SimulatorServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="BambooHR API simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--employees", type=int, default=500)
    parser.add_argument("--company", default="acme")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per second")
    args = parser.parse_args(argv)
    company = generate_company(args.seed, args.employees, domain=args.company)
    key = os.environ.get("BAMBOOHR_SIM_API_KEY", "sim-key")
    faults = Faults(rate_limit=args.rate_limit)
    sim = Simulator(company, api_keys={key: "ok"}, faults=faults)
    print(
        f"BambooHR simulator for {args.company!r} ({len(company.employees)} employees) on "
        f"http://{args.host}:{args.port}/api/gateway.php/{args.company}/ "
        f"(started {datetime.now(UTC).isoformat(timespec='seconds')})",
        flush=True,
    )
    uvicorn.run(sim.app(), host=args.host, port=args.port, log_level="warning", ws="none")


if __name__ == "__main__":
    main()
