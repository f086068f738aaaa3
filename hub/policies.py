"""Typed models of the declarative policy files under ``policies/``, and their loaders.

A policy file is read once at start. Anything wrong with it (unreadable YAML, an unknown
rule kind, an unknown or mistyped key, a missing ``version``) is a ``ConfigError`` with one
line that names the file and the key path, e.g.
``policies/validation.yaml: departments.sales.rules[3].max: Input should be a valid integer``.
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import phonenumbers
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from hub.errors import ConfigError

__all__ = [
    "RULE_KINDS",
    "CountryRule",
    "DateRule",
    "DepartmentRules",
    "EmailRule",
    "EnumRule",
    "MaxLengthRule",
    "PhoneRule",
    "RequiredRule",
    "Rule",
    "ValidationPolicy",
    "load_validation_policy",
]

RuleId = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]
FieldName = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
DepartmentName = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
RegionCode = Annotated[str, Strict(), StringConstraints(pattern=r"^[A-Z]{2}$")]


class _PolicyModel(BaseModel):
    # Scalars are strict (YAML gives real ints, bools and strings; "10" for an int or 1 for
    # a name is a mistake to report); lists are read into tuples.
    model_config = ConfigDict(frozen=True, extra="forbid")


class _RuleBase(_PolicyModel):
    id: RuleId = Field(description="Stable rule id, e.g. 'sales.phone.format'; goes into reasons")
    field: FieldName = Field(description="Canonical field the rule reads")


class RequiredRule(_RuleBase):
    """The field is present and not blank."""

    kind: Literal["required"]


class MaxLengthRule(_RuleBase):
    """The text has at most ``max`` characters."""

    kind: Literal["max_length"]
    max: StrictInt = Field(gt=0)


class EmailRule(_RuleBase):
    """E-mail syntax (email-validator, no DNS); the field becomes the normalised address."""

    kind: Literal["email"]
    allow_smtputf8: StrictBool = Field(
        default=True, description="Accept internationalised (non-ASCII) local parts"
    )


class PhoneRule(_RuleBase):
    """A valid phone number (phonenumbers). Writes E.164 and display forms."""

    kind: Literal["phone"]
    country_field: FieldName | None = Field(
        default="country", description="Field whose country gives the default region"
    )
    default_region: RegionCode = Field(description="Region when the country is unknown")
    require_nanp: StrictBool = Field(default=False, description="Only +1 (NANP) numbers are valid")
    e164_field: FieldName = "phone_e164"
    display_field: FieldName = "phone_display"

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("not a region phonenumbers knows (ISO 3166-1 alpha-2, upper case)")
        return value


class DateRule(_RuleBase):
    """ISO-8601 date text (YYYY-MM-DD, or a date-time) becomes a ``datetime.date``."""

    kind: Literal["date"]


class EnumRule(_RuleBase):
    """One of ``values``, matched case-insensitively; the field becomes the canonical spelling."""

    kind: Literal["enum"]
    values: tuple[Annotated[str, Strict(), StringConstraints(min_length=1)], ...] = Field(
        min_length=1
    )

    @field_validator("values")
    @classmethod
    def _distinct(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        folded = [v.strip().casefold() for v in values]
        if len(set(folded)) != len(folded):
            raise ValueError("values must differ from one another (case-insensitively)")
        return values


class CountryRule(_RuleBase):
    """Country names and ISO codes become ISO 3166-1 alpha-2; unresolvable text is kept."""

    kind: Literal["country"]


_RULE_TYPES = (RequiredRule, MaxLengthRule, EmailRule, PhoneRule, DateRule, EnumRule, CountryRule)
Rule = Annotated[
    RequiredRule | MaxLengthRule | EmailRule | PhoneRule | DateRule | EnumRule | CountryRule,
    Field(discriminator="kind"),
]
#: The ``kind`` of every rule type, e.g. ``max_length``.
RULE_KINDS: frozenset[str] = frozenset(
    get_args(rule_type.model_fields["kind"].annotation)[0] for rule_type in _RULE_TYPES
)


class DepartmentRules(_PolicyModel):
    """The rules of one department, applied in order, and the fields of its clean record."""

    output_fields: tuple[FieldName, ...] = Field(
        min_length=1, description="Fields of the clean record, in schema order"
    )
    rules: tuple[Rule, ...] = ()

    @field_validator("output_fields")
    @classmethod
    def _unique_fields(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        duplicates = sorted({f for f in fields if fields.count(f) > 1})
        if duplicates:
            raise ValueError(f"fields listed twice: {', '.join(duplicates)}")
        return fields


class ValidationPolicy(_PolicyModel):
    """``policies/validation.yaml``: per-department validation rules."""

    version: StrictStr = Field(min_length=1, description="Goes into every event's lineage headers")
    departments: dict[DepartmentName, DepartmentRules]

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> ValidationPolicy:
        seen: set[str] = set()
        for name, department in self.departments.items():
            for index, rule in enumerate(department.rules):
                if rule.id in seen:
                    raise ValueError(
                        f"departments.{name}.rules[{index}].id: rule id {rule.id!r} is used twice"
                    )
                seen.add(rule.id)
        return self


# -- loading --------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # keys merged in with << may be overridden: that is what merging is for
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``('departments', 'sales', 'rules', 3, 'max_length', 'max')`` -> ``departments.sales.
    rules[3].max``: list indexes in brackets, the discriminator tag pydantic inserts after a
    rule's index dropped."""
    out = ""
    previous: int | str | None = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (isinstance(previous, int) and part in RULE_KINDS) or part == "[key]":
            pass  # the union member pydantic tried, or its marker of a bad key: not in the file
        else:
            out += f".{part}" if out else str(part)
        previous = part
    return out


def read_policy_yaml(path: Path) -> Any:
    """A policy file as YAML data, read strictly (duplicate keys refused); ConfigError
    (one line, naming the file and where) if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the policy file ({exc.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the policy file is not UTF-8 text") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f"line {mark.line + 1}, column {mark.column + 1}: "
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{path}: {where}{problem}") from None


def load_validation_policy(path: Path) -> ValidationPolicy:
    """Read and check ``policies/validation.yaml``. Raises ``ConfigError`` (one line)."""
    data = read_policy_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping with 'version' and 'departments'"
        )
    try:
        return ValidationPolicy.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        lines = [_error_line(path, e) for e in errors]
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more, internal="\n".join(lines)) from None


def _error_line(path: Path, error: ErrorDetails) -> str:
    loc = tuple(error["loc"])
    kinds = ", ".join(sorted(RULE_KINDS))
    if error["type"] == "union_tag_invalid":
        msg = f"unknown rule kind {error.get('ctx', {}).get('tag')!r} (known: {kinds})"
    elif error["type"] == "union_tag_not_found":
        msg = f"the rule has no 'kind' (one of: {kinds})"
    else:
        # Errors raised by our own validators arrive as "Value error, <text>".
        msg = error["msg"].removeprefix("Value error, ")
    if loc and loc[-1] == "[key]":
        msg = f"bad name: {msg}"
    # A whole-policy check (duplicate rule ids) has no location and names the key itself.
    return f"{path}: {_key_path(loc)}: {msg}" if loc else f"{path}: {msg}"
