"""`crmhub demo`: the main job end to end on the embedded default.

Generates a messy sample of sales spreadsheets, starts the embedded stack, drops the files
into the connector's directory, follows the events to the read model and the audit trail
with a progress bar, stops the stack, and prints a summary whose counts must reconcile.
Every count is measured where it lives (connector offsets, topic watermarks, the
database), never taken from the generator, except the one check that the connector read
every row that was generated.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from hub import topics
from hub.broker import free_port
from hub.connect_offsets import OffsetStore
from hub.demo_data import DemoManifest, generate_demo_files
from hub.kafka_read import read_until_quiet
from hub.settings import Settings, load_settings

CONNECTOR = "sales-leads"


@dataclass
class Counts:
    rows_read: int = 0
    connector_published: int = 0
    connector_quarantined: int = 0
    raw_events: int = 0
    clean_events: int = 0
    quarantine_events: int = 0
    distinct_valid_leads: int = 0
    read_model_rows: int = 0
    audit_entries: int = 0
    quarantined_by_rule: Counter[str] = field(default_factory=Counter)
    quarantined_by_stage: Counter[str] = field(default_factory=Counter)
    chain_ok: bool = False
    chain_detail: str = ""
    incidents: Counter[tuple[str, str]] = field(default_factory=Counter)  # (entity, operator)
    notes_rescanned: int = 0
    unprotected_in_read_model: int = 0


def scan_topic(bootstrap: str, topic: str) -> tuple[int, int]:
    """(messages, distinct keys) of a whole topic, counted by reading it (see
    hub.kafka_read: watermarks are not a count on the embedded broker)."""
    keys: set[bytes] = set()
    count = 0
    for msg in read_until_quiet(bootstrap, topic, group="hub-demo-scan"):
        count += 1
        key = msg.key()
        if key is not None:
            keys.add(key)
    return count, len(keys)


def connector_counters(bootstrap: str) -> dict[str, int]:
    store = OffsetStore(bootstrap)
    store.load()
    totals: Counter[str] = Counter()
    for _part, offset in store.all_for(CONNECTOR):
        for k in ("rows_read", "published", "quarantined"):
            totals[k] += int(offset.get(k, 0))
    return dict(totals)


def run_demo(
    base: Settings,
    *,
    rows: int,
    home: Path | None,
    timeout: float,
    console: Console,
) -> bool:
    from hub.runtime import Supervisor
    from projections.audit import verify_chain
    from projections.db import make_engine
    from projections.models import AuditEntry

    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    home = (home or base.home / f"demo-{stamp}").resolve()
    if home.exists():
        shutil.rmtree(home)
    # The demo registers its connectors through the REST API, as an integrator would.
    settings = load_settings(home=home, api_port=free_port(), default_connector=False)
    staging = home / "staging"
    manifest: DemoManifest = generate_demo_files(staging, rows=rows)
    console.print(
        f"[bold]CRM Event Hub demo[/] — {manifest.total_rows:,} sales lead rows in "
        f"{len(manifest.files)} files: "
        + ", ".join(f"{f.name} ({f.fmt}, {f.rows:,})" for f in manifest.files)
    )
    counts = Counts()
    # SIGTERM (a CI timeout, `kill`) must stop the stack like Ctrl-C does, not skip it.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    with Supervisor(settings) as sup:
        console.print(f"embedded stack up: kafka {sup.bootstrap}, API {sup.api_url}")
        drop = settings.effective_drop_dir
        drop.mkdir(parents=True, exist_ok=True)
        register_connectors(sup.api_url, settings, console)
        for f in manifest.files:  # atomic rename: the connector never sees half a file
            (staging / f.name).replace(drop / f.name)
        engine = make_engine(settings.effective_database_url)
        deadline = time.monotonic() + timeout
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            read_task = progress.add_task("rows read by the connector", total=manifest.total_rows)
            audit_task = progress.add_task("events in the audit trail", total=manifest.total_rows)
            audited = 0
            while time.monotonic() < deadline:
                sup.check()
                counters = connector_counters(sup.bootstrap)
                try:
                    with engine.connect() as conn:
                        audited = conn.execute(
                            select(func.count()).select_from(AuditEntry)
                        ).scalar_one()
                except Exception:  # noqa: BLE001 - tables appear when the worker migrated
                    audited = 0
                progress.update(read_task, completed=counters.get("rows_read", 0))
                progress.update(audit_task, completed=audited)
                if (
                    counters.get("rows_read", 0) >= manifest.total_rows
                    and audited >= counters["rows_read"]
                ):
                    break
                time.sleep(0.5)
        counts = measure(sup.bootstrap, settings)
    result = verify_chain(make_engine(settings.effective_database_url), settings.audit_key_bytes())
    counts.chain_ok = result.ok
    counts.chain_detail = "" if result.ok else result.describe()
    elapsed = time.monotonic() - started
    return report(counts, manifest, console, elapsed, home)


def incident_counts(bootstrap: str, settings: Settings) -> Counter[tuple[str, str]]:
    """DLP incidents on the incidents topic by (entity, operator), decoded with Avro."""
    from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path

    codec = AvroCodec(
        registry_client(settings.effective_registry_url),
        topics.DLP_INCIDENTS,
        load_schema_text(schema_path(settings.schemas_dir, "dlp/DlpIncident")),
    )
    out: Counter[tuple[str, str]] = Counter()
    for msg in read_until_quiet(bootstrap, topics.DLP_INCIDENTS, group="hub-demo-dlp"):
        inc = codec.decode(msg.value())
        out[(str(inc["entity"]), str(inc["operator"]))] += 1
    return out


def rescan_read_model(settings: Settings) -> tuple[int, int]:
    """Scan every note in the read model again: a value the policy protects must not be
    there in clear. Returns (notes scanned, unprotected findings)."""
    from hub.dlp import registry
    from hub.dlp.engine import Engine
    from hub.dlp.policy import PolicyResolver, load_dlp_policy
    from projections.db import make_engine
    from projections.models import Lead

    engine = Engine(registry.load(), backend=settings.dlp_backend)
    resolver = PolicyResolver(load_dlp_policy(settings.policies_dir / "dlp.yaml"))
    scanned = unprotected = 0
    with make_engine(settings.effective_database_url).connect() as conn:
        for (notes,) in conn.execute(select(Lead.notes).where(Lead.notes.is_not(None))):
            if not notes:
                continue
            scanned += 1
            for f in engine.scan_text(notes, field="notes", min_score=resolver.policy.min_score):
                action = resolver.resolve("sales", topics.CLEAN_SALES_LEADS, "notes", f.entity)
                if action.action.operator != "keep" and f.score >= action.min_score:
                    unprotected += 1
    return scanned, unprotected


def demo_connectors(settings: Settings) -> dict[str, dict[str, str]]:
    """The connectors the demo registers (Kafka Connect configs)."""
    return {
        CONNECTOR: {
            "connector.class": "spreadsheet",
            "drop.dir": str(settings.effective_drop_dir.resolve()),
            "mapping": str(settings.lead_mapping.resolve()),
        }
    }


def register_connectors(api_url: str, settings: Settings, console: Console) -> None:
    """PUT /connectors/{name}/config for each demo connector (create or update, as
    `crmhub connectors apply` does), then wait until the worker reports it RUNNING."""
    import httpx

    from hub.errors import FatalError

    with httpx.Client(base_url=api_url, timeout=30) as http:
        for name, config in demo_connectors(settings).items():
            answer = http.put(f"/connectors/{name}/config", json=config)
            if answer.status_code not in (200, 201):
                raise FatalError(f"demo: registering {name} answered HTTP {answer.status_code}")
            deadline = time.monotonic() + 60
            state = "UNASSIGNED"
            while time.monotonic() < deadline:
                status = http.get(f"/connectors/{name}/status")
                if status.status_code == 200:
                    state = status.json()["connector"]["state"]
                    if state in ("RUNNING", "FAILED"):
                        break
                time.sleep(0.2)
            if state != "RUNNING":
                raise FatalError(f"demo: connector {name} is {state}, not RUNNING")
            console.print(f"registered {name} through PUT /connectors/{name}/config: {state}")


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def measure(bootstrap: str, settings: Settings) -> Counts:
    from projections.db import make_engine
    from projections.store import ProjectionStore

    c = Counts()
    counters = connector_counters(bootstrap)
    c.rows_read = counters.get("rows_read", 0)
    c.connector_published = counters.get("published", 0)
    c.connector_quarantined = counters.get("quarantined", 0)
    c.raw_events, _ = scan_topic(bootstrap, topics.RAW_SALES_LEADS)
    c.clean_events, c.distinct_valid_leads = scan_topic(bootstrap, topics.CLEAN_SALES_LEADS)
    c.quarantine_events, _ = scan_topic(bootstrap, topics.QUARANTINE)
    store = ProjectionStore(
        make_engine(settings.effective_database_url), audit_key=settings.audit_key_bytes()
    )
    db = store.counts()
    c.read_model_rows = db["leads"]
    c.audit_entries = db["audit_entries"]
    c.quarantined_by_stage.update(db["quarantine_by_stage"])
    c.quarantined_by_rule.update(db["quarantine_by_rule"])
    c.incidents = incident_counts(bootstrap, settings)
    c.notes_rescanned, c.unprotected_in_read_model = rescan_read_model(settings)
    return c


def report(c: Counts, manifest: DemoManifest, console: Console, elapsed: float, home: Path) -> bool:
    checks = [
        (
            "connector read every generated row",
            c.rows_read == manifest.total_rows,
            f"{c.rows_read:,} read / {manifest.total_rows:,} generated",
        ),
        (
            "events published = rows read",
            c.raw_events + c.connector_quarantined == c.rows_read,
            f"{c.raw_events:,} raw events + {c.connector_quarantined:,} unreadable",
        ),
        (
            "rows read = valid + quarantined",
            c.rows_read == c.clean_events + c.quarantine_events,
            f"{c.clean_events:,} valid + {c.quarantine_events:,} quarantined",
        ),
        (
            "read-model rows = distinct valid leads",
            c.read_model_rows == c.distinct_valid_leads,
            f"{c.read_model_rows:,} rows / {c.distinct_valid_leads:,} distinct lead ids",
        ),
        (
            "audit entries = events",
            c.audit_entries == c.clean_events + c.quarantine_events,
            f"{c.audit_entries:,} entries / {c.clean_events + c.quarantine_events:,} events",
        ),
        (
            "audit chain verified",
            c.chain_ok,
            c.chain_detail or "every link and signature recomputed",
        ),
    ]
    table = Table(title="Summary")
    table.add_column("count")
    table.add_column("value", justify="right")
    for label, value in [
        ("rows read", c.rows_read),
        ("events published (raw topic)", c.raw_events),
        ("valid (clean topic)", c.clean_events),
        ("quarantined", c.quarantine_events),
        ("read-model rows (leads)", c.read_model_rows),
        ("audit entries", c.audit_entries),
    ]:
        table.add_row(label, f"{value:,}")
    console.print(table)
    rules = Table(title="Quarantined by rule")
    rules.add_column("stage / rule")
    rules.add_column("records", justify="right")
    for stage, n in sorted(c.quarantined_by_stage.items()):
        rules.add_row(f"[bold]stage {stage}[/]", f"{n:,}")
    for rule, n in c.quarantined_by_rule.most_common():
        rules.add_row(f"  {rule}", f"{n:,}")
    console.print(rules)
    checks.append(
        (
            "read model holds only protected values",
            c.unprotected_in_read_model == 0,
            f"{c.notes_rescanned:,} notes re-scanned, {c.unprotected_in_read_model} in clear",
        )
    )
    dlp = Table(title="DLP: findings by entity and action (incidents published)")
    dlp.add_column("entity")
    dlp.add_column("action")
    dlp.add_column("incidents", justify="right")
    for (entity, operator), n in sorted(c.incidents.items()):
        dlp.add_row(entity, operator, f"{n:,}")
    dlp.add_row("[bold]total[/]", "", f"{sum(c.incidents.values()):,}")
    console.print(dlp)
    ok = all(passed for _, passed, _ in checks)
    for label, passed, detail in checks:
        mark = "[green]✓[/]" if passed else "[red]✗[/]"
        console.print(f"{mark} {label}: {detail}")
    verdict = "[green]reconciled[/]" if ok else "[red]NOT reconciled[/]"
    console.print(f"{verdict} in {elapsed:.1f}s — state in {home}")
    return ok
