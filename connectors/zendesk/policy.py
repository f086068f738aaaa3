"""The case-status policy: Zendesk ticket statuses -> the CRM's predefined case statuses.

``policies/case_status.yaml`` is read once when the connector is built and checked with
pydantic. Anything wrong with it (unreadable YAML, a key given twice, an unknown key, a
status mapped to a value outside ``case_statuses``) is a ``ConfigError`` with one line that
names the file and the key path, e.g. ``policies/case_status.yaml: statuses.hold: 'Waiting'
is not one of case_statuses (Open, In Progress, ...)``.

A status the policy does not map is never coerced: ``CaseStatusPolicy.case_status`` answers
None and the connector sends the ticket to quarantine with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.errors import ConfigError
from hub.policies import read_policy_yaml
from hub.settings import REPO_ROOT

__all__ = ["DEFAULT_POLICY", "ZENDESK_STATUSES", "CaseStatusPolicy", "load_case_status_policy"]

DEFAULT_POLICY = REPO_ROOT / "policies" / "case_status.yaml"

#: The ``status`` values Zendesk documents for tickets ("deleted" appears only in the
#: incremental export, for deleted tickets). A reason may name one of these (they are a
#: fixed vocabulary, never personal data); any other text is described, never quoted.
ZENDESK_STATUSES = frozenset({"new", "open", "pending", "hold", "solved", "closed", "deleted"})

StatusName = Annotated[str, Strict(), StringConstraints(pattern=r"^[a-z][a-z_]*$")]
CaseStatus = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=64)]


class CaseStatusPolicy(BaseModel):
    """The parsed policy file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Annotated[str, Strict(), StringConstraints(min_length=1)]
    case_statuses: tuple[CaseStatus, ...] = Field(min_length=1)
    statuses: dict[StatusName, CaseStatus] = Field(min_length=1)

    @field_validator("case_statuses")
    @classmethod
    def _distinct(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        folded = [v.strip().casefold() for v in values]
        if len(set(folded)) != len(folded):
            raise ValueError("values must differ from one another (case-insensitively)")
        return values

    @model_validator(mode="after")
    def _targets_in_enum(self) -> CaseStatusPolicy:
        allowed = ", ".join(self.case_statuses)
        for status, target in self.statuses.items():
            if target not in self.case_statuses:
                raise _TargetError(
                    ("statuses", status), f"{target!r} is not one of case_statuses ({allowed})"
                )
        return self

    def case_status(self, status: object) -> str | None:
        """The CRM case status of a Zendesk status, or None when the policy has none."""
        if not isinstance(status, str):
            return None
        return self.statuses.get(status)


class _TargetError(ValueError):
    """A whole-policy check that knows the key path it is about."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != "[key]":
            out += f".{part}" if out else str(part)
    return out


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def load_case_status_policy(path: Path = DEFAULT_POLICY) -> CaseStatusPolicy:
    """Read and check the policy file; ``ConfigError`` (one line naming the key path)."""
    where = _shown(path)
    try:
        data = read_policy_yaml(path)
    except ConfigError as exc:  # name the file the way the other messages here do
        raise ConfigError(exc.message.replace(str(path), where, 1)) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where}: the top level must be a mapping with 'version', 'case_statuses' "
            "and 'statuses'"
        )
    try:
        return CaseStatusPolicy.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False, include_input=False):
            loc: tuple[int | str, ...] = tuple(err["loc"])
            cause = (err.get("ctx") or {}).get("error")
            if isinstance(cause, _TargetError):
                loc, msg = cause.loc, str(cause)
            else:
                msg = err["msg"].removeprefix("Value error, ")
            if loc and loc[-1] == "[key]":
                msg = f"bad status name: {msg}"
            lines.append(f"{where}: {_key_path(loc)}: {msg}" if loc else f"{where}: {msg}")
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise ConfigError(lines[0] + more, internal="\n".join(lines)) from None
