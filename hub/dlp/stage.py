"""The DLP processor stage: pure, batch-friendly, no Kafka.

For one validated record it finds sensitive values (declared ``pii`` fields are taken from
the schema without detection), asks the policy what to do, replaces each value by its
protected form, and returns incident records that carry location, entity, operator, rule,
score and a keyed fingerprint — never the value. A ``block`` decision stops the record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter

from hub.dlp.base import Finding
from hub.dlp.engine import Engine, FieldFinding
from hub.dlp.operators import BlockedValue, KeyRing, apply_operator, fingerprint
from hub.dlp.policy import PolicyResolver
from hub.events import deterministic_id

FINDINGS = Counter(
    "hub_dlp_findings_total",
    "Sensitive values found by the DLP stage",
    ["department", "entity", "operator"],
)


def declared_pii(schema_path: Path) -> dict[str, str]:
    """Field name -> entity for the fields an Avro schema declares with ``"pii"``."""
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    return {f["name"]: f["pii"] for f in schema.get("fields", []) if f.get("pii")}


@dataclass(slots=True)
class Protected:
    record: dict[str, Any] | None  # None: blocked
    incidents: list[dict[str, Any]] = field(default_factory=list)
    blocked: list[tuple[str, str, str]] = field(default_factory=list)  # (rule, field, entity)
    findings: int = 0


class DlpStage:
    def __init__(
        self,
        engine: Engine,
        resolver: PolicyResolver,
        keys: KeyRing,
        *,
        department: str,
        topic: str,
        declared: Mapping[str, str] | None = None,
    ) -> None:
        self.engine = engine
        self.resolver = resolver
        self.keys = keys
        self.department = department
        self.topic = topic
        self.declared = dict(declared or {})
        self.policy_version = resolver.policy.version
        self.min_score = resolver.policy.min_score

    def protect(self, record: Mapping[str, Any], *, event_id: str, now: datetime) -> Protected:
        fields = [k for k, v in record.items() if isinstance(v, str) and self.resolver.scans(k)]
        found = self.engine.scan_record(
            {k: record[k] for k in fields}, declared=self.declared, min_score=self.min_score
        )
        out = dict(record)
        result = Protected(out, findings=len(found))
        by_field: dict[str, list[Finding]] = {}
        for ff in found:
            by_field.setdefault(ff.field, []).append(ff.finding)
        for name, findings in by_field.items():
            text = out[name]
            # right to left, so earlier offsets stay valid while replacing
            for f in sorted(findings, key=lambda f: f.start, reverse=True):
                decision = self.resolver.resolve(self.department, self.topic, name, f.entity)
                if f.score < decision.min_score:
                    continue
                value = text[f.start : f.end]
                try:
                    op = apply_operator(decision.action, self.keys, f.entity, value)
                except BlockedValue:
                    result.blocked.append((decision.rule_id, name, f.entity))
                    result.incidents.append(
                        self._incident(event_id, name, f, "block", decision.rule_id, value, now)
                    )
                    FINDINGS.labels(self.department, f.entity, "block").inc()
                    continue
                FINDINGS.labels(self.department, f.entity, op.operator).inc()
                if op.operator == "keep":
                    continue
                text = text[: f.start] + str(op.replacement) + text[f.end :]
                result.incidents.append(
                    self._incident(event_id, name, f, op.operator, decision.rule_id, value, now)
                )
            out[name] = text
        if result.blocked:
            result.record = None
        return result

    def _incident(
        self,
        event_id: str,
        field_name: str,
        f: Finding,
        operator: str,
        rule_id: str,
        value: str,
        now: datetime,
    ) -> dict[str, Any]:
        return {
            "incident_id": deterministic_id(event_id, field_name, str(f.start), f.entity),
            "event_id": event_id,
            "department": self.department,
            "topic": self.topic,
            "field": field_name,
            "start": f.start,
            "end": f.end,
            "entity": f.entity,
            "recognizer": f.recognizer,
            "score": f.score,
            "operator": operator,
            "rule_id": rule_id,
            "policy_version": self.policy_version,
            "value_fingerprint": fingerprint(self.keys, value),
            "detected_at": now,
        }


__all__ = ["DlpStage", "FieldFinding", "Protected", "declared_pii"]
