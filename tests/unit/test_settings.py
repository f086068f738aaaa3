from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from hub.errors import ConfigError
from hub.settings import Settings, load_settings


def test_env_overrides_yaml_and_yaml_overrides_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "crmhub.yaml"
    cfg.write_text("api_port: 9001\nlog_level: DEBUG\n")
    monkeypatch.setenv("HUB_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("HUB_LOG_LEVEL", "WARNING")
    s = load_settings()
    assert s.api_port == 9001
    assert s.log_level == "WARNING"


@pytest.mark.parametrize(
    ("env", "value", "name"),
    [
        ("HUB_API_PORT", "abc", "HUB_API_PORT"),
        ("HUB_API_PORT", "70000", "HUB_API_PORT"),
        ("HUB_PROCESSOR_BATCH_SIZE", "0", "HUB_PROCESSOR_BATCH_SIZE"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, name: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert name in str(exc.value)
    assert "\n" not in str(exc.value)


def test_unknown_key_in_yaml_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "crmhub.yaml"
    cfg.write_text("api_prot: 9001\n")
    monkeypatch.setenv("HUB_CONFIG_FILE", str(cfg))
    with pytest.raises(ConfigError, match="API_PROT"):
        load_settings()


def test_secrets_do_not_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_AUDIT_KEY", "s3cr3t-audit-key-value-long-enough-01")
    s = load_settings()
    assert "s3cr3t" not in repr(s)
    assert s.audit_key_bytes() == b"s3cr3t-audit-key-value-long-enough-01"


def test_embedded_defaults_and_missing_broker_is_a_clear_error(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    assert s.effective_database_url == f"sqlite:///{(tmp_path / 'hub.db').resolve()}"
    assert s.effective_drop_dir == tmp_path / "drop"
    with pytest.raises(ConfigError, match="crmhub up"):
        s.require_bootstrap()


def test_generated_keys_are_stable_and_private(tmp_path: Path) -> None:
    s = load_settings(home=tmp_path)
    key = s.dlp_master_key()
    assert key == load_settings(home=tmp_path).dlp_master_key()
    assert len(key) == 64
    assert (tmp_path / "dlp.key").stat().st_mode & 0o777 == 0o600


def test_vault_key_pair_is_generated_once_unless_a_public_key_is_configured(
    tmp_path: Path,
) -> None:
    from hub.dlp.vault import VaultPrivateKey

    s = load_settings(home=tmp_path / "a")
    public = s.vault_public_key()
    assert load_settings(home=tmp_path / "a").vault_public_key().key_id == public.key_id
    assert s.vault_private_key_path.stat().st_mode & 0o777 == 0o600
    assert VaultPrivateKey.load(s.vault_private_key_path).public.key_id == public.key_id
    # configured: only the public half, and no private key is made on this machine
    other = VaultPrivateKey.generate().public
    configured = load_settings(home=tmp_path / "b", dlp_vault_public_key=other.text())
    assert configured.vault_public_key().key_id == other.key_id
    assert not configured.vault_private_key_path.exists()
    bad = load_settings(home=tmp_path / "c", dlp_vault_public_key="x25519:short")
    with pytest.raises(ConfigError, match="32 bytes"):
        bad.vault_public_key()


def test_a_command_for_a_running_hub_takes_its_broker_and_registry_from_runtime_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HUB_KAFKA_BOOTSTRAP", "HUB_SCHEMA_REGISTRY_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(home=tmp_path)
    assert settings.effective_registry_url == "http://127.0.0.1:8083"  # computed (cached)
    assert settings.of_running_hub() is settings  # no hub running: unchanged
    (tmp_path / "runtime.json").write_text(
        json.dumps({"kafka_bootstrap": "127.0.0.1:40001", "schema_registry_url": "http://x:9"})
    )
    running = settings.of_running_hub()
    assert running.require_bootstrap() == "127.0.0.1:40001"
    assert running.effective_registry_url == "http://x:9"
    explicit = load_settings(home=tmp_path, schema_registry_url="http://mine:1").of_running_hub()
    assert explicit.effective_registry_url == "http://mine:1"  # a setting beats the file
    assert explicit.require_bootstrap() == "127.0.0.1:40001"


@pytest.mark.parametrize("name", ["HUB_AUDIT_KEY", "HUB_DLP_KEY"])
def test_a_short_key_is_refused_without_quoting_it(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the hub signs with or derives AES-256 keys from must not be guessable; the
    error names the setting and never repeats the value."""
    monkeypatch.setenv(name, "short-s3cr3t-key")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert name in str(refused.value)
    assert "at least 32 characters" in str(refused.value)
    assert "s3cr3t" not in str(refused.value)
    monkeypatch.setenv(name, "x" * 32)
    assert load_settings() is not None
    with pytest.raises(ValidationError) as raw:  # the model itself never quotes it either
        Settings.model_validate({name.removeprefix("HUB_").lower(): "short-s3cr3t-key"})
    assert "s3cr3t" not in str(raw.value)
