"""The processor chain of a department's records: decode raw events, apply the
department's rules, then the DLP stage, and encode the outputs. One chain serves every
department whose records need no state across events (sales leads, service tickets, HR
employees and erasures: ``FLOWS``); marketing's uniqueness needs a table
(``hub.processors.marketing``). Pure with respect to Kafka: it takes consumed
messages and returns messages to produce, so the Faust agent only moves data and the
chain is testable without a broker.

Outputs: a protected clean lead, or a quarantine record (undecodable, broke a rule, or
blocked by DLP), plus one DLP incident per value acted on. Quarantine payloads (the
original event, kept for re-drive) are sealed with AES-256-GCM when DLP keys are given,
so no sensitive value reaches the quarantine topic in clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import Counter

from hub import topics
from hub.dlp.engine import Backend
from hub.dlp.operators import KeyRing, seal
from hub.dlp.stage import DlpStage
from hub.dlp.vault import entry_key
from hub.errors import SchemaError
from hub.events import H_POLICY_VERSION, EventMeta, Headers, deterministic_id, processor_source
from hub.processors.envelope import Envelope, EnvelopeReader
from hub.quarantine import (
    STAGE_DECODE,
    STAGE_VALIDATION,
    QuarantineReason,
    quarantine_meta,
    quarantine_record,
)
from hub.serde import AvroCodec, load_schema_text, schema_path

if TYPE_CHECKING:
    from hub.dlp.vault import VaultPublicKey
    from hub.settings import Settings

INCIDENT_TYPE = "crm.dlp.incident.v1"
VAULT_ENTRY_TYPE = "crm.dlp.vault-entry.v1"
STAGE_DLP = "dlp"
H_DLP_POLICY_VERSION = "hub_dlp_policy_version"


@dataclass(frozen=True, slots=True)
class Flow:
    """One department's records through the chain: where they come from and go, their
    schemas (names under schemas/), the field that keys them, and the event type and
    CloudEvents source of the validated events. ``rules`` names the section of
    policies/validation.yaml (default: the department's)."""

    name: str
    department: str
    source_topic: str
    clean_topic: str
    raw_schema: str
    clean_schema: str
    key_field: str
    validated_type: str
    rules: str = ""
    scan: bool = True  # through the DLP stage (an erasure carries nothing to scan)

    @property
    def source(self) -> str:
        return processor_source(self.name)


SALES_LEADS = Flow(
    "sales-leads",
    "sales",
    topics.RAW_SALES_LEADS,
    topics.CLEAN_SALES_LEADS,
    "sales/LeadCaptured",
    "sales/Lead",
    "lead_id",
    "crm.sales.lead.validated.v1",
)
# Campaign e-mail events (sends, opens, clicks...): the touches attribution is built from.
MARKETING_EMAIL_EVENTS = Flow(
    "marketing-email-events",
    "marketing",
    topics.RAW_MARKETING_EMAIL_EVENTS,
    topics.CLEAN_MARKETING_EMAIL_EVENTS,
    "marketing/EmailEvent",
    "marketing/EmailEvent",
    "event_id",
    "crm.marketing.email_event.validated.v1",
    rules="marketing_email_events",
)
SERVICE_TICKETS = Flow(
    "service-tickets",
    "service",
    topics.RAW_SERVICE_TICKETS,
    topics.CLEAN_SERVICE_TICKETS,
    "service/TicketChanged",
    "service/TicketChanged",
    "ticket_id",
    "crm.service.ticket.validated.v1",
)
HR_EMPLOYEES = Flow(
    "hr-employees",
    "hr",
    topics.RAW_HR_EMPLOYEES,
    topics.CLEAN_HR_EMPLOYEES,
    "hr/EmployeeChanged",
    "hr/EmployeeChanged",
    "employee_id",
    "crm.hr.employee.validated.v1",
)
HR_ERASURES = Flow(
    "hr-employee-erasures",
    "hr",
    topics.RAW_HR_ERASURES,
    topics.CLEAN_HR_ERASURES,
    "hr/EmployeeErased",
    "hr/EmployeeErased",
    "employee_id",
    "crm.hr.employee.erasure.validated.v1",
    rules="hr_erasures",
    scan=False,
)
#: The flows the processor worker runs with this chain (sales in its own process).
FLOWS = (SALES_LEADS, MARKETING_EMAIL_EVENTS, SERVICE_TICKETS, HR_EMPLOYEES, HR_ERASURES)
VALIDATED_TYPE = SALES_LEADS.validated_type
SOURCE = SALES_LEADS.source

EVENTS = Counter(
    "hub_validation_events_total", "Events through the validation stage", ["department", "outcome"]
)
QUARANTINED = Counter(
    "hub_quarantined_total", "Records sent to quarantine", ["stage", "department", "rule_id"]
)


@dataclass(frozen=True, slots=True)
class InMessage:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


class ValidationStage:
    """Raw events of one flow in (sales leads by default); protected clean records,
    quarantine records and DLP incidents out."""

    def __init__(
        self,
        registry: SchemaRegistryClient,
        *,
        schemas_dir: Path,
        policies_dir: Path,
        flow: Flow = SALES_LEADS,
        source_topic: str | None = None,
        clean_topic: str | None = None,
        quarantine_topic: str = topics.QUARANTINE,
        incidents_topic: str = topics.DLP_INCIDENTS,
        vault_topic: str = topics.DLP_VAULT,
        dlp: DlpStage | None = None,
        keys: KeyRing | None = None,
    ) -> None:
        from hub.policies import load_validation_policy
        from hub.processors.rules import Validator

        policy = load_validation_policy(policies_dir / "validation.yaml")
        department = flow.department
        source_topic = source_topic or flow.source_topic
        clean_topic = clean_topic or flow.clean_topic
        self.validator = Validator(policy, flow.rules or department)
        self.flow = flow
        self.department = department
        self.clean_topic = clean_topic
        self.quarantine_topic = quarantine_topic
        self.incidents_topic = incidents_topic
        self.vault_topic = vault_topic
        self.dlp = dlp
        self.keys = keys

        def codec(topic: str, name: str) -> AvroCodec:
            return AvroCodec(registry, topic, load_schema_text(schema_path(schemas_dir, name)))

        self.raw = codec(source_topic, flow.raw_schema)
        self.clean = codec(clean_topic, flow.clean_schema)
        self.quarantine = codec(quarantine_topic, "common/QuarantineRecord")
        self.incidents = codec(incidents_topic, "dlp/DlpIncident")
        self.vault = codec(vault_topic, "dlp/VaultEntry")
        self._envelopes = EnvelopeReader()
        self._events_valid = EVENTS.labels(department, "valid")
        self._events_invalid = EVENTS.labels(department, "quarantined")

    @property
    def policy_version(self) -> str:
        return self.validator.policy_version

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.clean_topic, self.quarantine_topic, self.incidents_topic, self.vault_topic)

    def warm_up(self) -> None:
        """Register the output schemas before the first event (fails fast on a bad registry)."""
        for c in (self.clean, self.quarantine, self.raw, self.incidents, self.vault):
            _ = c.schema_id

    def process(self, batch: Sequence[InMessage]) -> list[OutMessage]:
        out: list[OutMessage] = []
        decoded: list[tuple[InMessage, Envelope, dict[str, Any]]] = []
        read_envelope, decode = self._envelopes.read, self.raw.decode
        for msg in batch:
            try:
                envelope = read_envelope(msg.headers)
                value = decode(msg.value)
            except SchemaError as exc:
                out.append(self._decode_failure(msg, exc))
                continue
            decoded.append((msg, envelope, value))
        decisions = self.validator.validate_batch([v for _, _, v in decoded])
        lineage = {H_POLICY_VERSION: self.validator.policy_version}
        if self.dlp is not None:
            lineage[H_DLP_POLICY_VERSION] = self.dlp.policy_version
        clean_topic, encode, dlp = self.clean_topic, self.clean.encode, self.dlp
        key_field, validated_type = self.flow.key_field, self.flow.validated_type
        # One DLP engine call for the batch's valid records (one matcher pass over all).
        passed = [
            (envelope, decision.record)
            for (_, envelope, _), decision in zip(decoded, decisions, strict=True)
            if decision.valid and decision.record is not None
        ]
        protections = iter(
            dlp.protect_many(
                [r for _, r in passed],
                event_ids=[e.id for e, _ in passed],
                times=[e.time for e, _ in passed],
            )
            if dlp is not None and passed
            else ()
        )
        valid = 0
        for (msg, envelope, value), decision in zip(decoded, decisions, strict=True):
            key = str(value[key_field]).encode()
            record = decision.record
            if not decision.valid or record is None:
                reasons = [
                    QuarantineReason(r.rule_id, r.field, r.message) for r in decision.reasons
                ]
                out.append(self._quarantine(msg, envelope, value, STAGE_VALIDATION, reasons))
                continue
            if dlp is not None:
                protected = next(protections)
                if protected.incidents:
                    meta = envelope.meta()
                    out.extend(self._incident(meta, key, inc) for inc in protected.incidents)
                if protected.vault:
                    meta = envelope.meta()
                    out.extend(self._vault_entry(meta, entry) for entry in protected.vault)
                if protected.record is None:
                    reasons = [
                        QuarantineReason(rule, fld, f"{entity} is blocked by DLP policy")
                        for rule, fld, entity in protected.blocked
                    ]
                    out.append(self._quarantine(msg, envelope, value, STAGE_DLP, reasons))
                    continue
                record = protected.record
            headers = envelope.derived_headers(validated_type, lineage)
            out.append(OutMessage(clean_topic, key, encode(record), headers))
            valid += 1
        if valid:
            self._events_valid.inc(valid)
        return out

    def _quarantine(
        self,
        msg: InMessage,
        envelope: Envelope,
        value: dict[str, Any],
        stage: str,
        reasons: list[QuarantineReason],
    ) -> OutMessage:
        version = self.validator.policy_version
        meta = envelope.meta()
        payload, fmt = self._payload(msg.value, "avro-confluent", meta.id)
        record = quarantine_record(
            stage=stage,
            reasons=reasons,
            origin_id=meta.id,
            payload=payload,
            payload_format=fmt,
            department=self.department,
            connector=meta.lineage.get("hub_connector"),
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
            source_event_id=meta.id,
            entity_id=str(value[self.flow.key_field]),
            policy_version=version,
            now=meta.time,
        )
        q_meta = quarantine_meta(record, meta, self.flow.source)
        q_meta = q_meta.derive(type=q_meta.type, id=q_meta.id, **{H_POLICY_VERSION: version})
        self._events_invalid.inc()
        for r in reasons:
            QUARANTINED.labels(stage, self.department, r.rule_id).inc()
        key = str(value[self.flow.key_field]).encode()
        return OutMessage(
            self.quarantine_topic, key, self.quarantine.encode(record), q_meta.to_headers()
        )

    def _payload(self, data: bytes | None, fmt: str, aad: str) -> tuple[bytes | None, str]:
        """Seal the original bytes when keys are set: re-drive needs them, nobody else."""
        if data is None or self.keys is None:
            return data, fmt
        return seal(self.keys, data, aad=aad.encode()), f"{fmt}+sealed:default"

    def _incident(self, meta: EventMeta, key: bytes, incident: dict[str, Any]) -> OutMessage:
        inc_meta = EventMeta(
            id=incident["incident_id"],
            source=self.flow.source,
            type=INCIDENT_TYPE,
            subject=meta.subject,
            time=incident["detected_at"],
            lineage={**meta.lineage, H_DLP_POLICY_VERSION: incident["policy_version"]},
        )
        return OutMessage(
            self.incidents_topic, key, self.incidents.encode(incident), inc_meta.to_headers()
        )

    def _vault_entry(self, meta: EventMeta, entry: dict[str, Any]) -> OutMessage:
        """A token's vault entry, keyed by the token and its owner (the topic is
        compacted: `hub.dlp.vault.entry_key`)."""
        assert self.dlp is not None
        vmeta = vault_meta(entry, meta, self.flow.source)
        key = entry_key(self.dlp.keys, entry["token"], vmeta.source, vmeta.subject).encode()
        return OutMessage(self.vault_topic, key, self.vault.encode(entry), vmeta.to_headers())

    def _decode_failure(self, msg: InMessage, exc: SchemaError) -> OutMessage:
        origin = f"{msg.topic}/{msg.partition}/{msg.offset}"
        payload, fmt = self._payload(msg.value, "bytes", origin)
        record = quarantine_record(
            stage=STAGE_DECODE,
            reasons=[QuarantineReason("event.decode", None, exc.message)],
            origin_id=origin,
            payload=payload,
            payload_format=fmt,
            department=self.department,
            source_topic=msg.topic,
            source_partition=msg.partition,
            source_offset=msg.offset,
        )
        meta = quarantine_meta(record, None, self.flow.source)
        QUARANTINED.labels(STAGE_DECODE, self.department, "event.decode").inc()
        key = msg.key or origin.encode()
        return OutMessage(
            self.quarantine_topic, key, self.quarantine.encode(record), meta.to_headers()
        )


def vault_meta(entry: dict[str, Any], meta: EventMeta, source: str) -> EventMeta:
    """CloudEvents attributes of a vault entry: one id per (token, event), the event's
    subject and lineage."""
    return EventMeta(
        id=deterministic_id("vault", entry["token"], entry["event_id"]),
        source=source,
        type=VAULT_ENTRY_TYPE,
        subject=meta.subject,
        time=entry["sealed_at"],
        lineage=dict(meta.lineage),
    )


def build_sales_lead_stage(
    settings: Settings, *, source_topic: str = topics.RAW_SALES_LEADS
) -> ValidationStage:
    """The processor chain of sales leads as the hub runs it (see ``build_flow_stage``)."""
    return build_flow_stage(settings, SALES_LEADS, source_topic=source_topic)


def build_flow_stage(
    settings: Settings, flow: Flow, *, source_topic: str | None = None
) -> ValidationStage:
    """The processor chain of ``flow`` as the hub runs it: validation, then the DLP stage
    of policies/dlp.yaml with the hub's DLP keys (quarantine payloads sealed with them)."""
    from hub.dlp.operators import keyring_from_master
    from hub.serde import registry_client

    keys = keyring_from_master(settings.dlp_master_key())
    stage = ValidationStage(
        registry_client(settings.effective_registry_url),
        schemas_dir=settings.schemas_dir,
        policies_dir=settings.policies_dir,
        flow=flow,
        source_topic=source_topic,
        keys=keys,
        dlp=build_dlp_stage(
            settings.schemas_dir,
            settings.policies_dir,
            keys,
            department=flow.department,
            topic=flow.clean_topic,
            schema=flow.clean_schema,
            backend=settings.dlp_backend,
            vault_key=settings.vault_public_key(),
        )
        if flow.scan
        else None,
    )
    if flow.department == SERVICE_TICKETS.department:
        check_case_statuses(settings.policies_dir)
    return stage


CASE_STATUS_RULE = "service.case_status.enum"


def check_case_statuses(policies_dir: Path) -> None:
    """The service department's case-status enum (validation.yaml) and the statuses the
    ticketing connector maps to (case_status.yaml) must be one list: a value in one and not
    the other would quarantine every ticket of that status, or let an unlisted one pass.
    A difference is a ConfigError at start."""
    from connectors.zendesk.policy import load_case_status_policy
    from hub.errors import ConfigError
    from hub.policies import EnumRule, load_validation_policy

    policy = load_validation_policy(policies_dir / "validation.yaml")
    rules = policy.departments[SERVICE_TICKETS.department].rules
    enum = next((r for r in rules if isinstance(r, EnumRule) and r.id == CASE_STATUS_RULE), None)
    if enum is None:
        raise ConfigError(
            f"policies/validation.yaml: departments.service has no rule {CASE_STATUS_RULE}"
        )
    mapped = load_case_status_policy(policies_dir / "case_status.yaml").case_statuses
    if set(enum.values) != set(mapped):
        raise ConfigError(
            f"policies/validation.yaml: {CASE_STATUS_RULE} lists "
            f"{', '.join(enum.values)} but policies/case_status.yaml's case_statuses are "
            f"{', '.join(mapped)}: the two lists must be the same"
        )


def build_dlp_stage(
    schemas_dir: Path,
    policies_dir: Path,
    keys: KeyRing,
    *,
    department: str,
    topic: str,
    schema: str = "sales/Lead",
    backend: Backend = "auto",
    vault_key: VaultPublicKey | None = None,
) -> DlpStage | None:
    """The DLP stage from policies/dlp.yaml and the registered recognizers (None when the
    policy file is absent)."""
    path = policies_dir / "dlp.yaml"
    if not path.exists():
        return None
    from hub.dlp import registry
    from hub.dlp.engine import Engine
    from hub.dlp.policy import PolicyResolver, load_dlp_policy
    from hub.dlp.stage import declared_pii

    return DlpStage(
        Engine(registry.load(), backend=backend),
        PolicyResolver(load_dlp_policy(path)),
        keys,
        department=department,
        topic=topic,
        declared=declared_pii(schema_path(schemas_dir, schema)),
        vault_key=vault_key,
    )
