"""The DLP processor stage: pure, batch-friendly, no Kafka.

For one validated record it finds sensitive values (declared ``pii`` fields are taken from
the schema without detection), asks the policy what to do, replaces each value by its
protected form, and returns incident records that carry location, entity, operator, rule,
score and a keyed fingerprint — never the value. A ``block`` decision stops the record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from prometheus_client import Counter

from hub.dlp.base import Finding
from hub.dlp.engine import Engine, FieldFinding, dedupe
from hub.dlp.operators import BlockedValue, KeepParams, KeyRing, apply_operator, fingerprint
from hub.dlp.policy import PolicyResolver
from hub.dlp.vault import VaultPublicKey, seal_value
from hub.events import deterministic_id

_PLAN_CACHE_SIZE = 256
# Tokens sealed for the vault, kept so a token seen again is not sealed again (two X25519
# operations a seal).
_SEALED_CACHE_SIZE = 65536
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
    # Vault entries (`hub.dlp.vault`) of the values this record's tokens replaced: the
    # token, its entity and the value sealed to the vault key — never the value in clear.
    vault: list[dict[str, Any]] = field(default_factory=list)


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
        vault_key: VaultPublicKey | None = None,
    ) -> None:
        self.engine = engine
        self.vault_key = vault_key  # None: tokens are not vaulted (irreversible)
        self._sealed: dict[str, bytes] = {}  # token -> its sealed value
        self.resolver = resolver
        self.keys = keys
        self.department = department
        self.topic = topic
        self.declared = dict(declared or {})
        self.policy_version = resolver.policy.version
        self.min_score = resolver.policy.min_score
        self._counters: dict[tuple[str, str], Any] = {}  # (entity, operator) -> counter
        # the field names of a record -> [(name, declared entity or None, whether the
        # policy keeps the declared field)] of those scanned
        self._plans: dict[tuple[str, ...], list[tuple[str, str | None, bool]]] = {}
        self._without: dict[str, Engine] = {}  # entity -> an engine without its recognizers
        for name, entity in self.declared.items():  # built now, not on the first batch
            if self._keeps(name, entity):
                self._engine_without(entity)

    def protect(self, record: Mapping[str, Any], *, event_id: str, now: datetime) -> Protected:
        """The record with its sensitive values protected (None when a value is blocked),
        and the incidents. Fields the schema declares (``pii``) are taken whole with their
        declared entity, without detection; one the policy keeps (the contact's own name,
        address, phone) is still scanned for anything else in it — an SSN typed into a
        name column is no name. Strings inside array, map and record fields are scanned
        too (a finding's field is their path, ``tags.0``)."""
        return self.protect_many([record], event_ids=[event_id], times=[now])[0]

    def protect_many(
        self,
        records: Sequence[Mapping[str, Any]],
        *,
        event_ids: Sequence[str],
        times: Sequence[datetime],
    ) -> list[Protected]:
        """`protect` for a batch of records (``event_ids[i]`` and ``times[i]`` are record
        i's) with one engine call — one matcher pass over all their fields; results in
        order."""
        split = [self._split(r) for r in records]
        # overlaps kept: which finding of a value counts is decided per record, after the
        # policy's rule thresholds (`_apply`)
        found = self.engine.scan_records(
            [s.scanned for s in split], min_score=self.min_score, overlaps=True
        )
        for entity in sorted({e for s in split for e in s.kept}):
            more = self._scan_kept(entity, [s.kept.get(entity, {}) for s in split])
            found = [[*a, *b] if b else a for a, b in zip(found, more, strict=True)]
        counts: dict[tuple[str, str], int] = {}  # the batch's, added to the metrics once
        protected = [
            self._apply(record, s.declared, s.nested, hits, event_id, now, counts)
            for record, s, hits, event_id, now in zip(
                records, split, found, event_ids, times, strict=True
            )
        ]
        self._count(counts)
        return protected

    def _split(self, record: Mapping[str, Any]) -> _Split:
        """(the strings the policy scans, by field — a string inside an array, map or
        record field by its dotted path, ``tags.0`` —, the declared fields as (name,
        entity), each nested string's steps from the record to it). A declaration names a
        whole string field; strings nested in a declared field are scanned like any
        other, and so is a declared field the policy keeps, by its entity (`_scan_kept`)."""
        names = tuple(record)
        plan = self._plans.get(names)
        if plan is None:  # records of one schema share their field names
            if len(self._plans) >= _PLAN_CACHE_SIZE:
                self._plans.clear()
            scans = self.resolver.scans
            plan = self._plans[names] = [
                (name, entity, entity is not None and self._keeps(name, entity))
                for name in names
                if isinstance(name, str) and scans(name)
                for entity in (self.declared.get(name),)
            ]
        scanned: dict[str, str] = {}
        taken: list[tuple[str, str]] = []
        nested: dict[str, tuple[str | int, ...]] = {}
        kept_texts: dict[str, dict[str, str]] = {}
        for name, entity, kept in plan:
            value = record[name]
            if isinstance(value, str):
                if entity is None:
                    scanned[name] = value
                else:
                    taken.append((name, entity))
                    if kept:
                        kept_texts.setdefault(entity, {})[name] = value
            elif isinstance(value, Mapping | list | tuple):
                for steps, text in _nested_strings(value, (name,)):
                    path = ".".join(map(str, steps))
                    while path in scanned:  # a map key with a dot can repeat a path
                        path += "'"
                    scanned[path] = text
                    nested[path] = steps
        return _Split(scanned, taken, nested, kept_texts)

    def _scan_kept(self, entity: str, texts: list[dict[str, str]]) -> list[list[FieldFinding]]:
        """Findings of other entities in declared fields of `entity` the policy keeps (per
        record: field -> text). One engine call without `entity`'s recognizers, since the
        field's own value needs no detection. A field where that finds something is
        scanned again by every recognizer, and what overlaps a finding of `entity` itself
        is dropped unless it outscores it: the field is declared to hold one, so a valid
        phone number whose digits pass the NHS mod-11 check (one in eleven) stays a phone,
        while an SSN, which no phone recognizer takes, is still an SSN, and a number the
        text calls an NHS number ("NHS number 201 555 7105") is one. Overlaps among the
        rest are left to `_apply`, which resolves them after each rule's threshold, as for
        any field."""
        first = self._engine_without(entity).scan_records(texts, min_score=self.min_score)
        suspects = [
            (i, name)
            for i, hits in enumerate(first)
            for name in dict.fromkeys(h.field for h in hits)
        ]
        if not suspects:
            return first
        again = self.engine.scan_texts_all(
            [texts[i][name] for i, name in suspects], [name for _, name in suspects]
        )
        out: list[list[FieldFinding]] = [[] for _ in first]
        for (i, name), found in zip(suspects, again, strict=True):
            own = [f for f in found if f.entity == entity]
            others = [
                f
                for f in found
                if f.entity != entity
                and f.score >= self.min_score
                and all(f.end <= o.start or f.start >= o.end or f.score > o.score for o in own)
            ]
            out[i].extend(FieldFinding(name, f) for f in others)
        return out

    def _engine_without(self, entity: str) -> Engine:
        """An engine of this stage's recognizers but `entity`'s (built once per entity;
        the stage's own when none finds `entity`, as none finds a PERSON)."""
        engine = self._without.get(entity)
        if engine is None:
            rest = [r for r in self.engine.recognizers if r.entity != entity]
            if len(rest) == len(self.engine.recognizers):
                engine = self.engine
            else:
                engine = Engine(rest, backend=self.engine.backend)
            self._without[entity] = engine
        return engine

    def _keeps(self, name: str, entity: str) -> bool:
        """Whether the policy keeps field `name` of declared class `entity`."""
        decision = self.resolver.resolve(self.department, self.topic, name, entity)
        return isinstance(decision.action, KeepParams)

    def _apply(
        self,
        record: Mapping[str, Any],
        declared: list[tuple[str, str]],
        nested: dict[str, tuple[str | int, ...]],
        found: list[FieldFinding],
        event_id: str,
        now: datetime,
        counts: dict[tuple[str, str], int],
    ) -> Protected:
        """Protect one record; its findings are added to `counts` by (entity, operator)."""
        out = dict(record)
        result = Protected(out, findings=len(declared))
        by_field: dict[str, list[Finding]] = {}
        resolve, department, topic = self.resolver.resolve, self.department, self.topic
        for name, entity in declared:
            if isinstance(resolve(department, topic, name, entity).action, KeepParams):
                counts[(entity, "keep")] = counts.get((entity, "keep"), 0) + 1
                continue  # (a declared finding scores 1.0: over any threshold)
            by_field[name] = [
                Finding(entity, 0, len(out[name]), 1.0, "schema", "declared", None, True)
            ]
        for ff in found:
            by_field.setdefault(ff.field, []).append(ff.finding)
        for name, findings in by_field.items():
            # a nested string (``tags.0``) is read and written at its path; the policy
            # rules name the record's field, the incident the path
            steps = nested.get(name)
            field_name = name if steps is None else str(steps[0])
            text = out[name] if steps is None else _at(out, steps)
            # A finding under its rule's threshold is out before overlaps are resolved: a
            # value the stronger reading may not act on is still protected as the weaker
            # one (a routing number under a stricter rule, also a bank account number).
            decided = [
                (f, d)
                for f in findings
                if f.score >= (d := resolve(department, topic, field_name, f.entity)).min_score
            ]
            if len(decided) > 1:
                decision_of = {id(f): d for f, d in decided}
                decided = [(f, decision_of[id(f)]) for f in dedupe([f for f, _ in decided])]
            result.findings += sum(1 for f, _ in decided if f.recognizer != "schema")
            # right to left, so earlier offsets stay valid while replacing
            for f, decision in reversed(decided) if len(decided) > 1 else decided:
                if isinstance(decision.action, KeepParams):
                    counts[(f.entity, "keep")] = counts.get((f.entity, "keep"), 0) + 1
                    continue
                value = text[f.start : f.end]
                try:
                    op = apply_operator(decision.action, self.keys, f.entity, value)
                except BlockedValue:
                    result.blocked.append((decision.rule_id, name, f.entity))
                    result.incidents.append(
                        self._incident(event_id, name, f, "block", decision.rule_id, value, now)
                    )
                    counts[(f.entity, "block")] = counts.get((f.entity, "block"), 0) + 1
                    continue
                counts[(f.entity, op.operator)] = counts.get((f.entity, op.operator), 0) + 1
                if op.operator == "keep":
                    continue
                text = text[: f.start] + str(op.replacement) + text[f.end :]
                if op.operator == "tokenize" and self.vault_key is not None:
                    result.vault.append(
                        self._vault_entry(str(op.replacement), f.entity, value, event_id, now)
                    )
                result.incidents.append(
                    self._incident(event_id, name, f, op.operator, decision.rule_id, value, now)
                )
            if steps is None:
                out[name] = text
            else:
                _put(out, steps, text)
        if result.blocked:
            result.record = None
            result.vault.clear()  # the record does not travel: nothing of it goes to the vault
        return result

    def _vault_entry(
        self, token: str, entity: str, value: str, event_id: str, now: datetime
    ) -> dict[str, Any]:
        """The vault entry of `token`: emitted with every event the token is in (the vault
        keeps the latest, as compaction does), sealed once per token while it is cached."""
        assert self.vault_key is not None
        sealed = self._sealed.get(token)
        if sealed is None:
            if len(self._sealed) >= _SEALED_CACHE_SIZE:
                self._sealed.clear()
            sealed = self._sealed[token] = seal_value(self.vault_key, token, entity, value)
        return {
            "token": token,
            "entity": entity,
            "sealed": sealed,
            "key_id": self.vault_key.key_id,
            "event_id": event_id,
            "sealed_at": now,
        }

    def _count(self, counts: dict[tuple[str, str], int]) -> None:
        """Add findings by (entity, operator) to the Prometheus counters."""
        for (entity, operator), n in counts.items():
            counter = self._counters.get((entity, operator))
            if counter is None:
                counter = self._counters[(entity, operator)] = FINDINGS.labels(
                    self.department, entity, operator
                )
            counter.inc(n)

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


def _start(f: Finding) -> int:
    return f.start


class _Split(NamedTuple):
    scanned: dict[str, str]  # the strings the policy scans, by field or nested path
    declared: list[tuple[str, str]]  # declared fields: (name, entity)
    nested: dict[str, tuple[str | int, ...]]  # a nested string's steps from the record
    kept: dict[str, dict[str, str]]  # declared fields the policy keeps: entity -> texts


def _nested_strings(
    value: Any, steps: tuple[str | int, ...]
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """(steps, text) for every string inside an array, map or record value."""
    if isinstance(value, str):
        yield steps, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _nested_strings(v, (*steps, str(k)))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _nested_strings(v, (*steps, i))


def _at(record: Mapping[str, Any], steps: tuple[str | int, ...]) -> str:
    value: Any = record
    for step in steps:
        value = value[step]
    return str(value)


def _put(record: dict[str, Any], steps: tuple[str | int, ...], text: str) -> None:
    """Set the string at `steps` to `text`, copying each array, map or record on the way
    (the caller's record is never changed; `record` itself is already a copy)."""
    parent: Any = record
    for step in steps[:-1]:
        child = parent[step]
        parent[step] = copy = list(child) if isinstance(child, list | tuple) else dict(child)
        parent = copy
    parent[steps[-1]] = text


__all__ = ["DlpStage", "FieldFinding", "Protected", "declared_pii"]
