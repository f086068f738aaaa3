"""`policies/dlp.yaml`: which operator protects which entity where.

Resolution for one finding (department, topic, field, entity), first match wins:
1. ``exceptions`` — the policy explicitly allows the value in clear (operator ``keep``);
2. ``rules`` — specific overrides, in file order;
3. ``entities`` — the default operator of the entity;
4. ``default`` — the operator for an entity the policy does not name.
A rule matches when every selector it sets matches; field selectors are shell globs over the
field path (``notes``, ``comments.*.body``). Each rule also sets the minimum score below
which a finding is ignored. A bad file is one ConfigError line with the key path.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.dlp.operators import AnyParams, KeepParams, OperatorParams
from hub.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Selector(_Model):
    department: str | None = None
    topic: str | None = None
    field: str | None = Field(default=None, description="glob over the field path")
    entities: tuple[str, ...] = ()

    def matches(self, department: str, topic: str, field: str | None, entity: str) -> bool:
        if self.department is not None and self.department != department:
            return False
        if self.topic is not None and self.topic != topic:
            return False
        if self.entities and entity not in self.entities:
            return False
        if self.field is not None:
            return field is not None and fnmatch.fnmatchcase(field, self.field)
        return True


class Rule(Selector):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    action: OperatorParams
    min_score: float | None = Field(default=None, ge=0, le=1)


class AllowException(Selector):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    reason: str = Field(min_length=3, description="why the value may pass in clear")


class VaultPolicy(_Model):
    """Who may turn a token back into its value (`hub.dlp.vault`): none when empty."""

    reveal_roles: tuple[str, ...] = Field(
        default=(), description="roles allowed to reveal tokenized values"
    )

    @field_validator("reveal_roles")
    @classmethod
    def _named(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not role.strip() for role in v):
            raise ValueError("a reveal role needs a name")
        return v


class DlpPolicy(_Model):
    version: str = Field(min_length=1)
    min_score: float = Field(default=0.5, ge=0, le=1)
    default: OperatorParams
    entities: dict[str, OperatorParams] = Field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    exceptions: tuple[AllowException, ...] = ()
    scan_fields: tuple[str, ...] = Field(
        default=("*",), description="globs of the fields scanned for undeclared PII"
    )
    vault: VaultPolicy = Field(default_factory=VaultPolicy)

    @field_validator("entities")
    @classmethod
    def _upper(cls, v: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in v if not k.isupper()]
        if bad:
            raise ValueError(f"entity names are upper case: {', '.join(bad)}")
        return v


class Decision(_Model):
    rule_id: str
    action: AnyParams
    min_score: float


class PolicyResolver:
    """Cached lookups over a loaded policy (the hot path asks the same questions)."""

    def __init__(self, policy: DlpPolicy) -> None:
        self.policy = policy
        self.resolve = lru_cache(maxsize=4096)(self._resolve)
        self.scans = lru_cache(maxsize=4096)(self._scans)

    def _resolve(self, department: str, topic: str, field: str | None, entity: str) -> Decision:
        p = self.policy
        for exc in p.exceptions:
            if exc.matches(department, topic, field, entity):
                return Decision(rule_id=exc.id, action=KeepParams(), min_score=p.min_score)
        for rule in p.rules:
            if rule.matches(department, topic, field, entity):
                min_score = rule.min_score if rule.min_score is not None else p.min_score
                return Decision(rule_id=rule.id, action=rule.action, min_score=min_score)
        if entity in p.entities:
            return Decision(
                rule_id=f"entity.{entity}", action=p.entities[entity], min_score=p.min_score
            )
        return Decision(rule_id="default", action=p.default, min_score=p.min_score)

    def _scans(self, field: str) -> bool:
        """Whether the policy scans `field` for undeclared PII."""
        return any(fnmatch.fnmatchcase(field, g) for g in self.policy.scan_fields)


def load_dlp_policy(path: Path) -> DlpPolicy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return DlpPolicy.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(f"{path}: {loc}: {err['msg']}{more}") from None
