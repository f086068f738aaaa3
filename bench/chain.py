"""The sales-lead processor chain built the way ``hub.processors.app.create_app`` builds its
default stage (ValidationStage, plus the DLP stage and sealing keys where this version of
the hub has them), but on the benchmark's topics. Shared by the Faust worker subprocess and
the in-process measurement, so both time the same object."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from hub import topics
from hub.processors.validation import InMessage, OutMessage
from hub.settings import Settings

DLP_BACKEND = "auto"


class PassthroughStage:
    """The stage protocol with no work: one OutMessage per input, to ``clean_topic``."""

    def __init__(self, clean_topic: str, quarantine_topic: str) -> None:
        self.clean_topic = clean_topic
        self.quarantine_topic = quarantine_topic

    @property
    def output_topics(self) -> tuple[str, ...]:
        return (self.clean_topic, self.quarantine_topic)

    def warm_up(self) -> None:
        return None

    def process(self, batch: Sequence[InMessage]) -> list[OutMessage]:
        topic = self.clean_topic
        return [
            OutMessage(topic, m.key or b"", m.value or b"", list(m.headers or [])) for m in batch
        ]


def bench_settings(**values: Any) -> Settings:
    """Settings for the run; fixed keys so nothing is written under the user's .hub/."""
    fields = Settings.model_fields
    # Any, as ``values``: mypy checks a ``**dict[str, str]`` against every keyword of
    # BaseSettings.__init__, ``_case_sensitive: bool | None`` and the like included.
    keys: dict[str, Any] = {
        "audit_key": "bench-audit-key-" + "0" * 32,
        "dlp_key": "bench-dlp-key-" + "0" * 32,
    }
    return Settings(**{k: v for k, v in keys.items() if k in fields}, **values)


def validation_chain(
    settings: Settings,
    registry_url: str,
    *,
    source: str,
    clean: str,
    quarantine: str,
    incidents: str,
    dlp: bool = True,
    dlp_backend: str = DLP_BACKEND,
) -> tuple[Any, str]:
    """(stage, description). ``dlp=False``: the ValidationStage's rules alone.

    ``dlp_backend`` is passed to the hub's build_dlp_stage (``auto``: the fastest matcher
    installed, as the processor worker picks it)."""
    from hub.processors import validation as v
    from hub.serde import registry_client

    params = inspect.signature(v.ValidationStage).parameters
    kw: dict[str, Any] = {
        "schemas_dir": settings.schemas_dir,
        "policies_dir": settings.policies_dir,
        "source_topic": source,
        "clean_topic": clean,
        "quarantine_topic": quarantine,
    }
    if "incidents_topic" in params:
        kw["incidents_topic"] = incidents
    description = "ValidationStage"
    build_dlp = getattr(v, "build_dlp_stage", None)
    if dlp and "dlp" in params and "keys" in params and build_dlp is not None:
        from hub.dlp.operators import keyring_from_master

        keys = keyring_from_master(settings.dlp_master_key())
        # The policy is looked up by the logical topic, as create_app does.
        stage = build_dlp(
            settings.schemas_dir,
            settings.policies_dir,
            keys,
            department="sales",
            topic=topics.CLEAN_SALES_LEADS,
            backend=dlp_backend,
        )
        kw.update(keys=keys, dlp=stage)
        if stage is not None:
            backend = getattr(getattr(stage, "engine", None), "backend", dlp_backend)
            description = f"ValidationStage + DLP ({backend})"
    return v.ValidationStage(registry_client(registry_url), **kw), description


def build_validation_chain(settings: Settings, registry_url: str, **kw: Any) -> Any:
    """``validation_chain``'s stage alone: the factory of the recipe that builds the chain in
    the processor's worker process (a module-level function, so it can be pickled)."""
    stage, _ = validation_chain(settings, registry_url, **kw)
    return stage
