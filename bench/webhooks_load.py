"""The webhook benchmark's load generator: a process of its own (``python -m
bench.webhooks_load``), so its CPU is measured apart from the server's.

It signs every request before the clock starts (HubSpot v3, each with its own events and
so its own signature; timestamps stay well inside the 5-minute window for runs of a few
minutes), then sends them over ``--connections`` keep-alive HTTP/1.1 connections written
with raw asyncio streams (a lean client: httpx would cost more CPU than the server it
measures). Two modes:

- ``--rate R``: open loop. Request *i* is due at ``start + i/R``; its latency counts from
  that due time, so a server that falls behind is charged for the queue it causes (no
  coordinated omission). The service time (from the actual send) is reported too.
- ``--rate 0``: closed loop, as fast as the connections go (the throughput ceiling).

It prints ``START`` and ``END`` lines around the measured window (the orchestrator reads
CPU times of every process there), then one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit

from connectors.hubspot.webhook_sender import contact_events, delivery_headers


def build_requests(
    url: str, secret: str, count: int, *, events: int, first_event_id: int, corrupt: bool
) -> list[bytes]:
    parts = urlsplit(url)
    host = parts.netloc
    path = parts.path
    out = []
    for i in range(count):
        body = json.dumps(
            contact_events(
                events, seed=first_event_id + i, first_event_id=first_event_id + i * events
            ),
            separators=(",", ":"),
        ).encode()
        headers = delivery_headers(url, body, secret, corrupt=corrupt)
        head = [f"POST {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        out.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return out


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:].strip())
            break
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str,
    port: int,
    requests: list[bytes],
    due: list[float] | None,
    results: list[tuple[float, float, float, int]],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    loop = asyncio.get_running_loop()
    try:
        for i, request in enumerate(requests):
            if due is not None:
                wait = due[i] - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            sent = loop.time()
            writer.write(request)
            status = await _read_response(reader)
            done = loop.time()
            results.append((due[i] if due is not None else sent, sent, done, status))
    finally:
        writer.close()


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)

    return {"p50_ms": at(0.50), "p95_ms": at(0.95), "p99_ms": at(0.99), "max_ms": at(1.0)}


async def run(url: str, requests: list[bytes], *, rate: float, connections: int) -> dict[str, Any]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    loop = asyncio.get_running_loop()
    results: list[tuple[float, float, float, int]] = []
    shares = [requests[c::connections] for c in range(connections)]
    start = loop.time() + 0.2  # every connection opened before the first is due
    dues: list[list[float] | None] = []
    for c in range(connections):
        if rate > 0:
            dues.append([start + (i * connections + c) / rate for i in range(len(shares[c]))])
        else:
            dues.append(None)
    print("START", flush=True)
    began = time.time()
    await asyncio.gather(
        *(_connection(host, port, shares[c], dues[c], results) for c in range(connections))
    )
    ended = time.time()
    print("END", flush=True)
    first = min(r[1] for r in results)
    last = max(r[2] for r in results)
    statuses = Counter(r[3] for r in results)
    return {
        "mode": "open loop" if rate > 0 else "closed loop",
        "offered_rate": rate or None,
        "connections": connections,
        "requests": len(results),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "seconds": round(last - first, 3),
        "rate": round(len(results) / (last - first), 1),
        "latency_from_due": _percentiles([r[2] - r[0] for r in results]),
        "latency_from_send": _percentiles([r[2] - r[1] for r in results]),
        "wall": [began, ended],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_load", description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret-env", required=True, help="variable holding the secret")
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="0: closed loop")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=1, help="events per delivery")
    parser.add_argument("--first-event-id", type=int, default=1_000_000)
    parser.add_argument("--corrupt", action="store_true", help="send bad signatures")
    args = parser.parse_args(argv)
    secret = os.environ[args.secret_env]
    t0 = time.perf_counter()
    requests = build_requests(
        args.url,
        secret,
        args.requests,
        events=args.events,
        first_event_id=args.first_event_id,
        corrupt=args.corrupt,
    )
    signing = time.perf_counter() - t0
    result = asyncio.run(run(args.url, requests, rate=args.rate, connections=args.connections))
    result["signing_seconds"] = round(signing, 2)
    result["events_per_request"] = args.events
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
