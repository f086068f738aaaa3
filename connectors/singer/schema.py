"""A Singer stream's JSON Schema as an Avro record schema, and its records as Avro values.

``avro_mapping(stream, json_schema)`` builds, once per SCHEMA message, both the Avro
schema registered for the stream's topic and the converter that turns one RECORD into a
value of it (or says, by property path and expected type, why the record does not fit —
never with the value itself).

What maps to what:

==================================== ======================================================
JSON Schema                          Avro
==================================== ======================================================
object with ``properties``           record (nested: ``<parent>_<field>``), field order kept
property not ``required``, or        ``["null", T]`` with default ``null``
``"null"`` among its types
integer / number / boolean           long / double / boolean
string, ``format: date-time``        long, ``timestamp-micros`` (ISO 8601 text parsed, UTC)
string, ``format: date``             int, ``date``
other strings (enum, uuid, email..)  string (an enum stays a string: a new symbol would be
                                     an incompatible change)
array with ``items``                 array
object with only                     map
``additionalProperties: {schema}``
several primitive types              union (``integer`` + ``number`` = double)
anything else (no type, free-form    string holding the value as canonical JSON text
object, mixed complex types)
==================================== ======================================================

Names are made Avro names (``[A-Za-z_][A-Za-z0-9_]*``; ``post-code`` -> ``post_code``,
clashes get ``_2``); a renamed field keeps its Singer name in ``doc`` and in a
``source_name`` attribute (not in ``aliases``: an alias must itself be an Avro name, and
means a former name of the field). Nothing invents a ``pii`` attribute: the hub's DLP
stage decides what is personal. A record's properties that its schema does not declare
are dropped (counted, by the caller).

This is hand-written: the JSON-Schema-to-Avro converters on PyPI are unmaintained or
target other registries, and none converts values with reasons that quote no value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import fastavro

from hub.quarantine import QuarantineReason

NAMESPACE = "crm.singer"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


class Misfit(Exception):
    """A value does not fit its property's schema (``path`` and the expected type only)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


Convert = Callable[[Any, str], Any]


def avro_name(text: str) -> str:
    """``text`` as an Avro name: other characters become ``_``, a leading digit gets ``_``."""
    name = _NOT_NAME.sub("_", text)
    if not name or name[0].isdigit():
        name = f"_{name}"
    return name


def kind_of(value: Any) -> str:
    """The JSON type of a Python value decoded from JSON (for messages: never the value)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _at(path: str, prop: str) -> str:
    return f"{path}.{prop}" if path else prop


# -- converters of single values -------------------------------------------------------------


def _long(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if LONG_MIN <= value <= LONG_MAX:
            return value
        raise Misfit(path, "integer out of the 64-bit range")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise Misfit(path, f"expected integer, got {kind_of(value)}")


def _double(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise Misfit(path, f"expected number, got {kind_of(value)}")


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    raise Misfit(path, f"expected boolean, got {kind_of(value)}")


def _string(value: Any, path: str) -> str:
    if isinstance(value, str):
        return value
    raise Misfit(path, f"expected string, got {kind_of(value)}")


def _timestamp(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise Misfit(path, f"expected a date-time string, got {kind_of(value)}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Misfit(path, "expected an ISO 8601 date-time string") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise Misfit(path, f"expected a date string, got {kind_of(value)}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value).date()
    except ValueError:
        raise Misfit(path, "expected an ISO 8601 date string") from None


def _json_text(value: Any, path: str) -> str:
    try:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        raise Misfit(path, f"cannot be written as JSON ({kind_of(value)})") from None


def _nullable(inner: Convert) -> Convert:
    def convert(value: Any, path: str) -> Any:
        return None if value is None else inner(value, path)

    return convert


def _required(inner: Convert) -> Convert:
    def convert(value: Any, path: str) -> Any:
        if value is None:
            raise Misfit(path, "is null or missing, but the schema requires a value")
        return inner(value, path)

    return convert


def _always_null(value: Any, path: str) -> None:
    if value is not None:
        raise Misfit(path, f"expected null, got {kind_of(value)}")


_PRIMITIVES: dict[str, tuple[Any, Convert]] = {
    "integer": ("long", _long),
    "number": ("double", _double),
    "boolean": ("boolean", _boolean),
    "string": ("string", _string),
}
_JSON_TEXT: tuple[Any, Convert] = ("string", _json_text)


# -- the mapping ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AvroMapping:
    """One stream's Avro schema and the converter of its records."""

    stream: str
    schema: dict[str, Any]  # the Avro record schema
    fields: dict[str, str]  # top-level Singer property -> Avro field name
    _convert: Convert

    @property
    def text(self) -> str:
        """Canonical JSON of the Avro schema (equal text = same schema)."""
        return json.dumps(self.schema, sort_keys=True)

    def convert(self, record: Any) -> tuple[dict[str, Any] | None, tuple[QuarantineReason, ...]]:
        """The Avro value of a RECORD's ``record``, or None and why it does not fit."""
        try:
            value = self._convert(record, "")
        except Misfit as misfit:
            reason = QuarantineReason("singer.schema", misfit.path or None, str(misfit))
            return None, (reason,)
        return value, ()

    def undeclared(self, record: Mapping[str, Any]) -> int:
        """How many top-level properties of ``record`` its schema does not declare."""
        return sum(1 for key in record if key not in self.fields)


class _Builder:
    """Walks a JSON Schema once; record names stay unique within the Avro schema."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate in self.names:
            n += 1
            candidate = f"{name}_{n}"
        self.names.add(candidate)
        return candidate

    def record(self, name: str, node: Mapping[str, Any], doc: str | None) -> tuple[Any, Convert]:
        properties = node.get("properties")
        props: Mapping[str, Any] = properties if isinstance(properties, Mapping) else {}
        required = set(node.get("required") or ())
        record_name = self.unique(name)
        fields: list[dict[str, Any]] = []
        plan: list[tuple[str, str, Convert]] = []
        taken: set[str] = set()
        for prop, sub in props.items():
            field_name = avro_name(str(prop))
            base, n = field_name, 1
            while field_name in taken:
                n += 1
                field_name = f"{base}_{n}"
            taken.add(field_name)
            avro_type, convert, nullable = self.property(
                f"{record_name}_{field_name}", sub, optional=prop not in required
            )
            field: dict[str, Any] = {"name": field_name, "type": avro_type}
            docs = []
            if field_name != prop:
                field["source_name"] = str(prop)
                docs.append(f"Singer property {json.dumps(str(prop))}")
            if isinstance(sub, Mapping) and isinstance(sub.get("description"), str):
                docs.append(sub["description"])
            if docs:
                field["doc"] = ": ".join(docs)
            if nullable:
                field["default"] = None
            fields.append(field)
            plan.append((str(prop), field_name, convert))
        schema: dict[str, Any] = {"type": "record", "name": record_name, "fields": fields}
        if doc:
            schema["doc"] = doc

        def convert_record(value: Any, path: str) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise Misfit(path or "record", f"expected object, got {kind_of(value)}")
            return {
                field_name: convert(value.get(prop), _at(path, prop))
                for prop, field_name, convert in plan
            }

        return schema, convert_record

    def property(self, name: str, node: Any, *, optional: bool) -> tuple[Any, Convert, bool]:
        """(Avro type, converter, nullable) of one property."""
        kinds, nullable = alternatives(node)
        nullable = nullable or optional
        if not kinds:  # only null
            return "null", _always_null, True
        avro_type, convert = self.kinds(name, kinds)
        if nullable:
            members = avro_type if isinstance(avro_type, list) else [avro_type]
            return ["null", *members], _nullable(convert), True
        return avro_type, _required(convert), False

    def kinds(self, name: str, kinds: list[Mapping[str, Any]]) -> tuple[Any, Convert]:
        by_kind: dict[str, Mapping[str, Any]] = {}
        for node in kinds:
            by_kind.setdefault(str(node["type"]), node)
        if "integer" in by_kind and "number" in by_kind:
            del by_kind["integer"]  # a number holds both
        if len(by_kind) == 1:
            return self.single(name, next(iter(by_kind.values())))
        if set(by_kind) <= set(_PRIMITIVES):  # a union of primitives
            members = [(_PRIMITIVES[k][0], k) for k in _PRIMITIVES if k in by_kind]
            converters = {k: _PRIMITIVES[k][1] for _, k in members}
            expected = " or ".join(k for _, k in members)

            def convert_union(value: Any, path: str) -> Any:
                found = kind_of(value)
                if found == "integer" and found not in converters and "number" in converters:
                    found = "number"
                convert = converters.get(found)
                if convert is None:
                    raise Misfit(path, f"expected {expected}, got {found}")
                return convert(value, path)

            return [avro for avro, _ in members], convert_union
        return _JSON_TEXT  # mixed complex types: the value as JSON text

    def single(self, name: str, node: Mapping[str, Any]) -> tuple[Any, Convert]:
        kind = node["type"]
        if kind == "string":
            fmt = node.get("format")
            if fmt == "date-time":
                return {"type": "long", "logicalType": "timestamp-micros"}, _timestamp
            if fmt == "date":
                return {"type": "int", "logicalType": "date"}, _date
            return "string", _string
        if kind in _PRIMITIVES:
            return _PRIMITIVES[kind]
        if kind == "object":
            return self.object(name, node)
        if kind == "array":
            return self.array(name, node)
        return _JSON_TEXT

    def object(self, name: str, node: Mapping[str, Any]) -> tuple[Any, Convert]:
        if isinstance(node.get("properties"), Mapping) and node["properties"]:
            return self.record(name, node, None)
        values = node.get("additionalProperties")
        if isinstance(values, Mapping) and (values.get("type") or values.get("anyOf")):
            value_type, convert, _ = self.property(f"{name}_value", values, optional=False)

            def convert_map(value: Any, path: str) -> dict[str, Any]:
                if not isinstance(value, Mapping):
                    raise Misfit(path, f"expected object, got {kind_of(value)}")
                return {str(k): convert(v, _at(path, str(k))) for k, v in value.items()}

            return {"type": "map", "values": value_type}, convert_map
        return _JSON_TEXT  # a free-form object

    def array(self, name: str, node: Mapping[str, Any]) -> tuple[Any, Convert]:
        items = node.get("items")
        if isinstance(items, Mapping):
            item_type, item_convert, _ = self.property(f"{name}_item", items, optional=False)
        else:  # no items schema, or a tuple of them
            item_type, item_convert = _JSON_TEXT

        def convert_array(value: Any, path: str) -> list[Any]:
            if not isinstance(value, (list, tuple)):
                raise Misfit(path, f"expected array, got {kind_of(value)}")
            return [item_convert(item, f"{path}[{i}]") for i, item in enumerate(value)]

        return {"type": "array", "items": item_type}, convert_array


def alternatives(node: Any) -> tuple[list[Mapping[str, Any]], bool]:
    """The non-null alternatives of a JSON Schema node, each with one ``type`` (``any``
    for no type), and whether null is allowed."""
    if not isinstance(node, Mapping):  # true, or no schema: anything
        return [{"type": "any"}], True
    for key in ("anyOf", "oneOf"):
        subs = node.get(key)
        if isinstance(subs, Sequence) and not isinstance(subs, str) and subs:
            out: list[Mapping[str, Any]] = []
            nullable = False
            for sub in subs:
                found, sub_null = alternatives(sub)
                out.extend(found)
                nullable = nullable or sub_null
            return out, nullable
    declared = node.get("type")
    if declared is None:
        if isinstance(node.get("properties"), Mapping):
            return [{**node, "type": "object"}], False
        return [{"type": "any"}], True
    types = [declared] if isinstance(declared, str) else list(declared)
    kinds: list[Mapping[str, Any]] = [{**node, "type": t} for t in types if t != "null"]
    return kinds, "null" in types


def avro_mapping(stream: str, json_schema: Any) -> AvroMapping:
    """The Avro record schema and record converter of one Singer stream. ``ValueError``
    if the JSON Schema is not an object schema (the caller says which stream)."""
    if not isinstance(json_schema, Mapping):
        raise ValueError("not a JSON Schema object")
    kinds, _ = alternatives(json_schema)
    if [k["type"] for k in kinds] != ["object"]:
        raise ValueError("a stream's schema must be an object schema")
    builder = _Builder()
    schema, convert = builder.record(
        avro_name(stream), {**json_schema, "type": "object"}, f"Singer stream {stream}"
    )
    schema = {**schema, "namespace": NAMESPACE}
    fastavro.parse_schema(schema)  # a bug here is ours: fail loudly, not at encode time
    fields = {str(f.get("source_name", f["name"])): str(f["name"]) for f in schema["fields"]}
    return AvroMapping(stream, schema, fields, convert)


__all__ = ["AvroMapping", "Misfit", "alternatives", "avro_mapping", "avro_name", "kind_of"]
