from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.errors import SchemaError
from hub.events import EventMeta, deterministic_id, format_time, parse_time

META = EventMeta(
    id="e-1",
    source="urn:crm-hub:connector:sales-leads",
    type="crm.sales.lead.captured.v1",
    subject="L-1",
    time=datetime(2026, 11, 24, 12, 0, 0, 123000, tzinfo=UTC),
    lineage={"hub_connector": "sales-leads", "hub_department": "sales"},
)


def test_headers_round_trip_in_binary_mode() -> None:
    headers = META.to_headers()
    names = [k for k, _ in headers]
    for required in ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "content-type"):
        assert required in names
    assert dict(headers)["ce_specversion"] == b"1.0"
    assert dict(headers)["content-type"] == b"application/avro"
    assert EventMeta.from_headers(headers) == META


def test_missing_cloudevents_header_is_a_schema_error_naming_it() -> None:
    headers = [(k, v) for k, v in META.to_headers() if k != "ce_type"]
    with pytest.raises(SchemaError, match="ce_type"):
        EventMeta.from_headers(headers)


def test_derived_event_keeps_subject_and_lineage_and_gets_a_stable_new_id() -> None:
    a = META.derive(type="crm.sales.lead.validated.v1", hub_policy_version="7")
    b = META.derive(type="crm.sales.lead.validated.v1", hub_policy_version="7")
    assert a.id == b.id != META.id
    assert a.subject == META.subject
    assert a.lineage["hub_connector"] == "sales-leads"
    assert a.lineage["hub_policy_version"] == "7"


def test_deterministic_ids_depend_on_every_part_unambiguously() -> None:
    assert deterministic_id("a", "b") == deterministic_id("a", "b")
    assert deterministic_id("a", "b") != deterministic_id("ab", "")
    assert deterministic_id("f.csv", "1") != deterministic_id("f.csv", "2")


def test_times_are_rfc3339_utc() -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert format_time(t) == "2026-01-02T03:04:05Z"
    assert parse_time("2026-01-02T03:04:05Z") == t


@pytest.mark.parametrize("parts", [("a",), ("sales-leads", "f.csv@abc:42"), ("é", "☎", "")])
def test_deterministic_id_is_the_rfc4122_version_5_uuid(parts: tuple[str, ...]) -> None:
    import uuid

    from hub.events import _NAMESPACE

    assert deterministic_id(*parts) == str(uuid.uuid5(_NAMESPACE, "\x1f".join(parts)))
