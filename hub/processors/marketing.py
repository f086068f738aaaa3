"""Marketing contacts: the department's rules, and e-mail uniqueness over the whole stream.

The CRM guide asks that a marketing contact's e-mail be valid **and unique**. Validity is a
rule of ``policies/validation.yaml`` (department ``marketing``); uniqueness needs state
across records, so it is a Faust table keyed by the normalised address, with the events
repartitioned by that address first — every claim on one address reaches the one worker
that holds the address's table partition, however many processor workers run:

1. ``validate-marketing-contacts`` (source ``crm.raw.marketing.contacts.v1``, keyed by
   contact id): decode, the department's rules (the address is normalised by the ``email``
   rule), then the DLP stage. A broken rule or a blocked value is a quarantine record;
   a valid contact goes to ``_hub-marketing-email-claims`` keyed by its normalised address.
2. ``unique-marketing-emails`` (source the claims topic): the table ``marketing-email-
   holders`` maps address → contact id. A free address, or one the same contact already
   holds (an update), passes to ``crm.clean.marketing.contacts.v1``; an address another
   contact holds is quarantined with rule ``marketing.email.unique``, naming the holder.

Both agents work in batches (``HUB_PROCESSOR_BATCH_SIZE``): a batch's outputs are sent in
order and acknowledged by the broker before its source events are (at least once). The
table's changelog makes its state survive a restart, and a re-delivered claim of the
holder passes again (the verdict is deterministic).

A contact that moves to another address gives the old one up: the first agent keeps a
second table, contact id -> the address it last claimed (co-partitioned with the raw
topic), and sends a release claim for the old address ahead of the new claim; the holder
table frees the address if that contact still holds it. (The two claims travel on
different partitions: another contact's claim on the freed address may be judged before
or after the release, as if it had arrived a moment earlier or later.) An archived
(deleted) contact passes to the clean topic, so the read model learns it, and gives its
address up.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT
from prometheus_client import Counter

from hub import topics
from hub.dlp.operators import KeyRing, keyring_from_master, seal
from hub.dlp.stage import DlpStage
from hub.dlp.vault import entry_key
from hub.errors import SchemaError
from hub.events import H_POLICY_VERSION, EventMeta, Headers
from hub.processors.envelope import Envelope, EnvelopeReader
from hub.processors.rules import Validator
from hub.processors.validation import (
    H_DLP_POLICY_VERSION,
    INCIDENT_TYPE,
    STAGE_DLP,
    vault_meta,
)
from hub.quarantine import (
    STAGE_DECODE,
    STAGE_VALIDATION,
    QuarantineReason,
    quarantine_meta,
    quarantine_record,
)
from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path
from hub.settings import Settings

log = logging.getLogger(__name__)

CLAIMS = Counter(
    "hub_marketing_email_claims",
    "Claims on an e-mail address judged by this worker, by verdict",
    ["verdict"],  # new, update (same holder), duplicate (quarantined), release
)

DEPARTMENT = "marketing"
SOURCE = "urn:crm-hub:processor:marketing-contacts"
VALIDATED_TYPE = "crm.marketing.contact.validated.v1"
UNIQUE_RULE = "marketing.email.unique"
STAGE_UNIQUENESS = "uniqueness"
H_EMAIL_HOLDER = "hub_email_holder"
H_CLAIM = "hub_claim"
RELEASE = "release"
TABLE = "marketing-email-holders"
ADDRESSES_TABLE = "marketing-contact-addresses"


def uniqueness_key(address: str) -> str:
    """The table key of an address the ``email`` rule normalised (its domain lower-cased):
    case-folded whole, as mail providers treat local parts (GRACE@ and grace@ are one
    person)."""
    return address.casefold()


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


#: A consumed event as the agents hand it over: topic, partition, offset, value, headers.
RawEvent = tuple[str, int, int, bytes | None, Headers]
#: (the claim or a quarantine record, the contact id or None when quarantined, incidents)
Checked = tuple[Outgoing, str | None, list[Outgoing]]


class MarketingContacts:
    """The pure parts of both agents (no Kafka): tests drive them directly."""

    def __init__(self, settings: Settings, *, dlp: DlpStage | None = None) -> None:
        from hub.policies import load_validation_policy

        policy = load_validation_policy(settings.policies_dir / "validation.yaml")
        self.validator = Validator(policy, DEPARTMENT)
        self.keys: KeyRing = keyring_from_master(settings.dlp_master_key())
        self.dlp = dlp
        registry = registry_client(settings.effective_registry_url)

        def codec(topic: str, name: str) -> AvroCodec:
            path = schema_path(settings.schemas_dir, name)
            return AvroCodec(registry, topic, load_schema_text(path))

        self.raw = codec(topics.RAW_MARKETING_CONTACTS, "marketing/Contact")
        self.clean = codec(topics.CLEAN_MARKETING_CONTACTS, "marketing/Contact")
        self.quarantine = codec(topics.QUARANTINE, "common/QuarantineRecord")
        self.incidents = codec(topics.DLP_INCIDENTS, "dlp/DlpIncident")
        self.vault = codec(topics.DLP_VAULT, "dlp/VaultEntry")
        self._envelopes = EnvelopeReader()

    @property
    def policy_version(self) -> str:
        return self.validator.policy_version

    def warm_up(self) -> None:
        for c in (self.raw, self.clean, self.quarantine, self.incidents, self.vault):
            _ = c.schema_id

    # -- 1: rules, DLP, then a claim keyed by the normalised address ----------------------
    def check_batch(self, batch: Sequence[RawEvent]) -> list[Checked]:
        """Decode, the department's rules, then one DLP engine call for the batch's valid
        contacts (one matcher pass over all their fields). Per event, in order: (the claim,
        the contact id, DLP incidents) or (a quarantine record, None, DLP incidents) —
        every value the DLP stage acted on is an incident, whatever the verdict."""
        results: list[Checked | None] = [None] * len(batch)
        valid: list[tuple[int, Envelope, str, dict[str, Any]]] = []
        for i, (topic, partition, offset, value, headers) in enumerate(batch):
            where = (topic, partition, offset)
            try:
                envelope = self._envelopes.read(headers)
                contact = self.raw.decode(value)
            except SchemaError as exc:
                reason = QuarantineReason("event.decode", None, exc.message)
                results[i] = _rejected(
                    self._quarantine(
                        STAGE_DECODE,
                        [reason],
                        origin=f"{topic}/{partition}/{offset}",
                        meta=None,
                        entity_id=None,
                        raw=value,
                        where=where,
                    )
                )
                continue
            entity = str(contact.get("contact_id") or "")
            decision = self.validator.validate(contact)
            if not decision.valid or decision.record is None:
                meta = envelope.meta()
                reasons = [
                    QuarantineReason(r.rule_id, r.field, r.message) for r in decision.reasons
                ]
                results[i] = _rejected(
                    self._quarantine(
                        STAGE_VALIDATION,
                        reasons,
                        origin=meta.id,
                        meta=meta,
                        entity_id=entity,
                        raw=value,
                        where=where,
                    )
                )
                continue
            valid.append((i, envelope, entity, decision.record))
        protections = (
            self.dlp.protect_many(
                [record for _, _, _, record in valid],
                event_ids=[envelope.id for _, envelope, _, _ in valid],
                times=[envelope.time for _, envelope, _, _ in valid],
            )
            if self.dlp is not None and valid
            else [None] * len(valid)
        )
        lineage = {H_POLICY_VERSION: self.policy_version}
        if self.dlp is not None:
            lineage[H_DLP_POLICY_VERSION] = self.dlp.policy_version
        for (i, envelope, entity, checked), protected in zip(valid, protections, strict=True):
            record = checked
            incidents: list[Outgoing] = []
            if protected is not None:
                meta = envelope.meta()
                incidents = [self._incident(meta, entity, inc) for inc in protected.incidents]
                incidents.extend(self._vault_entry(meta, e) for e in protected.vault)
                if protected.record is None:
                    topic, partition, offset, value, _ = batch[i]
                    reasons = [
                        QuarantineReason(rule, field, f"{entity_name} is blocked by DLP policy")
                        for rule, field, entity_name in protected.blocked
                    ]
                    results[i] = _rejected(
                        self._quarantine(
                            STAGE_DLP,
                            reasons,
                            origin=meta.id,
                            meta=meta,
                            entity_id=entity,
                            raw=value,
                            where=(topic, partition, offset),
                        ),
                        incidents,
                    )
                    continue
                record = protected.record
            claim = Outgoing(
                topics.MARKETING_EMAIL_CLAIMS,
                uniqueness_key(str(record["email"])).encode(),
                self.clean.encode(record),
                envelope.derived_headers(VALIDATED_TYPE, lineage),
            )
            results[i] = (claim, entity, incidents)
        return [r for r in results if r is not None]

    def claims(self, addresses: Any, checked: Checked) -> list[Outgoing]:
        """The outputs of one checked event. ``addresses`` is the Faust table contact id ->
        the address it last claimed (or any mutable mapping); a contact that moves to
        another address releases the old one: a release claim goes to the old address's
        partition, ahead of the new claim."""
        out, contact_id, incidents = checked
        if contact_id is None:  # quarantined
            return [*incidents, out]
        address = out.key.decode()
        previous = addresses.get(contact_id)
        if previous == address:
            return [*incidents, out]
        addresses[contact_id] = address
        if previous is None:
            return [*incidents, out]
        release = Outgoing(
            topics.MARKETING_EMAIL_CLAIMS,
            previous.encode(),
            out.value,
            [*out.headers, (H_CLAIM, RELEASE.encode())],
        )
        return [*incidents, release, out]

    # -- 2: the address's holder decides --------------------------------------------------
    def judge(
        self,
        holders: Any,
        topic: str,
        partition: int,
        offset: int,
        value: bytes | None,
        headers: Headers,
        key: bytes | None = None,
    ) -> Outgoing | None:
        """``holders`` is the Faust table (address -> contact id) or any mutable mapping.
        A release (``hub_claim: release``, keyed by the address given up) frees the address
        if the contact still holds it, and emits nothing."""
        try:
            envelope = self._envelopes.read(headers)
            contact = self.clean.decode(value)
        except SchemaError as exc:  # only this agent writes the topic; still, never a crash
            return self._quarantine(
                STAGE_DECODE,
                [QuarantineReason("event.decode", None, exc.message)],
                origin=f"{topic}/{partition}/{offset}",
                meta=None,
                entity_id=None,
                raw=value,
                where=(topic, partition, offset),
            )
        contact_id = str(contact["contact_id"])
        if _header(headers, H_CLAIM) == RELEASE:
            released = (key or b"").decode()
            if holders.get(released) == contact_id:
                del holders[released]
                CLAIMS.labels("release").inc()
            return None
        address = uniqueness_key(str(contact["email"]))
        holder = holders.get(address)
        assert value is not None
        if contact.get("archived"):
            # Archived (deleted) in the marketing platform: the read model learns it, and
            # the contact holds no address any more.
            if holder == contact_id:
                del holders[address]
                CLAIMS.labels("release").inc()
            return Outgoing(
                topics.CLEAN_MARKETING_CONTACTS, contact_id.encode(), value, list(headers)
            )
        if holder is None or holder == contact_id:
            if holder is None:
                holders[address] = contact_id
            CLAIMS.labels("new" if holder is None else "update").inc()
            return Outgoing(
                topics.CLEAN_MARKETING_CONTACTS, contact_id.encode(), value, list(headers)
            )
        CLAIMS.labels("duplicate").inc()
        meta = envelope.meta()
        reason = QuarantineReason(
            UNIQUE_RULE, "email", f"the address is already held by contact {holder}"
        )
        return self._quarantine(
            STAGE_UNIQUENESS,
            [reason],
            origin=meta.id,
            meta=meta,
            entity_id=contact_id,
            raw=value,
            where=(topic, partition, offset),
            holder=holder,
        )

    def _incident(self, meta: EventMeta, contact_id: str, incident: dict[str, Any]) -> Outgoing:
        """One DLP incident (never the value: the DLP stage gives a keyed fingerprint)."""
        inc_meta = EventMeta(
            id=incident["incident_id"],
            source=SOURCE,
            type=INCIDENT_TYPE,
            subject=meta.subject,
            time=incident["detected_at"],
            lineage={**meta.lineage, H_DLP_POLICY_VERSION: incident["policy_version"]},
        )
        return Outgoing(
            topics.DLP_INCIDENTS,
            contact_id.encode(),
            self.incidents.encode(incident),
            inc_meta.to_headers(),
        )

    def _vault_entry(self, meta: EventMeta, entry: dict[str, Any]) -> Outgoing:
        """A token's vault entry (the value sealed to the vault key), keyed by the token
        and its owner (`hub.dlp.vault.entry_key`)."""
        assert self.dlp is not None
        vmeta = vault_meta(entry, meta, SOURCE)
        key = entry_key(self.dlp.keys, entry["token"], vmeta.source, vmeta.subject).encode()
        return Outgoing(topics.DLP_VAULT, key, self.vault.encode(entry), vmeta.to_headers())

    def _quarantine(
        self,
        stage: str,
        reasons: list[QuarantineReason],
        *,
        origin: str,
        meta: EventMeta | None,
        entity_id: str | None,
        raw: bytes | None,
        where: tuple[str, int, int],
        holder: str | None = None,
    ) -> Outgoing:
        topic, partition, offset = where
        payload = None if raw is None else seal(self.keys, raw, aad=origin.encode())
        record = quarantine_record(
            stage=stage,
            reasons=reasons,
            origin_id=origin,
            payload=payload,
            payload_format="avro-confluent+sealed:default" if payload else "bytes",
            department=DEPARTMENT,
            connector=meta.lineage.get("hub_connector") if meta else None,
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            source_event_id=meta.id if meta else None,
            entity_id=entity_id or None,
            policy_version=self.policy_version,
            now=meta.time if meta else None,
        )
        q_meta = quarantine_meta(record, meta, SOURCE)
        extra = {H_POLICY_VERSION: self.policy_version}
        if holder is not None:
            extra[H_EMAIL_HOLDER] = holder
        q_meta = q_meta.derive(type=q_meta.type, id=q_meta.id, **extra)
        key = (entity_id or origin).encode()
        return Outgoing(topics.QUARANTINE, key, self.quarantine.encode(record), q_meta.to_headers())


def add_marketing_agents(app: faust.App, settings: Settings) -> None:
    """Register both agents and the holders table on the processor app."""
    from hub.processors.validation import build_dlp_stage

    stage = MarketingContacts(
        settings,
        dlp=build_dlp_stage(
            settings.schemas_dir,
            settings.policies_dir,
            keyring_from_master(settings.dlp_master_key()),
            department=DEPARTMENT,
            topic=topics.CLEAN_MARKETING_CONTACTS,
            schema="marketing/Contact",
            backend=settings.dlp_backend,
            vault_key=settings.vault_public_key(),
        ),
    )
    stage.warm_up()
    raw_kw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(topics.RAW_MARKETING_CONTACTS, key_type=bytes, value_type=bytes, **raw_kw)
    claims = app.topic(
        topics.MARKETING_EMAIL_CLAIMS,
        key_type=bytes,
        value_type=bytes,
        partitions=topics.DEFAULT_PARTITIONS,
        **raw_kw,
    )
    outputs = {
        topics.CLEAN_MARKETING_CONTACTS: app.topic(topics.CLEAN_MARKETING_CONTACTS, **raw_kw),
        topics.QUARANTINE: app.topic(topics.QUARANTINE, **raw_kw),
        topics.MARKETING_EMAIL_CLAIMS: claims,
        topics.DLP_INCIDENTS: app.topic(topics.DLP_INCIDENTS, **raw_kw),
        topics.DLP_VAULT: app.topic(topics.DLP_VAULT, **raw_kw),
    }
    holders = app.Table(TABLE, partitions=topics.DEFAULT_PARTITIONS, key_type=str, value_type=str)
    addresses = app.Table(
        ADDRESSES_TABLE, partitions=topics.DEFAULT_PARTITIONS, key_type=str, value_type=str
    )
    batch_size, within = settings.processor_batch_size, settings.processor_batch_within

    async def send_all(batch: list[Outgoing]) -> None:
        """Send in order, then wait until the broker acknowledged every one; take_events
        acknowledges the batch's source events only when the next batch is taken."""
        acks = [
            await outputs[o.topic].send(key=o.key, value=o.value, headers=o.headers, force=True)
            for o in batch
        ]
        await asyncio.gather(*acks)

    async def validate_contacts(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in stream.take_events(batch_size, within):  # type: ignore[attr-defined]
            checked = stage.check_batch(
                [(*_position(e), e.message.value, _headers(e)) for e in events]
            )
            claims_out: list[Outgoing] = []
            for e, result in zip(events, checked, strict=True):
                with _current(e):  # the addresses table's write belongs to this event
                    claims_out += stage.claims(addresses, result)
            await send_all(claims_out)
            await app.producer.flush()  # the addresses table's changelog too
            yield None

    async def unique_emails(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for events in stream.take_events(batch_size, within):  # type: ignore[attr-defined]
            # In order: a later claim in the batch sees the holder an earlier one set.
            verdicts = []
            for e in events:
                with _current(e):
                    verdict = stage.judge(
                        holders, *_position(e), e.message.value, _headers(e), e.message.key
                    )
                if verdict is not None:
                    verdicts.append(verdict)
            await send_all(verdicts)
            # The table's changelog writes are durable before the batch is acknowledged.
            await app.producer.flush()
            yield None

    app.agent(source, name="validate-marketing-contacts")(validate_contacts)
    app.agent(claims, name="unique-marketing-emails")(unique_emails)


@contextmanager
def _current(event: EventT[bytes]) -> Iterator[None]:
    """Faust's current event while handling ``event``: a table write goes to the changelog
    partition of the event it belongs to, which Faust reads from the current event, and
    take_events does not set it (``_current_event`` is Faust's own context variable)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def _rejected(quarantined: Outgoing, incidents: list[Outgoing] | None = None) -> Checked:
    return quarantined, None, incidents or []


def _header(headers: Headers, name: str) -> str | None:
    value = None
    for k, v in headers:
        if k == name:
            value = v
    return value.decode() if isinstance(value, bytes) else value


def _position(event: EventT[bytes]) -> tuple[str, int, int]:
    m = event.message
    return m.topic, m.partition, m.offset


def _headers(event: EventT[bytes]) -> Headers:
    headers = event.message.headers
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers or [])
