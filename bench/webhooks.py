"""``python -m bench.webhooks``: signed webhook requests/s and latency through the real API.

What runs (all on this machine's 2 cores):

- the embedded broker (tansu) and the hub's schema registry (a uvicorn thread of this
  process), from ``bench.env.Env``;
- **the server**: the hub's API exactly as ``crmhub`` serves it (``python -m hub.cli worker
  api``: ``create_api`` on uvicorn, ConnectState + the webhook receiver, acks=all), in its
  own process; ``--workers 2`` runs ``create_api`` under uvicorn's multi-process mode
  instead (each process its own publisher and replay guard). ``--http``/``--loop`` pick
  uvicorn's HTTP parser and event loop; ``--extra-path`` puts a directory (e.g. one where
  ``pip install --target`` put httptools and uvloop) on the server's ``PYTHONPATH`` only;
- **the load generator**: ``bench.webhooks_load`` in a process of its own, requests
  signed before the clock starts.

A HubSpot connector is registered with ``webhook.secret`` as an ``${env:…}`` reference.
Per server variant: a warm-up, a closed-loop run (the throughput ceiling), an open-loop
run at ``--rate`` (latency at the target, measured from each request's due time), and a
burst of deliveries with corrupted signatures. CPU seconds of every process (server and
its workers, load generator, broker, this process) are read from ``/proc`` at the load
generator's START/END lines; the report gives each one's share of the 2 cores, so the
load generator's own cost is visible and the server's CPU per request is known.

Afterwards the topic is read back: it must hold exactly the events of the 2xx answers, so
a bad signature cost no Kafka write; the server's metrics must agree. With
``--profile``, py-spy (``--py-spy``, default ``$PY_SPY`` or ``py-spy`` on the PATH) samples
the server during one more closed-loop run; the top frames go to
``bench/out/webhooks-profile-<variant>.txt``. Figures go to ``bench/out/webhooks.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from bench.env import OUT_DIR, Env
from hub.broker import free_port
from hub.connect_state import ConnectState
from hub.settings import REPO_ROOT

SECRET_VAR = "BENCH_WEBHOOK_SECRET"
CONNECTOR = "bench-hubspot-webhooks"
TARGET_RATE = 3000.0
TARGET_P99_MS = 50.0
CPUS = os.cpu_count() or 1


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process so far (Linux /proc); 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of every thread of ``pids`` (and their children), by thread name
    (librdkafka names its threads rdk:broker…, rdk:main; Python's are named by pthread)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    every = {p for parent in pids for p in (parent, *children(parent))}
    for pid in every:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            name = text[text.index("(") + 1 : text.rindex(")")]
            fields = text.rsplit(")", 1)[1].split()
            thread = name.rstrip("0123456789") or name
            out[thread] = out.get(thread, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


@contextmanager
def server(
    env: Env, scratch: Path, args: argparse.Namespace, workers: int
) -> Iterator[tuple[str, list[int]]]:
    port = free_port()
    extra = [str(REPO_ROOT)] + ([args.extra_path] if args.extra_path else [])
    env_vars = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(extra),
        "HUB_HOME": str(scratch / "home"),
        "HUB_KAFKA_BOOTSTRAP": env.bootstrap,
        "HUB_SCHEMA_REGISTRY_URL": env.registry_url,
        "HUB_API_PORT": str(port),
        "HUB_CONFIG_FILE": str(scratch / "absent.yaml"),
        "HUB_LOG_LEVEL": "WARNING",
        SECRET_VAR: os.environ[SECRET_VAR],
    }
    if workers == 1 and args.http == "auto" and args.loop == "auto":
        # Exactly as crmhub runs it: uvicorn's "auto" picks httptools and uvloop, both
        # dependencies of the hub.
        cmd = [sys.executable, "-m", "hub.cli", "worker", "api"]
    else:
        cmd = [sys.executable, "-m", "bench.webhooks", "serve", "--port", str(port),
               "--workers", str(workers), "--http", args.http, "--loop", args.loop]  # fmt: skip
    log = (scratch / f"server-{workers}w-{args.http}.log").open("wb")
    proc = subprocess.Popen(cmd, env=env_vars, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited ({proc.returncode}); see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start within 60 s")
            time.sleep(0.2)
        yield url, [proc.pid]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def serve(argv: list[str]) -> None:
    """``create_api`` on uvicorn in ``--workers`` processes sharing the port through
    SO_REUSEPORT (the kernel spreads connections over them). Not uvicorn's own
    ``--workers``: its listening socket is made without IPPROTO_TCP, so asyncio's
    transports do not set TCP_NODELAY and every answer waits ~40 ms on delayed ACKs
    (measured here: a flat p50 of ~48 ms); uvloop sets it itself, asyncio does not."""
    import socket

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.webhooks serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--http", default="auto")
    parser.add_argument("--loop", default="auto")
    args = parser.parse_args(argv)
    from hub.procs import die_with_parent

    for _ in range(args.workers - 1):
        if os.fork() == 0:
            die_with_parent()  # stopped with the parent the benchmark stops
            break  # a child serves too; the parent serves last
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        app_from_env(),
        http=args.http,
        loop=args.loop,
        log_level="warning",
        access_log=False,
    )
    uvicorn.Server(config).run(sockets=[sock])


def app_from_env() -> Any:
    from hub.api import create_api
    from hub.settings import load_settings

    return create_api(load_settings())


class Watch:
    """CPU seconds of named processes (with their child processes, except for this one,
    whose children are the others) between two snapshots."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before: dict[str, float] = {}
        self.threads_before: dict[str, float] = {}

    def _now(self) -> dict[str, float]:
        out = {}
        me = os.getpid()
        for name, pids in self.pids.items():
            every = set(pids)
            for pid in pids:
                if pid != me:
                    every.update(children(pid))
            out[name] = sum(cpu_seconds(p) for p in every)
        return out

    def start(self) -> None:
        self.before = self._now()
        self.threads_before = thread_cpu(self.pids.get("server", []))

    def stop(self, seconds: float) -> dict[str, Any]:
        after = self._now()
        used = {k: after[k] - self.before.get(k, 0.0) for k in after}
        out: dict[str, Any] = {
            k: {"cpu_s": round(v, 2), "share_of_cores": round(v / (seconds * CPUS), 3)}
            for k, v in used.items()
        }
        threads = thread_cpu(self.pids.get("server", []))
        for thread, before in self.threads_before.items():
            threads[thread] = threads.get(thread, 0.0) - before
        if "server" in out:
            out["server"]["by_thread_cpu_s"] = {
                k: round(v, 2)
                for k, v in sorted(threads.items(), key=lambda kv: kv[1], reverse=True)
                if v >= 0.01
            }
        return out


def load(
    url: str, *, requests: int, rate: float, connections: int, events: int,
    first_event_id: int, corrupt: bool = False, watch: dict[str, list[int]] | None = None,
) -> dict[str, Any]:  # fmt: skip
    cmd = [
        sys.executable, "-m", "bench.webhooks_load", "--url", url, "--secret-env", SECRET_VAR,
        "--requests", str(requests), "--rate", str(rate), "--connections", str(connections),
        "--events", str(events), "--first-event-id", str(first_event_id),
    ] + (["--corrupt"] if corrupt else [])  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pids = dict(watch or {})
    pids["load generator"] = [proc.pid]
    pids["this process (registry)"] = [os.getpid()]
    meter = Watch(pids)
    t_start = t_end = 0.0
    result: dict[str, Any] = {}
    for line in proc.stdout:
        if line.startswith("START"):
            meter.start()
            t_start = time.monotonic()
        elif line.startswith("END"):
            t_end = time.monotonic()
            result["cpu"] = meter.stop(t_end - t_start)
        elif line.startswith("{"):
            result.update(json.loads(line))
    if proc.wait() != 0:
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"the load generator failed: {err[-2000:]}")
    accepted = result["statuses"].get("200", 0)
    server_cpu = result["cpu"].get("server", {}).get("cpu_s", 0.0)
    if result["requests"]:
        result["server_cpu_us_per_request"] = round(server_cpu / result["requests"] * 1e6)
    result["accepted_events"] = accepted * events
    return result


def count_topic(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> int:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-count-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        count, quiet_since, deadline = 0, time.monotonic(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, 0.2)
            got = sum(1 for m in batch if m.error() is None)
            count += got
            if got:
                quiet_since = time.monotonic()
            elif count >= expect and time.monotonic() - quiet_since > 1.5:
                break
        return count
    finally:
        consumer.close()


def scrape(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        wanted = line.startswith(("hub_webhook_events_total{", "hub_webhook_rejections_total{"))
        if wanted and f'connector="{CONNECTOR}"' in line:
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def profile(
    url: str, pids: list[int], args: argparse.Namespace, first: int, name: str
) -> tuple[str, dict[str, Any]] | None:
    """py-spy on the server during a closed-loop run: (the summary's path, that run)."""
    spy = args.py_spy or os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not spy:
        return None
    raw = OUT_DIR / f"webhooks-profile-{name}.raw"
    targets = [p for pid in pids for p in (children(pid) or [pid])]
    seconds = str(int(args.seconds / 2) + 2)
    spies = []
    for t in targets:
        cmd = [spy, "record", "--pid", str(t), "--rate", "250", "--format", "raw", "--gil"]
        cmd += ["--output", f"{raw}.{t}", "--duration", seconds, "--nonblocking"]
        spies.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0)
    run = load(url, requests=int(TARGET_RATE * args.seconds / 2), rate=0,
               connections=args.connections, events=args.events, first_event_id=first)  # fmt: skip
    for s in spies:
        s.wait(60)
    leaves: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for t in targets:
        path = Path(f"{raw}.{t}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            frames = stack.split(";")
            n = int(count_text)
            total += n
            leaves[frames[-1]] += n
            for frame in set(frames):
                inclusive[frame] += n
        path.unlink()
    out = OUT_DIR / f"webhooks-profile-{name}.txt"
    lines = [
        f"py-spy --gil, {total} samples of the server's GIL holder at 250/s (closed loop)",
        "",
        "self:",
    ]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in leaves.most_common(40)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * n / total:6.1f}%  {f}" for f, n in inclusive.most_common(60)]
    out.write_text("\n".join(lines) + "\n")
    return str(out.relative_to(REPO_ROOT)), run


def run_variant(
    env: Env, scratch: Path, args: argparse.Namespace, workers: int, first: int
) -> tuple[dict[str, Any], int]:
    name = f"{workers}w-{args.http}-{args.loop}"
    n = int(args.rate * args.seconds)
    out: dict[str, Any] = {"server": {"workers": workers, "http": args.http, "loop": args.loop}}
    with server(env, scratch, args, workers) as (url, pids):
        url_hook = f"{url}/webhooks/{CONNECTOR}"
        watch = {"server": pids, "broker": [env.broker.proc.pid] if env.broker.proc else []}
        rows: dict[str, Any] = {}
        plan = [  # (label, requests, offered rate (0: closed loop), connections, corrupt)
            ("warm-up", 1000, 0.0, 8, False),
            ("closed loop", n, 0.0, args.connections, False),
            (f"open loop at {args.rate:.0f}/s", n, args.rate, 64, False),
            ("bad signatures", args.bad, 0.0, args.connections, True),
        ]
        for label, requests, rate, connections, corrupt in plan:
            before = stalls(url)
            rows[label] = load(
                url_hook,
                requests=requests,
                rate=rate,
                connections=connections,
                events=args.events,
                first_event_id=first,
                corrupt=corrupt,
                watch=watch,
            )
            first += requests * args.events + 10_000
            rows[label]["server_stalls"] = stall_delta(before, stalls(url))
            print(f"  {name} {label}: {summarize(rows[label])}", flush=True)
            print(f"    server stalls: {rows[label]['server_stalls']}", flush=True)
        out["rows"] = rows
        out["metrics"] = scrape(url)
        ceiling = rows["closed loop"]["rate"]
        open_row = rows[f"open loop at {args.rate:.0f}/s"]
        missed = ceiling < TARGET_RATE or open_row["latency_from_due"]["p99_ms"] >= TARGET_P99_MS
        if args.profile == "always" or (args.profile == "auto" and missed):
            profiled = profile(url_hook, pids, args, first, name)
            first += int(TARGET_RATE * args.seconds / 2) * args.events + 10_000
            if profiled is not None:
                out["profile"], rows["profiled closed loop"] = profiled
    return out, first


def stalls(url: str) -> dict[str, float]:
    """The server's stall histograms (hub.loop_metrics): observations over 50 ms and their
    total, event-loop lag and GC pauses by generation (cumulative since start)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        key, value = line.rsplit(" ", 1)
        for metric, short in (
            ("hub_event_loop_lag_seconds", "loop_lag"),
            ("hub_gc_pause_seconds", "gc"),
            ("hub_webhook_request_seconds", "server_answer"),  # receive to 2xx, in-server
        ):
            if not key.startswith(metric) or (
                short == "server_answer" and f'connector="{CONNECTOR}"' not in key
            ):
                continue
            gen = key.split('generation="', 1)[1].split('"', 1)[0] if "generation" in key else ""
            name = f"{short}{'_gen' + gen if gen else ''}"
            if key.startswith(f"{metric}_bucket") and 'le="0.05"' in key:
                out[f"{name}_le_50ms"] = float(value)
            if key.startswith(f"{metric}_bucket") and short == "server_answer":
                le = key.split('le="', 1)[1].split('"', 1)[0]
                out[f"{name}_bucket_{le}"] = float(value)
            elif key.startswith(f"{metric}_count"):
                out[f"{name}_count"] = float(value)
            elif key.startswith(f"{metric}_sum"):
                out[f"{name}_sum_s"] = float(value)
    return out


def stall_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per kind: how many observations over 50 ms, and the seconds spent, in a phase."""
    out: dict[str, float] = {}
    for key, count in after.items():
        if key.endswith("_count"):
            name = key.removesuffix("_count")
            n = count - before.get(key, 0.0)
            fast = after.get(f"{name}_le_50ms", 0.0) - before.get(f"{name}_le_50ms", 0.0)
            spent = after.get(f"{name}_sum_s", 0.0) - before.get(f"{name}_sum_s", 0.0)
            out[f"{name}_over_50ms"] = n - fast
            out[f"{name}_seconds"] = round(spent, 3)
    # The server's own answer times (receive to 2xx): the bucket bound each quantile is in.
    buckets = sorted(
        (float(k.rsplit("_", 1)[1]), after[k] - before.get(k, 0.0))
        for k in after
        if k.startswith("server_answer_bucket_")
    )
    total = buckets[-1][1] if buckets else 0.0
    for q in (0.5, 0.95, 0.99):
        bound = next((le for le, n in buckets if total and n >= q * total), None)
        if bound is not None:
            out[f"server_answer_p{int(q * 100)}_le_ms"] = bound * 1000
    return out


def summarize(row: dict[str, Any]) -> str:
    lat = row["latency_from_due"]
    cpu = ", ".join(f"{k} {v['share_of_cores']:.0%}" for k, v in row["cpu"].items())
    cpu += f" (server threads, CPU s: {row['cpu'].get('server', {}).get('by_thread_cpu_s')})"
    return (
        f"{row['requests']} req, {row['rate']:.0f}/s, statuses {row['statuses']}, "
        f"p50 {lat.get('p50_ms')} p95 {lat.get('p95_ms')} p99 {lat.get('p99_ms')} ms; "
        f"CPU share of 2 cores: {cpu}; server {row.get('server_cpu_us_per_request')} µs/req"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        serve(argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0, help="per run, at --rate")
    parser.add_argument("--rate", type=float, default=TARGET_RATE)
    parser.add_argument("--connections", type=int, default=32, help="closed loop")
    parser.add_argument("--events", type=int, default=1, help="events per delivery")
    parser.add_argument("--bad", type=int, default=5000, help="bad-signature deliveries")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--http", default="auto", choices=("auto", "h11", "httptools"))
    parser.add_argument("--loop", default="auto", choices=("auto", "asyncio", "uvloop"))
    parser.add_argument("--extra-path", default=None, help="on the server's PYTHONPATH")
    parser.add_argument("--profile", default="auto", choices=("auto", "always", "never"))
    parser.add_argument("--py-spy", default=None)
    parser.add_argument("--out", type=Path, default=OUT_DIR / "webhooks.json")
    args = parser.parse_args(argv)
    os.environ[SECRET_VAR] = "bench-" + uuid.uuid4().hex
    scratch = OUT_DIR / f"webhooks-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}"
    scratch.mkdir(parents=True)
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": CPUS,
        "loadavg_before": os.getloadavg(),
        "targets": {"rate": TARGET_RATE, "p99_ms": TARGET_P99_MS},
        "events_per_request": args.events,
        "variants": [],
    }
    with Env(scratch) as env:
        state = ConnectState(env.bootstrap).start()
        state.put_config(
            CONNECTOR,
            {
                "connector.class": "hubspot",
                "name": CONNECTOR,
                "access.token": "${env:BENCH_HUBSPOT_TOKEN_UNUSED}",
                "webhook.secret": f"${{env:{SECRET_VAR}}}",
            },
            initial_target="STARTED",
        )
        state.close()
        first = 1_000_000
        expected_events = 0
        for workers in args.workers:
            variant, first = run_variant(env, scratch, args, workers, first)
            report["variants"].append(variant)
            expected_events += sum(r["accepted_events"] for r in variant["rows"].values())
        topic = "crm.raw.marketing.contact-webhooks.v1"
        on_topic = count_topic(env.bootstrap, topic, expected_events)
        report["no_write_for_bad_signatures"] = {
            "events_of_2xx_answers": expected_events,
            "events_on_topic": on_topic,
            "bad_signature_deliveries": sum(
                v["rows"]["bad signatures"]["requests"] for v in report["variants"]
            ),
            "bad_signature_statuses": [
                v["rows"]["bad signatures"]["statuses"] for v in report["variants"]
            ],
            "holds": on_topic == expected_events,
        }
    report["loadavg_after"] = os.getloadavg()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["no_write_for_bad_signatures"], indent=2))
    print(f"figures: {args.out}")


if __name__ == "__main__":
    main()
