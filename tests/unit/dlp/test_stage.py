"""The DLP stage with the real policy file and engine: values protected as the policy says,
declared fields taken whole, incidents without the values, blocked records, metrics — and
the batch call gives what one call per record gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from hub.dlp import registry
from hub.dlp.engine import Engine
from hub.dlp.operators import keyring_from_master
from hub.dlp.policy import PolicyResolver, Rule, load_dlp_policy
from hub.dlp.stage import DlpStage, Protected, declared_pii
from hub.dlp.vault import VaultPrivateKey, VaultPublicKey, open_value

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
CARD = "4539 1488 0343 6467"
SSN = "536-22-1234"
AWS = "AKIA" + "Q3EGVFXPLRT2MWZN"


def lead(i: int, notes: str | None) -> dict[str, Any]:
    return {
        "lead_id": f"US-{i:06d}",
        "first_name": "Ann",
        "last_name": "Lee",
        "email": f"ann.lee{i}@example.com",
        "phone_e164": "+14155550123",
        "phone_display": "(415) 555-0123",
        "company": "Acme",
        "job_title": "Key Account Manager",
        "country": "US",
        "lead_source": "Web",
        "lead_status": "new",
        "created_on": 19000,
        "owner": "sam",
        "notes": notes,
    }


RECORDS = [
    lead(1, f"Paid the deposit by card {CARD}"),
    lead(2, f"W-9 pending, SSN {SSN} on file"),
    lead(3, f"Shared key {AWS} by mistake"),
    lead(4, None),
    lead(5, "Call back on Monday"),
    lead(6, f"card {CARD} and ssn {SSN}"),
]


def department_stage(
    department: str, topic: str, schema: str, vault_key: VaultPublicKey | None = None
) -> DlpStage:
    """The stage as the processors build it for `department`, with the real policy."""
    policy = load_dlp_policy(ROOT / "policies" / "dlp.yaml")
    return DlpStage(
        Engine(registry.load()),
        PolicyResolver(policy),
        keyring_from_master(b"k" * 32),
        department=department,
        topic=topic,
        declared=declared_pii(ROOT / "schemas" / f"{schema}.avsc"),
        vault_key=vault_key,
    )


def sales_stage(vault_key: VaultPublicKey | None = None) -> DlpStage:
    return department_stage("sales", "crm.raw.sales.leads.v1", "sales/Lead", vault_key)


@pytest.fixture(scope="module")
def stage() -> DlpStage:
    return sales_stage()


def count(entity: str, operator: str) -> float:
    value = REGISTRY.get_sample_value(
        "hub_dlp_findings_total",
        {"department": "sales", "entity": entity, "operator": operator},
    )
    return value or 0.0


def test_values_are_protected_as_the_policy_says(stage: DlpStage) -> None:
    card, ssn, aws, empty, clean, both = (
        stage.protect(r, event_id=f"e{i}", now=NOW) for i, r in enumerate(RECORDS)
    )
    assert card.record is not None
    assert card.record["notes"] == "Paid the deposit by card [REDACTED:CREDIT_CARD]"
    assert ssn.record is not None
    assert SSN not in ssn.record["notes"]
    assert ssn.record["notes"].startswith("W-9 pending, SSN tok_us_ssn_")
    assert aws.record is None
    assert aws.blocked == [("entity.AWS_ACCESS_KEY", "notes", "AWS_ACCESS_KEY")]
    assert both.record is not None
    assert CARD not in both.record["notes"]
    assert SSN not in both.record["notes"]
    # the lead's own contact details are declared and kept (policy exceptions)
    for result, record in zip(
        (card, ssn, empty, clean, both), RECORDS[:2] + RECORDS[3:], strict=True
    ):
        assert result.record is not None
        assert result.record["email"] == record["email"]
        assert result.record["phone_display"] == "(415) 555-0123"
    assert empty.findings == clean.findings == 5  # first/last name, email, two phones
    assert empty.incidents == clean.incidents == []
    assert card.findings == 6


def test_a_kept_declared_field_is_still_scanned_for_anything_else(stage: DlpStage) -> None:
    """The policy keeps a lead's own name, address and phone (declared, taken whole): an
    SSN or a card number typed into such a column (a shifted spreadsheet) is no name and
    is protected there like anywhere, with its incident; the declared value itself stays
    as it is, one finding, no incident."""
    record = lead(7, None) | {
        "last_name": f"Lee {SSN}",
        "first_name": f"Ann card {CARD}",
        "phone_display": "(415) 555-0123 ext 12",
    }
    result = stage.protect(record, event_id="e7", now=NOW)
    assert result.record is not None
    assert result.record["last_name"].startswith("Lee tok_us_ssn_")
    assert result.record["first_name"] == "Ann card **** **** **** 6467"  # masked, as outside notes
    assert result.record["email"] == record["email"]  # kept, unscathed
    assert result.record["phone_display"] == record["phone_display"]
    assert result.record["phone_e164"] == record["phone_e164"]
    assert sorted((i["field"], i["entity"]) for i in result.incidents) == [
        ("first_name", "CREDIT_CARD"),
        ("last_name", "US_SSN"),
    ]
    assert result.findings == 7  # five declared fields, the SSN, the card
    for incident in result.incidents:
        assert SSN not in repr(incident)
        assert CARD not in repr(incident)


def _valid_us_numbers(n: int) -> list[str]:
    """`n` US numbers libphonenumber takes as valid, ten digits each (fixed seed)."""
    import random

    import phonenumbers

    rng, numbers = random.Random(20261202), list[str]()
    while len(numbers) < n:
        digits = f"{rng.randint(201, 989)}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(digits, "US")):
            numbers.append(digits)
    return numbers


@pytest.mark.parametrize(
    ("department", "topic", "schema", "field"),
    [
        ("marketing", "crm.raw.marketing.contacts.v1", "marketing/Contact", "phone"),
        ("hr", "crm.raw.hr.employees.v1", "hr/EmployeeChanged", "work_phone"),
    ],
)
def test_kept_phones_stay_whole_though_their_digits_pass_other_checksums(
    department: str, topic: str, schema: str, field: str
) -> None:
    """A kept phone's ten digits pass the NHS mod-11 check one time in eleven: scanned for
    other entities, the phone itself still outweighs that, so 300 valid numbers in three
    layouts leave as they came, with no incident."""
    stage = department_stage(department, topic, schema)
    layouts = ("{0}-{1}-{2}", "{0} {1} {2}", "({0}) {1}-{2}")
    for i, digits in enumerate(_valid_us_numbers(300)):
        phone = layouts[i % 3].format(digits[:3], digits[3:6], digits[6:])
        record = {field: phone, "first_name": "Ann", "last_name": "Lee"}
        result = stage.protect(record, event_id=f"p{i}", now=NOW)
        assert result.record is not None
        assert (result.record[field], result.incidents) == (phone, []), phone
    # what no phone recognizer takes is still found there, beside a phone or alone
    for value in (f"719 442 8954 or ssn {SSN}", SSN):
        result = stage.protect({field: value}, event_id="p-ssn", now=NOW)
        assert result.record is not None
        assert SSN not in result.record[field]
        assert [i["entity"] for i in result.incidents] == ["US_SSN"]
    # a number the text calls an NHS number is one, though it dials and its field is a
    # phone's (201 555 7105 passes the mod-11 check)
    for label, number in (("NHS number", "201 555 7105"), ("nhs:", "201-555-7105")):
        result = stage.protect({field: f"{label} {number}"}, event_id="p-nhs", now=NOW)
        assert result.record is not None
        assert number not in result.record[field]
        assert [i["entity"] for i in result.incidents] == ["UK_NHS"]


def test_a_kept_address_with_digits_stays_whole() -> None:
    """An SMS-gateway address is an e-mail address, though its local part is a phone
    number: kept as the marketing contact's own address, not masked in part."""
    stage = department_stage("marketing", "crm.raw.marketing.contacts.v1", "marketing/Contact")
    for address in ("+14155550123@s.whatsapp.net", "4155550123@txt.att.net"):
        result = stage.protect({"email": address}, event_id="m1", now=NOW)
        assert result.record is not None
        assert (result.record["email"], result.incidents) == (address, [])


def test_a_finding_under_its_rules_threshold_leaves_the_value_to_an_overlapping_one() -> None:
    """A rule may ask more of an entity than the policy's threshold. A routing number under
    such a rule is not acted on as one; the same digits, read as a bank account number
    (also a finding, though a weaker one), are still protected as that, not let through."""
    policy = load_dlp_policy(ROOT / "policies" / "dlp.yaml")
    strict = Rule(
        id="sales.routing-needs-a-checksum-and-more",
        department="sales",
        entities=["ABA_ROUTING_NUMBER"],
        action=policy.entities["ABA_ROUTING_NUMBER"],
        min_score=0.8,
    )
    stage = DlpStage(
        Engine(registry.load()),
        PolicyResolver(policy.model_copy(update={"rules": [strict, *policy.rules]})),
        keyring_from_master(b"k" * 32),
        department="sales",
        topic="crm.raw.sales.leads.v1",
        declared=declared_pii(ROOT / "schemas" / "sales" / "Lead.avsc"),
    )
    routing = "064280507"  # ABA checksum holds: 0.75 with context, under the rule's 0.8
    result = stage.protect(
        lead(1, f"Wire via ABA routing {routing} to the checking account."), event_id="r1", now=NOW
    )
    assert result.record is not None
    assert routing not in result.record["notes"]
    assert [(i["entity"], i["operator"], i["rule_id"]) for i in result.incidents] == [
        ("US_BANK_NUMBER", "encrypt", "entity.US_BANK_NUMBER")
    ]
    assert result.findings == 6  # five declared fields, the bank number
    # the same in a declared field the policy keeps (scanned for other entities)
    text = f"Wire via ABA routing {routing} to the checking account."
    result = stage.protect({**lead(2, "no notes"), "last_name": text}, event_id="r3", now=NOW)
    assert result.record is not None
    assert routing not in result.record["last_name"]
    assert [(i["field"], i["entity"]) for i in result.incidents] == [
        ("last_name", "US_BANK_NUMBER")
    ]
    # under the policy's own threshold, the stronger reading wins as before
    plain = sales_stage().protect(
        lead(1, f"Wire via ABA routing {routing}."), event_id="r2", now=NOW
    )
    assert [i["entity"] for i in plain.incidents] == ["ABA_ROUTING_NUMBER"]


def test_incidents_carry_no_value(stage: DlpStage) -> None:
    results = [stage.protect(r, event_id=f"e{i}", now=NOW) for i, r in enumerate(RECORDS)]
    incidents = [inc for r in results for inc in r.incidents]
    assert {inc["entity"] for inc in incidents} == {"CREDIT_CARD", "US_SSN", "AWS_ACCESS_KEY"}
    for inc in incidents:
        text = repr(inc)
        for value in (CARD, SSN, AWS, CARD.replace(" ", "")):
            assert value not in text
        assert inc["field"] == "notes"
        assert len(inc["value_fingerprint"]) == 32


def test_batch_gives_what_one_call_per_record_gives(stage: DlpStage) -> None:
    ids = [f"e{i}" for i in range(len(RECORDS))]
    times = [NOW + timedelta(seconds=i) for i in range(len(RECORDS))]
    one_by_one = [
        stage.protect(r, event_id=i, now=t) for r, i, t in zip(RECORDS, ids, times, strict=True)
    ]
    before = count("CREDIT_CARD", "redact"), count("PERSON", "keep")
    batch = stage.protect_many(RECORDS, event_ids=ids, times=times)
    assert batch == one_by_one
    assert [inc["detected_at"] for p in batch for inc in p.incidents] == [
        times[0],
        times[1],
        times[2],
        times[5],
        times[5],
    ]
    assert count("CREDIT_CARD", "redact") == before[0] + 2
    assert count("PERSON", "keep") == before[1] + 2 * len(RECORDS)


def test_nothing_to_scan(stage: DlpStage) -> None:
    result = stage.protect({"lead_id": "x", "created_on": 3, "notes": None}, event_id="e", now=NOW)
    assert result == Protected({"lead_id": "x", "created_on": 3, "notes": None}, findings=0)


def test_tokenized_values_go_to_the_vault_sealed_and_come_back_with_the_private_key() -> None:
    """With a vault key, each token the stage writes comes with its vault entry: the value
    sealed to the key, which the private key opens — and nothing else in the entry holds
    the value. Without one (the fixture), tokens are irreversible and no entry is made."""
    private = VaultPrivateKey.generate()
    vaulting = sales_stage(private.public)
    ssn, both = vaulting.protect_many(
        [RECORDS[1], RECORDS[5]], event_ids=["e1", "e5"], times=[NOW, NOW]
    )
    assert ssn.record is not None
    token = ssn.record["notes"].removeprefix("W-9 pending, SSN ").removesuffix(" on file")
    (entry,) = ssn.vault
    assert (entry["token"], entry["entity"], entry["event_id"]) == (token, "US_SSN", "e1")
    assert entry["key_id"] == private.public.key_id
    assert open_value(private, token, "US_SSN", entry["sealed"]) == SSN
    assert SSN.encode() not in entry["sealed"]
    assert SSN not in repr({k: v for k, v in entry.items() if k != "sealed"})
    # the same value in another event: the same token, its entry sent again (sealed once)
    (again,) = both.vault
    assert again["token"] == token
    assert again["event_id"] == "e5"
    assert again["sealed"] == entry["sealed"]
    # a blocked record (a leaked key beside the SSN) goes to quarantine: nothing vaulted
    blocked = vaulting.protect(lead(7, f"ssn {SSN}, key {AWS}"), event_id="e7", now=NOW)
    assert blocked.record is None
    assert blocked.vault == []
    # masked, redacted or blocked values have no way back
    assert all(
        not p.vault
        for p in vaulting.protect_many(
            [RECORDS[0], RECORDS[2], RECORDS[4]], event_ids=["a", "b", "c"], times=[NOW] * 3
        )
    )


def test_without_a_vault_key_tokens_have_no_vault_entry(stage: DlpStage) -> None:
    result = stage.protect(RECORDS[1], event_id="e1", now=NOW)
    assert result.record is not None
    assert "tok_us_ssn_" in result.record["notes"]
    assert result.vault == []


def service_stage() -> DlpStage:
    return department_stage("service", "crm.raw.service.tickets.v1", "service/TicketChanged")


def test_strings_inside_arrays_and_maps_are_protected_at_their_path() -> None:
    """A ticket's tags (an Avro array of strings) and a nested map are scanned like any
    string field: protected in place, the incident's field is the path, and the caller's
    record (its list included) is left as it was."""
    tags = ["vip", f"card {CARD}", f"ssn {SSN}"]
    record: dict[str, Any] = {"ticket_id": "T-1", "subject": "Refund", "tags": tags,
              "extra": {"note": {"inner": f"paid with {CARD}"}}}  # fmt: skip
    result = service_stage().protect(record, event_id="e1", now=NOW)
    assert result.record is not None
    out_tags = result.record["tags"]
    assert out_tags[0] == "vip"
    assert CARD not in out_tags[1]
    assert out_tags[1].endswith("6467")  # cards are masked, last four kept
    assert out_tags[2].startswith("ssn tok_us_ssn_")
    assert CARD not in result.record["extra"]["note"]["inner"]
    assert {(i["field"], i["entity"]) for i in result.incidents} == {
        ("tags.1", "CREDIT_CARD"),
        ("tags.2", "US_SSN"),
        ("extra.note.inner", "CREDIT_CARD"),
    }
    assert record["tags"] is tags
    assert tags == ["vip", f"card {CARD}", f"ssn {SSN}"]
    assert record["extra"]["note"]["inner"] == f"paid with {CARD}"
    for inc in result.incidents:
        assert CARD not in repr(inc)
        assert SSN not in repr(inc)


def test_a_secret_in_an_array_blocks_the_record() -> None:
    record = {"ticket_id": "T-2", "subject": "Keys", "tags": ["ok", f"key {AWS}"]}
    result = service_stage().protect(record, event_id="e2", now=NOW)
    assert result.record is None
    assert result.blocked == [("entity.AWS_ACCESS_KEY", "tags.1", "AWS_ACCESS_KEY")]
