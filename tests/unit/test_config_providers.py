"""Config provider references: resolved on demand, errors name the reference, never a value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hub.config_providers import references, resolve, resolve_text
from hub.errors import ConfigError

SECRET = "s3cr3t-Value-42"


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    (tmp_path / "db.properties").write_text(
        f"# comment\n! other comment\nuser=crm\npassword = {SECRET}\nurl: jdbc://db:5432\n"
    )
    (tmp_path / "creds.yaml").write_text(f"api:\n  token: {SECRET}\n  retries: 3\nflat: yes-ok\n")
    (tmp_path / "creds.json").write_text(json.dumps({"api.key": SECRET, "nested": {"k": 7}}))
    (tmp_path / "broken.yaml").write_text(f"a: [{SECRET}\n")
    (tmp_path / "list.yaml").write_text(f"- {SECRET}\n")
    return tmp_path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${env:HUB_T_SECRET}", SECRET),
        ("jdbc://${env:HUB_T_USER}@db/${env:HUB_T_SECRET}", f"jdbc://crm@db/{SECRET}"),
        ("plain value", "plain value"),
        ("$${env:HUB_T_SECRET}", "${env:HUB_T_SECRET}"),  # escaped: a literal
        ("cost: $5 {not a ref}", "cost: $5 {not a ref}"),
        ("", ""),
    ],
)
def test_env_references(monkeypatch: pytest.MonkeyPatch, text: str, expected: str) -> None:
    monkeypatch.setenv("HUB_T_SECRET", SECRET)
    monkeypatch.setenv("HUB_T_USER", "crm")
    assert resolve_text(text) == expected


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("db.properties:password", SECRET),
        ("db.properties:user", "crm"),
        ("db.properties:url", "jdbc://db:5432"),
        ("creds.yaml:api.token", SECRET),
        ("creds.yaml:api.retries", "3"),
        ("creds.yaml:flat", "yes-ok"),
        ("creds.json:api.key", SECRET),  # a dotted key that exists as is wins
        ("creds.json:nested.k", "7"),
    ],
)
def test_file_references(secrets_dir: Path, ref: str, expected: str) -> None:
    assert resolve_text(f"${{file:{secrets_dir}/{ref}}}") == expected


def test_nested_config_is_resolved_and_input_left_alone(
    monkeypatch: pytest.MonkeyPatch, secrets_dir: Path
) -> None:
    monkeypatch.setenv("HUB_T_SECRET", SECRET)
    config = {
        "connector.class": "spreadsheet",
        "auth": {
            "token": "${env:HUB_T_SECRET}",
            "list": ["a", f"${{file:{secrets_dir}/db.properties:user}}"],
        },
        "tasks.max": 1,
        "flag": True,
    }
    before = json.dumps(config, sort_keys=True)
    resolved = resolve(config)
    assert resolved == {
        "connector.class": "spreadsheet",
        "auth": {"token": SECRET, "list": ["a", "crm"]},
        "tasks.max": 1,
        "flag": True,
    }
    assert json.dumps(config, sort_keys=True) == before
    assert references(config) == [
        "${env:HUB_T_SECRET}",
        f"${{file:{secrets_dir}/db.properties:user}}",
    ]
    assert references({"a": "$${env:X} literal"}) == []


@pytest.mark.parametrize(
    ("ref", "must_name"),
    [
        ("${env:HUB_T_MISSING}", ["${env:HUB_T_MISSING}", "HUB_T_MISSING", "not set"]),
        ("${env:}", ["${env:}"]),
        ("${vault:secret/db:password}", ["${vault:secret/db:password}", "vault", "env, file"]),
        ("${file:{d}/db.properties:nope}", ["db.properties", "nope"]),
        ("${file:{d}/absent.properties:password}", ["absent.properties", "cannot read"]),
        ("${file:{d}/broken.yaml:a}", ["broken.yaml", "not valid YAML"]),
        ("${file:{d}/list.yaml:a}", ["list.yaml", "mapping"]),
        ("${file:{d}/creds.yaml:api}", ["creds.yaml", "api", "single value"]),
        ("${file:nokey}", ["${file:nokey}", "/path/to/file:key"]),
    ],
)
def test_errors_name_the_reference_never_a_value(
    monkeypatch: pytest.MonkeyPatch, secrets_dir: Path, ref: str, must_name: list[str]
) -> None:
    monkeypatch.setenv("HUB_T_SECRET", SECRET)
    monkeypatch.delenv("HUB_T_MISSING", raising=False)
    ref = ref.replace("{d}", str(secrets_dir))
    with pytest.raises(ConfigError) as info:
        resolve({"outer": {"x": f"prefix-${{env:HUB_T_SECRET}}-{ref}"}})
    message = info.value.message
    for part in must_name:
        assert part.replace("{d}", str(secrets_dir)) in message
    assert SECRET not in message
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None  # no chained exception text either
