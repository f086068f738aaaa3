"""The hubspot connector runs the connector contract (hub.sdk.testing) against the HubSpot
simulator (``connectors.hubspot.simulator``) served by a real uvicorn server on 127.0.0.1.

The connector's clock is frozen for these tests (``_now_ms``): the ids of association
snapshots read in a full pass carry the pass's start, and the contract compares ids."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.hubspot import connector as hubspot_connector
from connectors.hubspot.mapping import associations_value
from connectors.hubspot.simdata import Account, generate
from connectors.hubspot.simulator import Faults, Limits, Simulator, create_app
from hub.broker import free_port
from hub.errors import ConfigError, FatalError, RetriableError
from hub.sdk.testing import ConnectorContract, ContractFailure, ContractSource
from hub.serving import serve

NOW_MS = 1_790_000_000_000  # 2026-09-21: after every change the simulator holds
SETTLE_MS = 30_000
BAD_VALUES = {"number": "three", "range": "50-100", "event type": "TELEPORTED"}


def expected_ids(account: Account, started: int) -> tuple[set[str], int]:
    """(record ids of the good records, number of bad ones) a full read of ``account``
    gives, the full pass having started at ``started``."""
    good: set[str] = set()
    bad = 0
    for kind, objects, bad_ids in (
        ("contacts", account.contacts, account.bad_contacts),
        ("companies", account.companies, account.bad_companies),
    ):
        for oid, obj in objects.items():
            if oid in bad_ids:
                bad += 1
            elif obj.archived_at is not None:
                good.add(f"{kind}:{oid}:archived:{obj.archived_at}")
            else:
                good.add(f"{kind}:{oid}:{obj.updated}")
    for oid, obj in account.contacts.items():
        if obj.archived_at is not None:
            continue
        links = [
            {"toObjectId": company, "associationTypes": types}
            for company, types in sorted(account.associations.get(oid, {}).items())
        ]
        value, _ = associations_value(str(oid), obj.updated, links)
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
        good.add(f"contact_company_associations:{oid}:full{started}:{digest}")
    for guid, campaign in account.campaigns.items():
        good.add(f"campaigns:{guid}:{campaign.updated}")
    for event in account.events:
        if event["id"] in account.bad_events:
            bad += 1
        else:
            good.add(f"email_events:{event['id']}")
    return good, bad


def small_account(seed: int = 11) -> Account:
    return generate(
        seed, contacts=150, companies=30, campaigns=5, events_per_contact=1.5, bad_share=0.04
    )


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(hubspot_connector, "_now_ms", lambda: NOW_MS)
    return NOW_MS


@pytest.fixture
def simulator() -> Iterator[tuple[Simulator, str]]:
    sim = Simulator(small_account(), limits=Limits(burst_max=None, search_per_second=None))
    with serve(create_app(sim)) as url:
        yield sim, url


def config_for(sim: Simulator, url: str, name: str, **extra: str) -> dict[str, str]:
    return {
        "connector.class": "hubspot",
        "name": name,
        "access.token": sim.token,
        "base.url": url,
        "page.size": "40",
        "email.events.page.size": "50",
        "email.events.window.days": "90",
        "start.date": "2025-01-01T00:00:00Z",
        **extra,
    }


class TestHubSpotContract(ConnectorContract):
    plugin = "hubspot"

    @pytest.fixture
    def source(self, simulator: tuple[Simulator, str], frozen_clock: int) -> ContractSource:
        sim, url = simulator
        good, bad = expected_ids(sim.account, frozen_clock - SETTLE_MS)
        assert bad >= 3, "the generator gave too few bad records for this test"
        return ContractSource(
            config=config_for(sim, url, "contract-hubspot"),
            good_ids=good,
            bad=bad,
            values_with=BAD_VALUES,
        )

    @pytest.fixture
    def failures(
        self, simulator: tuple[Simulator, str], frozen_clock: int
    ) -> list[ContractFailure]:
        sim, url = simulator
        fast = {
            "max.attempts": "2",
            "backoff.initial.seconds": "0.01",
            "backoff.jitter.seconds": "0",
            "max.wait.seconds": "1",
        }

        def faults(**knobs: Any) -> Any:
            def arrange() -> None:
                sim.faults = Faults(**knobs)

            return arrange

        def case(name: str, expect: type, arrange: Any = None, **extra: str) -> ContractFailure:
            config = config_for(sim, url, name.replace(" ", "-"), **{**fast, **extra})
            return ContractFailure(name, config, expect, arrange=arrange or faults())

        return [
            case("token refused", FatalError, **{"access.token": "pat-na1-wrong"}),
            case("token expired", FatalError, faults(expired_token=True)),
            case("server stays down", RetriableError, faults(down=True)),
            case("429 forever", RetriableError, faults(always_429=True)),
            case(
                "nothing listens", RetriableError, **{"base.url": f"http://127.0.0.1:{free_port()}"}
            ),
            case("unknown stream", ConfigError, streams="contacts,deals"),
        ]
