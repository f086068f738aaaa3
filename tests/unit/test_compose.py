"""docker-compose.yml is checked by validating it (no Docker engine runs here): its YAML
parses, every reference resolves, and the hub services' environment is a valid Settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.dlp import hs_cache
from hub.settings import Settings
from hub.workers import WORKERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_reference_only_defined_services_and_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes", {}))
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on undefined {dep}"
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in volumes, f"{name} mounts undefined volume {source}"
            elif vol.endswith(":ro"):  # read-only config mounts must ship with the repo
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_every_hub_worker_runs_with_valid_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_services = {
        n: s for n, s in compose["services"].items() if s.get("command", [None])[0] == "worker"
    }
    assert {s["command"][1] for s in hub_services.values()} == set(WORKERS)
    for svc in hub_services.values():
        for key, value in svc["environment"].items():
            monkeypatch.setenv(key, str(value))
        settings = Settings()
        assert settings.kafka_bootstrap == "kafka:9092"
        assert settings.effective_database_url.startswith("postgresql://")
        assert settings.schema_registry_url == "http://schema-registry:8081"
        # the keys a worker generates (DLP, audit, token vault) are on one shared volume
        assert f"hub-home:{settings.home}" in svc["volumes"], svc["command"]
        # and so are the compiled DLP databases (hub.dlp.hs_cache)
        cache = hs_cache.directory()
        assert cache is not None
        assert cache.is_relative_to(settings.home), cache
