"""The CloudEvents envelope of a consumed event, read once and turned into the envelope of
the event derived from it without a round trip through text.

``EventMeta.from_headers(h).derive(type=t, **lineage).to_headers()`` decodes every header,
parses and re-formats the time, builds two ``EventMeta`` objects and encodes every header
again, for each event. Most of an output envelope is the input's bytes: ``derived_headers``
copies them and computes only what changes (the id, the type, the lineage added), with the
time parsed and formatted once per distinct ``ce_time`` (a connector batch shares one). The
result is the same list of headers (a unit test pins it to the ``EventMeta`` path), and
``meta()`` still gives the full ``EventMeta`` for the rare paths that need it (quarantine,
DLP incidents).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from hub.errors import SchemaError
from hub.events import (
    AVRO_CONTENT_TYPE,
    SPECVERSION,
    EventMeta,
    Headers,
    deterministic_id,
    format_time,
    parse_time,
)

__all__ = ["Envelope", "EnvelopeReader"]

_REQUIRED = ("ce_id", "ce_source", "ce_type")
_TEXT = ("ce_", "hub_", "content-type")  # the headers read as text (others are passed over)
_SPECVERSION = SPECVERSION.encode()
_AVRO = AVRO_CONTENT_TYPE.encode()


class Envelope:
    """One consumed event's envelope: the header bytes (last value of a repeated name, as
    ``EventMeta.from_headers`` reads them), its id and its time."""

    __slots__ = ("_meta", "id", "time", "time_header", "values")

    def __init__(
        self, values: dict[str, bytes], event_id: str, time: datetime, time_header: bytes
    ) -> None:
        self.values = values
        self.id = event_id
        self.time = time
        self.time_header = time_header  # ce_time as the derived envelope writes it
        self._meta: EventMeta | None = None

    def meta(self) -> EventMeta:
        """The ``EventMeta`` of this envelope (what ``EventMeta.from_headers`` returns)."""
        if self._meta is None:
            values = {k: v.decode() for k, v in self.values.items() if k.startswith(_TEXT)}
            self._meta = EventMeta(
                id=self.id,
                source=values["ce_source"],
                type=values["ce_type"],
                subject=values.get("ce_subject", ""),
                time=self.time,
                content_type=values.get("content-type", AVRO_CONTENT_TYPE),
                lineage={k: v for k, v in values.items() if k.startswith("hub_")},
            )
        return self._meta

    def derived_headers(self, event_type: str, lineage: Mapping[str, str]) -> Headers:
        """``self.meta().derive(type=event_type, **lineage).to_headers()``."""
        values = self.values
        headers: Headers = [
            ("ce_specversion", _SPECVERSION),
            ("ce_id", deterministic_id(self.id, event_type).encode()),
            ("ce_source", values["ce_source"]),
            ("ce_type", event_type.encode()),
            ("ce_time", self.time_header),
            ("ce_subject", values.get("ce_subject", b"")),
            ("content-type", values.get("content-type", _AVRO)),
        ]
        added = dict(lineage)
        for key, value in values.items():
            if key.startswith("hub_"):
                replaced = added.pop(key, None)
                headers.append((key, value if replaced is None else replaced.encode()))
        headers.extend((key, value.encode()) for key, value in added.items())
        return headers


class EnvelopeReader:
    """Reads envelopes; remembers the last ``ce_time`` it parsed (events come in runs that
    share one)."""

    __slots__ = ("_last_time",)

    def __init__(self) -> None:
        self._last_time: tuple[bytes, datetime, bytes] | None = None

    def read(self, headers: Iterable[tuple[str, bytes | str | None]] | None) -> Envelope:
        """Raises ``SchemaError`` for a missing CloudEvents header or one that is not UTF-8
        text (the event goes to quarantine)."""
        values = _header_values(headers)
        missing = [k for k in _REQUIRED if k not in values]
        if missing:
            raise SchemaError(f"event has no CloudEvents header {', '.join(missing)}")
        try:
            event_id = values["ce_id"].decode()
        except UnicodeDecodeError:
            raise SchemaError("event has a CloudEvents or hub header that is not UTF-8") from None
        raw_time = values.get("ce_time")
        if not raw_time:  # no time: now, as EventMeta.from_headers does (never cached)
            now = parse_time(None)
            return Envelope(values, event_id, now, format_time(now).encode())
        last = self._last_time
        if last is None or last[0] != raw_time:
            try:
                time = parse_time(raw_time.decode())
            except ValueError:
                raise SchemaError("event has a ce_time that is not an ISO-8601 time") from None
            last = self._last_time = (raw_time, time, format_time(time).encode())
        return Envelope(values, event_id, last[1], last[2])


def _header_values(headers: Iterable[tuple[str, bytes | str | None]] | None) -> dict[str, bytes]:
    """Header name -> bytes (the last value of a repeated name; ``None`` values skipped). The
    headers read as text must be UTF-8. Common case in C: a list of distinct names whose
    values are all bytes and UTF-8."""
    if isinstance(headers, list):
        values: dict[str, Any] = dict(headers)
        if len(values) == len(headers):
            try:
                b"\x00".join(values.values()).decode()
            except (TypeError, UnicodeDecodeError):
                pass  # a None or str value, or a binary header: one by one below
            else:
                return values
    checked: dict[str, bytes] = {}
    for key, raw in headers or ():
        if raw is None:
            continue
        value = raw.encode() if isinstance(raw, str) else bytes(raw)
        if key.startswith(_TEXT):
            try:
                value.decode()
            except UnicodeDecodeError:
                raise SchemaError(
                    "event has a CloudEvents or hub header that is not UTF-8"
                ) from None
        checked[key] = value
    return checked
