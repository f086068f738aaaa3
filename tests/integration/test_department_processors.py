"""The service and HR chains of the processor worker (``crmhub worker processor``) on its
own broker and registry: raw tickets, employees and erasures in, as their connectors
publish them; out come clean records in the department's canonical form with what DLP
must protect protected, and quarantine records naming the broken rule — a case status
outside the CRM's list is quarantined, never coerced."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from hub import topics
from hub.broker import free_port
from hub.dlp.operators import keyring_from_master
from hub.dlp.vault import entry_key
from hub.serde import AvroCodec, load_schema_text, schema_path
from hub.settings import REPO_ROOT
from tests.integration.conftest import (
    RawPublisher,
    headers_of,
    read_topic,
    stop_process,
    wait_for,
)
from tests.integration.test_marketing_uniqueness import DLP_KEY, start_processor
from tests.integration.test_processor_worker import Stack, stack

pytestmark = pytest.mark.integration

SCHEMAS = REPO_ROOT / "schemas"
SSN = "536-22-1234"
CARD = "4539 1488 0343 6467"
_ = stack  # the processor tests' own broker and registry (a fixture, used by name)


def ticket(ticket_id: int, case_status: str, **change: Any) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "generated_timestamp": 1_764_460_800,
        "subject": f"Case {ticket_id}",
        "description": "Please refund",
        "status": "open",
        "case_status": case_status,
        "case_status_policy": "2026.12-service.1",
        "priority": "normal",
        "ticket_type": "question",
        "tags": ["billing"],
        "created_at": "2026-11-29T10:00:00Z",
        "updated_at": "2026-11-30T10:00:00Z",
        **change,
    }


def employee(employee_id: str, **change: Any) -> dict[str, Any]:
    return {
        "employee_id": employee_id,
        "change_type": "Updated",
        "source_system": "bamboohr",
        "minimisation_policy": "2026-11-30.1",
        "first_name": "Charlotte",
        "last_name": "Abbott",
        "work_email": f"E{employee_id}@Acme.example",
        "work_phone": "+1 801 555 0100",
        "job_title": "Analyst",
        "employment_status": "Active",
        "hire_date": "2016-06-12",
        **change,
    }


def decoded(stack: Stack, topic: str, schema: str) -> list[tuple[dict[str, str], Any]]:
    text = load_schema_text(schema_path(SCHEMAS, schema))
    with SchemaRegistryClient({"url": stack.registry_url}) as registry:
        codec = AvroCodec(registry, topic, text)
        return [
            (headers_of(m), codec.decode(m.value())) for m in read_topic(stack.bootstrap, topic)
        ]


def test_service_and_hr_chains(stack: Stack) -> None:
    pub = RawPublisher(stack.bootstrap, stack.registry_url)
    raw_tickets, raw_employees = topics.RAW_SERVICE_TICKETS, topics.RAW_HR_EMPLOYEES
    pub.send(raw_tickets, "service/TicketChanged", "1", ticket(1, "in progress"), 0)
    pub.send(raw_tickets, "service/TicketChanged", "2", ticket(2, "Escalated"), 0)
    pub.send(
        raw_tickets,
        "service/TicketChanged",
        "3",
        ticket(3, "Resolved", description=f"charged twice on {CARD}", priority="critical"),
        0,
    )
    pub.send(
        raw_tickets,
        "service/TicketChanged",
        "4",
        ticket(4, "Closed", description=f"my card is {CARD}"),
        0,
    )
    # an array field: a card number and an SSN in tags (a rep's shorthand)
    tags = ["billing", f"card {CARD}", f"ssn {SSN}"]
    pub.send(raw_tickets, "service/TicketChanged", "5", ticket(5, "Open", tags=tags), 0)
    # the same SSN in another ticket: the same token, another owner in the vault
    pub.send(raw_tickets, "service/TicketChanged", "6", ticket(6, "Open", tags=tags[2:]), 0)
    pub.send(raw_employees, "hr/EmployeeChanged", "10", employee("10"), 0)
    pub.send(
        raw_employees,
        "hr/EmployeeChanged",
        "11",
        employee("11", job_title=f"Analyst (SSN {SSN})"),
        0,
    )
    pub.send(raw_employees, "hr/EmployeeChanged", "12", employee("12", work_email="nope"), 0)
    # an SSN typed into a name column (declared PERSON, kept by policy): still found
    pub.send(
        raw_employees, "hr/EmployeeChanged", "14", employee("14", preferred_name=f"Kim {SSN}"), 0
    )
    pub.send(
        topics.RAW_HR_ERASURES,
        "hr/EmployeeErased",
        "13",
        {
            "employee_id": "13",
            "erased_at": "2026-11-30T09:00:00Z",
            "source_system": "bamboohr",
            "minimisation_policy": "2026-11-30.1",
        },
        0,
    )
    pub.close()

    proc = start_processor(stack, "departments", free_port())
    try:
        wait_for(
            lambda: (
                len(read_topic(stack.bootstrap, topics.CLEAN_SERVICE_TICKETS, idle=0.3)) >= 3
                and len(read_topic(stack.bootstrap, topics.CLEAN_HR_EMPLOYEES, idle=0.3)) >= 3
                and len(read_topic(stack.bootstrap, topics.CLEAN_HR_ERASURES, idle=0.3)) >= 1
            ),
            timeout=90,
            interval=1,
        )
    finally:
        log = (stack.home / "departments.log").read_bytes().decode(errors="replace")
        assert stop_process(proc) == 0, log[-3000:]

    tickets = {
        v["ticket_id"]: (h, v)
        for h, v in decoded(stack, topics.CLEAN_SERVICE_TICKETS, "service/TicketChanged")
    }
    assert set(tickets) == {1, 4, 5, 6}
    headers, one = tickets[1]
    assert one["case_status"] == "In Progress"  # the canonical spelling of the list
    assert headers["ce_type"] == "crm.service.ticket.validated.v1"
    assert "-service.1-hr.1" in headers["hub_policy_version"]
    assert CARD not in tickets[4][1]["description"]
    assert tickets[4][1]["description"].endswith("6467")  # masked, last four kept
    five = tickets[5][1]["tags"]
    assert five[0] == "billing"
    assert CARD not in five[1]
    assert five[1].endswith("6467")
    assert five[2].startswith("ssn tok_us_ssn_")
    incidents = decoded(stack, topics.DLP_INCIDENTS, "dlp/DlpIncident")
    assert {(i["field"], i["entity"]) for _, i in incidents if i["department"] == "service"} >= {
        ("tags.1", "CREDIT_CARD"),
        ("tags.2", "US_SSN"),
    }

    # The token's vault entries: one key per owner (the ticket), each the token and the
    # keyed digest of the processor flow and the subject (`hub.dlp.vault.entry_key`), so
    # erasing one owner's entry never deletes the other's.
    token = five[2].removeprefix("ssn ")
    assert tickets[6][1]["tags"] == [f"ssn {token}"]
    keys = keyring_from_master(DLP_KEY.encode())
    vault_records = [
        ((m.key() or b"").decode(), headers_of(m))
        for m in read_topic(stack.bootstrap, topics.DLP_VAULT, idle=0.3)
    ]
    vaulted = {
        key: (headers["ce_source"], headers["ce_subject"])
        for key, headers in vault_records
        if key.startswith(token)
    }
    assert sorted(subject for _, subject in vaulted.values()) == ["5", "6"]
    for key, (source, subject) in vaulted.items():
        assert key == entry_key(keys, token, source, subject)

    employees = {
        v["employee_id"]: v
        for _, v in decoded(stack, topics.CLEAN_HR_EMPLOYEES, "hr/EmployeeChanged")
    }
    assert set(employees) == {"10", "11", "14"}
    assert employees["10"]["work_email"] == "E10@acme.example"  # normalised, kept (policy)
    assert employees["10"]["first_name"] == "Charlotte"  # the employee's own name: kept
    assert SSN not in employees["11"]["job_title"]
    assert "enc:v1:" in employees["11"]["job_title"]  # national ids of HR: encrypted
    assert employees["14"]["preferred_name"].startswith("Kim enc:v1:")
    assert employees["14"]["first_name"] == "Charlotte"
    [(_, erasure)] = decoded(stack, topics.CLEAN_HR_ERASURES, "hr/EmployeeErased")
    assert erasure["employee_id"] == "13"

    quarantined = {
        (q["department"], q["entity_id"]): [r["rule_id"] for r in q["reasons"]]
        for _, q in decoded(stack, topics.QUARANTINE, "common/QuarantineRecord")
        if q["department"] in ("service", "hr")
    }
    assert quarantined == {
        ("service", "2"): ["service.case_status.enum"],  # never coerced to a near value
        ("service", "3"): ["service.priority.enum"],
        ("hr", "12"): ["hr.work_email.format"],
    }
    # Nothing sensitive in clear on any output.
    clean = (topics.CLEAN_SERVICE_TICKETS, topics.CLEAN_HR_EMPLOYEES)
    for topic in (topics.QUARANTINE, topics.DLP_INCIDENTS, *clean):
        for m in read_topic(stack.bootstrap, topic, idle=0.3):
            assert CARD.encode() not in (m.value() or b"")
            assert SSN.encode() not in (m.value() or b"")
