"""Faust agents measured from outside: the worker runs as a subprocess (bench.faust_worker)
and this process counts what arrives on its output topics, from the first output to the
n-th. Start-up (imports, registry warm-up, the broker's group-join delay) happens before the
first output and is reported separately, never in the rate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.env import REPO_ROOT, Env, Window, count_outputs
from bench.report import Row


@dataclass
class AgentRun:
    window: Window
    exit_code: int | None
    log: Path


def run_agent(
    env: Env,
    *,
    stage: str,
    source: str,
    clean: str,
    quarantine: str,
    incidents: str | None = None,
    wanted: int,
    timeout: float = 150.0,
    loglevel: str = "INFO",
    app_suffix: str = "",
    extra_args: tuple[str, ...] = (),
) -> AgentRun:
    name = f"{stage}-{loglevel.lower()}{app_suffix}"
    app_id = f"bench-{name}-{env.run_id}"
    log_path = env.scratch / f"faust-{name}.log"
    consumer = env.consumer()
    env.assign_from_start(consumer, [clean, quarantine])
    cmd = [
        sys.executable,
        "-m",
        "bench.faust_worker",
        "--stage",
        stage,
        "--bootstrap",
        env.bootstrap,
        "--registry",
        env.registry_url,
        "--source",
        source,
        "--clean",
        clean,
        "--quarantine",
        quarantine,
        "--incidents",
        incidents or env.topic(f"{stage}.incidents"),
        "--app-id",
        app_id,
        "--home",
        str(env.scratch / "hub"),
        "--loglevel",
        loglevel,
        *extra_args,
    ]
    # A clean environment for the worker's settings: only what the command line says.
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    with log_path.open("wb") as log:
        window = Window(wanted=wanted, t_launch=time.monotonic())
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            count_outputs(consumer, window, timeout=timeout, alive=lambda: proc.poll() is None)
        finally:
            consumer.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return AgentRun(window, proc.returncode, log_path)


def agent_row(
    key: str, stage: str, run: AgentRun, *, ceiling: str | None, note: str, **kw: object
) -> Row:
    w = run.window
    if not w.complete or w.rate is None:
        return Row(
            key,
            stage,
            None,
            "events/s",
            ceiling=ceiling,
            note=(
                f"not measured: {w.count:,} of {w.wanted:,} outputs arrived "
                f"(worker exit code {run.exit_code}; log {run.log.name})"
            ),
            **kw,  # type: ignore[arg-type]
        )
    startup = f"{w.startup:.1f} s" if w.startup is not None else "?"
    return Row(
        key,
        stage,
        w.rate,
        "events/s",
        count=w.measured,
        seconds=w.seconds,
        ceiling=ceiling,
        note=(
            f"{note} Worker subprocess; outputs counted by consuming the output topics: "
            f"window from the first consumed output batch ({w.first_batch:,} events, not "
            f"counted) to output #{w.wanted:,}. Start-up excluded: {startup} from launch to "
            "the first output (imports, warm-up, group join)."
        ),
        extra={"startup_seconds": w.startup, "first_batch": w.first_batch},
        **kw,  # type: ignore[arg-type]
    )
