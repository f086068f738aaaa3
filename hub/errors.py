"""One error tree, grouped by what the caller should do about it.

Every message is safe to show a user: it never carries a secret or a personal value.
Put identifiers that help an operator (file name, row number, rule id, setting name)
in the message; never the offending value itself.
"""

from __future__ import annotations


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    def __init__(self, message: str, *, internal: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        # Extra detail for operators' logs; must also be free of secrets and personal data.
        self.internal = internal

    def __str__(self) -> str:
        return self.message


class ConfigError(HubError):
    """A setting, policy or connector config is wrong. Fix the config and restart."""


class FatalError(HubError):
    """The component cannot go on (e.g. lost its source); it stops with this status."""


class RetriableError(HubError):
    """A transient failure (broker or database away, HTTP 429/5xx); retry later."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, internal: str | None = None
    ) -> None:
        super().__init__(message, internal=internal)
        self.retry_after = retry_after


class SkippableError(HubError):
    """This one record cannot be handled; it goes to quarantine and the rest go on."""


class SchemaError(SkippableError):
    """A value does not match its schema, or a schema change is incompatible."""


class DataQualityError(SkippableError):
    """A record breaks a validation rule."""
