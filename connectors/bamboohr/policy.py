"""Data minimisation for HR sources: ``policies/hr_minimisation.yaml``, typed and checked.

The policy lists, per stream, the only fields that may leave an HR connector, which of them
identify a person (a DLP entity) and why the CRM needs them. It is read once at start and
checked twice: against its own model (pydantic; a wrong key or type is one ``ConfigError``
line naming the key path) and against the stream's Avro schema (every allowed field is in
the schema; a personal field carries the same ``"pii"`` entity there, and a schema field
with ``"pii"`` the policy allows is declared personal; a personal schema field the policy
does not allow is nullable, as it will always be null; an erasure stream allows nothing
personal).

``Minimiser`` applies a stream's policy to what a source sent: it keeps the allowed fields
under their canonical names and counts the dropped ones by source field name (never their
values).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from hub.errors import ConfigError
from hub.policies import read_policy_yaml  # the strict YAML reader policy files share
from hub.serde import load_schema_text, schema_path
from hub.settings import REPO_ROOT

__all__ = [
    "DEFAULT_POLICY",
    "AllowedField",
    "MinimisationPolicy",
    "Minimiser",
    "StreamPolicy",
    "load_minimisation_policy",
]

DEFAULT_POLICY = REPO_ROOT / "policies" / "hr_minimisation.yaml"

FieldName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Entity = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AllowedField(_Model):
    bamboohr: SourceName | None = Field(
        default=None, description="The BambooHR API field it is read from"
    )
    personal: Entity | None = Field(
        default=None, description="DLP entity of a field that identifies a person"
    )
    purpose: str | None = Field(default=None, min_length=3, description="Why the CRM needs it")
    kind: Literal["text", "date"] = "text"

    @model_validator(mode="after")
    def _purpose_of_personal(self) -> AllowedField:
        if self.personal is not None and not self.purpose:
            raise ValueError("a personal field needs a purpose")
        return self


class StreamPolicy(_Model):
    schema_name: str = Field(alias="schema", pattern=r"^[a-z][a-z0-9_]*/[A-Za-z][A-Za-z0-9]*$")
    erasure: bool = False
    fields: dict[FieldName, AllowedField] = Field(min_length=1)

    @cached_property
    def from_bamboohr(self) -> dict[str, str]:
        """BambooHR API field name -> canonical field, for the fields read from the API."""
        return {f.bamboohr: name for name, f in self.fields.items() if f.bamboohr}

    @cached_property
    def date_fields(self) -> frozenset[str]:
        return frozenset(name for name, f in self.fields.items() if f.kind == "date")

    @cached_property
    def personal(self) -> dict[str, str]:
        return {name: f.personal for name, f in self.fields.items() if f.personal}


class MinimisationPolicy(_Model):
    version: str = Field(min_length=1)
    streams: dict[FieldName, StreamPolicy] = Field(min_length=1)
    path: Path = Field(default=DEFAULT_POLICY, exclude=True)

    def stream(self, name: str) -> StreamPolicy:
        found = self.streams.get(name)
        if found is None:
            raise ConfigError(f"{self.path}: streams.{name}: missing (the connector reads it)")
        return found


def _key_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _error_line(path: Path, error: ErrorDetails) -> str:
    msg = str(error["msg"]).removeprefix("Value error, ")
    loc = tuple(error["loc"])
    return f"{path}: {_key_path(loc)}: {msg}" if loc else f"{path}: {msg}"


def load_minimisation_policy(
    path: Path = DEFAULT_POLICY, *, schemas_dir: Path = REPO_ROOT / "schemas"
) -> MinimisationPolicy:
    """Read and check the policy, and check it against its streams' Avro schemas.

    Any problem is a ``ConfigError`` whose message is one line naming the file and the key
    path (``…/hr_minimisation.yaml: streams.employees.fields.work_email.personal: …``)."""
    data = read_policy_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping with 'version' and 'streams'")
    try:
        policy = MinimisationPolicy.model_validate({**data, "path": path})
    except ValidationError as exc:
        lines = [_error_line(path, e) for e in exc.errors(include_url=False, include_input=False)]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more, internal="\n".join(lines)) from None
    for name, stream in policy.streams.items():
        _check_against_schema(path, name, stream, schemas_dir)
    return policy


def _check_against_schema(path: Path, name: str, stream: StreamPolicy, schemas_dir: Path) -> None:
    where = f"{path}: streams.{name}"
    try:
        schema = json.loads(load_schema_text(schema_path(schemas_dir, stream.schema_name)))
    except Exception:  # noqa: BLE001 - SchemaError or a schema that is not a record
        raise ConfigError(f"{where}.schema: cannot read schema {stream.schema_name}") from None
    avro_fields = {str(f["name"]): f for f in schema.get("fields", [])}
    for field_name, allowed in stream.fields.items():
        at = f"{where}.fields.{field_name}"
        avro = avro_fields.get(field_name)
        if avro is None:
            raise ConfigError(
                f"{at}: not a field of {stream.schema_name}; add it to the schema first"
            )
        declared = avro.get("pii")
        if allowed.personal != declared:
            if declared is None:
                raise ConfigError(
                    f"{at}.personal: the schema does not declare it pii; declare it there too"
                )
            raise ConfigError(
                f"{at}.personal: the schema declares pii {declared}; the policy must say so"
            )
        if stream.erasure and allowed.personal:
            raise ConfigError(f"{at}.personal: an erasure stream carries nothing personal")
    for field_name, avro in avro_fields.items():
        if field_name in stream.fields or not avro.get("pii"):
            continue
        if stream.erasure:
            raise ConfigError(f"{where}: schema field {field_name} is pii in an erasure stream")
        if not (isinstance(avro.get("type"), list) and "null" in avro["type"]):
            raise ConfigError(
                f"{where}: schema field {field_name} is pii, not allowed by the policy and not "
                "nullable (it would always be null)"
            )


@dataclass
class Minimiser:
    """One stream's policy applied to source records; counts what it dropped."""

    policy: MinimisationPolicy
    stream: str
    dropped: Counter[str] = field(default_factory=Counter)  # source field name -> times

    @cached_property
    def rules(self) -> StreamPolicy:
        return self.policy.stream(self.stream)

    def from_bamboohr(self, source: Mapping[str, Any]) -> dict[str, Any]:
        """An API record as canonical fields the policy allows; the rest is counted."""
        names = self.rules.from_bamboohr
        out: dict[str, Any] = {}
        for key, value in source.items():
            canonical = names.get(key)
            if canonical is None:
                self.dropped[key] += 1
            else:
                out[canonical] = value
        return out

    def from_columns(self, cells: Mapping[str, Any], columns: Mapping[str, str]) -> dict[str, Any]:
        """A file row (header -> cell) as canonical fields, through ``columns`` (header ->
        canonical field); a column the mapping or the policy does not take is counted."""
        allowed = self.rules.fields
        out: dict[str, Any] = {}
        for header, value in cells.items():
            canonical = columns.get(header)
            if canonical is None or canonical not in allowed:
                self.dropped[header] += 1
            elif value not in (None, "") or canonical not in out:
                out[canonical] = value
        return out

    def allowed_source(self, source: Mapping[str, Any]) -> dict[str, Any]:
        """Only the allowed fields of an API record, under their source names (what a
        quarantine record may keep for re-drive)."""
        names = self.rules.from_bamboohr
        return {k: v for k, v in source.items() if k in names}
