"""FlatRecordReader against fastavro, the reference: same values on generated records, and
never a value where fastavro has another value or an error (truncated or random bytes)."""

from __future__ import annotations

import io
import json
import random
from datetime import date, timedelta
from typing import Any, cast

import fastavro
import pytest

from hub.settings import REPO_ROOT
from projections.flat_avro import FlatRecordReader

# A record schema parses to a dict (parse_schema is typed to return any schema form).
LEAD = cast(
    "dict[str, Any]",
    fastavro.parse_schema(json.loads((REPO_ROOT / "schemas/sales/Lead.avsc").read_text())),
)
EVERY_KIND = fastavro.parse_schema(
    {
        "type": "record",
        "name": "EveryKind",
        "namespace": "test.flat",
        "fields": [
            {"name": "s", "type": "string"},
            {"name": "b", "type": "bytes"},
            {"name": "i", "type": "int"},
            {"name": "l", "type": "long"},
            {"name": "d", "type": {"type": "int", "logicalType": "date"}},
            {"name": "ns", "type": ["null", "string"]},
            {"name": "sn", "type": ["string", "null"]},
            {"name": "nl", "type": ["null", "long"]},
            {"name": "nd", "type": ["null", {"type": "int", "logicalType": "date"}]},
            {"name": "nb", "type": ["bytes", "null"]},
        ],
    }
)
TEXTS = ["", "a", "Zoë", "Łukasz Żółć", "東京都", "🙂 emoji", "x" * 63, "y" * 64, "z" * 5000]


def text(rng: random.Random) -> str:
    return (
        rng.choice(TEXTS)
        if rng.random() < 0.5
        else "".join(
            chr(rng.choice([rng.randrange(32, 127), rng.randrange(160, 0x2FFF)]))
            for _ in range(rng.randrange(0, 90))
        )
    )


def day(rng: random.Random) -> date:
    return date(1970, 1, 1) + timedelta(days=rng.randrange(-700_000, 2_900_000))


def maybe(rng: random.Random, value: Any) -> Any:
    return None if rng.random() < 0.3 else value


def lead(rng: random.Random) -> dict[str, Any]:
    value: dict[str, Any] = {"lead_id": text(rng)}
    for field in LEAD["fields"][1:]:
        value[field["name"]] = maybe(rng, day(rng) if field["name"] == "created_on" else text(rng))
    return value


def every_kind(rng: random.Random) -> dict[str, Any]:
    big = rng.choice([0, 1, -1, 63, 64, -65, 2**31 - 1, -(2**31), 2**62, -(2**63)])
    return {
        "s": text(rng),
        "b": rng.randbytes(rng.randrange(0, 200)),
        "i": rng.randrange(-(2**31), 2**31),
        "l": big if rng.random() < 0.5 else rng.randrange(-(2**63), 2**63),
        "d": day(rng),
        "ns": maybe(rng, text(rng)),
        "sn": maybe(rng, text(rng)),
        "nl": maybe(rng, rng.randrange(-(2**40), 2**40)),
        "nd": maybe(rng, day(rng)),
        "nb": maybe(rng, rng.randbytes(rng.randrange(0, 10))),
    }


def encode(schema: Any, value: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, value)
    return buf.getvalue()


def fastavro_outcome(schema: Any, data: bytes) -> Any:
    try:
        return fastavro.schemaless_reader(io.BytesIO(data), schema, None)
    except Exception as exc:  # noqa: BLE001 - an outcome to compare
        return exc.__class__


def assert_never_differs(reader: FlatRecordReader, schema: Any, data: bytes) -> None:
    """The fast reader may give up (the decoder then asks fastavro); it may not answer
    differently."""
    try:
        value = reader.read(data)
    except (IndexError, ValueError, EOFError):
        return
    assert value == fastavro_outcome(schema, data)


@pytest.mark.parametrize(
    ("schema", "make"), [(LEAD, lead), (EVERY_KIND, every_kind)], ids=["Lead", "every kind"]
)
def test_reads_what_fastavro_reads(schema: Any, make: Any) -> None:
    reader = FlatRecordReader.compile(schema)
    assert reader is not None
    rng = random.Random(3)
    for _ in range(2000):
        value = make(rng)
        data = encode(schema, value)
        expected = fastavro.schemaless_reader(io.BytesIO(data), schema, None)
        got = reader.read(data)
        assert got == expected
        assert isinstance(expected, dict)  # a record, as got is
        assert [type(v) for v in got.values()] == [type(v) for v in expected.values()]
        # From an offset (the wire-format header), and with bytes after the record.
        assert reader.read(b"\x00\x00\x00\x00\x07" + data + b"tail", 5) == expected


@pytest.mark.parametrize(
    ("schema", "make"), [(LEAD, lead), (EVERY_KIND, every_kind)], ids=["Lead", "every kind"]
)
def test_never_answers_otherwise_than_fastavro_on_bad_bytes(schema: Any, make: Any) -> None:
    reader = FlatRecordReader.compile(schema)
    assert reader is not None
    rng = random.Random(5)
    for _ in range(40):
        data = encode(schema, make(rng))
        for cut in range(len(data)):
            assert_never_differs(reader, schema, data[:cut])
        flipped = bytearray(data)
        for _ in range(3):
            flipped[rng.randrange(len(data))] = rng.randrange(256)
        assert_never_differs(reader, schema, bytes(flipped))
    for _ in range(3000):
        assert_never_differs(reader, schema, rng.randbytes(rng.randrange(0, 60)))


@pytest.mark.parametrize(
    "data",
    [b"\x01abc", b"\x03abc", b"\x08abc", b"\x80", b"\xff" * 11],
    ids=["length -1", "length -2", "length past the end", "varint cut", "varint too long"],
)
def test_impossible_lengths_are_errors(data: bytes) -> None:
    """fastavro reads a negative length as "the rest": the fast reader gives up instead."""
    one_string = {"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]}
    reader = FlatRecordReader.compile(fastavro.parse_schema(one_string))
    assert reader is not None
    with pytest.raises((EOFError, IndexError, ValueError)):
        reader.read(data)


def test_invalid_utf8_is_an_error() -> None:
    reader = FlatRecordReader.compile(LEAD)
    assert reader is not None
    data = bytearray(encode(LEAD, {"lead_id": "abc"}))
    data[1:4] = b"\xff\xfe\xfd"
    with pytest.raises(UnicodeDecodeError):
        reader.read(bytes(data))


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "array", "items": "string"},
        {"type": "map", "values": "string"},
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "fixed", "name": "F", "size": 2},
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "string"}]},
        "float",
        "double",
        "boolean",
        ["null", "string", "long"],
        ["string", "long"],
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "string", "logicalType": "uuid"},
        {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
    ],
    ids=repr,
)
def test_other_shapes_are_left_to_fastavro(field_type: Any) -> None:
    schema = fastavro.parse_schema(
        {
            "type": "record",
            "name": "Other",
            "namespace": "test.flat",
            "fields": [{"name": "ok", "type": "string"}, {"name": "other", "type": field_type}],
        }
    )
    assert FlatRecordReader.compile(schema) is None


def test_the_quarantine_record_is_left_to_fastavro() -> None:
    schema = json.loads((REPO_ROOT / "schemas/common/QuarantineRecord.avsc").read_text())
    assert FlatRecordReader.compile(fastavro.parse_schema(schema)) is None
    assert FlatRecordReader.compile(fastavro.parse_schema("string")) is None
