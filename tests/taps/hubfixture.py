"""The source ``tap_hubfixture`` reads (a JSON file) and the Connect-style config of a
``singer`` connector that runs it, for the tests."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

TAPS_DIR = Path(__file__).resolve().parent

USERS: list[dict[str, Any]] = [
    {
        "id": 1,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "age": 36,
        "updated_at": "2024-01-01T10:00:00Z",
        "birth_date": "1815-12-10",
        "score": 9.5,
        "active": True,
        "address": {"city": "London", "post-code": "W1"},
        "tags": ["math", "engines"],
    },
    {
        "id": 2,
        "name": "Grace Hopper",
        "email": "grace@example.com",
        "age": 85,
        "updated_at": "2024-01-02T10:00:00+00:00",
        "birth_date": None,
        "score": None,
        "active": False,
        "address": None,
        "tags": [],
    },
    {
        "id": 3,
        "name": "Alan Turing",
        "email": "alan@example.com",
        "age": 41,
        "updated_at": "2024-01-03T10:00:00Z",
    },
    {
        "id": 4,
        "name": "Katherine Johnson",
        "email": "kj@example.com",
        "age": 101,
        "updated_at": "2024-01-04T10:00:00Z",
        "address": {"city": "Hampton", "post-code": "23666"},
    },
]
ORGS: list[dict[str, Any]] = [
    {"id": "o1", "name": "Analytical Engines", "plan": "pro", "seats": 3},
    {"id": "o2", "name": "Navy", "plan": "free", "seats": None},
    {"id": "o3", "name": "Bletchley", "plan": None, "seats": 12},
]


def write_source(
    path: Path,
    *,
    users: list[dict[str, Any]] | None = None,
    orgs: list[dict[str, Any]] | None = None,
    knobs: dict[str, Any] | None = None,
    token: str | None = None,
) -> Path:
    data: dict[str, Any] = {
        "users": USERS if users is None else users,
        "orgs": ORGS if orgs is None else orgs,
        "knobs": knobs or {},
    }
    if token is not None:
        data["token"] = token
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def tap_command() -> list[str]:
    return [sys.executable, "-m", "tap_hubfixture"]


def connector_config(
    name: str,
    data_file: Path,
    log_dir: Path,
    *,
    tap: dict[str, Any] | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """A Connect-style (all strings) config of a singer connector running the fixture tap."""
    config = {
        "connector.class": "singer",
        "name": name,
        "tap.command": json.dumps(tap_command()),
        "tap.config": json.dumps({"data_file": str(data_file), "state_every": 1, **(tap or {})}),
        "tap.env": json.dumps({"PYTHONPATH": str(TAPS_DIR)}),
        "department": "support",
        "run.interval.seconds": "0",
        "log.dir": str(log_dir),
    }
    config.update(extra or {})
    return config


def user_id(user: dict[str, Any]) -> str:
    """The record id the connector gives a user: stream, key, replication-key value."""
    return f"users:{user['id']}@{user['updated_at']}"


def org_id(org: dict[str, Any]) -> str:
    """The record id of an org (full table: stream, key, digest of the record)."""
    canonical = json.dumps(org, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return f"orgs:{org['id']}#{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
