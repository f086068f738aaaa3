"""The ``crmhub`` command line as a user runs it: subprocesses, a fresh working directory
and HUB_HOME, the embedded stack."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.broker import free_port
from projections.db import head_revision, migrate

pytestmark = pytest.mark.e2e

_SCRIPT = Path(sys.executable).parent / "crmhub"
CRMHUB = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "hub.cli"]
DEMO_CHECKS = (
    "connector read every generated row",
    "events published = rows read",
    "rows read = valid + quarantined",
    "read-model rows = distinct valid leads",
    "marketing: connector read every contact",
    "service: connector read every ticket",
    "HR: connectors read every employee and deletion",
    "marketing: raw = valid + quarantined (crm.raw.marketing.contacts.v1)",
    "service: raw = valid + quarantined (crm.raw.service.tickets.v1)",
    "hr: raw = valid + quarantined (crm.raw.hr.employees.v1)",
    "hr: raw = valid + quarantined (crm.raw.hr.employee-erasures.v1)",
    "marketing: read-model rows = distinct valid ids (crm.clean.marketing.contacts.v1)",
    "service: read-model rows = distinct valid ids (crm.clean.service.tickets.v1)",
    "hr: read-model rows = distinct valid ids (crm.clean.hr.employees.v1)",
    "hr: read-model rows = distinct valid ids (crm.clean.hr.employee-erasures.v1)",
    "HR: erased employees are not in the read model",
    "webhooks (hubspot): signed accepted, forged refused without a write",
    "webhooks (zendesk): signed accepted, forged refused without a write",
    "audit entries = events",
    "audit chain verified",
    "the vault's access log verifies",
    "read model holds only protected values",
)


def user_env(**settings: str) -> dict[str, str]:
    """The user's environment without any HUB_ setting or terminal width of the test run's
    own (output is not a terminal: rich uses 80 columns unless COLUMNS says otherwise)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_") and k != "COLUMNS"}
    env.update(settings)
    return env


def crmhub(
    *args: str, cwd: Path, timeout: float = 60, **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CRMHUB, *args],
        cwd=cwd,
        env=user_env(**settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass(frozen=True)
class Demo:
    home: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    cwd = tmp_path_factory.mktemp("demo")
    home = cwd / "demo-home"
    # The demo gives up by itself after --timeout (exit 1, stack stopped). Should it hang
    # anyway, SIGINT lets its supervisor stop the children: no orphans left behind.
    args = ["demo", "--rows", "2000", "--home", str(home), "--timeout", "120"]
    proc = subprocess.Popen(
        [*CRMHUB, *args],
        cwd=cwd,
        env=user_env(COLUMNS="200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=200)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    return Demo(home, subprocess.CompletedProcess(proc.args, proc.returncode, out, err))


def test_demo_reconciles(demo: Demo) -> None:
    out = demo.result.stdout
    assert demo.result.returncode == 0, out[-3000:] + demo.result.stderr[-3000:]
    for label in DEMO_CHECKS:
        assert f"✓ {label}:" in out, label
    assert "✗" not in out
    assert "NOT reconciled" not in out
    assert "reconciled in" in out
    assert "2,000 read / 2,000 generated" in out
    assert "Traceback" not in out + demo.result.stderr
    for name in ("sales-leads", "marketing-hubspot", "service-zendesk", "hr-bamboohr"):
        # registered through the REST API, not by the worker's built-in default
        assert f"registered {name} through PUT /connectors/{name}/config: RUNNING" in out
    # The per-department table and the quarantine reasons of each department.
    for department in ("marketing", "service", "hr"):
        assert f"│ {department} " in out
    assert "marketing.email.unique" in out  # the double import, refused
    assert "service.case_status.unmapped" in out  # Zendesk's deleted tickets, never coerced


def test_audit_verify_passes_then_names_the_tampered_link(demo: Demo, tmp_path: Path) -> None:
    assert demo.result.returncode == 0
    ok = crmhub("audit", "verify", cwd=tmp_path, HUB_HOME=str(demo.home), COLUMNS="200")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Every event of the four departments (and the quarantine) is one entry.
    with sqlite3.connect(demo.home / "hub.db") as conn:
        (entries,) = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert entries > 2000
    assert f"audit trail verified: {entries} entries" in ok.stdout
    assert f"✓ audit entries = events: {entries:,} entries" in demo.result.stdout
    assert "vault access log verified: 1 reveal attempt verified" in ok.stdout  # the demo's reveal

    home = tmp_path / "tampered-home"  # a copy: the demo's own state stays as it was
    home.mkdir()
    for name in ("hub.db", "audit.key"):
        shutil.copy2(demo.home / name, home / name)
    with sqlite3.connect(home / "hub.db") as conn:
        seq, topic, partition, offset, event_id = conn.execute(
            'SELECT seq, topic, "partition", "offset", event_id FROM audit_log '
            "ORDER BY seq LIMIT 1 OFFSET 700"
        ).fetchone()
        conn.execute("UPDATE audit_log SET subject = 'someone-else' WHERE seq = ?", (seq,))
    broken = crmhub("audit", "verify", cwd=tmp_path, HUB_HOME=str(home), COLUMNS="200")
    assert broken.returncode == 1, broken.stdout + broken.stderr
    err = broken.stderr
    assert "Traceback" not in err + broken.stdout
    assert "hash mismatch" in err
    assert f"{topic}[{partition}]@{offset}" in err
    assert f"seq {seq}" in err
    assert event_id in err


def test_a_wrong_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    result = crmhub("up", cwd=tmp_path, HUB_HOME=str(tmp_path / "home"), HUB_API_PORT="abc")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "HUB_API_PORT" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "home" / "runtime.json").exists()


@pytest.mark.parametrize(
    "command",
    [("audit", "verify"), ("dlp", "access-log"), ("quarantine", "list")],
    ids=["audit-verify", "dlp-access-log", "quarantine-list"],
)
def test_reading_a_read_model_that_was_never_set_up_says_what_to_do(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    """Before the projection worker ever ran (no tables) and after an upgrade of the hub
    that the worker has not applied yet (an older revision): one line naming the state and
    the remedy, not a SQL traceback. The command changes no schema itself."""
    home = tmp_path / "home"
    fresh = crmhub(*command, cwd=tmp_path, HUB_HOME=str(home))
    assert fresh.returncode == 2, fresh.stdout + fresh.stderr
    assert "Traceback" not in fresh.stderr
    assert "has no tables yet" in fresh.stderr
    assert f"needs revision {head_revision()}" in fresh.stderr
    assert "crmhub up" in fresh.stderr
    migrate(f"sqlite:///{home / 'hub.db'}", "0006")
    older = crmhub(*command, cwd=tmp_path, HUB_HOME=str(home))
    assert older.returncode == 2, older.stdout + older.stderr
    assert "is at revision 0006" in older.stderr
    with sqlite3.connect(home / "hub.db") as conn:
        (version,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == "0006"  # left as it was


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (every thread's list), from /proc."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        out.update(int(p) for p in text.split())
    return out


def _running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def started_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """`crmhub up` as a user starts it: (process, HUB_HOME, its output file). Killed at the
    end if the test has not stopped it."""
    home = tmp_path / "home"
    log_path = tmp_path / "up.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*CRMHUB, "up"],
            cwd=tmp_path,
            env=user_env(HUB_HOME=str(home), HUB_API_PORT=str(free_port())),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield proc, home, log_path
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    with started_up(tmp_path) as running:
        yield running


def test_up_serves_and_stops_on_sigterm_without_orphans(
    up: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    proc, home, log_path = up
    runtime_file = home / "runtime.json"

    def started() -> dict[str, Any] | None:
        assert proc.poll() is None, log_path.read_text()[-3000:]
        try:
            data: dict[str, Any] = json.loads(runtime_file.read_text())
        except (OSError, ValueError):
            return None
        children = data.get("children", {})
        if set(children) != {"api", "projection", "processor", "connect"}:
            return None
        return data

    deadline = time.monotonic() + 60
    runtime = started()
    while runtime is None:
        assert time.monotonic() < deadline, "runtime.json never listed every child"
        time.sleep(0.2)
        runtime = started()
    api_url = str(runtime["api_url"])
    while True:
        try:
            if httpx.get(f"{api_url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "the API never answered /health"
        time.sleep(0.2)
    assert runtime["supervisor_pid"] == proc.pid
    workers = {int(p) for p in runtime["children"].values()}
    every_child = _children(proc.pid)
    assert workers <= every_child
    brokers = every_child - workers
    assert len(brokers) == 1, "expected exactly one embedded broker process"
    (broker,) = brokers
    assert "tansu" in Path(f"/proc/{broker}/cmdline").read_bytes().decode(errors="replace")
    time.sleep(3)  # let the workers get past their start-up before stopping them
    pids = every_child
    assert all(_running(p) for p in pids), "a child died during start-up"

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log_path.read_text()[-3000:]
    survivors = [p for p in pids if _running(p)]
    assert not survivors, f"orphans left running: {survivors}"
    assert not runtime_file.exists()
    assert "stopped" in log_path.read_text()
