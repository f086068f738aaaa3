"""Faust agents measured from outside: the worker runs as a subprocess (bench.faust_worker)
and this process counts what arrives on its output topics, from the first output to the
n-th. Start-up (imports, registry warm-up, the broker's group-join delay) happens before the
first output and is reported separately, never in the rate.

The CPU time the worker and its child processes (the processor's stage runs in one) spend in
the same window is read from /proc: on a machine shared with other jobs the rate moves with
their load, the CPU per event much less, and it shows where the time goes."""

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
    #: CPU seconds of the worker and its children, from the last idle poll before the first
    #: output to the end of the window (None where /proc is not readable).
    cpu_seconds: float | None = None
    #: The same, per process: "worker" and "children".
    cpu_split: dict[str, float] | None = None


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu(pid: int) -> dict[str, float] | None:
    """utime + stime of ``pid`` and of its live children, in seconds."""
    try:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as fh:
                        stats[int(entry)] = fh.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
    except OSError:
        return None
    if pid not in stats:
        return None

    def seconds(fields: list[str]) -> float:
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS

    children = sum(seconds(f) for p, f in stats.items() if int(f[1]) == pid)
    return {"worker": seconds(stats[pid]), "children": children}


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
    cpu_before: dict[str, float] | None = None

    def alive() -> bool:
        nonlocal cpu_before
        if window.t_first is None:  # still before the first output: the window's start
            cpu_before = _cpu(proc.pid)
        return proc.poll() is None

    with log_path.open("wb") as log:
        window = Window(wanted=wanted, t_launch=time.monotonic())
        proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT
        )
        cpu_split = None
        try:
            count_outputs(consumer, window, timeout=timeout, alive=alive)
            cpu_after = _cpu(proc.pid)
            if cpu_before is not None and cpu_after is not None and window.complete:
                cpu_split = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
        finally:
            consumer.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    cpu = sum(cpu_split.values()) if cpu_split is not None else None
    return AgentRun(window, proc.returncode, log_path, cpu, cpu_split)


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
    cpu_note = ""
    extra: dict[str, object] = {"startup_seconds": w.startup, "first_batch": w.first_batch}
    if run.cpu_seconds is not None and run.cpu_split is not None and w.measured > 0:
        per_event = run.cpu_seconds / min(w.count, w.wanted) * 1e6
        cpu_note = (
            f" CPU in the window: {run.cpu_split['worker']:.1f} s worker + "
            f"{run.cpu_split['children']:.1f} s its child processes (≈{per_event:,.0f} µs "
            "per event; from the last idle poll before the first output)."
        )
        extra.update(cpu_seconds=run.cpu_seconds, cpu_split=run.cpu_split)
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
            "the first output (imports, warm-up, group join)." + cpu_note
        ),
        extra=extra,
        **kw,  # type: ignore[arg-type]
    )
