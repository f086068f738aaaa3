"""BambooHR employees through change tracking, minimised by policy, deletions as erasures.

Streams (one source partition each, ``{"stream": name}``):

- ``employees`` (``crm.raw.hr.employees.v1``, ``hr/EmployeeChanged``): every Inserted or
  Updated entry of ``GET v1/employees/changed?since=``, with the employee's fields read by
  ``GET v1/employees/{id}?fields=…`` (``fetch.mode=employee``, ``concurrency`` at a time) or
  by one custom report filtered on ``lastChanged`` (``fetch.mode=report``). Only the fields
  ``policies/hr_minimisation.yaml`` allows are asked for, and anything else an answer
  carries is dropped and counted by field name (``hub_hr_fields_dropped_total``).
- ``employee_erasures`` (``crm.raw.hr.employee-erasures.v1``, ``hr/EmployeeErased``): every
  Deleted entry (``type=deleted``) as an erasure event: the id and when, nothing personal.

Cursor (per stream): ``{"since": <lastChanged of the last entry handled>, "seen": [ids handled
at exactly that second]}``. A read asks for ``since`` minus one second (so it works whether
the server's ``since`` is inclusive or not), sorts the entries by (lastChanged, id), skips
those before ``since`` and those at ``since`` already ``seen``, and hands a cursor with every
entry: a resume after any record, even in the middle of a second shared by a bulk import,
neither skips nor repeats one. Event ids derive from ``<stream>:<id>:<lastChanged>``, so a
change read again is the same event.

An employee listed as changed but gone when its fields are read (404) is skipped with a
checkpoint: its deletion is a later ``Deleted`` entry. A value that does not fit the schema
(a date that is not a date) goes to quarantine with only the allowed fields and a reason
naming the field, never the value.
"""

from __future__ import annotations

import collections
import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from connectors.bamboohr.client import (
    BambooHRClient,
    ChangedEmployee,
    EmployeeGone,
    format_since,
    parse_timestamp,
)
from connectors.bamboohr.policy import DEFAULT_POLICY, Minimiser, load_minimisation_policy
from connectors.bamboohr.records import (
    EMPLOYEE_EVENT_TYPE,
    ERASURE_EVENT_TYPE,
    SCHEMAS_DIR,
    shape,
)
from hub.errors import ConfigError
from hub.quarantine import QuarantineReason, json_payload
from hub.sdk.http import RetryPolicy
from hub.sdk.streams import Cursor, SourceConnectorBase, SourceRecord, Stream

log = logging.getLogger(__name__)

EMPLOYEES = "employees"
ERASURES = "employee_erasures"
SOURCE_SYSTEM = "bamboohr"
# BambooHR has recorded last-change times since 2011-06-05; nothing older is reported.
TRACKING_START = datetime(2011, 6, 5, tzinfo=UTC)

FIELDS_DROPPED = Counter(
    "hub_hr_fields_dropped_total",
    "Source fields an HR connector dropped because the minimisation policy does not allow them",
    ["connector", "field"],
)
EMPLOYEES_GONE = Counter(
    "hub_hr_employees_gone_total",
    "Employees listed as changed but deleted before their fields were read",
    ["connector"],
)

_GONE = object()  # an employee deleted between the change list and the fetch


class BambooHRConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(default="hr-bamboohr", pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    company_domain: str = Field(
        pattern=r"^[a-z0-9][a-z0-9-]*$",
        description="The company's BambooHR subdomain (https://<this>.bamboohr.com)",
    )
    api_key: SecretStr = Field(description="BambooHR API key (a ${env:…} or ${file:…} reference)")
    base_url: str = Field(
        default="https://{company_domain}.bamboohr.com/api/",
        description="API root; {company_domain} is replaced. The older gateway form "
        "https://api.bamboohr.com/api/gateway.php/{company_domain}/ works too",
    )
    department: str = "hr"
    topic: str = "crm.raw.hr.employees.v1"
    erasures_topic: str = "crm.raw.hr.employee-erasures.v1"
    policy: Path = Field(
        default=DEFAULT_POLICY, description="Data minimisation policy (hr_minimisation.yaml)"
    )
    start: datetime = Field(
        default=TRACKING_START,
        description="First read: changes at or after this time (ISO-8601 with a zone)",
    )
    fetch_mode: Literal["employee", "report"] = Field(
        default="employee",
        description="employee: GET v1/employees/{id} per change; report: one custom report",
    )
    concurrency: int = Field(default=1, ge=1, le=16, description="Employee reads in flight")
    only_current: bool = Field(
        default=True, description="Current values only (false: future-dated history rows too)"
    )
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    attempts: int = Field(default=5, ge=1, description="Tries per request, the first included")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First retry backoff")
    max_wait_seconds: float = Field(
        default=30.0, ge=0, description="Longer Retry-After waits go back to the worker"
    )

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a time zone (e.g. 2024-01-01T00:00:00Z)")
        return value.astimezone(UTC)

    def url(self) -> str:
        return self.base_url.replace("{company_domain}", self.company_domain)


class BambooHRConnector(SourceConnectorBase):
    """Plugin ``bamboohr`` (entry point group ``crm_hub.connectors``)."""

    Config = BambooHRConfig
    version = "0.1.0"

    def __init__(self, config: BambooHRConfig, *, schemas_dir: Path = SCHEMAS_DIR) -> None:
        self.config = config
        self.name = config.name
        self.department = config.department
        self.policy = load_minimisation_policy(config.policy, schemas_dir=schemas_dir)
        for stream_name in (EMPLOYEES, ERASURES):
            rules = self.policy.stream(stream_name)
            if rules.fields.get("employee_id") is None or not rules.from_bamboohr:
                raise ConfigError(
                    f"{config.policy}: streams.{stream_name}.fields.employee_id: must be "
                    "allowed and read from bamboohr: id (it is the record's key)"
                )
        self.minimisers = {s: Minimiser(self.policy, s) for s in (EMPLOYEES, ERASURES)}
        self.client = BambooHRClient(
            config.url(),
            config.api_key.get_secret_value(),
            name=f"bamboohr:{config.name}",
            only_current=config.only_current,
            policy=RetryPolicy(
                read_timeout=config.read_timeout_seconds,
                attempts=config.attempts,
                backoff_initial=config.backoff_seconds,
                max_wait=config.max_wait_seconds,
            ),
        )
        self.gone = 0  # employees deleted between the change list and the fetch
        self._streams = (
            Stream(
                name=EMPLOYEES,
                topic=config.topic,
                event_type=EMPLOYEE_EVENT_TYPE,
                schema=self.policy.stream(EMPLOYEES).schema_name,
                primary_key=("employee_id",),
                replication_key="last_changed",
            ),
            Stream(
                name=ERASURES,
                topic=config.erasures_topic,
                event_type=ERASURE_EVENT_TYPE,
                schema=self.policy.stream(ERASURES).schema_name,
                primary_key=("employee_id",),
                replication_key="erased_at",
            ),
        )
        # BambooHR field names to ask for: the policy's, nothing else.
        self.api_fields = tuple(
            name for name in self.policy.stream(EMPLOYEES).from_bamboohr if name != "id"
        )

    def streams(self) -> Sequence[Stream]:
        return self._streams

    def check(self) -> None:
        """One cheap authenticated call: the deletions of the last second."""
        try:
            self.client.changed(datetime.now(UTC) - timedelta(seconds=1), "deleted")
        finally:
            self.client.close()

    def close(self) -> None:
        self.client.close()

    # -- reading --------------------------------------------------------------------------

    def fetch_stream(self, stream: Stream, cursor: Cursor | None) -> Iterator[SourceRecord]:
        since = self.config.start
        seen: set[str] = set()
        if cursor:
            stored = parse_timestamp(cursor.get("since"))
            if stored is None:
                raise ConfigError(f"connector {self.name}: stored cursor has no valid 'since'")
            since, seen = stored, {str(i) for i in cursor.get("seen") or ()}
        erasures = stream.name == ERASURES
        minimiser = self.minimisers[stream.name]
        before = minimiser.dropped.copy()
        at, at_seen = since, sorted(seen, key=_id_order)
        try:
            entries = self.client.changed(
                since - timedelta(seconds=1), "deleted" if erasures else None
            )
            # Deleted entries are the erasure stream's; everything else (an unknown action
            # too, for quarantine) is the employee stream's.
            todo = [
                e
                for e in sorted(entries, key=lambda e: e.sort_key)
                if (e.action == "Deleted") == erasures and self._due(e, since, seen)
            ]
            stamp = format_since(at)
            for entry, details in self._with_details(stream, todo):
                when = entry.last_changed or since
                if when != at:
                    at, at_seen, stamp = when, [], format_since(when)
                # Entries come sorted by (time, id): the list stays in id order. Each cursor
                # is a snapshot (k ids for the k-th change of one second).
                at_seen.append(entry.employee_id)
                position = {"since": stamp, "seen": list(at_seen)}
                if details is _GONE:
                    self.gone += 1
                    EMPLOYEES_GONE.labels(self.name).inc()
                    yield SourceRecord.at(position)
                    continue
                yield self._record(stream, entry, details, position, minimiser)
        finally:
            # Connections are kept for one read only: a connector is polled, not held open.
            self.client.close()
            self._report_dropped(stream.name, minimiser.dropped - before)

    @staticmethod
    def _due(entry: ChangedEmployee, since: datetime, seen: set[str]) -> bool:
        when = entry.last_changed or since
        return when > since or (when == since and entry.employee_id not in seen)

    def _with_details(
        self, stream: Stream, entries: list[ChangedEmployee]
    ) -> Iterator[tuple[ChangedEmployee, Any]]:
        """Each entry with the employee's fields (None: none needed; _GONE: deleted)."""
        if stream.name == ERASURES:
            yield from ((e, None) for e in entries)
            return
        wanted = [e for e in entries if e.problem is None]
        if not wanted:
            yield from ((e, None) for e in entries)
        elif self.config.fetch_mode == "report":
            first = min(e.last_changed for e in wanted if e.last_changed is not None)
            rows = self.client.report(self.api_fields, first)
            by_id = {str(r.get("id")): r for r in rows}
            for e in entries:
                if e.problem is not None:
                    yield e, None
                else:
                    yield e, by_id.get(e.employee_id, _GONE)
        elif self.config.concurrency == 1:
            for e in entries:
                yield e, None if e.problem is not None else self._details(e)
        else:
            yield from self._concurrently(entries)

    def _details(self, entry: ChangedEmployee) -> Any:
        try:
            return self.client.employee(entry.employee_id, self.api_fields)
        except EmployeeGone:
            return _GONE

    def _concurrently(
        self, entries: Iterable[ChangedEmployee]
    ) -> Iterator[tuple[ChangedEmployee, Any]]:
        """Employee reads ``concurrency`` at a time, handed on in the entries' order."""
        size = self.config.concurrency
        pool = ThreadPoolExecutor(size, thread_name_prefix=f"bamboohr-{self.name}")
        window: deque[tuple[ChangedEmployee, Future[Any] | None]] = deque()
        try:
            for entry in entries:
                future = pool.submit(self._details, entry) if entry.problem is None else None
                window.append((entry, future))
                if len(window) >= size * 4:
                    head, pending = window.popleft()
                    yield head, None if pending is None else pending.result()
            while window:
                head, pending = window.popleft()
                yield head, None if pending is None else pending.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _record(
        self,
        stream: Stream,
        entry: ChangedEmployee,
        details: Any,
        position: dict[str, Any],
        minimiser: Minimiser,
    ) -> SourceRecord:
        when = entry.last_changed
        stamp = position["since"] if when is not None else f"bad@{position['since']}"
        rid = f"{stream.name}:{entry.employee_id}:{stamp}"
        if entry.problem is not None:
            return SourceRecord(
                record_id=rid,
                key=entry.employee_id,
                stream=stream,
                cursor=position,
                reasons=(_entry_reason(entry.problem),),
                raw=json_payload({"id": entry.employee_id, "action": entry.action}),
                event_time=when,
                error_class="SkippableError",
            )
        assert when is not None
        rules = minimiser.rules
        version = self.policy.version
        meta: dict[str, Any]
        if stream.name == ERASURES:
            source = minimiser.from_bamboohr({"id": entry.employee_id})
            meta = {"erased_at": stamp, "source_system": SOURCE_SYSTEM}
        else:
            source = minimiser.from_bamboohr(details)
            meta = {
                "change_type": entry.action,
                "last_changed": stamp,
                "source_system": SOURCE_SYSTEM,
                "source_file": None,
            }
        value, reasons = shape(source, rules, {**meta, "minimisation_policy": version})
        if value.get("employee_id") != entry.employee_id:
            reasons.append(
                QuarantineReason("hr.employee_id", "employee_id", "the answer is another employee")
            )
        common: dict[str, Any] = {
            "record_id": rid,
            "key": entry.employee_id,
            "stream": stream,
            "cursor": position,
            "event_time": when,
        }
        if reasons:
            allowed = minimiser.allowed_source(details or {"id": entry.employee_id})
            return SourceRecord(
                **common,
                reasons=tuple(reasons),
                raw=json_payload(allowed),
                error_class="SkippableError",
            )
        return SourceRecord(**common, value=value)

    def _report_dropped(self, stream: str, dropped: collections.Counter[str]) -> None:
        if not dropped:
            return
        for field_name, times in dropped.items():
            FIELDS_DROPPED.labels(self.name, field_name).inc(times)
        names = ", ".join(f"{k} x{n}" for k, n in sorted(dropped.items()))
        log.warning(
            "connector %s: %s: dropped fields the minimisation policy does not allow: %s",
            self.name,
            stream,
            names,
        )


def _id_order(employee_id: str) -> tuple[int, str]:
    return (int(employee_id) if employee_id.isdigit() else -1, employee_id)


def _entry_reason(problem: str) -> QuarantineReason:
    what = {
        "bamboohr.action": "the change has an action other than Inserted, Updated or Deleted",
        "bamboohr.last_changed": "the change has no valid lastChanged time",
        "bamboohr.id": "the change has an employee id that is not a number",
    }[problem]
    return QuarantineReason(problem, None, what)
