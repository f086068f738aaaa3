"""Typed, frozen settings: environment variables with the ``HUB_`` prefix, then an optional
``crmhub.yaml`` (path from ``HUB_CONFIG_FILE``, default ``./crmhub.yaml``), then defaults.

Unset external URLs mean the embedded default: ``crmhub up`` starts a broker and serves the
schema registry itself, and the database is SQLite under ``HUB_HOME`` (``./.hub``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from hub.errors import ConfigError

if TYPE_CHECKING:
    from hub.dlp.vault import VaultPublicKey

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNTIME_FILE = "runtime.json"


MIN_KEY_CHARS = 32  # of HUB_AUDIT_KEY and HUB_DLP_KEY


class Settings(BaseSettings):
    # hide_input_in_errors: a rejected setting's value (a key, a password in a URL) is not
    # quoted back in the validation error
    model_config = SettingsConfigDict(
        env_prefix="HUB_", frozen=True, extra="forbid", hide_input_in_errors=True
    )

    home: Path = Field(default=Path(".hub"), description="Working directory for embedded state")
    kafka_bootstrap: str | None = Field(
        default=None, description="host:port list of an external Kafka cluster"
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the read model")
    schema_registry_url: str | None = Field(
        default=None, description="URL of an external Confluent-compatible schema registry"
    )
    tansu_bin: Path | None = Field(default=None, description="Path of the embedded broker binary")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8083, ge=0, le=65535)
    policies_dir: Path = REPO_ROOT / "policies"
    schemas_dir: Path = REPO_ROOT / "schemas"
    drop_dir: Path | None = Field(default=None, description="Sales spreadsheet drop directory")
    lead_mapping: Path = REPO_ROOT / "connectors" / "spreadsheet" / "mappings" / "sales_leads.yaml"
    audit_key: SecretStr | None = Field(
        default=None, description="HMAC key that signs audit-trail links; generated if unset"
    )
    dlp_key: SecretStr | None = Field(
        default=None, description="Master secret of DLP keys (hex, 64 chars); generated if unset"
    )
    dlp_vault_public_key: str | None = Field(
        default=None,
        description="Token vault public key (x25519:...); a key pair is generated into "
        "HUB_HOME if unset (the embedded default)",
    )
    dlp_backend: Literal["auto", "re2", "hyperscan", "re"] = Field(
        default="auto", description="DLP candidate matcher; auto picks the fastest installed"
    )
    processor_batch_size: int = Field(default=500, ge=1)
    processor_batch_within: float = Field(default=0.2, gt=0)
    consumer_session_timeout_ms: int = Field(default=6000, ge=1000)
    default_connector: bool = Field(
        default=True,
        description="With no connector registered, the connect worker registers sales-leads",
    )
    log_level: str = "INFO"

    @field_validator("audit_key", "dlp_key")
    @classmethod
    def _long_enough(cls, key: SecretStr | None) -> SecretStr | None:
        """A key the hub signs or derives AES-256 keys from must not be guessable: at least
        `MIN_KEY_CHARS` characters (the generated ones are 64 hex characters)."""
        if key is not None and len(key.get_secret_value().strip()) < MIN_KEY_CHARS:
            raise ValueError(
                f"too short: at least {MIN_KEY_CHARS} characters, e.g. 64 random hex "
                "characters (python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return key

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        yaml_file = os.environ.get("HUB_CONFIG_FILE", "crmhub.yaml")
        return (
            init_settings,
            env_settings,
            YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file),
        )

    # -- derived values -------------------------------------------------------------------
    @cached_property
    def effective_drop_dir(self) -> Path:
        return self.drop_dir if self.drop_dir is not None else self.home / "drop"

    @cached_property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'hub.db').resolve()}"

    @cached_property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    @cached_property
    def effective_registry_url(self) -> str:
        return self.schema_registry_url or self.api_url

    def of_running_hub(self) -> Settings:
        """These settings, with the broker and the schema registry of the hub that `crmhub
        up` runs on HUB_HOME where they are not set: what a command that talks to a running
        hub (a re-drive, a scan of a topic) needs. The hub's own processes get them from
        their supervisor instead."""
        runtime = read_runtime(self.home)
        if not runtime or (self.kafka_bootstrap and self.schema_registry_url):
            return self
        update: dict[str, Any] = {}
        if not self.kafka_bootstrap and runtime.get("kafka_bootstrap"):
            update["kafka_bootstrap"] = str(runtime["kafka_bootstrap"])
        if not self.schema_registry_url and runtime.get("schema_registry_url"):
            update["schema_registry_url"] = str(runtime["schema_registry_url"])
        if not update:
            return self
        copy = self.model_copy(update=update)
        for name in ("effective_registry_url", "api_url"):  # cached from the old values
            copy.__dict__.pop(name, None)
        return copy

    def require_bootstrap(self) -> str:
        if self.kafka_bootstrap:
            return self.kafka_bootstrap
        runtime = read_runtime(self.home)
        if runtime and runtime.get("kafka_bootstrap"):
            return str(runtime["kafka_bootstrap"])
        raise ConfigError(
            "HUB_KAFKA_BOOTSTRAP is not set and no embedded broker is running "
            f"(no {self.home / RUNTIME_FILE}); start one with `crmhub up`"
        )

    def audit_key_bytes(self) -> bytes:
        return self._secret(self.audit_key, "audit.key")

    def existing_audit_key(self) -> bytes:
        """The audit key the hub signs with, for commands that check or extend what it
        signed (``audit verify``, ``dlp reveal``): never a new one. A key generated on the
        spot would sign a reveal the hub's own key does not verify, and would find every
        entry "bad"."""
        if self.audit_key is not None or (self.home / "audit.key").exists():
            return self.audit_key_bytes()
        raise ConfigError(
            f"no audit key: HUB_AUDIT_KEY is not set and {self.home / 'audit.key'} does not "
            "exist. Use the hub's key: set HUB_AUDIT_KEY, or HUB_HOME to the hub's home"
        )

    def dlp_master_key(self) -> bytes:
        return self._secret(self.dlp_key, "dlp.key")

    def vault_public_key(self) -> VaultPublicKey:
        """The key tokenized values are sealed to. Configured: only the public half, and the
        private key is elsewhere (with the privacy office). Unset: a key pair generated once
        into HUB_HOME/vault-private.pem (mode 0600), for the embedded default and the demo."""
        from hub.dlp.vault import VaultPrivateKey, VaultPublicKey

        if self.dlp_vault_public_key is not None:
            return VaultPublicKey.parse(self.dlp_vault_public_key)
        path = self.vault_private_key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # O_EXCL: of processes racing to create it, exactly one writes
            with contextlib.suppress(FileExistsError):
                VaultPrivateKey.generate().save(path)
        for _ in range(50):  # the winner may not have written yet
            if path.stat().st_size:
                return VaultPrivateKey.load(path).public
            time.sleep(0.01)
        raise ConfigError(f"{path} is empty; delete it or set HUB_DLP_VAULT_PUBLIC_KEY")

    @property
    def vault_private_key_path(self) -> Path:
        return self.home / "vault-private.pem"

    def _secret(self, value: SecretStr | None, file_name: str) -> bytes:
        """The configured secret, else one generated once into HUB_HOME (mode 0600)."""
        if value is not None:
            return value.get_secret_value().encode()
        path = self.home / file_name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:  # O_EXCL: of processes racing to create it, exactly one writes
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(os.urandom(32).hex().encode())
        for _ in range(50):  # the winner may not have written yet
            data = path.read_bytes().strip()
            if data:
                return data
            time.sleep(0.01)
        raise ConfigError(f"{path} is empty; delete it or set the key")

    def kafka_common(self) -> dict[str, Any]:
        """librdkafka properties shared by every hub client."""
        return {"bootstrap.servers": self.require_bootstrap()}


def load_settings(**overrides: Any) -> Settings:
    """Build settings; a wrong setting becomes one ConfigError line naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err.get("loc", ()))
        name = f"HUB_{loc.upper()}" if loc else "settings"
        raise ConfigError(f"invalid setting {name}: {err.get('msg', 'invalid value')}") from None


def read_runtime(home: Path) -> dict[str, Any] | None:
    path = home / RUNTIME_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
