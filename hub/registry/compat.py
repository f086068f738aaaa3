"""Pure schema-registry logic: parsing and identity of Avro schemas, compatibility levels and
the checks behind them, and the errors the registry answers with. No Kafka, no HTTP.

Compatibility follows Confluent's definitions. "Reader" and "writer" are Avro's terms:

==================== ======================================================================
level                the new schema must be able to...
==================== ======================================================================
NONE                 (no check)
BACKWARD             read data written with the latest registered version
BACKWARD_TRANSITIVE  read data written with every registered version
FORWARD              be read by the latest registered version
FORWARD_TRANSITIVE   be read by every registered version
FULL                 both BACKWARD and FORWARD against the latest version
FULL_TRANSITIVE      both against every registered version
==================== ======================================================================

The reader/writer check itself is ``avro.compatibility.ReaderWriterCompatibilityChecker``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import avro.errors
import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
)

from hub.errors import HubError, SchemaError

AVRO = "AVRO"
SCHEMA_TYPES: tuple[str, ...] = (AVRO,)


# --- errors: each knows its HTTP status and Confluent error_code --------------------------


class RegistryError(HubError):
    """Root of the registry's errors; the API answers ``{"error_code", "message"}``."""

    http_status = 500
    error_code = 50001


class BadRequestError(RegistryError):
    http_status = 400
    error_code = 400


class UnsupportedMediaTypeError(RegistryError):
    http_status = 415
    error_code = 415


class SubjectNotFoundError(RegistryError):
    http_status = 404
    error_code = 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFoundError(RegistryError):
    http_status = 404
    error_code = 40402

    def __init__(self, version: int | str) -> None:
        super().__init__(f"Version {version} not found.")


class SchemaNotFoundError(RegistryError):
    http_status = 404
    error_code = 40403


class SubjectSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeletedError(RegistryError):
    http_status = 404
    error_code = 40405

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class SubjectConfigNotFoundError(RegistryError):
    http_status = 404
    error_code = 40408

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class IncompatibleSchemaError(RegistryError, SchemaError):
    http_status = 409
    error_code = 409


class InvalidSchemaError(RegistryError, SchemaError):
    http_status = 422
    error_code = 42201


class InvalidVersionError(RegistryError):
    http_status = 422
    error_code = 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevelError(RegistryError):
    http_status = 422
    error_code = 42203


class StoreError(RegistryError):
    """The backing Kafka topic could not be written or read."""

    http_status = 500
    error_code = 50001


# --- levels and versions ---------------------------------------------------------------


class CompatibilityLevel(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: object) -> CompatibilityLevel:
        if isinstance(value, str):
            try:
                return cls(value.strip().upper())
            except ValueError:
                pass
        allowed = ", ".join(level.value for level in cls)
        raise InvalidCompatibilityLevelError(
            f"Invalid compatibility level. Valid values are: {allowed}"
        )

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD
MAX_VERSION = 2**31 - 1


def parse_version(text: str) -> int | None:
    """A version path segment: ``latest`` or ``-1`` -> None (the latest), else 1..2^31-1."""
    if text == "latest":
        return None
    try:
        number = int(text)
    except ValueError:
        raise InvalidVersionError(text) from None
    if number == -1:
        return None
    if not 1 <= number <= MAX_VERSION:
        raise InvalidVersionError(text)
    return number


# --- parsing and identity ----------------------------------------------------------------


@dataclass(frozen=True)
class ParsedSchema:
    """A valid Avro schema: the text as stored, its identity key and the parsed object."""

    text: str
    canonical: str
    avro: avro.schema.Schema


def parse_schema(text: object, schema_type: object = AVRO) -> ParsedSchema:
    """Validate a schema as sent by a client. Raises InvalidSchemaError (42201).

    ``text`` is kept as compact JSON in the client's key order. ``canonical`` is the schema
    parsed by avro and re-dumped with sorted keys, so that whitespace, the order of JSON
    keys and spelling variants such as ``{"type": "int"}`` vs ``"int"`` do not make two
    schemas different, while docs, defaults, aliases and custom properties still do.
    """
    if schema_type is None:
        schema_type = AVRO
    if schema_type != AVRO:
        raise InvalidSchemaError(
            f"Unsupported schemaType {schema_type!r}: this registry supports only AVRO"
        )
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError("Invalid schema: 'schema' must be a non-empty string")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidSchemaError(f"Invalid schema: not JSON ({exc})") from None
    try:
        parsed = avro.schema.parse(text)
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {exc}") from None
    _check_defaults(parsed, "")
    canonical = json.dumps(parsed.to_json(), sort_keys=True, separators=(",", ":"))
    return ParsedSchema(json.dumps(data, separators=(",", ":")), canonical, parsed)


_DEFAULT_KINDS: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "bytes": (str,),
    "fixed": (str,),
    "string": (str,),
    "enum": (str,),
    "array": (list,),
    "map": (dict,),
    "record": (dict,),
    "error": (dict,),
}


def _check_defaults(schema: avro.schema.Schema, path: str, seen: set[int] | None = None) -> None:
    """Field defaults must have the JSON kind of the field's type (of a union's first branch,
    as the Avro spec requires). avro does not check this itself; Confluent does."""
    seen = set() if seen is None else seen
    if id(schema) in seen:
        return
    seen.add(id(schema))
    if isinstance(schema, avro.schema.RecordSchema):
        for field in schema.fields:
            field_path = f"{path}/{field.name}"
            if field.has_default:
                target = field.type
                if isinstance(target, avro.schema.UnionSchema):
                    target = target.schemas[0]
                kinds = _DEFAULT_KINDS.get(str(target.type), (object,))
                value = field.default
                if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                    raise InvalidSchemaError(
                        f"Invalid schema: the default of field '{field_path}' does not match "
                        f"its type {target.type} (for a union: its first branch)"
                    )
            _check_defaults(field.type, field_path, seen)
    elif isinstance(schema, avro.schema.UnionSchema):
        for branch in schema.schemas:
            _check_defaults(branch, path, seen)
    elif isinstance(schema, avro.schema.ArraySchema):
        _check_defaults(schema.items, path, seen)
    elif isinstance(schema, avro.schema.MapSchema):
        _check_defaults(schema.values, path, seen)


# --- compatibility -----------------------------------------------------------------------

_DESCRIPTIONS: dict[SchemaIncompatibilityType, str] = {
    SchemaIncompatibilityType.reader_field_missing_default_value: (
        "the field '{detail}' at path '{location}' in the {reader} schema has no default "
        "value and is missing in the {writer} schema"
    ),
    SchemaIncompatibilityType.type_mismatch: (
        "the type at path '{location}' in the {reader} schema does not match the {writer} "
        "schema ({detail})"
    ),
    SchemaIncompatibilityType.name_mismatch: (
        "the name of the type at path '{location}' in the {reader} schema does not match "
        "the {writer} schema ({detail})"
    ),
    SchemaIncompatibilityType.missing_enum_symbols: (
        "the {reader} schema is missing enum symbols {detail} at path '{location}' that the "
        "{writer} schema has"
    ),
    SchemaIncompatibilityType.missing_union_branch: (
        "the {reader} schema is missing a union branch at path '{location}' that the "
        "{writer} schema has ({detail})"
    ),
    SchemaIncompatibilityType.fixed_size_mismatch: (
        "the size of the fixed type at path '{location}' in the {reader} schema does not "
        "match the {writer} schema ({detail})"
    ),
}


def reader_writer_problems(
    reader: avro.schema.Schema, writer: avro.schema.Schema, *, reader_is_new: bool
) -> list[str]:
    """Why ``reader`` cannot read data written with ``writer``; empty when it can."""
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result: SchemaCompatibilityResult = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    names = (
        {"reader": "new", "writer": "old"} if reader_is_new else {"reader": "old", "writer": "new"}
    )
    kinds = list(dict.fromkeys(result.incompatibilities))
    # avro merges results into sets; "/" is a placeholder of compatible sub-results.
    locations = sorted(loc for loc in result.locations if loc != "/") or ["/"]
    details = sorted(result.messages)
    if len(kinds) == 1 and len(locations) == 1 and len(details) <= 1:
        kind = kinds[0]
        text = _DESCRIPTIONS[kind].format(
            location=locations[0], detail=details[0] if details else "", **names
        )
        return [f"{kind.name.upper()}: {text}"]
    return [
        f"{', '.join(kind.name.upper() for kind in kinds)}: the {names['reader']} schema "
        f"cannot read data written with the {names['writer']} schema at paths "
        f"{', '.join(locations)} ({'; '.join(details)})"
    ]


def compatibility_problems(
    new: avro.schema.Schema,
    existing: Sequence[tuple[int, avro.schema.Schema]],
    level: CompatibilityLevel,
) -> list[str]:
    """Check ``new`` against the registered ``(version, schema)`` pairs, oldest first, as
    ``level`` asks. Returns the reasons it is refused; an empty list means compatible."""
    if level is CompatibilityLevel.NONE or not existing:
        return []
    targets = existing if level.transitive else existing[-1:]
    problems: list[str] = []
    for version, old in reversed(targets):
        found: list[str] = []
        if level.backward:
            found += reader_writer_problems(new, old, reader_is_new=True)
        if level.forward:
            found += reader_writer_problems(old, new, reader_is_new=False)
        problems += [f"{problem} (version {version}, {level.value})" for problem in found]
    return problems
