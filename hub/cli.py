"""`crmhub`: the hub's command line (typer + rich)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from hub.connect_cli import app as connectors_app
from hub.dlp.cli import app as dlp_app
from hub.errors import HubError
from hub.quarantine_cli import app as quarantine_app
from hub.settings import Settings, load_settings

app = typer.Typer(
    name="crmhub",
    help="CRM Event Hub: department systems -> Kafka -> governed CRM read model + audit trail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(dlp_app, name="dlp")
app.add_typer(connectors_app, name="connectors")
app.add_typer(quarantine_app, name="quarantine")

console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # one line, however narrow


def _settings() -> Settings:
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "alembic", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    return settings


@app.command()
def up() -> None:
    """Start the embedded stack (broker, API + schema registry, processor, projections,
    connect worker) and supervise it until Ctrl-C / SIGTERM."""
    from hub.runtime import Supervisor

    settings = _settings()
    with Supervisor(settings) as sup:
        console.print(
            f"[green]hub up[/]: kafka {sup.bootstrap}, API {sup.api_url}, "
            f"drop directory {settings.effective_drop_dir.resolve()}  (Ctrl-C stops)"
        )
        sup.run_until_signal()
        console.print("stopping…")
    console.print("[green]stopped[/]")


@app.command(hidden=True)
def worker(name: str) -> None:
    """Run one worker process (used by `crmhub up`)."""
    from hub.workers import WORKERS

    if name not in WORKERS:
        raise typer.BadParameter(f"unknown worker {name!r}; known: {', '.join(WORKERS)}")
    WORKERS[name](_settings())


@app.command()
def demo(
    rows: Annotated[int, typer.Option(help="Rows of sample data to generate")] = 12_000,
    home: Annotated[
        Path | None, typer.Option(help="Working directory (default: a fresh .hub/demo-<time>)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the counts")] = 240.0,
) -> None:
    """Generate a messy sample of sales spreadsheets, run it through the embedded stack and
    print a reconciled summary. Exits 0 only when the counts reconcile."""
    from hub.demo import run_demo

    ok = run_demo(_settings(), rows=rows, home=home, timeout=timeout, console=console)
    raise typer.Exit(0 if ok else 1)


@audit_app.command("verify")
def audit_verify(
    legacy_access_log_rows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Rows of the vault access log from before revision 0007 (no links), as "
            "counted at that upgrade; any other row without a link is a break",
        ),
    ] = 0,
) -> None:
    """Recompute every hash chain of the audit trail and of the token vault's access log;
    name the first broken link."""
    from projections.access_log import verify_log
    from projections.audit import verify_chain
    from projections.db import read_model

    settings = _settings()
    engine = read_model(settings.effective_database_url)
    try:
        key = settings.existing_audit_key()
        result = verify_chain(engine, key)
        log = verify_log(engine, key, legacy_rows=legacy_access_log_rows)
    finally:
        engine.dispose()
    broken = False
    if result.ok:
        console.print(f"[green]audit trail verified[/]: {result.checked} entries, chains intact")
    else:
        err_console.print(f"[red]audit trail broken[/]: {result.describe()}")
        broken = True
    if log.ok:
        console.print(f"[green]vault access log verified[/]: {log.describe()}")
    else:
        err_console.print(f"[red]vault access log broken[/]: {log.describe()}")
        broken = True
    if broken:
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except HubError as exc:
        err_console.print(f"[red]error:[/] {exc.message}")
        sys.exit(2)


if __name__ == "__main__":
    main()
