"""`crmhub demo`: the main job end to end on the embedded default, four departments.

Generates a messy sample of sales spreadsheets, starts local servers that reproduce the
marketing (HubSpot), ticketing (Zendesk) and HR (BambooHR) APIs with generated accounts
(``hub.demo_departments``), starts the embedded stack, registers a connector for each
through the Connect REST API, drops the files (sales sheets, an HRIS export) into their
directories, sends a burst of signed webhooks (some forged), follows the events to the
read model and the audit trail with a progress bar, and prints a summary whose counts must
reconcile per department. Every count is measured where it lives (connector offsets,
topics, the database), never taken from the generators, except the checks that each
connector read everything that was generated.
"""

from __future__ import annotations

import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import Engine, func, select, text

from hub import topics
from hub.broker import free_port
from hub.connect_offsets import OffsetStore
from hub.demo_data import DemoManifest, generate_demo_files
from hub.demo_departments import (
    Expected,
    FlowCounts,
    Sizes,
    Sources,
    WebhookBurst,
    api_sources,
    connector_configs,
    drop_export,
    measure_flows,
    quarantine_by_department,
    scan,
    webhook_bursts,
)
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
    access_log: str = ""  # the token vault's access log, verified (LogCheck.describe)
    access_log_ok: bool = False
    incidents: Counter[tuple[str, str]] = field(default_factory=Counter)  # (entity, operator)
    # Tokenize incidents of events that were not blocked: a blocked event goes to quarantine
    # sealed whole, and its values are not vaulted.
    vaultable: int = 0
    notes_rescanned: int = 0
    unprotected_in_read_model: int = 0
    sales_quarantined: int = 0
    flows: list[FlowCounts] = field(default_factory=list)
    erased_ids: set[str] = field(default_factory=set)
    erased_in_read_model: int = 0
    department_quarantine: dict[str, Counter[str]] = field(default_factory=dict)
    connector_quarantined_by_department: Counter[str] = field(default_factory=Counter)
    bursts: list[WebhookBurst] = field(default_factory=list)
    webhook_events: dict[str, int] = field(default_factory=dict)  # topic -> messages
    topic_messages: int = 0  # every message on the topics the projection reads
    vault_entries: int = 0  # messages on the vault topic: one per tokenized value
    vault_keys: int = 0  # distinct keys on it: a token and whose value it is
    vault_rows: int = 0  # rows in the read model's vault: one per key
    vault_tokens: int = 0  # distinct tokens in the read model's vault
    vault_reveal: str = ""  # the outcome of revealing one token with the demo's vault key
    touches: int = 0
    attributed_people: int = 0
    people_of_both: int = 0  # touched by a marketing e-mail and a sales lead source
    attribution: list[dict[str, Any]] = field(default_factory=list)  # by campaign


def scan_topic(bootstrap: str, topic: str) -> tuple[int, int]:
    """(messages, distinct keys) of a whole topic (``hub.demo_departments.scan``)."""
    count, keys = scan(bootstrap, topic)
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
    sizes: Sizes = Sizes(),  # noqa: B008 - frozen dataclass
) -> bool:
    from hub.runtime import Supervisor
    from projections.access_log import verify_log
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
        f"[bold]CRM Event Hub demo[/] — sales: {manifest.total_rows:,} lead rows in "
        f"{len(manifest.files)} files: "
        + ", ".join(f"{f.name} ({f.fmt}, {f.rows:,})" for f in manifest.files)
    )
    counts = Counts()
    # SIGTERM (a CI timeout, `kill`) must stop the stack like Ctrl-C does, not skip it.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    # The simulators first: they put the connectors' credentials in the environment the
    # stack's processes inherit (the registered configs only reference them).
    with (
        api_sources(home, sizes, lead_addresses=manifest.valid_addresses) as sources,
        Supervisor(settings) as sup,
    ):
        e = sources.expected
        console.print(
            f"marketing: HubSpot API at {sources.hubspot_url} ({e.contacts:,} contacts); "
            f"service: Zendesk API at {sources.zendesk_url} ({e.tickets:,} tickets); "
            f"HR: BambooHR API at {sources.bamboohr_url} "
            f"({e.employees - e.export_rows:,} employees, "
            f"{e.employees_deleted:,} deleted) and an HRIS export ({e.export_rows} rows)"
        )
        console.print(f"embedded stack up: kafka {sup.bootstrap}, API {sup.api_url}")
        drop = settings.effective_drop_dir
        drop.mkdir(parents=True, exist_ok=True)
        register_connectors(sup.api_url, settings, console, sources)
        for f in manifest.files:  # atomic rename: the connector never sees half a file
            (staging / f.name).replace(drop / f.name)
        drop_export(sources)
        counts.bursts = webhook_bursts(sup.api_url, sizes)
        for b in counts.bursts:
            answers = ", ".join(f"{n} x HTTP {code}" for code, n in sorted(b.statuses.items()))
            console.print(
                f"webhooks: {b.sent} signed deliveries to /webhooks ({b.source}), "
                f"{b.forged} with a forged signature: {answers}"
            )
        engine = make_engine(settings.effective_database_url)
        deadline = time.monotonic() + timeout
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            read_task = progress.add_task(
                "sales rows read by the connector", total=manifest.total_rows
            )
            audit_task = progress.add_task("events in the audit trail", total=None)
            audited = last = -1
            stable_since = time.monotonic()
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
                now = time.monotonic()
                if audited != last:
                    last, stable_since = audited, now
                sales_done = (
                    counters.get("rows_read", 0) >= manifest.total_rows
                    and audited >= counters["rows_read"]
                )
                # Settled: nothing new in the audit trail for a while. Then check that every
                # API connector has read all its source holds; if not, keep waiting.
                if sales_done and now - stable_since >= 3:
                    flows, _ = measure_flows(sup.bootstrap, engine)
                    if read_everything(flows, e):
                        break
                    stable_since = time.monotonic()
                time.sleep(0.5)
        counts = measure(sup.bootstrap, settings, counts)
    db = make_engine(settings.effective_database_url)
    result = verify_chain(db, settings.audit_key_bytes())
    counts.chain_ok = result.ok
    counts.chain_detail = "" if result.ok else result.describe()
    log = verify_log(db, settings.audit_key_bytes())
    counts.access_log_ok, counts.access_log = log.ok and log.checked > 0, log.describe()
    db.dispose()
    elapsed = time.monotonic() - started
    return report(counts, manifest, sources.expected, sizes, console, elapsed, home)


def read_everything(flows: list[FlowCounts], e: Expected) -> bool:
    """Each API connector has published every readable record its source holds."""
    raw = {f.raw_topic: f.raw for f in flows}
    return (
        raw[topics.RAW_MARKETING_CONTACTS] >= e.contacts
        and raw[topics.RAW_MARKETING_EMAIL_EVENTS] >= e.email_events
        and raw[topics.RAW_SERVICE_TICKETS] >= e.tickets
        and raw[topics.RAW_HR_EMPLOYEES] >= e.employees
        and raw[topics.RAW_HR_ERASURES] >= e.employees_deleted
    )


def incident_counts(bootstrap: str, settings: Settings) -> tuple[Counter[tuple[str, str]], int]:
    """DLP incidents on the incidents topic by (entity, operator), decoded with Avro, and
    how many of them tokenized a value of an event that no incident blocked (the values
    the vault must hold)."""
    from hub.serde import AvroCodec, load_schema_text, registry_client, schema_path

    codec = AvroCodec(
        registry_client(settings.effective_registry_url),
        topics.DLP_INCIDENTS,
        load_schema_text(schema_path(settings.schemas_dir, "dlp/DlpIncident")),
    )
    out: Counter[tuple[str, str]] = Counter()
    tokenized: Counter[str] = Counter()  # event id -> tokenize incidents
    blocked: set[str] = set()
    for msg in read_until_quiet(bootstrap, topics.DLP_INCIDENTS, group="hub-demo-dlp"):
        inc = codec.decode(msg.value())
        operator = str(inc["operator"])
        out[(str(inc["entity"]), operator)] += 1
        if operator == "tokenize":
            tokenized[str(inc["event_id"])] += 1
        elif operator == "block":
            blocked.add(str(inc["event_id"]))
    return out, sum(n for event, n in tokenized.items() if event not in blocked)


def reveal_one(settings: Settings, engine: Engine) -> str:
    """Reveal the first token of the vault as the privacy officer, with the private key the
    embedded default generated, and check that the value tokenizes back to that token. The
    value itself is never printed."""
    from hub.dlp.operators import TokenizeParams, keyring_from_master, tokenize
    from hub.dlp.policy import load_dlp_policy
    from hub.dlp.vault import TokenVault, VaultPrivateKey
    from projections.models import DlpVaultEntry

    with engine.connect() as conn:
        row = conn.execute(select(DlpVaultEntry.token, DlpVaultEntry.entity).limit(1)).first()
    if row is None:
        return "no token in the vault"
    roles = load_dlp_policy(settings.policies_dir / "dlp.yaml").vault.reveal_roles
    vault = TokenVault(engine, set(roles), log_key=settings.audit_key_bytes())
    value = vault.reveal(
        row.token,
        VaultPrivateKey.load(settings.vault_private_key_path),
        actor="demo",
        role=roles[0],
        reason="make demo: a token back to its value",
        now=datetime.now(UTC),
    )
    keys = keyring_from_master(settings.dlp_master_key())
    if tokenize(keys, row.entity, value, TokenizeParams()) != row.token:
        return f"a {row.entity} token revealed a value that does not tokenize back to it"
    return f"ok: a {row.entity} token, revealed as {roles[0]}, tokenizes back to itself"


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


def demo_connectors(settings: Settings, sources: Sources) -> dict[str, dict[str, str]]:
    """The connectors the demo registers (Kafka Connect configs)."""
    return {
        CONNECTOR: {
            "connector.class": "spreadsheet",
            "drop.dir": str(settings.effective_drop_dir.resolve()),
            "mapping": str(settings.lead_mapping.resolve()),
        },
        **connector_configs(sources),
    }


def register_connectors(
    api_url: str, settings: Settings, console: Console, sources: Sources
) -> None:
    """PUT /connectors/{name}/config for each demo connector (create or update, as
    `crmhub connectors apply` does), then wait until the worker reports it RUNNING."""
    import httpx

    from hub.errors import FatalError

    with httpx.Client(base_url=api_url, timeout=30) as http:
        for name, config in demo_connectors(settings, sources).items():
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


def measure(bootstrap: str, settings: Settings, c: Counts) -> Counts:
    from projections.db import make_engine
    from projections.models import HrEmployee
    from projections.store import ProjectionStore

    counters = connector_counters(bootstrap)
    c.rows_read = counters.get("rows_read", 0)
    c.connector_published = counters.get("published", 0)
    c.connector_quarantined = counters.get("quarantined", 0)
    c.raw_events, _ = scan_topic(bootstrap, topics.RAW_SALES_LEADS)
    c.clean_events, c.distinct_valid_leads = scan_topic(bootstrap, topics.CLEAN_SALES_LEADS)
    c.quarantine_events, _ = scan_topic(bootstrap, topics.QUARANTINE)
    redrives, _ = scan_topic(bootstrap, topics.QUARANTINE_REDRIVES)
    engine = make_engine(settings.effective_database_url)
    store = ProjectionStore(engine, audit_key=settings.audit_key_bytes())
    db = store.counts()
    c.read_model_rows = db["leads"]
    c.audit_entries = db["audit_entries"]
    c.quarantined_by_stage.update(db["quarantine_by_stage"])
    c.quarantined_by_rule.update(db["quarantine_by_rule"])
    c.incidents, c.vaultable = incident_counts(bootstrap, settings)
    c.notes_rescanned, c.unprotected_in_read_model = rescan_read_model(settings)
    c.flows, c.erased_ids = measure_flows(bootstrap, engine)
    c.department_quarantine = quarantine_by_department(engine)
    c.attribution = store.attribution_by_campaign()
    c.touches = db["attribution_touches"]
    with engine.connect() as conn:
        c.attributed_people = conn.scalar(text("SELECT count(*) FROM attribution_by_contact")) or 0
        c.people_of_both = (
            conn.scalar(
                text(
                    "SELECT count(*) FROM (SELECT person FROM attribution_all_touches "
                    "GROUP BY person HAVING count(DISTINCT channel) > 1) AS both_channels"
                )
            )
            or 0
        )
    c.connector_quarantined_by_department = connector_quarantines(engine)
    c.sales_quarantined = sum(c.department_quarantine.get("sales", Counter()).values())
    for topic in (topics.HUBSPOT_CONTACT_WEBHOOKS, topics.ZENDESK_TICKET_WEBHOOKS):
        c.webhook_events[topic], _ = scan_topic(bootstrap, topic)
    c.vault_entries, c.vault_keys = scan_topic(bootstrap, topics.DLP_VAULT)
    c.vault_rows, c.vault_tokens = db["vault_rows"], db["vault_tokens"]
    c.vault_reveal = reveal_one(settings, engine)
    # Every message the projection reads: each is one audit entry.
    c.topic_messages = (
        c.clean_events
        + c.quarantine_events
        + redrives
        + sum(f.clean for f in c.flows)
        + c.vault_entries
    )
    erased = sorted(c.erased_ids)
    with engine.connect() as conn:
        c.erased_in_read_model = (
            conn.scalar(
                select(func.count())
                .select_from(HrEmployee)
                .where(HrEmployee.employee_id.in_(erased))
            )
            or 0
        )
    return c


def connector_quarantines(engine: Engine) -> Counter[str]:
    """Records a connector could not read (stage ``connector``), by department."""
    from projections.models import QuarantineRow

    q = QuarantineRow.__table__.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(q.department, func.count()).where(q.stage == "connector").group_by(q.department)
        )
        return Counter({department or "-": n for department, n in rows})


def report(
    c: Counts,
    manifest: DemoManifest,
    expected: Expected,
    sizes: Sizes,
    console: Console,
    elapsed: float,
    home: Path,
) -> bool:
    sales_quarantined = c.sales_quarantined
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
            c.rows_read == c.clean_events + sales_quarantined,
            f"{c.clean_events:,} valid + {sales_quarantined:,} quarantined",
        ),
        (
            "read-model rows = distinct valid leads",
            c.read_model_rows == c.distinct_valid_leads,
            f"{c.read_model_rows:,} rows / {c.distinct_valid_leads:,} distinct lead ids",
        ),
    ]
    checks += department_checks(c, expected, sizes)
    checks += [
        (
            "audit entries = events",
            c.audit_entries == c.topic_messages,
            f"{c.audit_entries:,} entries / {c.topic_messages:,} events on the projected topics",
        ),
        (
            "audit chain verified",
            c.chain_ok,
            c.chain_detail or "every link and signature recomputed",
        ),
    ]
    table = Table(title="Summary: sales")
    table.add_column("count")
    table.add_column("value", justify="right")
    for label, value in [
        ("rows read", c.rows_read),
        ("events published (raw topic)", c.raw_events),
        ("valid (clean topic)", c.clean_events),
        ("quarantined", sales_quarantined),
        ("read-model rows (leads)", c.read_model_rows),
        ("audit entries (all departments)", c.audit_entries),
    ]:
        table.add_row(label, f"{value:,}")
    console.print(table)
    console.print(departments_table(c))
    console.print(attribution_table(c))
    rules = Table(title="Quarantined by department and rule")
    rules.add_column("department / rule")
    rules.add_column("records", justify="right")
    for department, by_rule in sorted(c.department_quarantine.items()):
        rules.add_row(f"[bold]{department}[/]", f"{sum(by_rule.values()):,}")
        for rule, n in by_rule.most_common():
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
    checks.append(
        (
            "every tokenized value is in the token vault, sealed",
            c.vault_entries == c.vaultable and c.vault_rows == c.vault_keys > 0,
            f"{c.vaultable:,} tokenized (events not blocked) -> {c.vault_entries:,} vault entries, "
            f"{c.vault_keys:,} distinct keys (token and owner) -> {c.vault_rows:,} vault rows "
            f"of {c.vault_tokens:,} tokens",
        )
    )
    checks.append(
        (
            "a vaulted token reverses for the privacy officer",
            c.vault_reveal.startswith("ok"),
            c.vault_reveal,
        )
    )
    checks.append(("the vault's access log verifies", c.access_log_ok, c.access_log))
    ok = all(passed for _, passed, _ in checks)
    for label, passed, detail in checks:
        mark = "[green]✓[/]" if passed else "[red]✗[/]"
        console.print(f"{mark} {label}: {detail}")
    verdict = "[green]reconciled[/]" if ok else "[red]NOT reconciled[/]"
    console.print(f"{verdict} in {elapsed:.1f}s — state in {home}")
    return ok


def department_checks(c: Counts, e: Expected, sizes: Sizes) -> list[tuple[str, bool, str]]:
    """The API departments' reconciliation: read everything, every raw event valid or
    quarantined, the read model one row per valid record, erasure honoured, webhooks."""
    flows = {f.raw_topic: f for f in c.flows}
    contacts = flows[topics.RAW_MARKETING_CONTACTS]
    email_events = flows[topics.RAW_MARKETING_EMAIL_EVENTS]
    tickets = flows[topics.RAW_SERVICE_TICKETS]
    employees = flows[topics.RAW_HR_EMPLOYEES]
    erasures = flows[topics.RAW_HR_ERASURES]
    unreadable = c.connector_quarantined_by_department
    out = [
        (
            "marketing: connector read every contact",
            contacts.raw == e.contacts and unreadable["marketing"] >= e.contacts_unreadable,
            f"{contacts.raw:,} published / {e.contacts:,} readable; "
            f"{unreadable['marketing']:,} unreadable records quarantined by the connector",
        ),
        (
            "marketing: connector read every campaign e-mail event",
            email_events.raw == e.email_events,
            f"{email_events.raw:,} published / {e.email_events:,} readable",
        ),
        (
            "service: connector read every ticket",
            tickets.raw == e.tickets and unreadable["service"] >= e.tickets_unreadable,
            f"{tickets.raw:,} published / {e.tickets:,} with a mapped status; "
            f"{unreadable['service']:,} unreadable records (e.g. unmapped status) quarantined",
        ),
        (
            "HR: connectors read every employee and deletion",
            employees.raw == e.employees
            and erasures.raw == e.employees_deleted
            and unreadable["hr"] >= e.employees_unreadable,
            f"{employees.raw:,} employee events / {e.employees:,} (API + export), "
            f"{erasures.raw:,} erasures / {e.employees_deleted:,} deleted",
        ),
    ]
    campaigns = c.attribution
    people = c.attributed_people
    out.append(
        (
            "attribution: every touched person credits one first and one last touch",
            c.people_of_both > 0
            and sum(r["first_touch_contacts"] for r in campaigns) == people
            and sum(r["last_touch_contacts"] for r in campaigns) == people
            and sum(r["touches"] for r in campaigns) == c.touches,
            f"{c.touches:,} touches of {people:,} people over {len(campaigns)} campaigns "
            f"(marketing e-mails, sales lead sources); {c.people_of_both} people touched "
            "by both departments",
        )
    )
    for f in c.flows:
        out.append(
            (
                f"{f.department}: raw = valid + quarantined ({f.raw_topic})",
                f.raw == f.clean + f.quarantined,
                f"{f.raw:,} raw = {f.clean:,} valid + {f.quarantined:,} quarantined",
            )
        )
    live = employees.clean_ids - c.erased_ids
    for f, rows in (
        (contacts, contacts.distinct_clean),
        (tickets, tickets.distinct_clean),
        (employees, len(live)),
        (erasures, erasures.distinct_clean),
    ):
        out.append(
            (
                f"{f.department}: read-model rows = distinct valid ids ({f.clean_topic})",
                f.read_model == rows,
                f"{f.read_model:,} rows / {rows:,} distinct ids"
                + (" not erased" if f is employees else ""),
            )
        )
    out.append(
        (
            "HR: erased employees are not in the read model",
            c.erased_in_read_model == 0 and bool(c.erased_ids),
            f"{len(c.erased_ids):,} erased, {c.erased_in_read_model} still held "
            "(stale export rows for them included)",
        )
    )
    for burst, topic, per_delivery in (
        (c.bursts[0], topics.HUBSPOT_CONTACT_WEBHOOKS, sizes.events_per_delivery),
        (c.bursts[1], topics.ZENDESK_TICKET_WEBHOOKS, 1),
    ):
        accepted = sum(n for code, n in burst.statuses.items() if 200 <= code < 300)
        rejected = burst.statuses.get(401, 0)
        on_topic = c.webhook_events.get(topic, 0)
        out.append(
            (
                f"webhooks ({burst.source}): signed accepted, forged refused without a write",
                accepted == burst.sent - burst.forged
                and rejected == burst.forged
                and on_topic == accepted * per_delivery,
                f"{accepted} accepted -> {on_topic:,} events on {topic}; "
                f"{rejected} forged -> HTTP 401",
            )
        )
    return out


def attribution_table(c: Counts, top: int = 20) -> Table:
    table = Table(title=f"Attribution: campaigns by first-touch credit (top {top})")
    for name in ("campaign", "channel", "touches", "people", "first touch", "last touch"):
        table.add_column(name, justify="left" if name in ("campaign", "channel") else "right")
    for r in c.attribution[:top]:
        table.add_row(
            str(r["campaign"]),
            str(r["channel"]),
            f"{r['touches']:,}",
            f"{r['contacts']:,}",
            f"{r['first_touch_contacts']:,}",
            f"{r['last_touch_contacts']:,}",
        )
    return table


def departments_table(c: Counts) -> Table:
    table = Table(title="Departments: raw -> valid / quarantined -> read model")
    for name in ("department", "raw topic", "raw", "valid", "quarantined", "read model"):
        table.add_column(name, justify="left" if name in ("department", "raw topic") else "right")
    for f in c.flows:
        table.add_row(
            f.department,
            f.raw_topic,
            f"{f.raw:,}",
            f"{f.clean:,}",
            f"{f.quarantined:,}",
            f"{f.read_model:,} ({f.table})" if f.table else "touches",
        )
    return table
