"""JSON Schema (Singer SCHEMA) -> Avro, and RECORD values -> Avro values, table-driven.
No I/O (it sits here only because the singer connector's tests are kept together): every
schema built must parse with fastavro and with the ``avro`` library the registry uses, and
every converted value must encode; a record that does not fit gets a reason naming the
property and the expected type, never the value."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from typing import Any

import avro.schema
import fastavro
import pytest

from connectors.singer.messages import identity
from connectors.singer.schema import avro_mapping, avro_name

NULL_STR: Any = ["null", "string"]

# (JSON Schema of one property "p", required?, expected Avro type of field "p")
TYPES: list[tuple[str, dict[str, Any], bool, Any]] = [
    ("string", {"type": "string"}, True, "string"),
    ("nullable string", {"type": ["string", "null"]}, True, NULL_STR),
    ("optional string", {"type": "string"}, False, NULL_STR),
    ("integer", {"type": "integer"}, True, "long"),
    ("number", {"type": "number"}, True, "double"),
    ("boolean", {"type": ["null", "boolean"]}, False, ["null", "boolean"]),
    (
        "date-time",
        {"type": "string", "format": "date-time"},
        True,
        {"type": "long", "logicalType": "timestamp-micros"},
    ),
    ("date", {"type": "string", "format": "date"}, True, {"type": "int", "logicalType": "date"}),
    ("enum stays a string", {"type": "string", "enum": ["a", "b"]}, True, "string"),
    ("integer or number", {"type": ["integer", "number"]}, True, "double"),
    (
        "union of primitives",
        {"type": ["string", "integer", "null"]},
        True,
        ["null", "long", "string"],
    ),
    ("anyOf with null", {"anyOf": [{"type": "integer"}, {"type": "null"}]}, True, ["null", "long"]),
    ("no type at all", {}, True, NULL_STR),
    ("free-form object", {"type": "object"}, True, "string"),
    ("mixed complex", {"anyOf": [{"type": "object"}, {"type": "array"}]}, True, "string"),
    (
        "map",
        {"type": "object", "additionalProperties": {"type": "integer"}},
        True,
        {"type": "map", "values": "long"},
    ),
    (
        "array",
        {"type": "array", "items": {"type": "string"}},
        True,
        {"type": "array", "items": "string"},
    ),
    ("array, no items", {"type": "array"}, True, {"type": "array", "items": "string"}),
    ("only null", {"type": "null"}, True, "null"),
]


def field_of(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def encodes(schema: dict[str, Any], value: dict[str, Any]) -> None:
    fastavro.schemaless_writer(io.BytesIO(), fastavro.parse_schema(schema), value)


@pytest.mark.parametrize(("case", "prop", "required", "expected"), TYPES, ids=[t[0] for t in TYPES])
def test_json_schema_types_map_to_avro(
    case: str, prop: dict[str, Any], required: bool, expected: Any
) -> None:
    schema = {"type": "object", "properties": {"p": prop}, "required": ["p"] if required else []}
    mapping = avro_mapping("s", schema)
    field = field_of(mapping.schema, "p")
    assert field["type"] == expected
    nullable = (isinstance(expected, list) and expected[0] == "null") or expected == "null"
    assert ("default" in field) == nullable
    if nullable:
        assert field["default"] is None
    avro.schema.parse(json.dumps(mapping.schema))  # the registry's parser accepts it


# (property schema, a RECORD value of it, the Avro value expected)
VALUES: list[tuple[dict[str, Any], Any, Any]] = [
    ({"type": "integer"}, 3.0, 3),
    ({"type": "number"}, 2, 2.0),
    (
        {"type": "string", "format": "date-time"},
        "2024-01-02T03:04:05.123456+02:00",
        datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=UTC),
    ),
    (
        {"type": "string", "format": "date-time"},
        "2024-01-02 03:04:05",
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    ),
    ({"type": "string", "format": "date"}, "2024-01-02", date(2024, 1, 2)),
    ({"type": "string", "format": "date"}, "2024-01-02T00:00:00Z", date(2024, 1, 2)),
    ({"type": "object"}, {"b": [1, None], "a": "x"}, '{"a":"x","b":[1,null]}'),
    ({}, 7, "7"),
    ({"type": ["string", "integer"]}, 7, 7),
    ({"type": ["string", "number"]}, 7, 7.0),
    ({"type": "object", "additionalProperties": {"type": "integer"}}, {"k": 1}, {"k": 1}),
]


@pytest.mark.parametrize(("prop", "given", "expected"), VALUES)
def test_record_values_convert_to_avro_values(
    prop: dict[str, Any], given: Any, expected: Any
) -> None:
    mapping = avro_mapping("s", {"type": "object", "properties": {"p": prop}, "required": ["p"]})
    value, reasons = mapping.convert({"p": given})
    assert reasons == ()
    assert value == {"p": expected}
    encodes(mapping.schema, value)


SECRET = "Ada Lovelace 1815"
USERS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "age": {"type": ["integer", "null"]},
        "seen": {"type": ["string", "null"], "format": "date-time"},
        "address": {
            "type": ["object", "null"],
            "properties": {"post-code": {"type": ["string"]}},
            "required": ["post-code"],
        },
        "tags": {"type": "array", "items": {"type": "integer"}},
    },
    "required": ["id"],
}

# (record, the property path and message expected): none may quote the value
MISFITS: list[tuple[dict[str, Any], str, str]] = [
    ({"id": SECRET}, "id", "expected integer, got string"),
    ({"id": True}, "id", "expected integer, got boolean"),
    ({"age": 3}, "id", "is null or missing, but the schema requires a value"),
    ({"id": 1, "age": 2.5}, "age", "expected integer, got number"),
    ({"id": 1, "seen": SECRET}, "seen", "expected an ISO 8601 date-time string"),
    ({"id": 1, "address": {"post-code": 5}}, "address.post-code", "expected string, got integer"),
    ({"id": 1, "address": {}}, "address.post-code", "is null or missing"),
    ({"id": 1, "address": SECRET}, "address", "expected object, got string"),
    ({"id": 1, "tags": [1, SECRET]}, "tags[1]", "expected integer, got string"),
    ({"id": 2**64}, "id", "integer out of the 64-bit range"),
]


@pytest.mark.parametrize(("record", "path", "message"), MISFITS)
def test_a_record_that_does_not_fit_says_where_and_never_what(
    record: dict[str, Any], path: str, message: str
) -> None:
    value, reasons = avro_mapping("users", USERS_SCHEMA).convert(record)
    assert value is None
    [reason] = reasons
    assert reason.field == path
    assert message in reason.message
    assert "Ada" not in reason.message
    assert "1815" not in reason.message


def test_names_become_avro_names_and_keep_the_singer_name() -> None:
    schema = {
        "type": "object",
        "properties": {
            "post-code": {"type": "string"},
            "post_code": {"type": "string"},
            "1st": {"type": "integer"},
            "nested": {"type": "object", "properties": {"a b": {"type": "string"}}},
        },
    }
    mapping = avro_mapping("public-users", schema)
    assert mapping.schema["name"] == "public_users"
    names = [f["name"] for f in mapping.schema["fields"]]
    assert names == ["post_code", "post_code_2", "_1st", "nested"]
    first = field_of(mapping.schema, "post_code")
    assert first["source_name"] == "post-code"
    assert "post-code" in first["doc"]
    assert "aliases" not in first
    assert "pii" not in json.dumps(mapping.schema)  # nothing invented
    assert mapping.fields == {
        "post-code": "post_code",
        "post_code": "post_code_2",
        "1st": "_1st",
        "nested": "nested",
    }
    value, _ = mapping.convert(
        {"post-code": "a", "post_code": "b", "1st": 1, "nested": {"a b": "c"}}
    )
    assert value == {"post_code": "a", "post_code_2": "b", "_1st": 1, "nested": {"a_b": "c"}}
    assert avro_name("ünïcode") == "_n_code"


def test_nested_records_get_unique_names() -> None:
    inner = {"type": "object", "properties": {"x": {"type": "integer"}}}
    schema = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": inner}},
            "a_b": inner,
            "list": {"type": "array", "items": inner},
        },
    }
    mapping = avro_mapping("s", schema)
    fastavro.parse_schema(mapping.schema)
    avro.schema.parse(json.dumps(mapping.schema))
    value, reasons = mapping.convert({"a": {"b": {"x": 1}}, "a_b": None, "list": [{"x": 2}]})
    assert reasons == ()
    assert value is not None
    encodes(mapping.schema, value)


def test_a_stream_schema_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="object"):
        avro_mapping("s", {"type": "array"})
    with pytest.raises(ValueError, match="JSON Schema"):
        avro_mapping("s", ["not", "a", "schema"])


def test_undeclared_properties_are_counted_and_dropped() -> None:
    mapping = avro_mapping("s", {"type": "object", "properties": {"a": {"type": "string"}}})
    assert mapping.undeclared({"a": "x", "b": 1, "c": 2}) == 2
    assert mapping.convert({"a": "x", "b": 1}) == ({"a": "x"}, ())


@pytest.mark.parametrize(
    ("record", "keys", "replication_key", "expected"),
    [
        ({"id": 1, "u": "2024"}, ("id",), "u", ("s:1@2024", "1")),
        ({"id": "a", "r": 2, "u": 5}, ("id", "r"), "u", ('s:["a",2]@5', '["a",2]')),
        ({"id": 1, "u": None}, ("id",), "u", None),  # no bookmark value: digest
        ({"id": None}, ("id",), None, None),  # no key: digest, no Kafka key
    ],
)
def test_record_ids_are_deterministic(
    record: dict[str, Any], keys: tuple[str, ...], replication_key: str | None, expected: Any
) -> None:
    first = identity("s", record, keys, replication_key)
    assert identity("s", dict(reversed(record.items())), keys, replication_key) == first
    if expected is not None:
        assert first == expected
    else:
        assert "#" in first[0]
        changed = identity("s", {**record, "other": 1}, keys, replication_key)
        assert changed[0] != first[0]
