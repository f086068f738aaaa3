"""A reader for flat Avro records, the shape of the clean lead events.

``fastavro.schemaless_reader`` dispatches every field through its general machinery (type
name comparisons, unions, logical types): ~11 µs for a 14-field lead, a third of the
projection reader thread's time per event (#3). A record whose fields are all strings,
bytes, ints, longs or dates, each possibly in a ``["null", T]`` union, is read here by one
loop over a plan made once per schema: about half the time.

``FlatRecordReader.compile`` returns None for any other schema (nested records, arrays,
maps, enums, floats, other logical types, wider unions), which stays with fastavro. The
values are fastavro's (same types, strict UTF-8); on any error the caller re-reads the
value with fastavro, so errors and their messages are fastavro's too. Tests compare the
two on generated values and on every truncation of them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Field kinds.
_STRING, _BYTES, _INT, _DATE = range(4)
_PRIMITIVES = {"string": _STRING, "bytes": _BYTES, "int": _INT, "long": _INT}
_NOT_NULLABLE = -1

Plan = tuple[tuple[str, int, int, int], ...]  # (name, kind, null byte, value byte)


def _kind(schema: Any) -> int | None:
    if isinstance(schema, str):
        return _PRIMITIVES.get(schema)
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        if logical is None:
            return _kind(schema.get("type"))
        if logical == "date" and schema.get("type") == "int":
            return _DATE
    return None  # anything else is fastavro's


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """An unsigned varint from ``pos``: (value, next position)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


class FlatRecordReader:
    """Reads values of one flat record schema (a fastavro parsed schema)."""

    __slots__ = ("plan",)

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    @classmethod
    def compile(cls, schema: Any) -> FlatRecordReader | None:
        """A reader for ``schema``, or None when it is not a flat record."""
        if not isinstance(schema, dict) or schema.get("type") != "record":
            return None
        plan = []
        for field in schema.get("fields", ()):
            field_type = field["type"]
            null_byte = value_byte = _NOT_NULLABLE
            if isinstance(field_type, list):
                if len(field_type) != 2 or field_type.count("null") != 1:
                    return None
                null_index = field_type.index("null")
                # A union branch index is a zigzag varint: 0 -> 0x00, 1 -> 0x02.
                null_byte, value_byte = 2 * null_index, 2 * (1 - null_index)
                field_type = field_type[1 - null_index]
            kind = _kind(field_type)
            if kind is None:
                return None
            plan.append((field["name"], kind, null_byte, value_byte))
        return cls(tuple(plan))

    def read(self, data: bytes, pos: int = 0) -> dict[str, Any]:
        """The record encoded in ``data`` from ``pos``; bytes after it are ignored, as
        fastavro does. Raises (IndexError, ValueError, EOFError, UnicodeDecodeError) on
        data that does not fit the schema."""
        end = len(data)
        record: dict[str, Any] = {}
        for name, kind, null_byte, value_byte in self.plan:
            if null_byte != _NOT_NULLABLE:
                branch = data[pos]
                pos += 1
                if branch == null_byte:
                    record[name] = None
                    continue
                if branch != value_byte:
                    raise ValueError("union branch out of range")
            n = data[pos]  # a length or a number, zigzag varint: one byte below 0x80
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(data, pos)
            n = (n >> 1) ^ -(n & 1)
            if kind in (_STRING, _BYTES):
                stop = pos + n
                if n < 0 or stop > end:
                    raise EOFError("length beyond the value")
                raw = data[pos:stop]
                record[name] = raw.decode() if kind == _STRING else raw
                pos = stop
            elif kind == _INT:
                record[name] = n
            else:
                record[name] = date.fromordinal(n + _EPOCH_ORDINAL)
        return record
