"""The connect worker: runs the connectors registered in the connect state.

It follows ``ConnectState`` (hub/connect_state.py). For each connector whose target state
is STARTED it resolves the config's provider references (here, and only here), builds the
plugin's pydantic Config and connector, and runs a ``hub.connect.ConnectorRunner`` loop in
a thread of its own with its own stop event. It writes the statuses Connect reports —
RUNNING, PAUSED, STOPPED, FAILED with a trace, UNASSIGNED when it shuts down — and reacts
within about a second to pause, resume, stop, restart, delete and config updates.

A FAILED trace is built from ``HubError`` messages only (they carry no secret or personal
value), never from raw exception text, which may quote a value.

**Many workers.** Started with a ``GroupMembership`` (``crmhub worker connect`` always is),
a worker runs only the connectors whose placement slot maps to a partition of the group
topic it holds (hub/connect_group.py); a rebalance stops the connectors of the revoked
partitions before they move, and the new owner resumes from the committed cursors.
Without one (tests, embedding), it runs every registered connector.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from typing import Any

from hub import topics
from hub.broker import ensure_topics
from hub.config_providers import resolve
from hub.connect import ConnectorRunner, SourceConnector, retry_delay, stream_codecs
from hub.connect_group import GroupMembership, partition_of
from hub.connect_offsets import OffsetStore
from hub.connect_plugins import Plugin, build_config, find_plugin
from hub.connect_state import ConnectState, Status
from hub.errors import FatalError, HubError, RetriableError
from hub.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_CONNECTOR = "sales-leads"


@dataclass
class _Task:
    config: dict[str, Any]
    stop: threading.Event
    thread: threading.Thread
    connector: Any = None  # set once built: interrupt() ends a blocking read at once


class ConnectWorker:
    def __init__(
        self,
        settings: Settings,
        state: ConnectState,
        *,
        worker_id: str | None = None,
        poll_interval: float = 1.0,
        group: bool = False,
    ) -> None:
        self.settings = settings
        self.state = state
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self.poll_interval = poll_interval
        self.membership: GroupMembership | None = None
        if group:
            self.membership = GroupMembership(
                state.bootstrap,
                member=self.worker_id,
                on_revoked=self._revoked,
                session_timeout_ms=settings.consumer_session_timeout_ms,
            )
        self._tasks: dict[str, _Task] = {}
        self._handled_restarts: dict[str, int] = {}
        self._registry: Any = None

    # -- main loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Reconcile with the state until ``stop`` is set, then stop every connector."""
        for name in self.state.connectors():  # requests made before this worker started
            request = self.state.restart_request(name)
            if request is not None:
                self._handled_restarts[name] = request.request_id
        log.info("connect worker %s: following the connect state", self.worker_id)
        try:
            while not stop.is_set():
                seen = self.state.version
                if self.membership is not None:
                    self.membership.poll(0)
                self.reconcile()
                self.state.wait_for_change(seen, timeout=0.5)
        finally:
            self.shutdown()

    def owns(self, name: str) -> bool:
        return self.membership is None or self.membership.owns(self.state.slot_of(name))

    def _revoked(self, partitions: set[int]) -> None:
        """Group rebalance: stop (and commit) the connectors that are moving, now."""
        for name in list(self._tasks):
            if partition_of(self.state.slot_of(name)) in partitions:
                log.info("connector %s: slot revoked, stopping before it moves", name)
                self._stop_task(name)

    def reconcile(self) -> None:
        names = set(self.state.connectors())
        for name in [n for n in self._tasks if n not in names]:
            self._stop_task(name)
            self._quietly(lambda n=name: self.state.delete_status(n))
            log.info("connector %s: deleted, stopped", name)
        for name in sorted(names):
            self._reconcile_one(name)

    def _reconcile_one(self, name: str) -> None:
        config = self.state.config(name)
        if config is None:
            return
        if not self.owns(name):
            if name in self._tasks:  # the slot moved (or a placement changed)
                self._stop_task(name)
            return
        target = self.state.target_state(name)
        task = self._tasks.get(name)
        request = self.state.restart_request(name)
        restart = request is not None and request.request_id != self._handled_restarts.get(name)
        if request is not None:
            self._handled_restarts[name] = request.request_id
        if target != "STARTED":
            if task is not None:
                self._stop_task(name)
            self._report(name, "PAUSED" if target == "PAUSED" else "STOPPED")
            return
        if task is not None and task.config != config:
            log.info("connector %s: config changed, restarting", name)
            self._stop_task(name)
            task = None
        if task is not None and restart and request is not None:
            status = self.state.connector_status(name)
            failed = status is not None and status.state == "FAILED"
            if not request.only_failed or failed or not task.thread.is_alive():
                log.info("connector %s: restart requested", name)
                self._stop_task(name)
                task = None
        if task is None:
            self._start_task(name, config)

    def shutdown(self) -> None:
        for name in list(self._tasks):
            self._stop_task(name)
            status = Status("UNASSIGNED", self.worker_id)
            self._quietly(lambda n=name, s=status: self.state.put_status(n, s))
        if self.membership is not None:
            self.membership.close()  # the others take the slots over at once
            self.membership = None
        if self._registry is not None:
            self._registry.close()
            self._registry = None

    # -- one connector ----------------------------------------------------------------------

    def _start_task(self, name: str, config: dict[str, Any]) -> None:
        stop = threading.Event()
        thread = threading.Thread(
            target=self._run_connector,
            args=(name, config, stop),
            name=f"connector-{name}",
            daemon=True,
        )
        self._tasks[name] = _Task(config, stop, thread)
        thread.start()

    def _stop_task(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is None:
            return
        task.stop.set()
        interrupt = getattr(task.connector, "interrupt", None)
        if callable(interrupt):
            interrupt()
        task.thread.join(60)

    def _report(self, name: str, state: str, trace: str | None = None) -> None:
        wanted = Status(state, self.worker_id, trace)
        if self.state.connector_status(name) != wanted:
            self._quietly(lambda: self.state.put_status(name, wanted))

    def _quietly(self, write: Any) -> None:
        try:
            write()
        except RetriableError as exc:
            log.warning("connect worker: %s", exc.message)

    def _fail(self, name: str, error: HubError, stop: threading.Event) -> None:
        if stop.is_set():
            return
        trace = f"{type(error).__name__}: {error.message}"
        log.error("connector %s failed: %s", name, trace)
        self._report(name, "FAILED", trace)

    def _build(self, name: str, config: dict[str, Any]) -> tuple[Plugin, SourceConnector]:
        plugin = find_plugin(str(config.get("connector.class", "")))
        connector = plugin.build(build_config(plugin, name, resolve(config)))
        return plugin, connector

    def _runner(self, connector: SourceConnector) -> ConnectorRunner:
        from hub.dlp.operators import keyring_from_master
        from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path

        settings = self.settings
        bootstrap = self.state.bootstrap
        if self._registry is None:
            self._registry = registry_client(settings.effective_registry_url)
        offsets = OffsetStore(bootstrap, self.state.offsets_topic)
        offsets.load()
        quarantine = schema_path(settings.schemas_dir, "common/QuarantineRecord")
        runner = ConnectorRunner(
            connector,
            bootstrap=bootstrap,
            codec_for=stream_codecs(self._registry, settings.schemas_dir),
            quarantine_codec=AvroCodec(
                self._registry, topics.QUARANTINE, load_schema_text(quarantine)
            ),
            offsets=offsets,
            keys=keyring_from_master(settings.dlp_master_key()),
        )
        wanted: dict[str, tuple[int, dict[str, str]]] = {
            t: (topics.DEFAULT_PARTITIONS, {}) for t in runner.topics()
        }
        wanted[topics.QUARANTINE] = topics.TOPIC_SPECS[topics.QUARANTINE]
        ensure_topics(bootstrap, wanted)
        return runner

    def _run_connector(self, name: str, config: dict[str, Any], stop: threading.Event) -> None:
        try:
            plugin, connector = self._build(name, config)
            task = self._tasks.get(name)
            if task is not None:
                task.connector = connector
            runner = self._runner(connector)
            for topic in runner.topics():
                self.state.put_topic(name, topic)
        except HubError as exc:
            self._fail(name, exc, stop)
            return
        except Exception as exc:  # noqa: BLE001 - its text may quote a value: type only
            log.error("connector %s: cannot start (%s)", name, type(exc).__name__)
            self._fail(name, FatalError(f"cannot start ({type(exc).__name__})"), stop)
            return
        self._report(name, "RUNNING")
        log.info("connector %s: running (%s)", name, plugin.name)
        backoff = 1.0
        try:
            while not stop.is_set():
                try:
                    runner.run_once(stop)
                    backoff = 1.0
                    stop.wait(self.poll_interval)
                except RetriableError as exc:
                    delay = retry_delay(exc, backoff)
                    log.warning("connector %s: %s (retrying in %.0fs)", name, exc.message, delay)
                    stop.wait(delay)
                    backoff = min(backoff * 2, 30.0)
                except HubError as exc:
                    self._fail(name, exc, stop)
                    return
                except Exception as exc:  # noqa: BLE001 - type only, see above
                    log.error("connector %s: %s while running", name, type(exc).__name__)
                    self._fail(name, FatalError(f"stopped by {type(exc).__name__}"), stop)
                    return
        finally:
            runner.close()


def default_connector_config(settings: Settings) -> dict[str, str]:
    """The built-in sales spreadsheet connector on the drop directory."""
    return {
        "connector.class": "spreadsheet",
        "name": DEFAULT_CONNECTOR,
        "drop.dir": str(settings.effective_drop_dir.resolve()),
        "mapping": str(settings.lead_mapping.resolve()),
    }


def register_default_connector(state: ConnectState, settings: Settings) -> bool:
    """With no connector registered, register the built-in one; True if it did."""
    if state.connectors():
        return False
    settings.effective_drop_dir.mkdir(parents=True, exist_ok=True)
    state.put_config(
        DEFAULT_CONNECTOR, default_connector_config(settings), initial_target="STARTED"
    )
    log.info("connect worker: registered %s on %s", DEFAULT_CONNECTOR, settings.effective_drop_dir)
    return True


def run_connect_worker(settings: Settings, stop: threading.Event) -> None:
    state = ConnectState(settings.require_bootstrap()).start()
    try:
        if settings.default_connector:
            register_default_connector(state, settings)
        ConnectWorker(settings, state, group=True).run(stop)
    finally:
        state.close()


__all__ = ["ConnectWorker", "default_connector_config", "register_default_connector"]
