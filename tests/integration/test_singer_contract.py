"""The singer connector runs the connector contract (hub.sdk.testing) on a real Singer tap
(``tests/taps/tap_hubfixture``, built on singer-sdk) run as a subprocess.

The tap's ``users`` bookmark is inclusive (``updated_at >=`` the stored value, as
singer-sdk's SQL taps do) and ``orgs`` is full table, so a resume reads the boundary user
and every org again: the contract runs with ``resume_may_repeat`` (repeats of records read
before the resume point, with the same record ids; nothing skipped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hub.errors import ConfigError, FatalError
from hub.sdk.testing import ConnectorContract, ContractFailure, ContractSource
from tests.taps.hubfixture import ORGS, USERS, connector_config, org_id, user_id, write_source

# a value that does not fit its schema (age is an integer): to quarantine, never quoted
BAD_AGE = "thirty-six and a half"


class TestSingerContract(ConnectorContract):
    plugin = "singer"
    resume_may_repeat = True

    @pytest.fixture
    def source(self, tmp_path: Path) -> ContractSource:
        bad: dict[str, Any] = {
            "id": 9,
            "name": "Bad Age",
            "age": BAD_AGE,
            "updated_at": "2024-01-05T10:00:00Z",
        }
        data = write_source(tmp_path / "source.json", users=[*USERS, bad])
        return ContractSource(
            config=connector_config("contract-singer", data, tmp_path / "logs"),
            good_ids={user_id(u) for u in USERS} | {org_id(o) for o in ORGS},
            bad=1,
            values_with={"age": BAD_AGE, "name": "Bad Age"},
        )

    @pytest.fixture
    def failures(self, tmp_path: Path) -> list[ContractFailure]:
        data = write_source(tmp_path / "source.json")
        guarded = write_source(tmp_path / "guarded.json", token="s3cret-token")
        logs = tmp_path / "logs"

        def case(name: str, expect: type, **config: Any) -> ContractFailure:
            return ContractFailure(name, config_for(name, **config), expect)

        def config_for(name: str, *, source: Path = data, **config: Any) -> dict[str, str]:
            overrides = {k.replace("_", "."): v for k, v in config.items() if k != "tap"}
            return connector_config(
                name.replace(" ", "-"), source, logs, tap=config.get("tap"), extra=overrides
            )

        return [
            case("tap missing", ConfigError, tap_command=json.dumps(["no-such-tap-xyz"])),
            case("credential refused", FatalError, source=guarded, tap={"api_token": "wrong"}),
            case("tap dies", FatalError, tap={"fail_after_records": 2}),
            case("tap hangs", FatalError, tap={"hang_after_records": 1}, idle_timeout_seconds="2"),
            case("tap prints garbage", FatalError, tap={"garbage_after_records": 1}),
        ]
