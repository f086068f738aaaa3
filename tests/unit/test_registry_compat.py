"""The registry's pure logic: compatibility levels as Confluent defines them, schema identity,
and the errors for bad input. No Kafka, no HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hub.registry.compat import (
    CompatibilityLevel,
    IncompatibleSchemaError,
    InvalidCompatibilityLevelError,
    InvalidSchemaError,
    InvalidVersionError,
    compatibility_problems,
    parse_schema,
    parse_version,
)

L = CompatibilityLevel


def record(*fields: dict[str, Any], name: str = "Customer") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "crm", "fields": list(fields)})


ID = {"name": "id", "type": "string"}
NAME = {"name": "name", "type": "string"}
AGE_INT = {"name": "age", "type": "int"}
AGE_LONG = {"name": "age", "type": "long"}
AGE_STRING = {"name": "age", "type": "string"}
EMAIL_OPTIONAL = {"name": "email", "type": ["null", "string"], "default": None}
EMAIL_REQUIRED = {"name": "email", "type": "string"}
FULL_NAME_ALIASED = {"name": "full_name", "type": "string", "aliases": ["name"]}
FULL_NAME = {"name": "full_name", "type": "string"}

V1 = record(ID, NAME, AGE_INT)

# (case, new schema, level, ok, words the refusal must contain)
CASES: list[tuple[str, str, CompatibilityLevel, bool, tuple[str, ...]]] = [
    (
        "add optional field with default",
        record(ID, NAME, AGE_INT, EMAIL_OPTIONAL),
        L.BACKWARD,
        True,
        (),
    ),
    (
        "add optional field with default",
        record(ID, NAME, AGE_INT, EMAIL_OPTIONAL),
        L.FORWARD,
        True,
        (),
    ),
    (
        "add optional field with default",
        record(ID, NAME, AGE_INT, EMAIL_OPTIONAL),
        L.FULL,
        True,
        (),
    ),
    (
        "add required field without default",
        record(ID, NAME, AGE_INT, EMAIL_REQUIRED),
        L.BACKWARD,
        False,
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "'email'", "/fields/3", "new schema"),
    ),
    (
        "add required field without default",
        record(ID, NAME, AGE_INT, EMAIL_REQUIRED),
        L.FORWARD,
        True,
        (),
    ),
    (
        "add required field without default",
        record(ID, NAME, AGE_INT, EMAIL_REQUIRED),
        L.FULL,
        False,
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "'email'"),
    ),
    ("remove a field", record(ID, AGE_INT), L.BACKWARD, True, ()),
    (
        "remove a field",
        record(ID, AGE_INT),
        L.FORWARD,
        False,
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "'name'", "old schema"),
    ),
    ("int -> long", record(ID, NAME, AGE_LONG), L.BACKWARD, True, ()),
    (
        "int -> long",
        record(ID, NAME, AGE_LONG),
        L.FORWARD,
        False,
        ("TYPE_MISMATCH", "/fields/2/type", "reader type: int", "writer type: long"),
    ),
    (
        "string -> int",
        record(ID, NAME, AGE_STRING),
        L.BACKWARD,
        False,
        ("TYPE_MISMATCH", "/fields/2/type", "reader type: string", "writer type: int"),
    ),
    ("rename with alias", record(ID, FULL_NAME_ALIASED, AGE_INT), L.BACKWARD, True, ()),
    (
        "rename with alias",
        record(ID, FULL_NAME_ALIASED, AGE_INT),
        L.FORWARD,
        False,
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "'name'"),
    ),
    (
        "rename without alias",
        record(ID, FULL_NAME, AGE_INT),
        L.BACKWARD,
        False,
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "'full_name'"),
    ),
    ("anything goes with NONE", record(ID, NAME, AGE_STRING, EMAIL_REQUIRED), L.NONE, True, ()),
]


@pytest.mark.parametrize(
    ("case", "new", "level", "ok", "words"),
    CASES,
    ids=[f"{case} / {level.value}" for case, _, level, _, _ in CASES],
)
def test_compatibility_table(
    case: str, new: str, level: CompatibilityLevel, ok: bool, words: tuple[str, ...]
) -> None:
    old = parse_schema(V1).avro
    problems = compatibility_problems(parse_schema(new).avro, [(1, old)], level)
    assert (problems == []) is ok, f"{case}: {problems}"
    text = " ".join(problems)
    for word in words:
        assert word in text, f"{case}: {word!r} missing from {problems}"
    if not ok:
        assert "version 1" in text
        assert level.value in text


# Three versions: v2 adds email with a default, v3 makes it required. v3 can read v2's data
# (email is always there) but not v1's (no email, no default).
T1 = record(ID)
T2 = record(ID, {"name": "email", "type": "string", "default": ""})
T3 = record(ID, EMAIL_REQUIRED)


@pytest.mark.parametrize(
    ("level", "ok"),
    [
        (L.BACKWARD, True),
        (L.BACKWARD_TRANSITIVE, False),
        (L.FULL, True),
        (L.FULL_TRANSITIVE, False),
    ],
)
def test_transitive_checks_every_version_non_transitive_only_the_latest(
    level: CompatibilityLevel, ok: bool
) -> None:
    existing = [(1, parse_schema(T1).avro), (2, parse_schema(T2).avro)]
    problems = compatibility_problems(parse_schema(T3).avro, existing, level)
    assert (problems == []) is ok, problems
    if not ok:
        assert len(problems) == 1
        assert "version 1" in problems[0]
        assert "'email'" in problems[0]


def test_forward_transitive_against_every_older_reader() -> None:
    # v1 reads {id, name}; v2 gave name a default; v3 drops name: v2 can read v3 data, v1 not.
    f1 = record(ID, NAME)
    f2 = record(ID, {"name": "name", "type": "string", "default": ""})
    f3 = record(ID)
    existing = [(1, parse_schema(f1).avro), (2, parse_schema(f2).avro)]
    new = parse_schema(f3).avro
    assert compatibility_problems(new, existing, L.FORWARD) == []
    problems = compatibility_problems(new, existing, L.FORWARD_TRANSITIVE)
    assert len(problems) == 1
    assert "version 1" in problems[0]
    assert "'name'" in problems[0]


def test_first_version_is_always_compatible() -> None:
    assert compatibility_problems(parse_schema(V1).avro, [], L.FULL_TRANSITIVE) == []


def test_identity_ignores_whitespace_key_order_and_type_spelling() -> None:
    a = parse_schema(V1)
    reordered = json.dumps(
        {
            "fields": [
                {"type": "string", "name": "id"},
                {"type": {"type": "string"}, "name": "name"},
                {"name": "age", "type": "int"},
            ],
            "namespace": "crm",
            "name": "Customer",
            "type": "record",
        },
        indent=4,
    )
    assert parse_schema(reordered).canonical == a.canonical
    # the stored text is compact JSON in the client's key order
    assert parse_schema(reordered).text.startswith('{"fields":[{"type":"string","name":"id"}')


@pytest.mark.parametrize(
    "other",
    [
        record(NAME, ID, AGE_INT),  # field order matters in Avro
        record(ID, NAME, AGE_LONG),
        record(ID, NAME, {"name": "age", "type": "int", "doc": "Age in years."}),
        record(ID, NAME, AGE_INT, name="Client"),
    ],
)
def test_identity_tells_real_differences_apart(other: str) -> None:
    assert parse_schema(other).canonical != parse_schema(V1).canonical


@pytest.mark.parametrize(
    ("text", "schema_type", "words"),
    [
        ("not json", "AVRO", "not JSON"),
        ('{"type": "record", "name": "A"}', "AVRO", "fields"),
        (
            '{"type": "record", "name": "A", "fields": [{"name": "a", "type": "strin"}]}',
            "AVRO",
            "strin",
        ),
        ("", "AVRO", "non-empty"),
        (None, "AVRO", "non-empty"),
        (V1, "PROTOBUF", "only AVRO"),
        (V1, "JSON", "only AVRO"),
        (record({"name": "a", "type": ["null", "string"], "default": "x"}), "AVRO", "/a"),
        (record({"name": "a", "type": "int", "default": "1"}), "AVRO", "default"),
        (record({"name": "a", "type": "boolean", "default": 1}), "AVRO", "default"),
    ],
)
def test_invalid_schemas_are_refused_with_42201(text: object, schema_type: str, words: str) -> None:
    with pytest.raises(InvalidSchemaError) as info:
        parse_schema(text, schema_type)
    assert info.value.error_code == 42201
    assert info.value.http_status == 422
    assert words in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        record({"name": "a", "type": ["string", "null"], "default": "x"}),
        record({"name": "a", "type": "long", "default": 1}),
        record({"name": "a", "type": "double", "default": 1}),
        record({"name": "a", "type": {"type": "int", "logicalType": "date"}, "default": 0}),
        record({"name": "a", "type": {"type": "array", "items": "int"}, "default": []}),
    ],
)
def test_valid_defaults_are_accepted(text: str) -> None:
    parse_schema(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("latest", None), ("-1", None), ("1", 1), ("42", 42), (str(2**31 - 1), 2**31 - 1)],
)
def test_versions(text: str, expected: int | None) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["0", "-2", "abc", "1.5", str(2**31), ""])
def test_invalid_versions_are_42202(text: str) -> None:
    with pytest.raises(InvalidVersionError) as info:
        parse_version(text)
    assert info.value.error_code == 42202


@pytest.mark.parametrize("value", ["backward", " FULL_TRANSITIVE", "NONE"])
def test_levels_parse_case_insensitively(value: str) -> None:
    assert CompatibilityLevel.parse(value).value == value.strip().upper()


@pytest.mark.parametrize("value", ["SIDEWAYS", "", None, 1])
def test_invalid_levels_are_42203(value: object) -> None:
    with pytest.raises(InvalidCompatibilityLevelError) as info:
        CompatibilityLevel.parse(value)
    assert info.value.error_code == 42203
    assert "BACKWARD_TRANSITIVE" in info.value.message


def test_incompatible_is_a_schema_error_with_409() -> None:
    from hub.errors import SchemaError

    error = IncompatibleSchemaError("x")
    assert isinstance(error, SchemaError)
    assert (error.http_status, error.error_code) == (409, 409)
