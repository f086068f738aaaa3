"""``python -m bench.zendesk``: records/s from the Zendesk simulator through the zendesk
connector, at the API's real page sizes (exports: 1000 items a page; comments: 100), and
where the time goes (cProfile).

The simulator runs as its own process (``python -m connectors.zendesk.simulator
--no-rate-limits``: the real limits, 10 export pages a minute, would cap a read at
10,000 items a minute whatever the connector does). Each stream is read to its end by
``ZendeskConnector.fetch_stream`` (HTTP, JSON, checks, mapping, cursors; no Kafka: the
runner's own cost is ``bench/connect.py``'s framework-overhead row). The comment stream
is measured both ways: with ``comments.source=tickets`` it makes one request per ticket,
so it is measured over its first ``--comment-tickets`` tickets; with
``comments.source=events`` (the ticket event export, 1,000 events a page) to its end.
Then the ticket stream, and the comments of 300 tickets, are read again under
cProfile; the top functions go to ``bench/out/zendesk-profile.txt`` (cProfile slows
Python code down: read the shares, not the rates). Each figure is measured once.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from connectors.zendesk.config import ZendeskConfig
from connectors.zendesk.connector import ZendeskConnector
from connectors.zendesk.simulator import Simulator
from hub.broker import free_port
from hub.sdk.streams import SourceRecord

OUT = Path(__file__).resolve().parent / "out"
TARGET = 10_000.0


def start_simulator(port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "connectors.zendesk.simulator",
        "--port",
        str(port),
        "--tickets",
        str(args.tickets),
        "--users",
        str(args.users),
        "--organizations",
        str(args.organizations),
        "--bad-share",
        "0.02",
        "--no-rate-limits",
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"the simulator exited: {proc.stderr.read().decode() if proc.stderr else ''}"
            )
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/v2/users/me.json", timeout=1)
            return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the simulator did not start within 120 s")


def connector(
    url: str, comments_source: Literal["tickets", "events"] = "tickets"
) -> ZendeskConnector:
    return ZendeskConnector(
        ZendeskConfig(
            name="bench-zendesk",
            base_url=url,
            email=Simulator.email,
            api_token=Simulator.api_token,
            export_rate_limit=1_000_000,  # the simulator's limits are off (see the doc)
            poll_interval_seconds=0,
            comments_source=comments_source,
        )
    )


def timed(records: Iterator[SourceRecord], limit_keys: int | None = None) -> dict[str, Any]:
    """Read to the end (or ``limit_keys`` distinct keys); count records and time."""
    good = bad = 0
    keys: set[str | None] = set()
    started = time.perf_counter()
    for rec in records:
        if rec.checkpoint:
            continue
        if rec.reasons:
            bad += 1
        else:
            good += 1
        if limit_keys is not None:
            keys.add(rec.key)
            if len(keys) > limit_keys:
                break
    took = time.perf_counter() - started
    close = getattr(records, "close", None)
    if callable(close):
        close()
    total = good + bad
    return {
        "records": total,
        "good": good,
        "quarantined": bad,
        "seconds": round(took, 3),
        "records_per_s": round(total / took) if took else None,
    }


def profile(url: str, stream: str, limit_keys: int | None = None) -> str:
    conn = connector(url)
    prof = cProfile.Profile()
    prof.enable()
    timed(conn.fetch_stream(conn.stream(stream), None), limit_keys)
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        out.write(f"\n==== {stream} stream: top 25 by {order} ====\n")
        stats.sort_stats(order).print_stats(25)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="records/s of the zendesk connector")
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--organizations", type=int, default=5_000)
    parser.add_argument("--comment-tickets", type=int, default=2_000)
    parser.add_argument("--no-profile", action="store_true")
    args = parser.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    sim = start_simulator(port, args)
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        for stream in ("tickets", "users", "organizations"):
            conn = connector(url)
            results[stream] = timed(conn.fetch_stream(conn.stream(stream), None))
            results[stream]["requests"] = conn.requests
        conn = connector(url)
        results["ticket_comments"] = timed(
            conn.fetch_stream(conn.stream("ticket_comments"), None), args.comment_tickets
        )
        results["ticket_comments"]["requests"] = conn.requests
        conn = connector(url, "events")
        results["ticket_comments (events)"] = timed(
            conn.fetch_stream(conn.stream("ticket_comments"), None)
        )
        results["ticket_comments (events)"]["requests"] = conn.requests
        results["load_after"] = os.getloadavg()
        print(json.dumps(results, indent=2))
        streams = ("tickets", "users", "organizations", "ticket_comments")
        for stream in (*streams, "ticket_comments (events)"):
            rate = results[stream]["records_per_s"] or 0
            verdict = "meets" if rate >= TARGET else "below"
            print(f"{stream:25s} {rate:>9,} records/s  ({verdict} the {TARGET:,.0f}/s target)")
        OUT.mkdir(exist_ok=True)
        (OUT / "zendesk.json").write_text(json.dumps(results, indent=2))
        if not args.no_profile:
            texts = [profile(url, "tickets"), profile(url, "ticket_comments", 300)]
            (OUT / "zendesk-profile.txt").write_text("".join(texts))
            for text in texts:
                print(text[: text.find("top 25 by cumulative") - 20])
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
