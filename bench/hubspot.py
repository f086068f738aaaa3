"""``python -m bench.hubspot``: records/s from the HubSpot simulator through the connector.

The simulator runs as its own process (``python -m connectors.hubspot.simulator
--no-limits``: the second core, as a remote API would be; rate limits off, since HubSpot's
own limits would cap the figure far below the target, see the report), with a seeded
account. The connector reads at the API's real page sizes (no Kafka: the source side only):

- ``contacts`` full pass: the list endpoint, 100 a page (its maximum);
- ``contacts`` incremental: ``--changes`` contacts modified (``POST /_sim/touch``), read
  through the search API, 100 a page (the connector's default; the search allows 200);
- ``email_events``: the e-mail events API, 1,000 a page (its maximum);
- ``contact_company_associations`` full pass: 100 contacts a page plus one v4 batch read.

Each stream is read three times; the best run is reported with the others. Then the
contacts full pass once more under cProfile: the top functions go to
``bench/out/hubspot-profile.txt`` (cProfile slows pure Python several times: read the
shares, not the rates). Figures go to ``bench/out/hubspot.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import SecretStr

from connectors.hubspot.connector import HubSpotConfig, HubSpotConnector
from hub.broker import free_port
from hub.sdk.streams import SourcePartition
from hub.settings import REPO_ROOT

OUT_DIR = REPO_ROOT / "bench" / "out"
TOKEN = "pat-na1-bench-token"
TARGET = 10_000
# HubSpot's documented ceilings for a private app (Professional/Enterprise): 190 requests
# per 10 s, and 5 search requests per second.
REAL_LIST_RATE = 19.0
REAL_SEARCH_RATE = 5.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


SIM_PID: list[int] = []


@contextmanager
def simulator(contacts: int, events_per_contact: float) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "connectors.hubspot.simulator",
        "--port",
        str(port),
        "--contacts",
        str(contacts),
        "--companies",
        str(max(10, contacts // 20)),
        "--events-per-contact",
        str(events_per_contact),
        "--token",
        TOKEN,
        "--no-limits",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    SIM_PID[:] = [proc.pid]
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"the simulator exited: {err[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the simulator did not start within 120 s") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connector(url: str, clock_ms: int, **extra: Any) -> HubSpotConnector:
    config = HubSpotConfig(
        name="bench-hubspot",
        access_token=SecretStr(TOKEN),
        base_url=url,
        settle_seconds=0,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        email_events_window_days=400,
        **extra,
    )
    return HubSpotConnector(config, clock=lambda: clock_ms)


def read(
    conn: HubSpotConnector, stream: str, cursor: dict[str, Any] | None
) -> tuple[int, float, dict[str, Any] | None]:
    """(records, seconds, the last cursor) of one stream read to its end."""
    count = 0
    last = cursor
    began = time.perf_counter()
    for rec in conn.fetch(SourcePartition({"stream": stream}, cursor)):
        if rec.cursor is not None:
            last = dict(rec.cursor)
        if not rec.checkpoint:
            count += 1
    return count, time.perf_counter() - began, last


def measure(
    url: str, clock_ms: int, stream: str, cursor: dict[str, Any] | None, runs: int = 3
) -> dict[str, Any]:
    """Wall-clock rates of ``runs`` reads, and CPU-time rates of each side (the connector
    process, the simulator process): on a loaded machine the wall clock measures the
    neighbours too; a side's CPU rate is what it sustains with a core of its own."""
    rates, client_cpu, server_cpu = [], [], []
    count = 0
    for _ in range(runs):
        c0, s0 = time.process_time(), cpu_seconds(SIM_PID[0])
        count, seconds, _ = read(connector(url, clock_ms), stream, cursor)
        client_cpu.append(count / max(1e-9, time.process_time() - c0))
        server_cpu.append(count / max(1e-9, cpu_seconds(SIM_PID[0]) - s0))
        rates.append(count / seconds)
    best = max(rates)
    return {
        "records": count,
        "rate": round(best),
        "runs": [round(r) for r in rates],
        "connector_cpu_rate": round(max(client_cpu)),
        "simulator_cpu_rate": round(max(server_cpu)),
        "target": TARGET,
        "met": best >= TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events-per-contact", type=float, default=2.0)
    parser.add_argument("--changes", type=int, default=20_000)
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with open("/proc/loadavg") as f:
        load_before = f.read().split()[:3]
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count()},
        "loadavg_before": load_before,
        "rows": {},
    }
    with simulator(args.contacts, args.events_per_contact) as url:
        now = int(time.time() * 1000)
        rows = report["rows"]
        rows["contacts full pass (list, 100/page)"] = measure(url, now, "contacts", None)
        _, _, after_full = read(connector(url, now), "contacts", None)
        ids = list(range(101, 101 + args.changes))
        touched_at = now + 1_000
        with httpx.Client(base_url=url, timeout=60) as admin:
            for i in range(0, len(ids), 5_000):  # 5 changes per millisecond: ties too
                for n, chunk in enumerate(range(i, min(i + 5_000, len(ids)), 5)):
                    admin.post(
                        "/_sim/touch",
                        json={
                            "objectType": "contacts",
                            "ids": ids[chunk : chunk + 5],
                            "atMs": touched_at + i // 5 + n,
                        },
                    )
        later = touched_at + len(ids) + 10_000
        rows["contacts incremental (search, 100/page)"] = measure(
            url, later, "contacts", after_full
        )
        rows["email_events (1000/page)"] = measure(url, now, "email_events", None)
        rows["contact_company_associations (100/page + v4 batch)"] = measure(
            url, now, "contact_company_associations", None
        )

        prof = cProfile.Profile()
        prof.enable()
        count, seconds, _ = read(connector(url, now), "contacts", None)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out).strip_dirs()
        for order in ("tottime", "cumulative"):
            out.write(f"\n==== contacts full pass: top 30 by {order} ====\n")
            stats.sort_stats(order).print_stats(30)
        (OUT_DIR / "hubspot-profile.txt").write_text(out.getvalue())
        report["profiled"] = {"records": count, "rate_under_cprofile": round(count / seconds)}
    report["real_api_ceilings"] = {
        "list, 100/page at 190 requests/10 s": round(REAL_LIST_RATE * 100),
        "search, 100/page at 5 requests/s": round(REAL_SEARCH_RATE * 100),
        "email events, 1000/page at 190 requests/10 s": round(REAL_LIST_RATE * 1000),
    }
    with open("/proc/loadavg") as f:
        report["loadavg_after"] = f.read().split()[:3]
    (OUT_DIR / "hubspot.json").write_text(json.dumps(report, indent=2))
    for name, row in report["rows"].items():
        flag = "ok" if row["met"] else "BELOW TARGET"
        print(
            f"{name:52s} {row['records']:>7,} rec {row['rate']:>7,}/s wall {flag:12s} "
            f"runs {row['runs']}; CPU-bound rates: connector {row['connector_cpu_rate']:,}/s, "
            f"simulator {row['simulator_cpu_rate']:,}/s"
        )
    print(f"load average after: {report['loadavg_after']}")
    print(f"HubSpot's own limits cap a real account at: {report['real_api_ceilings']}")
    print(f"profile: {OUT_DIR / 'hubspot-profile.txt'}; figures: {OUT_DIR / 'hubspot.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
