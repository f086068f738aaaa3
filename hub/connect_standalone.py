"""Build one connector from a config file for the standalone verbs (no Kafka, no worker).

The config file is YAML or JSON: either a definition (``{name, config}``, as ``crmhub
connectors create -f`` takes) or the flat config itself. ``--set key=value`` adds or
overrides keys. Config-provider references (``${env:VAR}``) are resolved here, as the
worker would. A standalone read may leave out what only publishing needs (the
spreadsheet connector's mapping: rows are then read as text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hub.config_providers import resolve
from hub.connect_plugins import Plugin, describe_error, find_plugin, plugin_input
from hub.errors import ConfigError
from hub.sdk.streams import SourceConnector
from hub.serde import load_schema_text, schema_path


def read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"connector config {path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError:
        raise ConfigError(f"connector config {path}: not valid YAML or JSON") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"connector config {path}: expected a mapping")
    if isinstance(data.get("config"), dict):  # a definition {name, config}
        config = dict(data["config"])
        if isinstance(data.get("name"), str):
            config.setdefault("name", data["name"])
        return config
    return dict(data)


def parse_sets(sets: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item.split('=', 1)[0]!r}: expected key=value")
        out[key.strip()] = value
    return out


def build_standalone(plugin_name: str, config: Mapping[str, Any]) -> tuple[Plugin, SourceConnector]:
    plugin = find_plugin(plugin_name)
    name = str(config.get("name") or plugin.name)
    resolved = resolve(dict(config))
    try:
        model = plugin.config_model.model_validate(
            plugin_input(plugin, name, resolved), context={"standalone": True}
        )
    except ValidationError as exc:
        problems = "; ".join(describe_error(err) for err in exc.errors())
        raise ConfigError(f"connector {name}: invalid config: {problems}") from None
    return plugin, plugin.build(model)


def avro_schemas(
    connector: SourceConnector, schemas_dir: Path
) -> dict[str, Mapping[str, Any] | None]:
    """Each stream's Avro schema as a mapping (None for a stream without one)."""
    out: dict[str, Mapping[str, Any] | None] = {}
    for stream in connector.streams():
        if isinstance(stream.schema, str):
            out[stream.name] = json.loads(load_schema_text(schema_path(schemas_dir, stream.schema)))
        else:
            out[stream.name] = stream.schema
    return out


__all__ = ["avro_schemas", "build_standalone", "parse_sets", "read_config_file"]
