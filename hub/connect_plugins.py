"""Connector plugins: classes found through the ``crm_hub.connectors`` entry point group.

A plugin class has a frozen pydantic ``Config`` and is built with a checked config
(``cls(config)``, or a ``from_config(config)`` classmethod when it needs more) into a
``hub.sdk.streams.SourceConnector``. A Connect-style config (a flat map of
strings) names the plugin in ``connector.class`` (the entry point name ``spreadsheet``,
the dotted path ``connectors.spreadsheet.connector.SpreadsheetConnector`` or the class
name) and carries the plugin's fields as keys, dotted (``drop.dir``) or as written in the
Config (``drop_dir``). Framework keys Connect defines (``tasks.max``, converters, ...) are
not passed to the plugin.

Validation answers in Connect's ``ConfigInfos`` shape (the ``.../config/validate``
endpoint), built from the Config's fields and pydantic's errors. Values that hold a
config-provider reference (``${env:VAR}``) are not checked here: they are resolved and
checked by the worker only.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, cast

from pydantic import BaseModel, SecretStr, ValidationError

from hub.config_providers import has_reference
from hub.errors import ConfigError
from hub.sdk.streams import SourceConnector

ENTRY_POINT_GROUP = "crm_hub.connectors"
COMMON_GROUP = "Common"
FRAMEWORK_KEYS = frozenset(
    {
        "connector.class",
        "name",
        "tasks.max",
        "key.converter",
        "value.converter",
        "header.converter",
        "config.action.reload",
        "transforms",
        "predicates",
        "exactly.once.support",
        "transaction.boundary",
        "offsets.storage.topic",
    }
)
FRAMEWORK_PREFIXES = (
    "key.converter.",
    "value.converter.",
    "header.converter.",
    "transforms.",
    "predicates.",
    "errors.",
    "topic.creation.",
    "producer.override.",
    "admin.override.",
)


@dataclass(frozen=True)
class Plugin:
    name: str  # entry point name, e.g. "spreadsheet"
    cls: type

    @property
    def class_name(self) -> str:
        """The dotted path Connect reports as ``class``."""
        return f"{self.cls.__module__}.{self.cls.__qualname__}"

    @property
    def version(self) -> str:
        return str(getattr(self.cls, "version", "0.0.0"))

    @property
    def config_model(self) -> type[BaseModel]:
        model = getattr(self.cls, "Config", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"connector plugin {self.name} has no pydantic Config")
        return model

    def build(self, config: BaseModel) -> SourceConnector:
        factory = getattr(self.cls, "from_config", None)
        built = factory(config) if callable(factory) else self.cls(config)
        return cast(SourceConnector, built)


@cache
def plugins() -> dict[str, Plugin]:
    """Installed plugins by entry point name (loaded once per process)."""
    found: dict[str, Plugin] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = Plugin(ep.name, ep.load())
    return found


def find_plugin(connector_class: str) -> Plugin:
    """The plugin named by ``connector.class``; ConfigError listing the known ones."""
    for plugin in plugins().values():
        if connector_class in (plugin.name, plugin.class_name, plugin.cls.__name__):
            return plugin
    known = ", ".join(f"{p.name} ({p.class_name})" for p in plugins().values()) or "none"
    raise ConfigError(f"unknown connector plugin {connector_class!r}; known: {known}")


def config_string(value: Any) -> str | None:
    """A config value as Connect keeps it (a string), or None if it is not a scalar."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


def field_key(field: str) -> str:
    """The Connect-style (dotted) key of a Config field."""
    return field.replace("_", ".")


def _field_of(key: str, model: type[BaseModel]) -> str | None:
    candidate = key.replace(".", "_").replace("-", "_")
    return candidate if candidate in model.model_fields else None


def is_framework_key(key: str) -> bool:
    return key in FRAMEWORK_KEYS or key.startswith(FRAMEWORK_PREFIXES)


def plugin_input(plugin: Plugin, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """The Config fields of a Connect config (framework keys left out)."""
    model = plugin.config_model
    out: dict[str, Any] = {}
    for key, value in config.items():
        if is_framework_key(key):
            continue
        out[_field_of(key, model) or key] = value
    if "name" in model.model_fields:
        out["name"] = name
    return out


def build_config(plugin: Plugin, name: str, resolved: dict[str, Any]) -> BaseModel:
    """The plugin's Config from a resolved Connect config; ConfigError on the first error."""
    try:
        return plugin.config_model.model_validate(plugin_input(plugin, name, resolved))
    except ValidationError as exc:
        problems = "; ".join(describe_error(err) for err in exc.errors())
        raise ConfigError(f"connector {name}: invalid config: {problems}") from None


def describe_error(err: Any) -> str:
    loc = err.get("loc", ())
    key = field_key(str(loc[0])) if loc else "config"
    return f"{key}: {str(err.get('msg', 'invalid value')).removeprefix('Value error, ')}"


# -- Connect's validate answer ------------------------------------------------------------


def _connect_type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _connect_type(args[0]) if args else "STRING"
    if origin in (list, tuple, set, frozenset):
        return "LIST"
    if annotation is bool:
        return "BOOLEAN"
    if annotation is int:
        return "INT"
    if annotation is float:
        return "DOUBLE"
    if annotation is SecretStr:
        return "PASSWORD"
    if isinstance(annotation, type) and issubclass(annotation, (str, Path)):
        return "STRING"
    return "STRING"


def _entry(
    *,
    name: str,
    type_: str,
    required: bool,
    default: Any,
    documentation: str,
    group: str,
    order: int,
    value: Any,
    errors: list[str],
) -> dict[str, Any]:
    shown = value
    if type_ == "PASSWORD" and value is not None and not has_reference(value):
        shown = "[hidden]"
    return {
        "definition": {
            "name": name,
            "type": type_,
            "required": required,
            "default_value": None if default is None else str(default),
            "importance": "HIGH" if required else "MEDIUM",
            "documentation": documentation,
            "group": group,
            "width": "MEDIUM",
            "display_name": name,
            "dependents": [],
            "order": order,
        },
        "value": {
            "name": name,
            "value": None if shown is None else str(shown),
            "recommended_values": [],
            "errors": errors,
            "visible": True,
        },
    }


def _tasks_max_errors(value: Any) -> list[str]:
    if value is None:
        return []
    try:
        if int(str(value)) >= 1:
            return []
    except ValueError:
        pass
    return ["Invalid value: tasks.max must be an integer of at least 1"]


def validate(plugin: Plugin, config: dict[str, Any]) -> dict[str, Any]:
    """Connect's ``ConfigInfos`` for ``config``: one entry per common key and per Config
    field (plus one per key the plugin does not know), with the errors of each."""
    name = str(config.get("name") or "")
    model = plugin.config_model
    group = plugin.cls.__name__.removesuffix("Connector") or plugin.name
    given = {(_field_of(k, model) or k): k for k in config if not is_framework_key(k)}
    errors: dict[str, list[str]] = {}
    try:
        model.model_validate(plugin_input(plugin, name or "x", config))
    except ValidationError as exc:
        for err in exc.errors():
            loc = err.get("loc", ())
            field = str(loc[0]) if loc else ""
            raw_key = given.get(field)
            if raw_key is not None and has_reference(config.get(raw_key)):
                continue  # checked by the worker once resolved
            msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            errors.setdefault(field, []).append(msg)
    configs = [
        _entry(
            name="connector.class",
            type_="STRING",
            required=True,
            default=None,
            documentation="Name or class of the connector plugin",
            group=COMMON_GROUP,
            order=1,
            value=config.get("connector.class"),
            errors=[],
        ),
        _entry(
            name="name",
            type_="STRING",
            required=True,
            default=None,
            documentation="Globally unique name of the connector",
            group=COMMON_GROUP,
            order=2,
            value=config.get("name"),
            errors=[]
            if name
            else ['Missing required configuration "name" which has no default value.'],
        ),
        _entry(
            name="tasks.max",
            type_="INT",
            required=False,
            default=1,
            documentation="Maximum number of tasks (the hub runs one task per connector)",
            group=COMMON_GROUP,
            order=3,
            value=config.get("tasks.max"),
            errors=_tasks_max_errors(config.get("tasks.max")),
        ),
    ]
    order = 0
    for field, info in model.model_fields.items():
        if field == "name":
            continue  # the connector's name (Common group)
        order += 1
        raw_key = given.get(field, field_key(field))
        required = info.is_required()
        configs.append(
            _entry(
                name=raw_key,
                type_=_connect_type(info.annotation),
                required=required,
                default=None if required else info.get_default(call_default_factory=True),
                documentation=info.description or "",
                group=group,
                order=order,
                value=config.get(raw_key),
                errors=errors.pop(field, []),
            )
        )
    name_errors = errors.pop("name", [])
    if name_errors:
        configs[1]["value"]["errors"].extend(name_errors)
    for field, messages in errors.items():  # keys the Config does not know
        raw_key = given.get(field, field)
        configs.append(
            _entry(
                name=raw_key,
                type_="STRING",
                required=False,
                default=None,
                documentation="",
                group=group,
                order=-1,
                value=config.get(raw_key),
                errors=messages,
            )
        )
    return {
        "name": plugin.class_name,
        "error_count": sum(len(c["value"]["errors"]) for c in configs),
        "groups": [COMMON_GROUP, group],
        "configs": configs,
    }


def error_messages(result: dict[str, Any]) -> list[str]:
    """``key: message`` lines of a validate answer (for the 400 of create/update)."""
    return [
        f"{c['value']['name']}: {msg}" for c in result["configs"] for msg in c["value"]["errors"]
    ]


__all__ = [
    "ENTRY_POINT_GROUP",
    "Plugin",
    "build_config",
    "config_string",
    "describe_error",
    "error_messages",
    "find_plugin",
    "plugins",
    "validate",
]
