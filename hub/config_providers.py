"""Config providers: secrets stay references until the worker needs them.

A connector config may hold references instead of values, Kafka Connect style:

* ``${env:VAR}`` — the environment variable ``VAR`` of the worker process;
* ``${file:/path/to/file:key}`` — ``key`` in a file on the worker: a properties file
  (``key=value`` or ``key: value`` lines, ``#``/``!`` comments), or a YAML / JSON mapping
  (``.yaml``, ``.yml``, ``.json``; a dotted key walks nested mappings).

A reference may be the whole value or a part of it (``jdbc://${env:DB_USER}@db``) and may
sit anywhere in nested mappings and lists. ``$${`` stands for a literal ``${``.

References are stored and returned as written; only the worker resolves them, just
before it builds the connector. A reference that cannot be resolved is a ConfigError
that names the reference (provider, variable, file and key) and never a value.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from hub.errors import ConfigError

# $${ is an escaped literal; ${provider:body} a reference (body has no "}")
_TOKEN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*):([^}]*)\}")

Provider = Callable[[str], str]


def _env_provider(body: str) -> str:
    name = body.strip()
    if not name:
        raise ConfigError("config reference ${env:} names no environment variable")
    value = os.environ.get(name)
    if value is None:
        raise ConfigError(
            f"config reference ${{env:{name}}} cannot be resolved: environment variable "
            f"{name} is not set on the worker"
        )
    return value


def _read_properties(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        match = re.match(r"([^=:\s]+)\s*[=:]\s*(.*)$", line)
        if match is None:
            match = re.match(r"(\S+)\s+(.*)$", line)
        if match is not None:
            out[match.group(1)] = match.group(2)
    return out


def _lookup(data: Any, key: str) -> Any:
    if isinstance(data, Mapping) and key in data:
        return data[key]
    node = data
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _file_provider(body: str) -> str:
    ref = f"${{file:{body}}}"
    path_text, sep, key = body.rpartition(":")
    if not sep or not path_text or not key:
        raise ConfigError(f"config reference {ref} must look like ${{file:/path/to/file:key}}")
    path = Path(path_text)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"config reference {ref} cannot be resolved: cannot read {path} ({exc.strerror})"
        ) from None
    data: Any
    if path.suffix.lower() in {".yaml", ".yml", ".json"}:
        try:
            data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError):
            # never echo the parser's message: it may quote the file's content
            raise ConfigError(
                f"config reference {ref} cannot be resolved: {path} is not valid "
                f"{'JSON' if path.suffix.lower() == '.json' else 'YAML'}"
            ) from None
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"config reference {ref} cannot be resolved: {path} does not hold a mapping"
            )
    else:
        data = _read_properties(text)
    try:
        value = _lookup(data, key)
    except KeyError:
        raise ConfigError(
            f"config reference {ref} cannot be resolved: {path} has no key {key}"
        ) from None
    if isinstance(value, (Mapping, list)) or value is None:
        raise ConfigError(
            f"config reference {ref} cannot be resolved: key {key} in {path} is not a single value"
        )
    return str(value)


PROVIDERS: dict[str, Provider] = {"env": _env_provider, "file": _file_provider}


def resolve_text(text: str, providers: Mapping[str, Provider] = PROVIDERS) -> str:
    """``text`` with every reference replaced by its value and ``$${`` by ``${``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        provider, body = match.group(1), match.group(2)
        resolve = providers.get(provider)
        if resolve is None:
            known = ", ".join(sorted(providers))
            raise ConfigError(
                f"config reference ${{{provider}:{body}}} uses an unknown config provider "
                f"{provider!r}; known: {known}"
            )
        return resolve(body)

    return _TOKEN.sub(replace, text)


def resolve(value: Any, providers: Mapping[str, Provider] = PROVIDERS) -> Any:
    """``value`` (a config, or any JSON-like value) with references resolved, recursively.
    A new object is returned; the input is left as it was."""
    if isinstance(value, str):
        return resolve_text(value, providers)
    if isinstance(value, Mapping):
        return {k: resolve(v, providers) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, providers) for v in value]
    return value


def references(value: Any) -> list[str]:
    """Every reference written in ``value`` (recursively), e.g. ``["${env:DB_PASSWORD}"]``."""
    if isinstance(value, str):
        return [m.group(0) for m in _TOKEN.finditer(value) if m.group(0) != "$${"]
    if isinstance(value, Mapping):
        return [ref for v in value.values() for ref in references(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in references(v)]
    return []


def has_reference(value: Any) -> bool:
    return bool(references(value))


__all__ = ["PROVIDERS", "has_reference", "references", "resolve", "resolve_text"]
