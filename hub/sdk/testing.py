"""The contract every connector passes: subclass ``ConnectorContract`` in a test module.

The subclass names its plugin and provides two pytest fixtures:

- ``source`` -> ``ContractSource``: a Connect-style config that reads a real source
  prepared by the fixture (a drop directory, a local HTTP server), the record ids of the
  good records the source holds and how many bad ones it holds;
- ``failures`` -> a list of ``ContractFailure``: configs or source states that must end in
  a given error class (``RetriableError`` for a source that is away or limiting,
  ``FatalError`` / ``ConfigError`` for refused credentials or a missing source).

The contract then checks, without Kafka: config validation in Connect's format, ``check``,
discovery (streams, schemas, keys), a read to the end (every value fits its stream's Avro
schema, every good record once, every bad one to quarantine with reasons that never quote
a value), and a resume from cursors taken at the start, the middle and the end of the read
that neither skips nor repeats a record. The runner's acknowledgement side is covered by
the integration tests of ``hub.connect``.

An at-least-once source (a Singer tap whose bookmark is inclusive, ``>=``, so a resume
reads the boundary record again; a full-table stream read whole on every run) sets
``resume_may_repeat = True``: a resume may then read again records it had already read
before the resume point (same record id, so the same event id downstream), and still
never skips one nor reads one it had not read. The default stays strict.

Needs the dev extras (pytest).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import pytest

from hub.connect_plugins import build_config, find_plugin, validate
from hub.connect_standalone import avro_schemas
from hub.errors import HubError
from hub.sdk.standalone import StateOffsets
from hub.sdk.streams import COUNTER_KEYS, SourceConnector, SourceRecord, Stream
from hub.settings import REPO_ROOT


@dataclass
class ContractSource:
    config: dict[str, str]  # Connect-style, with "name"
    good_ids: set[str]  # record ids of the good records the source holds
    bad: int = 0  # records that must go to quarantine
    values_with: Mapping[str, str] = field(default_factory=dict)  # text a bad reason must not quote
    schemas_dir: Path = REPO_ROOT / "schemas"


@dataclass
class ContractFailure:
    """``arrange`` (optional) breaks the source; reading or checking must then raise
    ``expect``."""

    name: str
    config: dict[str, str]
    expect: type[HubError]
    arrange: Callable[[], None] | None = None


@dataclass
class ReadResult:
    records: list[tuple[SourceRecord, dict[str, Any], dict[str, Any] | None]]  # rec, part, cursor

    @property
    def good(self) -> list[SourceRecord]:
        return [r for r, _, _ in self.records if not r.reasons and r.value is not None]

    @property
    def bad(self) -> list[SourceRecord]:
        return [r for r, _, _ in self.records if r.reasons or r.value is None]


def build(config: Mapping[str, str]) -> SourceConnector:
    plugin = find_plugin(str(config["connector.class"]))
    return plugin.build(build_config(plugin, str(config["name"]), dict(config)))


def read_all(connector: SourceConnector, state: StateOffsets | None = None) -> ReadResult:
    """Every record of every partition, with the cursor in force after it."""
    out: list[tuple[SourceRecord, dict[str, Any], dict[str, Any] | None]] = []
    for part in connector.partitions(state or StateOffsets()):
        cursor = part.cursor
        for rec in connector.fetch(part):
            if rec.cursor is not None:
                cursor = dict(rec.cursor)
            if rec.checkpoint:
                if out:  # the resume point belongs to the record before it
                    last, last_part, _ = out[-1]
                    if last_part == dict(part.partition):
                        out[-1] = (last, last_part, cursor)
                continue
            out.append((rec, dict(part.partition), cursor))
    return ReadResult(out)


def _stream_of(connector: SourceConnector, rec: SourceRecord) -> Stream:
    if isinstance(rec.stream, Stream):
        return rec.stream
    streams = list(connector.streams())
    wanted = rec.stream or streams[0].name
    return next(s for s in streams if s.name == wanted)


class ConnectorContract:
    """Subclass it; see the module doc for the fixtures to provide."""

    plugin: str
    # True for an at-least-once source: a resume may repeat records read before its resume
    # point (never skip one); see the module doc.
    resume_may_repeat: bool = False

    def _not_read_before(self, ids: list[str], read: set[str]) -> list[str]:
        """``ids`` less the repeats an at-least-once source may make."""
        if not self.resume_may_repeat:
            return ids
        return [i for i in ids if i not in read]

    # -- config ---------------------------------------------------------------------------------

    def test_the_plugin_is_found_by_its_entry_point(self) -> None:
        found = find_plugin(self.plugin)
        assert found.name == self.plugin

    def test_a_config_missing_a_required_key_is_refused_in_connects_format(
        self, source: ContractSource
    ) -> None:
        plugin = find_plugin(self.plugin)
        required = [
            name
            for name, info in plugin.config_model.model_fields.items()
            if info.is_required() and name != "name"
        ]
        for key in required:
            dotted = key.replace("_", ".")
            config = {k: v for k, v in source.config.items() if k not in (key, dotted)}
            answer = validate(plugin, config)
            assert answer["error_count"] >= 1, f"{dotted} missing, yet no error"
            errors = {c["value"]["name"]: c["value"]["errors"] for c in answer["configs"]}
            assert errors.get(dotted) or errors.get(key), f"no error on {dotted}"
        assert validate(plugin, source.config)["error_count"] == 0

    def test_an_unknown_key_is_refused(self, source: ContractSource) -> None:
        answer = validate(find_plugin(self.plugin), {**source.config, "no.such.key": "1"})
        assert answer["error_count"] >= 1

    # -- check and discovery ---------------------------------------------------------------

    def test_check_passes_on_a_reachable_source(self, source: ContractSource) -> None:
        build(source.config).check()

    def test_discovery_declares_streams_with_schemas_and_keys(self, source: ContractSource) -> None:
        connector = build(source.config)
        streams = list(connector.streams())
        assert streams, "no stream declared"
        assert len({s.name for s in streams}) == len(streams)
        schemas = avro_schemas(connector, source.schemas_dir)
        for stream in streams:
            assert stream.topic, f"stream {stream.name} has no topic"
            assert stream.event_type, f"stream {stream.name} has no event type"
            avro = schemas[stream.name]
            assert avro is not None, f"stream {stream.name} has no Avro schema"
            fastavro.parse_schema(dict(avro))
            fields = {f["name"] for f in avro["fields"]}
            assert set(stream.primary_key) <= fields, f"{stream.name}: key not in schema"
            assert stream.primary_key, f"{stream.name}: no primary key"
            if stream.replication_key:
                assert stream.replication_key in fields

    # -- reading -----------------------------------------------------------------------------

    def test_a_read_to_the_end_gives_every_good_record_once_in_its_schema(
        self, source: ContractSource
    ) -> None:
        connector = build(source.config)
        schemas = {
            name: fastavro.parse_schema(dict(avro))
            for name, avro in avro_schemas(connector, source.schemas_dir).items()
            if avro is not None
        }
        result = read_all(connector)
        ids = [r.record_id for r in result.good]
        assert len(ids) == len(set(ids)), "a record was read twice"
        assert set(ids) == source.good_ids
        for rec in result.good:
            stream = _stream_of(connector, rec)
            assert fastavro.validation.validate(
                rec.value, schemas[stream.name], raise_errors=False
            ), f"{rec.record_id} does not fit {stream.name}'s schema"
            key = rec.key or rec.record_id
            assert key, "record without a key"
        assert result.records, "nothing read"
        assert result.records[-1][2] is not None, "the last record leaves no cursor"

    def test_bad_records_go_to_quarantine_with_reasons_that_quote_no_value(
        self, source: ContractSource
    ) -> None:
        result = read_all(build(source.config))
        assert len(result.bad) == source.bad
        for rec in result.bad:
            assert rec.reasons, f"{rec.record_id}: no reason"
            text = json.dumps([r.as_dict() for r in rec.reasons])
            for secret in source.values_with.values():
                assert secret not in text, f"{rec.record_id}: a reason quotes a value"

    def test_a_second_read_from_the_final_state_reads_nothing_new(
        self, source: ContractSource
    ) -> None:
        first = read_all(build(source.config))
        state = _state_after(first, len(first.records) - 1)
        again = read_all(build(source.config), state)
        read = {r.record_id for r, _, _ in first.records}
        assert self._not_read_before([r.record_id for r in again.good], read) == []
        if self.resume_may_repeat:  # repeats allowed, but the cursor must still count
            assert len(again.records) < len(first.records), "the final cursor skipped nothing"

    def test_a_resume_from_a_cursor_neither_skips_nor_repeats(self, source: ContractSource) -> None:
        full = read_all(build(source.config))
        points = [
            i
            for i, (rec, _, cursor) in enumerate(full.records)
            if rec.cursor is not None or (i and cursor != full.records[i - 1][2])
        ]
        assert points, "no resume point"
        for index in sorted({points[0], points[len(points) // 2], points[-1]}):
            state = _state_after(full, index)
            rest = read_all(build(source.config), state)
            expected = [r.record_id for r, _, _ in full.records[index + 1 :]]
            got = [r.record_id for r, _, _ in rest.records]
            read = {r.record_id for r, _, _ in full.records[: index + 1]}
            got = self._not_read_before(got, read)
            assert got == expected, f"resume after record #{index + 1} differs"

    # -- errors ------------------------------------------------------------------------------

    def test_errors_come_by_recovery(self, failures: list[ContractFailure]) -> None:
        assert failures, "the contract needs at least one failure case"
        for case in failures:
            if case.arrange is not None:
                case.arrange()
            with pytest.raises(case.expect) as caught:
                _check_and_read(case.config)
            assert caught.value.message, f"{case.name}: no message"


def _check_and_read(config: Mapping[str, str]) -> None:
    connector = build(config)
    connector.check()
    read_all(connector)


def _state_after(result: ReadResult, index: int) -> StateOffsets:
    """The state a runner would have committed after record ``index`` (0-based): for each
    partition, the last cursor at or before it; partitions read to their end are done."""
    state = StateOffsets()
    per_partition: dict[str, tuple[dict[str, Any], dict[str, Any] | None, int, bool]] = {}
    last_index_of: dict[str, int] = {}
    for i, (_, part, _) in enumerate(result.records):
        last_index_of[json.dumps(part, sort_keys=True)] = i
    for i, (_, part, cursor) in enumerate(result.records[: index + 1]):
        key = json.dumps(part, sort_keys=True)
        done = last_index_of[key] == i
        per_partition[key] = (part, cursor, i, done)
    for part, cursor, _, done in per_partition.values():
        offset: dict[str, Any] = {**(cursor or {}), "done": done}
        offset.update(dict.fromkeys(COUNTER_KEYS, 0))
        state.put(part, offset)
    return state


__all__ = [
    "ConnectorContract",
    "ContractFailure",
    "ContractSource",
    "ReadResult",
    "build",
    "read_all",
]
