"""Shared fixtures. The embedded broker is started once per test session; tests that need
an empty consumer group or topic make their own names with `unique`."""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import Iterator

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--kafka",
        default="embedded",
        choices=["embedded", "testcontainers"],
        help="embedded: the tansu broker (default); testcontainers: Apache Kafka in Docker",
    )


@pytest.fixture(scope="session", autouse=True)
def _own_dlp_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Compiled DLP databases (`hub.dlp.hs_cache`) go to this session's own cache, which
    the CLI and worker subprocesses inherit through XDG_CACHE_HOME; never the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.delenv("HUB_DLP_CACHE_DIR", raising=False)
        yield


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    """bootstrap.servers of a real broker over TCP for this test session."""
    mode = request.config.getoption("--kafka")
    if mode == "testcontainers":
        kafka_module = pytest.importorskip(
            "testcontainers.kafka", reason="--kafka=testcontainers needs the testcontainers package"
        )
        with kafka_module.KafkaContainer() as container:
            yield container.get_bootstrap_server()
        return
    from hub.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        yield broker.bootstrap
        # Kafka clients a test left to the garbage collector (in a reference cycle) are
        # freed while the broker still runs: afterwards each would log a refused connection
        # every 50 ms until the process exits, which for a pytest-xdist worker that finished
        # early is when the last worker does.
        gc.collect()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic and group names."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """SQLite always; PostgreSQL too when HUB_TEST_DATABASE_URL is set (CI sets it)."""
    urls = [f"sqlite:///{tmp_path_factory.mktemp('db') / 'hub.db'}"]
    if os.environ.get("HUB_TEST_DATABASE_URL"):
        urls.append(os.environ["HUB_TEST_DATABASE_URL"])
    return urls
