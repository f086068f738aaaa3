"""`crmhub up`: start and supervise the embedded stack as child processes.

Order: broker (health-checked) -> API server with the schema registry (health-checked) ->
projection worker -> processor worker -> connect worker. Stop is the reverse, each child
given time to finish its batch and commit, so no acknowledged event is lost. A child that
dies is restarted with backoff; one that keeps dying stops the whole stack with its name.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import IO

import httpx

from hub.broker import EmbeddedBroker, ensure_topics, free_port, wait_for_broker
from hub.errors import FatalError, RetriableError
from hub.procs import die_with_parent
from hub.settings import RUNTIME_FILE, Settings

log = logging.getLogger(__name__)

START_ORDER = ("api", "projection", "processor", "connect")
STOP_TIMEOUT = 20.0
MAX_RESTARTS = 5


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)
    log_file: IO[bytes] | None = None


class Supervisor:
    def __init__(self, settings: Settings, components: tuple[str, ...] = START_ORDER) -> None:
        self.settings = settings
        self.components = [c for c in START_ORDER if c in components]
        self.home = settings.home.resolve()
        self.logs = self.home / "logs"
        self.broker: EmbeddedBroker | None = None
        self.bootstrap = settings.kafka_bootstrap or ""
        self.api_port = settings.api_port or free_port()
        self.children: dict[str, Child] = {}
        self._broker_log: IO[bytes] | None = None

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        if self.settings.kafka_bootstrap:
            wait_for_broker(self.bootstrap, timeout=30)
        else:
            self._archive_stale_read_model()
            self._broker_log = (self.logs / "broker.log").open("ab")
            self.broker = EmbeddedBroker(self.settings.tansu_bin, log=self._broker_log).start()
            self.bootstrap = self.broker.bootstrap
        ensure_topics(self.bootstrap)
        # Keys generated once, here, before the workers that share them start.
        home_settings = self.settings.model_copy(update={"home": self.home})
        home_settings.audit_key_bytes()
        home_settings.dlp_master_key()
        self._write_runtime()
        for name in self.components:
            self._spawn(self.children.setdefault(name, Child(name)))
            if name == "api":
                self._wait_api()

    def _archive_stale_read_model(self) -> None:
        """The embedded broker keeps its log in memory: a new one starts empty. A default
        SQLite read model left by an earlier run was derived from a log that is gone, and
        its stored offsets would point past the new log's end; set it aside (never delete
        it) so the projections rebuild from what the new log holds (the connector re-reads
        its drop directory, whose cursors were in that log too)."""
        if self.settings.database_url:
            return
        db = self.home / "hub.db"
        if db.exists():
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                old = self.home / f"hub.db{suffix}"
                if old.exists():
                    old.replace(self.home / f"hub.db.{stamp}{suffix}")
            log.warning(
                "embedded broker starts empty: earlier read model kept as %s, rebuilding",
                self.home / f"hub.db.{stamp}",
            )

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["HUB_KAFKA_BOOTSTRAP"] = self.bootstrap
        env["HUB_HOME"] = str(self.home)
        env["HUB_API_PORT"] = str(self.api_port)
        env["HUB_SCHEMA_REGISTRY_URL"] = self.registry_url
        if not self.settings.default_connector:
            env["HUB_DEFAULT_CONNECTOR"] = "false"
        return env

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.api_port}"

    @property
    def registry_url(self) -> str:
        return self.settings.schema_registry_url or self.api_url

    def _spawn(self, child: Child) -> None:
        env = self._env()
        if child.name == "api" and not self.settings.schema_registry_url:
            env.pop("HUB_SCHEMA_REGISTRY_URL")  # the API serves the embedded registry
        if child.log_file is None:
            child.log_file = (self.logs / f"{child.name}.log").open("ab")
        child.proc = subprocess.Popen(
            [sys.executable, "-m", "hub.cli", "worker", child.name],
            env=env,
            stdout=child.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own session: a terminal's Ctrl-C reaches only the supervisor, which stops the
            # children in order; the parent-death signal stops them if it is killed.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only a pre-resolved prctl call
        )
        log.info("started %s (pid %s)", child.name, child.proc.pid)
        self._write_runtime()

    def _wait_api(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        child = self.children["api"]
        while time.monotonic() < deadline:
            if child.proc is not None and child.proc.poll() is not None:
                raise FatalError(
                    f"API server exited with code {child.proc.returncode}; "
                    f"see {self.logs / 'api.log'}"
                )
            try:
                # Lifespan start-up (registry replayed) completes before uvicorn serves.
                if httpx.get(f"{self.api_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RetriableError(
            f"API server not ready after {timeout:.0f}s; see {self.logs / 'api.log'}"
        )

    def _write_runtime(self) -> None:
        data = {
            "kafka_bootstrap": self.bootstrap,
            "api_url": self.api_url,
            "schema_registry_url": self.registry_url,
            "embedded_broker": self.broker is not None,
            "supervisor_pid": os.getpid(),
            "children": {n: c.proc.pid for n, c in self.children.items() if c.proc},
        }
        tmp = self.home / (RUNTIME_FILE + ".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self.home / RUNTIME_FILE)

    def check(self) -> None:
        """Restart children that died; give up on one that keeps dying."""
        for child in self.children.values():
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60] + [now]
            if len(child.restarts) > MAX_RESTARTS:
                raise FatalError(
                    f"{child.name} worker exited {MAX_RESTARTS} times within a minute "
                    f"(last code {code}); see {self.logs / (child.name + '.log')}"
                )
            log.warning("%s worker exited with code %s; restarting", child.name, code)
            time.sleep(min(2 ** (len(child.restarts) - 1), 10))
            self._spawn(child)

    def stop(self) -> None:
        for name in reversed(self.components):
            child = self.children.get(name)
            if child is None or child.proc is None:
                continue
            if child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in %.0fs; killing it", name, STOP_TIMEOUT)
                    child.proc.kill()
                    child.proc.wait()
            if child.log_file:
                child.log_file.close()
                child.log_file = None
        if self.broker is not None:
            self.broker.stop()
        if self._broker_log:
            self._broker_log.close()
        (self.home / RUNTIME_FILE).unlink(missing_ok=True)

    def run_until_signal(self) -> None:
        stopping = False

        def handler(_signum: int, _frame: object) -> None:
            nonlocal stopping
            stopping = True

        old_term = signal.signal(signal.SIGTERM, handler)
        old_int = signal.signal(signal.SIGINT, handler)
        try:
            while not stopping:
                self.check()
                time.sleep(0.5)
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)

    def __enter__(self) -> Supervisor:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
