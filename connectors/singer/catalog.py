"""The tap's Singer catalog: its streams, which of them are selected, and the catalog
handed back to the tap (``--catalog``) with that selection marked in its metadata.

Selection: ``select`` (stream names) when given; else the selection a catalog file marks
(``selected``, or ``selected-by-default``; a catalog that marks nothing selects all); else
every discovered stream. The catalog handed to the tap marks each stream ``selected`` true
or false, and, for a discovered catalog, every property that is not ``unsupported`` as
selected too (older singer-python taps sync only the properties marked so).
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CatalogStream:
    """One catalog entry, as the hub needs it."""

    tap_stream_id: str
    stream: str  # the name a tap's messages use (usually equal to tap_stream_id)
    schema: Mapping[str, Any]
    key_properties: tuple[str, ...]
    replication_key: str | None
    marked: bool | None  # selected (or selected by default) in the catalog's metadata

    @property
    def names(self) -> set[str]:
        return {self.tap_stream_id, self.stream}


def _root_metadata(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    for item in entry.get("metadata") or ():
        if isinstance(item, Mapping) and list(item.get("breadcrumb") or []) == []:
            found = item.get("metadata")
            return found if isinstance(found, Mapping) else {}
    return {}


def _strings(value: Any) -> tuple[str, ...]:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return tuple(str(v) for v in value)
    return ()


def parse_catalog(data: Any) -> list[CatalogStream]:
    """The streams of a Singer catalog; ``ValueError`` (no value quoted) if it is not one."""
    if not isinstance(data, Mapping) or not isinstance(data.get("streams"), list):
        raise ValueError('not a Singer catalog (an object with a "streams" list)')
    out: list[CatalogStream] = []
    for index, entry in enumerate(data["streams"]):
        if not isinstance(entry, Mapping):
            raise ValueError(f"catalog stream #{index + 1} is not an object")
        name = entry.get("tap_stream_id") or entry.get("stream")
        if not isinstance(name, str) or not name:
            raise ValueError(f"catalog stream #{index + 1} has no tap_stream_id")
        schema = entry.get("schema")
        if not isinstance(schema, Mapping):
            raise ValueError(f"catalog stream {name} has no schema object")
        meta = _root_metadata(entry)
        keys = _strings(entry.get("key_properties")) or _strings(meta.get("table-key-properties"))
        replication_key = entry.get("replication_key") or meta.get("replication-key")
        marked = meta.get("selected", meta.get("selected-by-default"))
        out.append(
            CatalogStream(
                tap_stream_id=name,
                stream=str(entry.get("stream") or name),
                schema=schema,
                key_properties=keys,
                replication_key=replication_key if isinstance(replication_key, str) else None,
                marked=marked if isinstance(marked, bool) else None,
            )
        )
    return out


def selected_streams(
    streams: Sequence[CatalogStream], select: Collection[str], *, from_file: bool
) -> list[CatalogStream]:
    """The streams to sync (see the module doc); ``ValueError`` naming unknown streams."""
    if select:
        known = {name for s in streams for name in s.names}
        unknown = sorted(set(select) - known)
        if unknown:
            listed = ", ".join(sorted(s.tap_stream_id for s in streams)) or "none"
            raise ValueError(f"select names unknown streams {unknown}; the tap has: {listed}")
        return [s for s in streams if s.names & set(select)]
    if from_file and any(s.marked is not None for s in streams):
        return [s for s in streams if s.marked]
    return list(streams)


def catalog_for_tap(
    data: Mapping[str, Any], selected: Collection[str], *, mark_properties: bool
) -> dict[str, Any]:
    """A copy of the catalog with ``selected`` set on each stream (and its properties)."""
    out = copy.deepcopy(dict(data))
    for entry in out.get("streams", []):
        name = entry.get("tap_stream_id") or entry.get("stream")
        chosen = name in selected
        metadata = entry.setdefault("metadata", [])
        root = next((m for m in metadata if list(m.get("breadcrumb") or []) == []), None)
        if root is None:
            root = {"breadcrumb": [], "metadata": {}}
            metadata.append(root)
        root.setdefault("metadata", {})["selected"] = chosen
        if not (chosen and mark_properties):
            continue
        for item in metadata:
            crumb = list(item.get("breadcrumb") or [])
            md = item.setdefault("metadata", {})
            if crumb and md.get("inclusion") != "unsupported" and "selected" not in md:
                md["selected"] = True
    return out


__all__ = ["CatalogStream", "catalog_for_tap", "parse_catalog", "selected_streams"]
