"""The processor's envelope shortcut (hub.processors.envelope) against the EventMeta path it
replaces: the same derived headers and the same EventMeta for every shape of input envelope,
and bad envelopes refused with a SchemaError (quarantine), never another exception."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from hub.errors import SchemaError
from hub.events import EventMeta, Headers
from hub.processors.envelope import EnvelopeReader

# What EnvelopeReader.read() and EventMeta.from_headers() take: values may be str or None.
InputHeaders = Sequence[tuple[str, bytes | str | None]]

BASE: Headers = [
    ("ce_specversion", b"1.0"),
    ("ce_source", b"urn:crm-hub:connector:sheet"),
    ("ce_type", b"crm.sales.lead.captured.v1"),
    ("content-type", b"application/avro"),
    ("hub_connector", b"sheet"),
    ("hub_department", b"sales"),
    ("ce_id", b"d27987b0-1654-5c74-a06c-72f142cd71f6"),
    ("ce_time", b"2026-11-30T11:56:49.000581Z"),
    ("ce_subject", b"L-1"),
    ("hub_source_record_id", b"leads.csv@ff52:8"),
    ("hub_trace_id", b"d27987b0-1654-5c74-a06c-72f142cd71f6"),
]


def without(*names: str) -> Headers:
    return [(k, v) for k, v in BASE if k not in names]


def replaced(name: str, value: bytes | None) -> InputHeaders:
    return [(k, value if k == name else v) for k, v in BASE]


ENVELOPES: dict[str, InputHeaders] = {
    "connector": BASE,
    "no subject": without("ce_subject"),
    "no content type": without("content-type"),
    "time with offset": replaced("ce_time", b"2026-11-30T12:56:49+01:00"),
    "time without fraction": replaced("ce_time", b"2026-11-30T11:56:49Z"),
    "naive time": replaced("ce_time", b"2026-11-30T11:56:49"),
    "re-driven (policy version present)": [*BASE, ("hub_policy_version", b"sales-2023")],
    "name given twice": [*BASE, ("hub_connector", b"other")],
    "a None value": [*BASE, ("hub_extra", None)],
    "unknown non-text header": [*BASE, ("x-binary", b"\xff\xfe")],
    "str values": [(k, v.decode()) for k, v in BASE],
}

LINEAGES = [
    {"hub_policy_version": "sales-2024.1"},
    {"hub_policy_version": "sales-2024.1", "hub_dlp_policy_version": "dlp-3"},
]


@pytest.mark.parametrize("name", sorted(ENVELOPES))
@pytest.mark.parametrize("lineage", LINEAGES, ids=["validation", "validation+dlp"])
def test_derived_headers_are_what_the_event_meta_path_gives(
    name: str, lineage: dict[str, str]
) -> None:
    headers = ENVELOPES[name]
    reference_input = [(k, v) for k, v in headers if k != "x-binary"]  # from_headers decodes all
    reference = EventMeta.from_headers(reference_input)
    envelope = EnvelopeReader().read(headers)
    assert envelope.id == reference.id
    assert envelope.time == reference.time
    assert envelope.meta() == reference
    expected = reference.derive(type="crm.sales.lead.validated.v1", **lineage).to_headers()
    assert envelope.derived_headers("crm.sales.lead.validated.v1", lineage) == expected


def test_the_time_is_read_once_per_run_of_equal_times_and_again_when_it_changes() -> None:
    reader = EnvelopeReader()
    first = reader.read(BASE)
    second = reader.read(BASE)
    assert second.time is first.time
    later = reader.read(replaced("ce_time", b"2026-11-30T11:56:50Z"))
    assert later.time == datetime(2026, 11, 30, 11, 56, 50, tzinfo=UTC)
    assert reader.read(BASE).time == first.time


def test_an_envelope_without_a_time_gets_the_current_time_every_time() -> None:
    reader = EnvelopeReader()
    before = datetime.now(UTC)
    envelope = reader.read(without("ce_time"))
    assert before <= envelope.time <= datetime.now(UTC)
    assert envelope.meta().time == envelope.time


@pytest.mark.parametrize(
    ("headers", "problem"),
    [
        (without("ce_id"), "no CloudEvents header ce_id"),
        (without("ce_id", "ce_source", "ce_type"), "ce_id, ce_source, ce_type"),
        (replaced("ce_id", None), "no CloudEvents header ce_id"),
        (replaced("ce_subject", b"L-\xff"), "not UTF-8"),
        (replaced("hub_connector", b"\xc3"), "not UTF-8"),
        (replaced("ce_time", b"yesterday"), "not an ISO-8601 time"),
        ([], "no CloudEvents header"),
    ],
)
def test_a_bad_envelope_is_a_schema_error(headers: InputHeaders, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        EnvelopeReader().read(headers)


def test_a_name_first_given_without_a_value_takes_the_place_of_its_value() -> None:
    headers: InputHeaders = [("hub_a", None), *BASE, ("hub_a", b"1")]
    lineage = {"hub_policy_version": "p"}
    expected = EventMeta.from_headers(headers).derive(type="t", **lineage).to_headers()
    assert EnvelopeReader().read(headers).derived_headers("t", lineage) == expected
