"""`crmhub quarantine list|show|redrive`: what was stopped, why, and sending it again.

Reads the read model (the projection's quarantine rows and their reasons, which never hold
a value); re-drives through ``hub.redrive``. A data steward's loop: ``list --rule R`` to
see what one rule stopped, fix the cause (the sheet, the mapping, the policy), then
``redrive --rule R``; each re-drive is audited and the row shows it.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine, func, or_, select

from hub.errors import ConfigError
from hub.redrive import QuarantineEntry, Redriver
from hub.settings import Settings, load_settings, read_runtime

app = typer.Typer(
    help="Quarantined records: list, show, re-drive after a fix.", no_args_is_help=True
)
console = Console()

Stage = Annotated[str | None, typer.Option("--stage", help="Only this stage")]
Rule = Annotated[str | None, typer.Option("--rule", help="Only records that broke this rule")]
Connector = Annotated[str | None, typer.Option("--connector", help="Only this connector")]


def _engine(settings: Settings) -> Engine:
    from projections.db import read_model

    return read_model(settings.effective_database_url)


def _query(
    *,
    ids: list[str] | None,
    stage: str | None,
    rule: str | None,
    connector: str | None,
    status: str | None,
) -> Any:
    from projections.models import QuarantineReason, QuarantineRedrive, QuarantineRow

    attempts = (
        select(QuarantineRedrive.quarantine_id, func.max(QuarantineRedrive.attempt).label("n"))
        .group_by(QuarantineRedrive.quarantine_id)
        .subquery()
    )
    q = QuarantineRow
    query = select(
        q.event_id,
        q.quarantine_id,
        q.stage,
        q.connector,
        q.source_file,
        q.source_row,
        q.source_topic,
        q.source_partition,
        q.source_offset,
        q.entity_id,
        q.status,
        q.quarantined_at,
        q.reasons,
        attempts.c.n,
    ).outerjoin(attempts, attempts.c.quarantine_id == q.quarantine_id)
    if stage:
        query = query.where(q.stage == stage)
    if connector:
        query = query.where(q.connector == connector)
    if status:
        query = query.where(q.status == status)
    if rule:
        query = query.where(
            q.event_id.in_(
                select(QuarantineReason.event_id).where(QuarantineReason.rule_id == rule)
            )
        )
    if ids:
        query = query.where(or_(*(q.quarantine_id.startswith(i) for i in ids)))
    return query.order_by(q.quarantined_at, q.event_id)


def entries(
    engine: Engine,
    *,
    ids: list[str] | None = None,
    stage: str | None = None,
    rule: str | None = None,
    connector: str | None = None,
    status: str | None = "open",
) -> list[QuarantineEntry]:
    """Quarantine rows matching the filters (ids may be prefixes of quarantine ids)."""
    query = _query(ids=ids, stage=stage, rule=rule, connector=connector, status=status)
    with engine.connect() as conn:
        return [
            QuarantineEntry(
                event_id=r.event_id,
                quarantine_id=r.quarantine_id,
                stage=r.stage,
                connector=r.connector,
                source_file=r.source_file,
                source_row=r.source_row,
                source_topic=r.source_topic,
                source_partition=r.source_partition,
                source_offset=r.source_offset,
                attempts=int(r.n or 0),
            )
            for r in conn.execute(query)
        ]


def _where(r: Any) -> str:
    if r.source_file:
        return f"{r.source_file}:{r.source_row}" if r.source_row is not None else r.source_file
    if r.source_topic:
        return f"{r.source_topic}:{r.source_partition}:{r.source_offset}"
    return "-"


@app.command("list")
def list_(
    stage: Stage = None,
    rule: Rule = None,
    connector: Connector = None,
    status: Annotated[str | None, typer.Option("--status", help="open, redriven, or all")] = "open",
    limit: Annotated[int, typer.Option("--limit")] = 50,
) -> None:
    """Quarantined records, oldest first: id, stage, rules broken, where from."""
    settings = load_settings()
    query = _query(
        ids=None,
        stage=stage,
        rule=rule,
        connector=connector,
        status=None if status == "all" else status,
    )
    table = Table("id", "stage", "connector", "entity", "rules", "from", "status", "re-drives")
    shown = total = 0
    with _engine(settings).connect() as conn:
        for r in conn.execute(query):
            total += 1
            if shown >= limit:
                continue
            shown += 1
            rules = ", ".join(sorted({str(x.get("rule_id")) for x in r.reasons or []}))
            table.add_row(
                r.quarantine_id[:12],
                r.stage,
                r.connector or "-",
                r.entity_id or "-",
                rules,
                _where(r),
                r.status,
                str(r.n or 0),
            )
    console.print(table)
    console.print(f"{total} record(s){f', {shown} shown' if shown < total else ''}")


@app.command()
def show(quarantine_id: Annotated[str, typer.Argument(help="Quarantine id (or a prefix)")]) -> None:
    """One quarantined record: its context and every reason (never the value)."""
    settings = load_settings()
    query = _query(ids=[quarantine_id], stage=None, rule=None, connector=None, status=None)
    with _engine(settings).connect() as conn:
        rows = list(conn.execute(query))
    if not rows:
        raise ConfigError(f"no quarantine record with id {quarantine_id}")
    if len(rows) > 1:
        raise ConfigError(f"{len(rows)} quarantine records start with {quarantine_id}: say more")
    r = rows[0]
    console.print(f"[bold]{r.quarantine_id}[/] ({r.status}, re-driven {r.n or 0}x)")
    console.print(f"  stage {r.stage}, connector {r.connector or '-'}, entity {r.entity_id or '-'}")
    console.print(f"  from {_where(r)}, quarantined at {r.quarantined_at:%Y-%m-%d %H:%M:%S}")
    for reason in r.reasons or []:
        field = f" [{reason.get('field')}]" if reason.get("field") else ""
        console.print(f"  - {reason.get('rule_id')}{field}: {reason.get('message')}", markup=False)


@app.command()
def redrive(
    ids: Annotated[list[str] | None, typer.Argument(help="Quarantine ids (or prefixes)")] = None,
    stage: Stage = None,
    rule: Rule = None,
    connector: Connector = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be done")] = False,
    url: Annotated[str | None, typer.Option("--url", help="Hub API (file connectors)")] = None,
) -> None:
    """Send open quarantined records through their path again (after a fix)."""
    if not ids and not rule:
        raise ConfigError("name the records to re-drive: ids, or --rule RULE")
    settings = load_settings()
    chosen = entries(
        _engine(settings), ids=ids, stage=stage, rule=rule, connector=connector, status="open"
    )
    if not chosen:
        console.print("nothing to re-drive (no open record matches)")
        return
    if dry_run:
        for e in chosen:
            console.print(f"would re-drive {e.quarantine_id[:12]} ({e.stage}) from {_where(e)}")
        return
    runtime = read_runtime(settings.home) or {}
    api_url = url or runtime.get("api_url") or settings.api_url
    with Redriver(settings.of_running_hub(), api_url=str(api_url), rule=rule) as redriver:
        results = redriver.run(chosen)
    for res in results:
        colour = "red" if res.action == "refused" else "green"
        console.print(f"{res.quarantine_id[:12]}: [{colour}]{res.action}[/] {res.target}")
    if any(r.action == "refused" for r in results):
        raise typer.Exit(1)
