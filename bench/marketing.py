"""Marketing e-mail uniqueness: the processor's rate against the Faust passthrough ceiling
of the same run, with one and with two processor workers, and the invariant checked on
the output (one holder per address).

    python -m bench.marketing [--contacts 20000] [--out bench/marketing_report.md]

On one embedded broker and registry: N raw marketing contacts (Avro + CloudEvents, keyed by
contact id, four partitions; 70 % new addresses, 29 % claims on an address already used,
1 % not an address). The ceiling is the bench's Faust passthrough agent over the same
events. Each variant runs the real ``crmhub worker processor`` (the hub's default chain:
the marketing agents run; the sales agent idles) W times on a fresh consumer group and
topic set, and counts outputs (clean + quarantine, one per contact) from the first
output batch to the N-th, as the main report does.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from bench.agents import run_agent
from bench.env import REPO_ROOT, Env, Window, count_outputs
from hub import topics
from hub.broker import ensure_topics
from hub.events import EventMeta, deterministic_id
from hub.serde import AvroCodec, load_schema_text, schema_path

SCHEMAS = REPO_ROOT / "schemas"


def publish(env: Env, n: int, seed: int = 7) -> dict[str, int]:
    """N raw contacts on the hub's raw marketing topic; counts by kind."""
    rng = random.Random(seed)
    with SchemaRegistryClient({"url": env.registry_url}) as registry:
        codec = AvroCodec(
            registry,
            topics.RAW_MARKETING_CONTACTS,
            load_schema_text(schema_path(SCHEMAS, "marketing/Contact")),
        )
        producer = Producer({"bootstrap.servers": env.bootstrap, "linger.ms": 20})
        now = datetime(2026, 11, 1, tzinfo=UTC)
        kinds: dict[str, int] = defaultdict(int)
        addresses = 0
        for i in range(n):
            draw = rng.random()
            if draw < 0.01:
                email, kind = f"contact{i}-at-example.com", "invalid"
            elif draw < 0.30 and addresses:
                email, kind = f"person{rng.randrange(addresses)}@example.com", "claim on used"
            else:
                email, kind = f"person{addresses}@example.com", "new address"
                addresses += 1
            kinds[kind] += 1
            contact_id = f"C-{i:07d}"
            value = {
                "contact_id": contact_id,
                "email": email,
                "first_name": "Pat",
                "last_name": f"Contact{i}",
                "company": "Acme",
                "message": "Interested in the enterprise plan, call me back next week.",
                "updated_at": now,
                "archived": False,
            }
            meta = EventMeta(
                id=deterministic_id("bench-contact", contact_id),
                source="urn:bench:hubspot",
                type="crm.marketing.contact.changed.v1",
                subject=contact_id,
                time=now,
                lineage={"hub_department": "marketing", "hub_connector": "hubspot-bench"},
            )
            producer.produce(
                topics.RAW_MARKETING_CONTACTS,
                key=contact_id.encode(),
                value=codec.encode(value),
                headers=meta.to_headers(),  # type: ignore[arg-type]
            )
            if i % 10_000 == 0:
                producer.poll(0)
        if producer.flush(60):
            raise RuntimeError("raw contacts not acknowledged")
    return dict(kinds)


def run_processors(env: Env, scratch: Path, n: int, workers: int) -> tuple[Window, str]:
    """W processor workers over the raw contacts; the output window and a verdict on the
    invariant (one holder per address)."""
    consumer = env.consumer()
    env.assign_from_start(consumer, [topics.CLEAN_MARKETING_CONTACTS, topics.QUARANTINE])
    procs = []
    window = Window(wanted=n, t_launch=time.monotonic())
    try:
        for w in range(workers):
            home = scratch / f"processor-{workers}-{w}"
            child_env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
            child_env.update(
                HUB_HOME=str(home),
                HUB_KAFKA_BOOTSTRAP=env.bootstrap,
                HUB_SCHEMA_REGISTRY_URL=env.registry_url,
                HUB_DLP_KEY="bench-dlp-key-" + "0" * 32,
                HUB_CONFIG_FILE=str(home / "absent.yaml"),
                PYTHONPATH=str(REPO_ROOT),
            )
            log = (scratch / f"processor-{workers}-{w}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "hub.cli", "worker", "processor"],
                    env=child_env,
                    cwd=REPO_ROOT,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        count_outputs(consumer, window, timeout=300, alive=lambda: procs[0].poll() is None)
    finally:
        consumer.close()
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return window, holders_verdict(env)


def holders_verdict(env: Env) -> str:
    """Decode the clean contacts: how many addresses ended with more than one holder."""
    with SchemaRegistryClient({"url": env.registry_url}) as registry:
        codec = AvroCodec(
            registry,
            topics.CLEAN_MARKETING_CONTACTS,
            load_schema_text(schema_path(SCHEMAS, "marketing/Contact")),
        )
        consumer = env.consumer()
        env.assign_from_start(consumer, [topics.CLEAN_MARKETING_CONTACTS])
        holders: dict[str, set[str]] = defaultdict(set)
        quiet = time.monotonic()
        try:
            while time.monotonic() - quiet < 2.0:
                batch = [m for m in consumer.consume(10_000, 0.2) if m.error() is None]
                if batch:
                    quiet = time.monotonic()
                for m in batch:
                    v = codec.decode(m.value())
                    holders[str(v["email"]).casefold()].add(str(v["contact_id"]))
        finally:
            consumer.close()
    shared = sum(1 for ids in holders.values() if len(ids) > 1)
    return f"{len(holders):,} addresses held, {shared} by more than one contact"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.marketing", description=__doc__)
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "marketing_report.md")
    args = parser.parse_args(argv)
    n = args.contacts
    scratch = Path(tempfile.mkdtemp(prefix="bench-marketing-"))
    lines = ["# Marketing e-mail uniqueness vs the Faust passthrough (same run)", ""]
    lines.append(f"Command: `python -m bench.marketing --contacts {n}`  ")
    lines.append(f"Load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    lines.append("")
    rows = []
    try:
        for workers in (1, 2):
            # One broker per variant: the processor's consumer group and its table are the
            # hub's own (fixed names), so each variant starts from an empty cluster; the
            # ceiling is measured again on the same broker.
            (scratch / f"w{workers}").mkdir()
            with Env(scratch / f"w{workers}") as env:
                kinds = publish(env, n)
                passthrough = run_agent(
                    env,
                    stage="passthrough",
                    source=topics.RAW_MARKETING_CONTACTS,
                    clean=env.topic("passthrough.clean"),
                    quarantine=env.topic("passthrough.quarantine"),
                    wanted=n,
                    loglevel="WARN",
                )
                ceiling = passthrough.window.rate
                ensure_topics(env.bootstrap)
                window, verdict = run_processors(env, scratch, n, workers)
                rate = window.rate if window.complete else None
                ratio = f"{rate / ceiling:.1%}" if rate and ceiling else "—"
                rows.append((f"Faust passthrough agent (broker {workers})", ceiling, "—", ""))
                rows.append((f"marketing processor, {workers} worker(s)", rate, ratio, verdict))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    lines.append("Input: " + ", ".join(f"{v:,} {k}" for k, v in sorted(kinds.items())) + ".")
    lines.append("")
    lines += ["| run | events/s | of passthrough | invariant |", "|---|---:|---:|---|"]
    for name, rate, ratio, verdict in rows:
        shown = f"{rate:,.0f}" if rate else "not measured"
        lines.append(f"| {name} | {shown} | {ratio} | {verdict} |")
    lines.append("")
    lines.append(f"Load average after: {os.getloadavg()[0]:.2f}")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
