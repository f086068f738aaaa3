"""The BambooHR simulator answers as BambooHR documents its API (documentation.bamboohr.com:
Technical Overview, Get Changed Employee IDs, Get Employee, Request Custom Report, Planned
Changes to the API), checked with a plain HTTP client the way the docs' examples call it.

There is no widely used, maintained Python client for BambooHR that could be installed here
(BambooHR's own generated SDK, ``bamboohr-sdk``, is not on the package index this project
uses), so the documented requests, status codes, headers and JSON shapes are the reference:
the change-tracking response is validated against a model of the documented sample (the
same fields and types as the official SDK's ``ChangedEmployeeIdsResponse``)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Literal
from xml.etree import ElementTree as ET

import httpx
import pytest
from pydantic import BaseModel, ConfigDict

from connectors.bamboohr.simdata import generate_company
from connectors.bamboohr.simulator import ERROR_HEADER, Faults, Simulator, SimulatorServer

pytestmark = pytest.mark.integration

KEY = "docs-key"


class ChangedEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    action: Literal["Inserted", "Updated", "Deleted"]
    lastChanged: datetime


class ChangedEmployeeIds(BaseModel):
    """The documented sample: ``latest`` and an ``employees`` map keyed by id."""

    model_config = ConfigDict(extra="forbid")
    latest: datetime
    employees: dict[str, ChangedEntry]


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    company = generate_company(seed=3, count=30)
    sim = Simulator(company, api_keys={KEY: "ok", "gone": "revoked", "viewer": "denied"})
    with SimulatorServer(sim).running() as srv:
        yield srv


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    """As the docs call it: Basic auth with the key as user name and 'x' as password."""
    server.simulator.faults = Faults()
    with httpx.Client(
        base_url=server.gateway_url(), auth=(KEY, "x"), headers={"Accept": "application/json"}
    ) as client:
        yield client


def test_changed_employee_ids_match_the_documented_sample(api: httpx.Client) -> None:
    answer = api.get("v1/employees/changed", params={"since": "2011-06-02T19:26:23Z"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    body = ChangedEmployeeIds.model_validate(answer.json())
    assert body.employees
    for key, entry in body.employees.items():
        assert key == entry.id
        assert entry.lastChanged.utcoffset() is not None
    assert body.latest == max(e.lastChanged for e in body.employees.values())
    # timestamps as the sample writes them: 2011-06-02T19:26:23+00:00
    first = next(iter(answer.json()["employees"].values()))
    assert first["lastChanged"].endswith("+00:00")


@pytest.mark.parametrize(
    "since",
    [
        "2011-06-02T19:26:23+00:00",
        "2011-06-02T19:26:23-07:00",
        "2011-06-02T19:26:23+0000",
        "2011-06-02T19:26:23-0700",
        "2011-06-02T19:26:23Z",
    ],
)
def test_the_five_documented_since_forms_are_accepted(api: httpx.Client, since: str) -> None:
    # httpx encodes '+' as %2B, as the docs ask
    assert api.get("v1/employees/changed", params={"since": since}).status_code == 200


def test_a_since_with_a_raw_plus_or_none_at_all_is_a_400_with_the_error_header(
    api: httpx.Client,
) -> None:
    raw_plus = api.get("v1/employees/changed?since=2011-06-02T19:26:23+00:00")  # '+' = ' '
    missing = api.get("v1/employees/changed")
    for answer in (raw_plus, missing):
        assert answer.status_code == 400
        assert answer.headers[ERROR_HEADER]
        assert answer.content == b""


def test_type_filters_the_change_kind(api: httpx.Client) -> None:
    since = {"since": "2000-01-01T00:00:00Z"}
    deleted = api.get("v1/employees/changed", params={**since, "type": "deleted"}).json()
    assert deleted["employees"]
    assert {e["action"] for e in deleted["employees"].values()} == {"Deleted"}
    assert api.get("v1/employees/changed", params={**since, "type": "hired"}).status_code == 400


def test_xml_is_the_default_without_an_accept_header(server: SimulatorServer) -> None:
    with httpx.Client(base_url=server.gateway_url(), auth=(KEY, "x")) as client:
        answer = client.get("v1/employees/changed", params={"since": "2000-01-01T00:00:00Z"})
        employee = client.get("v1/employees/100", params={"fields": "firstName"})
    assert answer.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(answer.content)
    assert root.tag == "employees"
    tags = list(root)
    assert tags
    assert {"id", "action", "lastChanged"} <= set(tags[0].attrib)
    fields = ET.fromstring(employee.content)
    assert fields.tag == "employee"
    assert fields.attrib["id"] == "100"
    assert [f.attrib["id"] for f in fields] == ["firstName"]


def test_get_employee_returns_the_id_and_the_fields_asked_for(api: httpx.Client) -> None:
    only_id = api.get("v1/employees/100").json()
    assert only_id == {"id": "100"}
    asked = api.get(
        "v1/employees/100",
        params={"fields": "firstName,lastName,noSuchField", "onlyCurrent": "true"},
    ).json()
    assert set(asked) == {"id", "firstName", "lastName"}  # unknown fields silently dropped
    assert api.get("v1/employees/0").json() == {"id": "0"}  # the key's own employee: none
    missing = api.get("v1/employees/99999")
    assert missing.status_code == 404
    assert missing.headers[ERROR_HEADER]


def test_basic_auth_takes_the_key_as_user_name_and_any_password(server: SimulatorServer) -> None:
    url = server.gateway_url() + "v1/employees/100"
    accept = {"Accept": "application/json"}
    assert httpx.get(url, auth=(KEY, "anything"), headers=accept).status_code == 200
    refused = {
        "no credentials": httpx.get(url, headers=accept),
        "key as password": httpx.get(url, auth=("x", KEY), headers=accept),
        "revoked key": httpx.get(url, auth=("gone", "x"), headers=accept),
    }
    for name, answer in refused.items():
        assert answer.status_code == 401, name
        assert answer.headers[ERROR_HEADER], name
    forbidden = httpx.get(url, auth=("viewer", "x"), headers=accept)
    assert forbidden.status_code == 403


def test_both_documented_url_forms_serve_the_company(server: SimulatorServer) -> None:
    params = {"since": "2000-01-01T00:00:00Z"}
    accept = {"Accept": "application/json"}
    gateway = httpx.get(
        server.gateway_url() + "v1/employees/changed",
        params=params,
        auth=(KEY, "x"),
        headers=accept,
    )
    host_form = httpx.get(
        server.url + "/api/v1/employees/changed", params=params, auth=(KEY, "x"), headers=accept
    )
    assert gateway.json() == host_form.json()
    other = httpx.get(
        server.url + "/api/gateway.php/other/v1/employees/changed",
        params=params,
        auth=(KEY, "x"),
        headers=accept,
    )
    assert other.status_code == 404


@pytest.mark.parametrize("status", [429, 503])
def test_a_rate_limited_request_answers_with_retry_after_in_seconds(
    server: SimulatorServer, api: httpx.Client, status: int
) -> None:
    server.simulator.faults = Faults(rate_limit=1, rate_window=30, rate_status=status)
    assert api.get("v1/employees/100").status_code == 200
    limited = api.get("v1/employees/100")
    assert limited.status_code == status
    assert 1 <= int(limited.headers["Retry-After"]) <= 30
    assert limited.headers[ERROR_HEADER]


def test_a_custom_report_filtered_on_last_changed(api: httpx.Client) -> None:
    answer = api.post(
        "v1/reports/custom",
        params={"format": "JSON"},
        json={
            "title": "Changed",
            "fields": ["firstName", "department", "lastChanged"],
            "filters": {"lastChanged": {"includeNull": "no", "value": "2000-01-01T00:00:00Z"}},
        },
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"title", "fields", "employees"}
    assert [f["id"] for f in body["fields"]] == ["firstName", "department", "lastChanged"]
    assert {"id", "firstName", "department", "lastChanged"} == set(body["employees"][0])
