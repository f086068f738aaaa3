"""Loading policies/validation.yaml (hub.policies): the real file loads and fits the Lead
schema; a bad file is a ConfigError of one line naming the file and the key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.errors import ConfigError
from hub.policies import (
    RULE_KINDS,
    DepartmentRules,
    PhoneRule,
    RequiredRule,
    ValidationPolicy,
    load_validation_policy,
)
from hub.processors.rules import Validator

REPO = Path(__file__).resolve().parents[2]
POLICY = REPO / "policies" / "validation.yaml"


# -- the real policy ----------------------------------------------------------------------------


def test_the_real_policy_loads() -> None:
    policy = load_validation_policy(POLICY)
    assert isinstance(policy, ValidationPolicy)
    assert policy.version
    assert set(policy.departments) == {
        "sales",
        "marketing",
        "marketing_email_events",
        "service",
        "hr",
        "hr_erasures",
    }
    assert Validator(policy, "sales").policy_version == policy.version


def test_marketing_output_is_exactly_the_contact_schema() -> None:
    schema = json.loads((REPO / "schemas" / "marketing" / "Contact.avsc").read_text())
    marketing = load_validation_policy(POLICY).departments["marketing"]
    assert marketing.output_fields == tuple(f["name"] for f in schema["fields"])


@pytest.mark.parametrize(
    ("contact", "rules"),
    [
        ({"contact_id": "1", "email": "ada@example.com"}, []),
        ({"contact_id": "1", "email": "Ada.L@Example.COM"}, []),  # valid; domain normalised
        ({"contact_id": "1", "email": None}, ["marketing.email.required"]),
        ({"contact_id": "1", "email": "  "}, ["marketing.email.required"]),
        ({"contact_id": "1", "email": "ada-at-example.com"}, ["marketing.email.format"]),
        ({"contact_id": "1", "email": "ada@example"}, ["marketing.email.format"]),
        ({"contact_id": None, "email": "ada@example.com"}, ["marketing.contact_id.required"]),
        (
            {"contact_id": "1", "email": "a" * 250 + "@example.com"},
            ["marketing.email.max_length", "marketing.email.format"],
        ),
        (
            {"contact_id": "1", "email": "ada@example.com", "company": "C" * 256},
            ["marketing.company.max_length"],
        ),
    ],
)
def test_marketing_rules_of_the_crm_guide(contact: dict[str, object], rules: list[str]) -> None:
    """Marketing: e-mail required and valid (uniqueness is the processor's table, see
    tests/integration/test_marketing_uniqueness.py), plus the CRM's column sizes."""
    decision = Validator(load_validation_policy(POLICY), "marketing").validate(contact)
    assert [r.rule_id for r in decision.reasons] == rules
    assert decision.valid == (not rules)
    if decision.valid:
        assert decision.record is not None
        assert decision.record["email"] == str(contact["email"]).rsplit("@", 1)[0] + "@" + (
            str(contact["email"]).rsplit("@", 1)[1].lower()
        )


@pytest.mark.parametrize(
    ("department", "schema"),
    [
        ("sales", "sales/Lead"),
        ("marketing", "marketing/Contact"),
        ("marketing_email_events", "marketing/EmailEvent"),
        ("service", "service/TicketChanged"),
        ("hr", "hr/EmployeeChanged"),
        ("hr_erasures", "hr/EmployeeErased"),
    ],
)
def test_each_department_outputs_exactly_its_clean_schema(department: str, schema: str) -> None:
    fields = json.loads((REPO / "schemas" / f"{schema}.avsc").read_text())["fields"]
    rules = load_validation_policy(POLICY).departments[department]
    assert rules.output_fields == tuple(f["name"] for f in fields)
    # A non-null string field the validator could blank out has a required rule.
    required = {r.field for r in rules.rules if isinstance(r, RequiredRule)}
    must = {f["name"] for f in fields if f["type"] == "string"}
    assert must <= required, f"{department}: no required rule for {sorted(must - required)}"


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({}, []),
        ({"type": "click"}, []),
        ({"type": "LIKE"}, ["marketing_email_events.type.enum"]),
        ({"recipient": "ada-at-example"}, ["marketing_email_events.recipient.format"]),
        ({"recipient": None}, []),  # UNBOUNCE events carry none
        ({"event_id": " "}, ["marketing_email_events.event_id.required"]),
        ({"created_at": None}, ["marketing_email_events.created_at.required"]),
        ({"url": "https://x.example/" + "a" * 2048}, ["marketing_email_events.url.max_length"]),
    ],
)
def test_marketing_email_event_rules(change: dict[str, object], rules: list[str]) -> None:
    """Campaign e-mail events (attribution's touches): a known type, a recipient that is an
    address (the link to the contact), the event's id and time."""
    event = {
        "event_id": "e-1",
        "type": "OPEN",
        "created_at": 1_764_460_800_000,
        "recipient": "Ada@Example.COM",
        "email_campaign_id": 1_000_001,
        "url": None,
    }
    policy = load_validation_policy(POLICY)
    decision = Validator(policy, "marketing_email_events").validate({**event, **change})
    assert [r.rule_id for r in decision.reasons] == rules
    if not rules:
        assert decision.record is not None
        assert decision.record["type"] in ("OPEN", "CLICK")  # the canonical spelling
        if decision.record["recipient"]:
            assert decision.record["recipient"] == "Ada@example.com"


TICKET = {
    "ticket_id": 35436,
    "generated_timestamp": 1764460800,
    "status": "open",
    "case_status": "In Progress",
    "case_status_policy": "2026.12-service.1",
    "subject": "Printer on fire",
    "priority": "high",
    "ticket_type": "incident",
    "tags": ["printer"],
    "created_at": "2026-11-29T10:00:00Z",
    "updated_at": "2026-11-30T10:00:00Z",
}


@pytest.mark.parametrize(
    ("change", "rules", "canonical"),
    [
        ({}, [], {"case_status": "In Progress"}),
        ({"case_status": "resolved"}, [], {"case_status": "Resolved"}),  # canonical spelling
        ({"case_status": "WAITING ON CUSTOMER"}, [], {"case_status": "Waiting on Customer"}),
        ({"case_status": "Escalated"}, ["service.case_status.enum"], None),
        ({"case_status": "Solved"}, ["service.case_status.enum"], None),  # Zendesk's, not ours
        ({"case_status": None}, ["service.case_status.required"], None),
        ({"case_status": " "}, ["service.case_status.required"], None),
        ({"status": None}, ["service.status.required"], None),
        ({"ticket_id": None}, ["service.ticket_id.required"], None),
        ({"updated_at": ""}, ["service.updated_at.required"], None),
        ({"subject": "S" * 256}, ["service.subject.max_length"], None),
        ({"subject": "S" * 255}, [], {"subject": "S" * 255}),
        ({"priority": "URGENT"}, [], {"priority": "urgent"}),
        ({"priority": "critical"}, ["service.priority.enum"], None),
        ({"priority": None, "ticket_type": None}, [], {"priority": None}),
        ({"ticket_type": "bug"}, ["service.ticket_type.enum"], None),
        (
            {"case_status": "Done", "ticket_type": "bug"},
            ["service.case_status.enum", "service.ticket_type.enum"],
            None,
        ),
    ],
)
def test_service_rules_of_the_crm_guide(
    change: dict[str, object], rules: list[str], canonical: dict[str, object] | None
) -> None:
    """Service: a case status must be one of the predefined values (CRM guide), in its
    canonical spelling; required fields, lengths, and Zendesk's own enums."""
    decision = Validator(load_validation_policy(POLICY), "service").validate({**TICKET, **change})
    assert [r.rule_id for r in decision.reasons] == rules
    assert decision.valid == (not rules)
    if canonical is not None:
        assert decision.record is not None
        assert {k: decision.record[k] for k in canonical} == canonical
        assert decision.record["tags"] == ["printer"]


EMPLOYEE = {
    "employee_id": "4",
    "change_type": "Updated",
    "source_system": "bamboohr",
    "minimisation_policy": "2026-11-30.1",
    "first_name": "Charlotte",
    "last_name": "Abbott",
    "work_email": "cabbott@Efficient.example",
    "employment_status": "Active",
    "hire_date": "2016-06-12",
}


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({}, []),
        ({"employee_id": None}, ["hr.employee_id.required"]),
        ({"last_name": "  "}, ["hr.last_name.required"]),
        ({"change_type": "Deleted"}, ["hr.change_type.enum"]),  # deletions are erasures
        ({"change_type": "exported"}, []),
        ({"minimisation_policy": None}, ["hr.minimisation_policy.required"]),
        ({"work_email": "cabbott-at-efficient"}, ["hr.work_email.format"]),
        ({"work_email": None}, []),  # not every employee has a work address
        ({"first_name": "F" * 101}, ["hr.first_name.max_length"]),
        ({"job_title": "T" * 129}, ["hr.job_title.max_length"]),
        ({"employment_status": "On leave"}, ["hr.employment_status.enum"]),
        ({"employee_id": "9" * 65}, ["hr.employee_id.max_length"]),
    ],
)
def test_hr_rules(change: dict[str, object], rules: list[str]) -> None:
    """HR: required fields, the CRM's column sizes, a valid work e-mail (normalised),
    and the source's enums."""
    decision = Validator(load_validation_policy(POLICY), "hr").validate({**EMPLOYEE, **change})
    assert [r.rule_id for r in decision.reasons] == rules
    if not rules:
        assert decision.record is not None
        if decision.record["work_email"] is not None:
            assert decision.record["work_email"] == "cabbott@efficient.example"


@pytest.mark.parametrize(
    ("change", "rules"),
    [
        ({}, []),
        ({"employee_id": ""}, ["hr_erasures.employee_id.required"]),
        ({"erased_at": None}, ["hr_erasures.erased_at.required"]),
    ],
)
def test_hr_erasure_rules(change: dict[str, object], rules: list[str]) -> None:
    erasure = {
        "employee_id": "4",
        "erased_at": "2026-11-30T08:00:00Z",
        "source_system": "bamboohr",
        "minimisation_policy": "2026-11-30.1",
    }
    decision = Validator(load_validation_policy(POLICY), "hr_erasures").validate(
        {**erasure, **change}
    )
    assert [r.rule_id for r in decision.reasons] == rules


def test_service_case_statuses_are_the_ticketing_policys(tmp_path: Path) -> None:
    """The enum of validation.yaml and case_status.yaml's case_statuses are one list: the
    real files agree, and a difference is a ConfigError at start naming both files."""
    from hub.processors.validation import check_case_statuses

    check_case_statuses(REPO / "policies")  # the real files agree
    for name in ("validation.yaml", "case_status.yaml"):
        (tmp_path / name).write_text((REPO / "policies" / name).read_text())
    case_status = tmp_path / "case_status.yaml"
    case_status.write_text(
        case_status.read_text().replace(
            "case_statuses: [Open, In Progress, Waiting on Customer, Resolved, Closed]",
            "case_statuses: [Open, In Progress, Waiting on Customer, Resolved, Closed, Escalated]",
        )
    )
    with pytest.raises(ConfigError, match=r"service\.case_status\.enum lists .* must be the same"):
        check_case_statuses(tmp_path)


def test_sales_output_is_exactly_the_lead_schema() -> None:
    schema = json.loads((REPO / "schemas" / "sales" / "Lead.avsc").read_text())
    sales = load_validation_policy(POLICY).departments["sales"]
    assert sales.output_fields == tuple(f["name"] for f in schema["fields"])


def test_sales_rules_follow_the_crm_guide() -> None:
    sales = load_validation_policy(POLICY).departments["sales"]
    required = {r.field for r in sales.rules if isinstance(r, RequiredRule)}
    assert {"lead_id", "last_name"} <= required
    [phone] = [r for r in sales.rules if isinstance(r, PhoneRule)]
    assert (phone.id, phone.field, phone.default_region) == ("sales.phone.format", "phone", "US")
    assert (phone.e164_field, phone.display_field) == ("phone_e164", "phone_display")
    by_field = {(r.kind, r.field) for r in sales.rules}
    assert {("email", "email"), ("date", "created_on"), ("country", "country")} <= by_field
    # every field the rules read comes from the raw lead, every field they write is in Lead
    raw = json.loads((REPO / "schemas" / "sales" / "LeadCaptured.avsc").read_text())
    raw_fields = {f["name"] for f in raw["fields"]}
    assert {r.field for r in sales.rules} <= raw_fields
    assert {phone.e164_field, phone.display_field} <= set(sales.output_fields)


def test_rule_ids_are_unique_and_kinds_known() -> None:
    sales = load_validation_policy(POLICY).departments["sales"]
    ids = [r.id for r in sales.rules]
    assert len(ids) == len(set(ids))
    assert all(rule_id.startswith("sales.") for rule_id in ids)
    assert {r.kind for r in sales.rules} <= RULE_KINDS


def test_policy_models_are_frozen() -> None:
    policy = load_validation_policy(POLICY)
    with pytest.raises(ValidationError, match="frozen"):
        policy.version = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        policy.departments["sales"].rules[0].field = "x"  # type: ignore[misc]


# -- bad policy files ---------------------------------------------------------------------------

GOOD_RULES = """\
      - {id: s.lead_id.required, kind: required, field: lead_id}
      - {id: s.company.max_length, kind: max_length, field: company, max: 10}
"""


def policy_text(rules: str = GOOD_RULES, *, head: str = 'version: "1"\n') -> str:
    return (
        f"{head}departments:\n  sales:\n    output_fields: [lead_id, company]\n    rules:\n{rules}"
    )


BAD_FILES: list[tuple[str, str, str]] = [
    # (case, file text, the line after "<path>: ")
    (
        "wrong type",
        policy_text(GOOD_RULES + "      - {id: s.a.m, kind: max_length, field: a, max: ten}\n"),
        "departments.sales.rules[2].max: Input should be a valid integer",
    ),
    (
        "number as text",
        policy_text("      - {id: s.a.m, kind: max_length, field: a, max: '10'}\n"),
        "departments.sales.rules[0].max: Input should be a valid integer",
    ),
    (
        "non-positive max",
        policy_text("      - {id: s.a.m, kind: max_length, field: a, max: 0}\n"),
        "departments.sales.rules[0].max: Input should be greater than 0",
    ),
    (
        "unknown rule kind",
        policy_text("      - {id: s.a.r, kind: regex, field: a, pattern: x}\n"),
        "departments.sales.rules[0]: unknown rule kind 'regex' (known: country, date, email, "
        "enum, max_length, phone, required)",
    ),
    (
        "rule without kind",
        policy_text("      - {id: s.a.r, field: a}\n"),
        "departments.sales.rules[0]: the rule has no 'kind' (one of: country, date, email, "
        "enum, max_length, phone, required)",
    ),
    (
        "unknown key in a rule",
        policy_text("      - {id: s.a.m, kind: max_length, field: a, maximum: 3, max: 3}\n"),
        "departments.sales.rules[0].maximum: Extra inputs are not permitted",
    ),
    (
        "unknown key in a department",
        policy_text().replace("    rules:\n", "    rule_set: []\n    rules:\n"),
        "departments.sales.rule_set: Extra inputs are not permitted",
    ),
    (
        "unknown top-level key",
        policy_text() + "departmens: {}\n",
        "departmens: Extra inputs are not permitted",
    ),
    ("missing version", policy_text(head=""), "version: Field required"),
    (
        "version not text",
        policy_text(head="version: 1\n"),
        "version: Input should be a valid string",
    ),
    ("empty version", policy_text(head='version: ""\n'), "version: String should have at least 1"),
    (
        "missing output fields",
        policy_text().replace("    output_fields: [lead_id, company]\n", ""),
        "departments.sales.output_fields: Field required",
    ),
    (
        "output field twice",
        policy_text().replace("[lead_id, company]", "[lead_id, company, lead_id]"),
        "departments.sales.output_fields: fields listed twice: lead_id",
    ),
    (
        "field name not canonical",
        policy_text("      - {id: s.a.r, kind: required, field: Last Name}\n"),
        "departments.sales.rules[0].field: String should match pattern",
    ),
    (
        "bad rule id",
        policy_text("      - {id: required, kind: required, field: a}\n"),
        "departments.sales.rules[0].id: String should match pattern",
    ),
    (
        "rule id used twice",
        policy_text(GOOD_RULES + "      - {id: s.lead_id.required, kind: required, field: x}\n"),
        "departments.sales.rules[2].id: rule id 's.lead_id.required' is used twice",
    ),
    (
        "bad department name",
        policy_text().replace("  sales:", "  Sales Team:"),
        "departments.Sales Team: bad name: String should match pattern",
    ),
    (
        "unknown phone region",
        policy_text("      - {id: s.p.f, kind: phone, field: phone, default_region: XX}\n"),
        "departments.sales.rules[0].default_region: not a region phonenumbers knows",
    ),
    (
        "phone region in lower case",
        policy_text("      - {id: s.p.f, kind: phone, field: phone, default_region: us}\n"),
        "departments.sales.rules[0].default_region: String should match pattern",
    ),
    (
        "phone without default region",
        policy_text("      - {id: s.p.f, kind: phone, field: phone}\n"),
        "departments.sales.rules[0].default_region: Field required",
    ),
    (
        "bool as text",
        policy_text(
            "      - {id: s.p.f, kind: phone, field: p, default_region: US, require_nanp: 'yes'}\n"
        ),
        "departments.sales.rules[0].require_nanp: Input should be a valid boolean",
    ),
    (
        "enum values that differ only in case",
        policy_text("      - {id: s.s.e, kind: enum, field: s, values: [Open, OPEN]}\n"),
        "departments.sales.rules[0].values: values must differ from one another",
    ),
    (
        "empty enum",
        policy_text("      - {id: s.s.e, kind: enum, field: s, values: []}\n"),
        "departments.sales.rules[0].values: Tuple should have at least 1 item",
    ),
    (
        "bad YAML",
        'version: "1"\ndepartments:\n  sales: {output_fields: [a\n',
        "line 4, column 1: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "tab indentation",
        'version: "1"\ndepartments:\n\tsales: {}\n',
        "line 3, column 1: found character '\\t' that cannot start any token",
    ),
    (
        "key given twice",
        'version: "1"\nversion: "2"\ndepartments: {}\n',
        "line 2, column 1: key 'version' is given twice",
    ),
    (
        "list as a key",
        'version: "1"\n? [a, b]\n: c\ndepartments: {}\n',
        "line 2, column 3: a key must be a plain value",
    ),
    ("top level is a list", "- version: 1\n", "the top level must be a mapping"),
    ("empty file", "", "the top level must be a mapping"),
]


@pytest.mark.parametrize(("case", "text", "expected"), BAD_FILES, ids=[c for c, _, _ in BAD_FILES])
def test_a_bad_policy_file_is_one_clear_line(
    tmp_path: Path, case: str, text: str, expected: str
) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_validation_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message
    assert "Traceback" not in message
    assert "errors.pydantic.dev" not in message
    # no chained pydantic/yaml traceback under the one line
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_several_problems_are_counted_and_all_kept_for_the_log(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text(
        policy_text(
            "      - {id: s.a.m, kind: max_length, field: a, max: ten}\n"
            "      - {id: s.a.r, kind: regex, field: a}\n"
            "      - {id: s.a.n, kind: required, field: a, extra: 1}\n",
            head="",
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_validation_policy(path)
    assert str(caught.value) == f"{path}: version: Field required (and 3 more)"
    assert caught.value.internal is not None
    assert caught.value.internal.splitlines() == [
        f"{path}: version: Field required",
        f"{path}: departments.sales.rules[0].max: Input should be a valid integer",
        f"{path}: departments.sales.rules[1]: unknown rule kind 'regex' (known: country, date, "
        "email, enum, max_length, phone, required)",
        f"{path}: departments.sales.rules[2].extra: Extra inputs are not permitted",
    ]


def test_a_missing_policy_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot read the policy file"):
        load_validation_policy(path)


def test_a_policy_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_bytes(b'version: "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_validation_policy(path)


def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text("version: !!python/object/apply:os.getcwd []\ndepartments: {}\n")
    with pytest.raises(
        ConfigError, match=r"line 1, column 10: .*could not determine a constructor"
    ):
        load_validation_policy(path)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text(
        policy_text(
            "      - &base {id: s.a.m, kind: max_length, field: a, max: 3}\n"
            "      - {<<: *base, id: s.b.m, field: b}\n"
        ),
        encoding="utf-8",
    )
    rules = load_validation_policy(path).departments["sales"].rules
    assert [(r.id, r.field, r.kind) for r in rules] == [
        ("s.a.m", "a", "max_length"),
        ("s.b.m", "b", "max_length"),
    ]


def test_a_minimal_policy_with_every_rule_kind_loads(tmp_path: Path) -> None:
    path = tmp_path / "validation.yaml"
    path.write_text(
        policy_text(
            "      - {id: s.a.required, kind: required, field: a}\n"
            "      - {id: s.a.max_length, kind: max_length, field: a, max: 3}\n"
            "      - {id: s.e.email, kind: email, field: e, allow_smtputf8: false}\n"
            "      - {id: s.p.phone, kind: phone, field: p, default_region: GB,\n"
            "         require_nanp: true}\n"
            "      - {id: s.d.date, kind: date, field: d}\n"
            "      - {id: s.s.enum, kind: enum, field: s, values: [Open, In Progress, Resolved]}\n"
            "      - {id: s.c.country, kind: country, field: c}\n"
        ),
        encoding="utf-8",
    )
    department = load_validation_policy(path).departments["sales"]
    assert isinstance(department, DepartmentRules)
    assert [r.kind for r in department.rules] == [
        "required",
        "max_length",
        "email",
        "phone",
        "date",
        "enum",
        "country",
    ]
    assert {r.kind for r in department.rules} == RULE_KINDS
