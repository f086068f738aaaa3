"""The zendesk connector runs the connector contract (hub.sdk.testing) against the Zendesk
simulator, a real HTTP server on 127.0.0.1: every stream (tickets, ticket comments, users,
organizations) read to the end in small pages, the bad items to quarantine with reasons
that quote no value, resumes from cursors at the start, middle and end of the read, and
errors by recovery (refused or expired credentials, a non-admin, a bad policy file, a
server that stays down, keeps answering 429 or is not there at all)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.zendesk.dataset import Dataset, generate
from connectors.zendesk.simulator import Faults, Simulator, create_app
from hub.broker import free_port
from hub.errors import ConfigError, FatalError, RetriableError
from hub.sdk.testing import ConnectorContract, ContractFailure, ContractSource
from hub.serving import serve

DATA = generate(3, tickets=40, users=20, organizations=8)


def config(
    url: str, sim: Simulator, name: str = "contract-zendesk", **extra: str
) -> dict[str, str]:
    return {
        "connector.class": "zendesk",
        "name": name,
        "base.url": url,
        "email": sim.email,
        "api.token": sim.api_token,
        "page.size": "7",  # several pages per stream
        "comments.page.size": "2",  # several comment pages per ticket
        "retry.attempts": "2",
        "retry.backoff.seconds": "0.01",
        "retry.max.wait.seconds": "2",
        "read.timeout.seconds": "2",
        "export.rate.limit": "10000",  # the simulator's limits are off here (see the
        **extra,  # connector tests for the limits)
    }


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Simulator]]:
    sim = Simulator(DATA)
    with serve(create_app(sim)) as url:
        yield url, sim


@pytest.fixture
def served(server: tuple[str, Simulator]) -> tuple[str, Simulator]:
    url, sim = server
    sim.reset(DATA, Faults(export_limit=0, account_limit=0))
    sim.role = "admin"
    return url, sim


class TestZendeskContract(ConnectorContract):
    plugin = "zendesk"

    @pytest.fixture
    def source(self, served: tuple[str, Simulator]) -> ContractSource:
        url, sim = served
        data: Dataset = sim.dataset
        expected = data.expected()
        good = set().union(*expected.good.values())
        return ContractSource(
            config=config(url, sim),
            good_ids=good,
            bad=sum(expected.bad.values()),
            values_with=expected.quoted,
        )

    @pytest.fixture
    def failures(self, served: tuple[str, Simulator], tmp_path: Path) -> list[ContractFailure]:
        url, sim = served
        bad_policy = tmp_path / "case_status.yaml"
        bad_policy.write_text(
            "version: '1'\ncase_statuses: [Open, Closed]\nstatuses: {new: Opened}\n",
            encoding="utf-8",
        )

        def faults(**change: object) -> None:
            sim.faults = Faults(export_limit=0, account_limit=0, **change)  # type: ignore[arg-type]

        def non_admin() -> None:
            faults()
            sim.role = "agent"

        def admin(**change: object) -> None:
            sim.role = "admin"
            faults(**change)

        return [
            ContractFailure(
                "token refused",
                config(url, sim, **{"api.token": "wrong"}),
                FatalError,
                arrange=admin,
            ),
            ContractFailure(
                "oauth token expired",
                {
                    **{
                        k: v for k, v in config(url, sim).items() if k not in ("email", "api.token")
                    },
                    "oauth.token": sim.oauth_token,
                },
                FatalError,
                arrange=lambda: admin(expired=True),
            ),
            ContractFailure("not an admin", config(url, sim), FatalError, arrange=non_admin),
            ContractFailure(
                "policy maps to a value outside the enum",
                config(url, sim, **{"case.status.policy": str(bad_policy)}),
                ConfigError,
                arrange=admin,
            ),
            ContractFailure(
                "server stays down",
                config(url, sim),
                RetriableError,
                arrange=lambda: admin(down=True),
            ),
            ContractFailure(
                "429 on every request",
                config(url, sim),
                RetriableError,
                arrange=lambda: admin(throttle=True, retry_after=7),
            ),
            ContractFailure(
                "nothing listening",
                config(f"http://127.0.0.1:{free_port()}", sim),
                RetriableError,
            ),
        ]


class TestZendeskContractCommentEvents(TestZendeskContract):
    """The same contract with comments read from the ticket event export."""

    @pytest.fixture
    def source(self, served: tuple[str, Simulator]) -> ContractSource:
        url, sim = served
        expected = sim.dataset.expected(comments="events")
        return ContractSource(
            config=config(url, sim, **{"comments.source": "events"}),
            good_ids=set().union(*expected.good.values()),
            bad=sum(expected.bad.values()),
            values_with=expected.quoted,
        )
