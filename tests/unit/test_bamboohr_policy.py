"""HR data minimisation (policies/hr_minimisation.yaml) and the small parsers of the bamboohr
connector, without I/O beyond reading policy and schema files: a bad policy is one
ConfigError line naming the key path; the policy and the Avro schemas must agree on what
is personal; values are shaped or refused without quoting them; change-tracking entries
and timestamps are read as BambooHR writes them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.bamboohr.client import _entries, format_since, parse_timestamp
from connectors.bamboohr.policy import DEFAULT_POLICY, Minimiser, load_minimisation_policy
from connectors.bamboohr.records import shape
from connectors.bamboohr.simulator import parse_since
from hub.errors import ConfigError, FatalError
from hub.settings import REPO_ROOT

POLICY_TEXT = DEFAULT_POLICY.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hr_minimisation.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_policy_loads_and_allows_nothing_sensitive() -> None:
    policy = load_minimisation_policy()
    employees = policy.stream("employees")
    assert set(employees.from_bamboohr) >= {"id", "firstName", "workEmail"}
    for never in ("ssn", "dateOfBirth", "homePhone", "payRate", "address1", "gender"):
        assert never not in employees.from_bamboohr
    assert policy.stream("employee_erasures").personal == {}


BROKEN = [
    # (what, replace this, with this, the message names)
    (
        "unknown key",
        "      job_title: {bamboohr: jobTitle}",
        "      job_title: {bamboohr: jobTitle, masked: yes}",
        "streams.employees.fields.job_title.masked: Extra inputs are not permitted",
    ),
    (
        "personal without purpose",
        "preferred_name: {bamboohr: preferredName, personal: PERSON, purpose: shows the owner of "
        "CRM records}",
        "preferred_name: {bamboohr: preferredName, personal: PERSON}",
        "streams.employees.fields.preferred_name: a personal field needs a purpose",
    ),
    (
        "personal field not declared personal",
        "work_email: {bamboohr: workEmail, personal: EMAIL_ADDRESS, ",
        "work_email: {bamboohr: workEmail, ",
        "streams.employees.fields.work_email.personal: the schema declares pii EMAIL_ADDRESS",
    ),
    (
        "field declared personal that the schema does not",
        "      job_title: {bamboohr: jobTitle}",
        "      job_title: {bamboohr: jobTitle, personal: PERSON, purpose: why not}",
        "streams.employees.fields.job_title.personal: the schema does not declare it pii",
    ),
    (
        "widening without the schema",
        "      job_title: {bamboohr: jobTitle}",
        "      job_title: {bamboohr: jobTitle}\n      ssn: {bamboohr: ssn}",
        "streams.employees.fields.ssn: not a field of hr/EmployeeChanged",
    ),
    (
        "a wrong kind",
        "hire_date: {bamboohr: hireDate, kind: date}",
        "hire_date: {bamboohr: hireDate, kind: timestamp}",
        "streams.employees.fields.hire_date.kind: Input should be 'text' or 'date'",
    ),
    ("no version", 'version: "2026-11-30.1"\n', "", "version: Field required"),
    (
        "a key given twice",
        "      department: {bamboohr: department}",
        "      department: {bamboohr: department}\n      department: {bamboohr: division}",
        "key 'department' is given twice",
    ),
]


@pytest.mark.parametrize(("what", "old", "new", "expected"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_bad_policy_is_one_line_naming_the_key_path(
    tmp_path: Path, what: str, old: str, new: str, expected: str
) -> None:
    assert old in POLICY_TEXT, what
    path = write(tmp_path, POLICY_TEXT.replace(old, new))
    with pytest.raises(ConfigError) as caught:
        load_minimisation_policy(path)
    message = caught.value.message
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


def test_an_erasure_stream_may_not_carry_anything_personal(tmp_path: Path) -> None:
    text = POLICY_TEXT.replace(
        "      employee_id: {bamboohr: id, purpose: the record to erase}",
        "      employee_id: {bamboohr: id, purpose: the record to erase, personal: PERSON}",
    )
    with pytest.raises(ConfigError) as caught:
        load_minimisation_policy(write(tmp_path, text))
    assert "streams.employee_erasures.fields.employee_id.personal" in caught.value.message


def test_narrowing_needs_no_schema_change_and_the_field_stays_null(tmp_path: Path) -> None:
    text = POLICY_TEXT.replace(
        "      work_phone: {bamboohr: workPhone, personal: PHONE_NUMBER, purpose: routes customer "
        "calls to the owner}\n",
        "",
    )
    policy = load_minimisation_policy(write(tmp_path, text))
    minimiser = Minimiser(policy, "employees")
    source = minimiser.from_bamboohr({"id": "7", "workPhone": "+1 801-555-0100", "ssn": "x"})
    value, reasons = shape(source, minimiser.rules, {})
    assert reasons == []
    assert value["work_phone"] is None
    assert minimiser.dropped == {"workPhone": 1, "ssn": 1}


SHAPES = [
    # (field, what the source sent, published value or the rule id of the refusal)
    ("hire_date", "2021-02-03", "2021-02-03"),
    ("hire_date", "0000-00-00", None),  # BambooHR's empty date
    ("hire_date", "", None),
    ("hire_date", "31/02/2021", "hr.date"),
    ("hire_date", "2021-13-01", "hr.date"),
    ("termination_date", "TBD", "hr.date"),
    ("job_title", "  Engineer ", "Engineer"),
    ("job_title", "", None),
    ("employee_number", 42, "42"),
    ("department", {"name": "Sales"}, "hr.type"),
]


@pytest.mark.parametrize(("field", "sent", "expected"), SHAPES)
def test_values_are_shaped_or_refused_without_quoting_them(
    field: str, sent: object, expected: str | None
) -> None:
    rules = load_minimisation_policy().stream("employees")
    value, reasons = shape({"employee_id": "1", field: sent}, rules, {})
    if expected is not None and expected.startswith("hr."):
        (reason,) = reasons
        assert reason.rule_id == expected
        assert reason.field == field
        assert str(sent) not in reason.message
    else:
        assert reasons == []
        assert value[field] == expected


def test_change_entries_are_read_and_checked() -> None:
    body = {
        "latest": "2011-06-02T19:26:23+00:00",
        "employees": {
            "3": {"id": "3", "action": "Inserted", "lastChanged": "2011-06-02T19:26:23+00:00"},
            "5": {"id": "5", "action": "Deleted", "lastChanged": "2011-06-02T19:26:23Z"},
            "6": {"id": "6", "action": "Merged", "lastChanged": "2011-06-02T19:26:23+0000"},
            "7": {"id": "7", "action": "Updated", "lastChanged": "yesterday"},
        },
    }
    entries = {e.employee_id: e for e in _entries(body)}
    assert entries["3"].problem is None
    assert entries["5"].last_changed == datetime(2011, 6, 2, 19, 26, 23, tzinfo=UTC)
    assert entries["6"].problem == "bamboohr.action"
    assert entries["7"].problem == "bamboohr.last_changed"
    assert _entries({"latest": None, "employees": []}) == []  # nothing changed
    with pytest.raises(FatalError):
        _entries(["not", "an", "object"])


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2011-07-04T13:05:00-07:00", "2011-07-04T20:05:00Z"),
        ("2011-07-04T13:05:00-0700", "2011-07-04T20:05:00Z"),
        ("2011-07-04T20:05:00Z", "2011-07-04T20:05:00Z"),
        ("2011-07-04T20:05:00+00:00", "2011-07-04T20:05:00Z"),
    ],
)
def test_timestamps_in_every_documented_form(text: str, utc: str) -> None:
    parsed = parse_timestamp(text)
    assert parsed is not None
    assert format_since(parsed) == utc
    since = parse_since(text)
    assert since is not None
    assert format_since(since) == utc


@pytest.mark.parametrize("text", ["2011-07-04 13:05:00", "2011-07-04T13:05:00", "07/04/2011", ""])
def test_timestamps_without_a_zone_or_in_other_forms_are_refused(text: str) -> None:
    assert parse_timestamp(text) is None
    assert parse_since(text) is None


def test_an_erasure_stream_whose_schema_turned_personal_is_refused(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    shutil.copytree(REPO_ROOT / "schemas" / "hr", schemas / "hr")
    erased = schemas / "hr" / "EmployeeErased.avsc"
    schema = json.loads(erased.read_text(encoding="utf-8"))
    schema["fields"][0]["pii"] = "PERSON"  # employee_id declared personal
    erased.write_text(json.dumps(schema), encoding="utf-8")
    text = POLICY_TEXT.replace(
        "      employee_id: {bamboohr: id, purpose: the record to erase}",
        "      employee_id: {bamboohr: id, purpose: the record to erase, personal: PERSON}",
    )
    with pytest.raises(ConfigError) as caught:
        load_minimisation_policy(write(tmp_path, text), schemas_dir=schemas)
    assert "an erasure stream carries nothing personal" in caught.value.message
