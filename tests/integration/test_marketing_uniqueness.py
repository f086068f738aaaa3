"""Marketing e-mail uniqueness with two processor workers (``crmhub worker processor`` x2)
on their own broker and registry: contacts arrive keyed by contact id on four partitions;
the processors re-key valid ones by normalised address into a Faust table; per address one
contact holds it, every other contact's claim is quarantined naming the holder, the
holder's own update passes — whichever worker owns the address, and after one worker is
killed (the survivor rebuilds the table from its changelog). A holder that moves to another
address gives the old one up, and so does an archived (deleted) one."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime

import httpx
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from hub import topics
from hub.broker import free_port
from hub.dlp.operators import keyring_from_master
from hub.dlp.vault import entry_key
from hub.processors.marketing import H_EMAIL_HOLDER, UNIQUE_RULE
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT
from tests.integration.conftest import (
    RawPublisher,
    headers_of,
    hub_env,
    read_topic,
    stop_process,
    wait_for,
)
from tests.integration.test_processor_worker import Stack, stack

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"
ADDRESSES = 20
DLP_KEY = "it-marketing-dlp-key-for-the-tests-0001"
CARD = "4539 1488 0343 6467"
SSN = "536-22-1234"
_ = stack  # the processor tests' own broker and registry (a fixture, used by name)


class Contacts(RawPublisher):
    """Publishes raw marketing contacts as the HubSpot connector does."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(stack.bootstrap, stack.registry_url)
        self.version = 0

    def send_contact(
        self,
        contact_id: str,
        email: str,
        company: str = "Acme",
        message: str | None = None,
        *,
        archived: bool = False,
    ) -> None:
        self.version += 1
        value = {
            "contact_id": contact_id,
            "email": email,
            "first_name": "Pat",
            "last_name": f"Contact{contact_id}",
            "company": company,
            "message": message,
            "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
            "archived": archived,
        }
        self.send(
            topics.RAW_MARKETING_CONTACTS, "marketing/Contact", contact_id, value, self.version
        )


def start_processor(stack: Stack, name: str, metrics_port: int) -> subprocess.Popen[bytes]:
    with (stack.home / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", "processor"],
            cwd=stack.home,
            # Each worker its own home (Faust data dir), all the same DLP key, as in production.
            env=hub_env(
                stack.bootstrap,
                stack.registry_url,
                stack.home / name,
                HUB_DLP_KEY=DLP_KEY,
                HUB_METRICS_PORT=str(metrics_port),
            ),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def claims_judged(port: int, verdict: str | None = None) -> float:
    """E-mail claims the worker serving metrics on ``port`` has judged (of one verdict)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    prefix = "hub_marketing_email_claims_total{" + (f'verdict="{verdict}"' if verdict else "")
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)
    )


def outputs(stack: Stack) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(clean, quarantined) marketing outputs, as their headers plus the key."""
    clean = [
        {**headers_of(m), "key": (m.key() or b"").decode()}
        for m in read_topic(stack.bootstrap, topics.CLEAN_MARKETING_CONTACTS, idle=0.3)
    ]
    text = load_schema_text(schema_path(SCHEMAS, "common/QuarantineRecord"))
    quarantined = []
    with SchemaRegistryClient({"url": stack.registry_url}) as registry:
        codec = AvroCodec(registry, topics.QUARANTINE, text)
        for m in read_topic(stack.bootstrap, topics.QUARANTINE, idle=0.3):
            record = codec.decode(m.value())
            if record["department"] == "marketing":
                rules = ",".join(r["rule_id"] for r in record["reasons"])
                key = (m.key() or b"").decode()
                quarantined.append({**headers_of(m), "key": key, "rules": rules})
    return clean, quarantined


def test_one_holder_per_address_across_two_workers_and_a_kill(stack: Stack) -> None:
    contacts = Contacts(stack)
    ports = [free_port(), free_port()]
    first, second = start_processor(stack, "p1", ports[0]), start_processor(stack, "p2", ports[1])
    try:
        # Phase 1: one contact per address (the address's case varies: one address).
        for i in range(ADDRESSES):
            contacts.send_contact(
                f"C-{i:03d}", f"Person{i}@Example.COM" if i % 2 else f"person{i}@example.com"
            )
        contacts.flush()
        wait_for(lambda: len(outputs(stack)[0]) >= ADDRESSES, timeout=90, interval=0.5)

        # Phase 2: other contacts claim the same addresses; the holders update theirs; one
        # address is not an address at all.
        for i in range(ADDRESSES, 3 * ADDRESSES):
            contacts.send_contact(f"C-{i:03d}", f"PERSON{i % ADDRESSES}@example.com")
        for i in range(ADDRESSES):
            contacts.send_contact(f"C-{i:03d}", f"person{i}@example.com", company="Acme Updated")
        contacts.send_contact("C-999", "not-an-address")
        contacts.flush()

        def done(clean_ids: int, quarantined_contacts: int) -> bool:
            clean, quarantined = outputs(stack)  # distinct: a redelivered copy is not news
            return (
                len({c["ce_id"] for c in clean}) >= clean_ids
                and len({q["key"] for q in quarantined}) >= quarantined_contacts
            )

        wait_for(lambda: done(2 * ADDRESSES, 2 * ADDRESSES + 1), timeout=90, interval=0.5)
        # Both workers hold partitions of the claims topic (and so of the holders table).
        # Both workers judged claims: each holds part of the table.
        judged = [claims_judged(p) for p in ports]
        assert all(n > 0 for n in judged), judged
        assert sum(judged) >= 3 * ADDRESSES

        assert first.poll() is None
        assert second.poll() is None

        # Phase 3: one worker dies; the survivor takes its table partitions from the
        # changelog and still knows every holder.
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        for i in range(3 * ADDRESSES, 4 * ADDRESSES):
            contacts.send_contact(f"C-{i:03d}", f"person{i % ADDRESSES}@EXAMPLE.com")
        contacts.flush()
        wait_for(lambda: done(2 * ADDRESSES, 3 * ADDRESSES + 1), timeout=120, interval=1)

        # Phase 4: a holder moves to another address and gives the old one up; a contact
        # refused it before takes it now.
        contacts.send_contact("C-000", "moved0@example.com")
        contacts.flush()
        wait_for(lambda: claims_judged(ports[1], "release") >= 1, timeout=60, interval=0.5)
        contacts.send_contact("C-020", "person0@example.com")
        contacts.flush()
        wait_for(lambda: done(2 * ADDRESSES + 2, 3 * ADDRESSES + 1), timeout=60, interval=0.5)

        # Phase 5: the DLP stage runs on marketing contacts too: a card number in the
        # message leaves masked and an SSN tokenized (its value sealed in the vault), with
        # incidents that never hold either.
        message = f"Pay with card {CARD} please, my SSN is {SSN}"
        contacts.send_contact("C-501", "dlp501@example.com", message=message)
        contacts.flush()
        wait_for(lambda: done(2 * ADDRESSES + 3, 3 * ADDRESSES + 1), timeout=60, interval=0.5)

        # Phase 6: an archived (deleted) contact reaches the clean topic and gives its
        # address up to the next contact.
        contacts.send_contact("C-501", "dlp501@example.com", archived=True)
        contacts.flush()
        wait_for(lambda: claims_judged(ports[1], "release") >= 2, timeout=60, interval=0.5)
        contacts.send_contact("C-502", "DLP501@example.com")
        contacts.flush()
        wait_for(lambda: done(2 * ADDRESSES + 5, 3 * ADDRESSES + 1), timeout=60, interval=0.5)

        # Phase 7: garbage on the internal claims topic is quarantined, not a crash.
        contacts.producer.produce(topics.MARKETING_EMAIL_CLAIMS, key=b"x", value=b"not avro")
        contacts.flush()
        wait_for(lambda: done(2 * ADDRESSES + 5, 3 * ADDRESSES + 2), timeout=60, interval=0.5)
        assert second.poll() is None
    finally:
        contacts.close()
        if first.poll() is None:
            first.kill()
            first.wait()
        code = stop_process(second)
    assert code == 0, (stack.home / "p2.log").read_text(errors="replace")[-3000:]

    clean, quarantined = outputs(stack)
    holders = {c["key"] for c in clean}
    # the first claimants, C-020 once C-000 gave person0 up, C-501 (archived later) and
    # C-502 once C-501 was archived
    assert holders == {f"C-{i:03d}" for i in range(ADDRESSES)} | {"C-020", "C-501", "C-502"}
    # every first claimant passed twice (its claim and its update), C-000 a third time (its
    # move), C-020 once: redelivered copies aside
    assert len({c["ce_id"] for c in clean}) == 2 * ADDRESSES + 5
    incidents = read_topic(stack.bootstrap, topics.DLP_INCIDENTS, idle=0.3)
    assert {(m.key() or b"").decode() for m in incidents} == {"C-501"}
    digits = CARD.replace(" ", "").encode()
    for topic in (
        topics.CLEAN_MARKETING_CONTACTS,
        topics.DLP_INCIDENTS,
        topics.QUARANTINE,
        topics.DLP_VAULT,
    ):
        for m in read_topic(stack.bootstrap, topic, idle=0.3):
            assert digits not in (m.value() or b"").replace(b" ", b""), topic
            assert SSN.encode() not in (m.value() or b""), topic
    # The SSN's vault entries: keyed by its token and its owner, the contact (a redelivered
    # copy has the same key).
    vaulted = {
        (m.key() or b"").decode(): headers_of(m)
        for m in read_topic(stack.bootstrap, topics.DLP_VAULT, idle=0.3)
    }
    assert {h["ce_subject"] for h in vaulted.values()} == {"C-501"}
    keys = keyring_from_master(DLP_KEY.encode())
    for key, h in vaulted.items():
        token = key.partition("@")[0]
        assert token.startswith("tok_us_ssn_")
        assert key == entry_key(keys, token, h["ce_source"], "C-501")

    decode = [q for q in quarantined if q["rules"] == "event.decode"]
    [garbage] = {q["key"] for q in decode}  # topic/partition/offset of the bad claim
    assert garbage.startswith(f"{topics.MARKETING_EMAIL_CLAIMS}/")
    by_contact = {q["key"]: q for q in quarantined if q["rules"] != "event.decode"}
    assert set(by_contact) == {f"C-{i:03d}" for i in range(ADDRESSES, 4 * ADDRESSES)} | {"C-999"}
    for i in range(ADDRESSES, 4 * ADDRESSES):
        q = by_contact[f"C-{i:03d}"]
        assert (q["rules"], q[H_EMAIL_HOLDER]) == (UNIQUE_RULE, f"C-{i % ADDRESSES:03d}")
    assert by_contact["C-999"]["rules"] == "marketing.email.format"
    assert H_EMAIL_HOLDER not in by_contact["C-999"]
