"""`crmhub dlp scan|explain`: ad-hoc scans with the same engine the processor runs; and
the token vault's commands (`vault-keygen`, `reveal`, `access-log`)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from hub.dlp.base import Finding, Pattern, Recognizer, evaluate
from hub.dlp.engine import Engine, walk_strings
from hub.dlp.operators import MaskParams, mask
from hub.errors import ConfigError

app = typer.Typer(help="Find sensitive data (DLP).", no_args_is_help=True)
console = Console()
_BATCH = 500  # texts per engine call in `scan`

STRUCTURED = {".csv", ".tsv", ".xlsx"}
JSONL = {".jsonl", ".ndjson"}


def _engine() -> Engine:
    from hub.dlp import registry

    return Engine(registry.load())


def _records(path: Path) -> Iterator[tuple[int | str, dict[str, Any] | str]]:
    """(record number, text or structured record). Plain text: one record per line."""
    suffix = path.suffix.lower()
    if suffix in STRUCTURED:
        from connectors.spreadsheet.reader import BadRow, read_sheet

        for row in read_sheet(path):
            if isinstance(row, BadRow):
                continue
            yield row.row, dict(row.cells)
        return
    with path.open(encoding="utf-8", errors="replace") as fh:
        for n, raw in enumerate(fh, start=1):
            line = raw.rstrip("\n")
            if suffix in JSONL:
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except ValueError:
                    raise ConfigError(f"{path.name}: line {n} is not JSON") from None
                yield n, value if isinstance(value, dict) else {"value": value}
            else:
                yield n, line


def _topic_records(topic: str) -> Iterator[tuple[int | str, dict[str, Any] | str]]:
    import io

    import fastavro

    from hub.kafka_read import read_until_quiet
    from hub.serde import parse, registry_client
    from hub.settings import load_settings

    settings = load_settings().of_running_hub()
    registry = registry_client(settings.effective_registry_url)
    writers: dict[int, Any] = {}
    for msg in read_until_quiet(settings.require_bootstrap(), topic, group="crmhub-dlp-scan"):
        data = msg.value()
        if not data or len(data) < 5 or data[0] != 0:
            continue
        sid = int.from_bytes(data[1:5], "big")
        if sid not in writers:
            writers[sid] = parse(registry.get_schema(sid).schema_str)
        value = fastavro.schemaless_reader(io.BytesIO(data[5:]), writers[sid], None)
        if isinstance(value, dict):
            yield f"{msg.partition()}:{msg.offset()}", value


@app.command()
def scan(
    path: Annotated[Path | None, typer.Argument(help="Text, CSV, XLSX or JSON-lines file")] = None,
    topic: Annotated[str | None, typer.Option(help="Scan a hub topic instead of a file")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
    min_score: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Ignore findings below this score")
    ] = 0.5,
) -> None:
    """Scan a file or a topic; findings never show the value (masked in the table,
    absent in jsonl)."""
    if (path is None) == (topic is None):
        raise ConfigError("give either a PATH or --topic")
    if fmt not in ("table", "jsonl"):
        raise ConfigError("--format must be table or jsonl")
    if path is not None and not path.is_file():
        raise ConfigError(f"no such file: {path}")
    engine = _engine()
    records = _records(path) if path is not None else _topic_records(str(topic))
    table = Table("record", "field", "start", "end", "entity", "score", "recognizer", "value")
    table.columns[4].no_wrap = True  # the entity: cut names read as a different entity
    count = 0
    for batch in _batches(records):
        numbers, fields, texts = zip(*batch, strict=True)
        found = engine.scan_texts(texts, fields, min_score=min_score)
        for number, field, text, findings in zip(numbers, fields, texts, found, strict=True):
            for f in findings:
                count += 1
                if fmt == "jsonl":
                    sys.stdout.write(json.dumps(_jsonl(number, field, f)) + "\n")
                else:
                    shown = mask(text[f.start : f.end], MaskParams(keep_last=2))
                    table.add_row(
                        str(number), field or "", str(f.start), str(f.end), f.entity,
                        f"{f.score:.2f}", f.recognizer, shown,
                    )  # fmt: skip
    if fmt == "table":
        console.print(table)
        console.print(f"{count} finding(s)")


def _batches(
    records: Iterator[tuple[int | str, dict[str, Any] | str]],
) -> Iterator[list[tuple[int | str, str | None, str]]]:
    """(record number, field or None for a plain-text line, text), `_BATCH` texts at a time:
    the engine scans each batch with one matcher call (`Engine.scan_texts`, the same findings
    as one call per text). 8 MB of the bench corpus (JSON lines, or one field a line) took
    5.8-6.2 s one call per text and 4.3-4.5 s in batches, ~2.6 s of it start-up."""
    batch: list[tuple[int | str, str | None, str]] = []
    for number, rec in records:
        if isinstance(rec, str):
            batch.append((number, None, rec))
        else:
            batch.extend((number, field, text) for field, text in walk_strings(rec))
        if len(batch) >= _BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _jsonl(number: int | str, field: str | None, f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {"record": number}
    if field is not None:
        out["field"] = field
    out.update(start=f.start, end=f.end, entity=f.entity, score=f.score, recognizer=f.recognizer)
    return out


def _rescored(engine: Engine, text: str, field: str | None, f: Finding) -> str:
    """Why a finding scores less than its validator and context gave it, where its
    recognizer's `rescore` lowered it (the reading of another entity was nearer), or ""."""
    entry = next(
        (
            e
            for e in engine.entries
            if (e.recognizer_name, e.pattern.name) == (f.recognizer, f.pattern)
        ),
        None,
    )
    if entry is None or entry.rescore is None:
        return ""
    recognizer = engine.recognizers[entry.rid]
    before = evaluate(
        recognizer,
        entry.pattern,
        text,
        f.start,
        f.end,
        field_ctx=recognizer.field_is_context(field),
        field=field,
        rescore=False,
    )
    if before is None or before.score <= f.score:
        return ""
    others = " or ".join(sorted(recognizer.rescore_needs)) or "another entity"
    return f" (lowered from {before.score:.2f}: its context or field reads {others})"


@app.command()
def explain(
    text: str,
    field: Annotated[str | None, typer.Option()] = None,
    min_score: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="The score scan reports from")
    ] = 0.5,
) -> None:
    """Show which recognizer, pattern, context and validator fired on TEXT: the findings,
    those that lost to a stronger overlapping finding or score below --min-score, and the
    candidates a pattern matched that did not become findings, with the reason."""
    from hub.dlp.engine import dedupe

    engine = _engine()
    every = engine.scan_text_all(text, field=field)
    kept = set(dedupe([f for f in every if f.score >= min_score]))
    patterns = {(e.recognizer_name, e.pattern.name): e.pattern.regex for e in engine.entries}
    blocks: list[tuple[int, int, _Explained]] = []
    for f in every:
        if f in kept:
            result = "[green]reported[/]"
        elif f.score < min_score:
            result = f"[yellow]below {min_score:g}[/]"
        else:
            result = "[yellow]overlapped[/]"
        explained = _Explained(
            span=f"{f.start}-{f.end}",
            value=mask(text[f.start : f.end], MaskParams(keep_last=2)),
            entity=f.entity,
            recognizer=f.recognizer,
            pattern=f.pattern,
            regex=patterns.get((f.recognizer, f.pattern), ""),
            context=f.context_word or "-",
            validator="checksum ok" if f.validated else "-",
            score=f"{f.score:.2f}{_rescored(engine, text, field, f)}",
            result=result,
        )
        blocks.append((f.start, 0, explained))
    misses = near_misses(engine, text, field, every)
    for miss in misses:
        explained = _Explained(
            span=f"{miss.start}-{miss.end}",
            value=mask(text[miss.start : miss.end], MaskParams(keep_last=2)),
            entity=miss.recognizer.entity,
            recognizer=miss.recognizer.name,
            pattern=miss.pattern.name,
            regex=miss.pattern.regex,
            context=miss.context_word or "-",
            validator="[red]rejected[/]" if miss.reason == REJECTED else "-",
            score="-",
            result=f"[red]not reported: {miss.reason}[/]",
        )
        blocks.append((miss.start, 1, explained))
    for _, _, explained in sorted(blocks, key=lambda b: (b[0], b[1])):
        explained.print()
    reported = len(kept)
    console.print(
        f"{reported} finding(s) reported, {len(every) - reported} overlapped or below "
        f"{min_score:g}, {len(misses)} candidate(s) a pattern matched and the recognizer "
        "dropped"
    )


REJECTED = "the validator rejected it"
NO_CONTEXT = "needs a context word nearby"


@dataclass(frozen=True)
class _Explained:
    """One candidate as `explain` shows it: a block of its own, so that a long regex
    wraps on its own line instead of squeezing a wide table's other columns to a few
    characters each in an 80-column terminal."""

    span: str
    value: str  # masked
    entity: str
    recognizer: str
    pattern: str
    regex: str
    context: str
    validator: str
    score: str
    result: str

    def print(self) -> None:
        console.print(
            f"[bold]{self.span}[/]  {escape(self.value)}  [bold]{self.entity}[/]  {self.result}"
        )
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        grid.add_row("recognizer", f"{self.recognizer}, pattern {self.pattern}")
        grid.add_row("regex", Text(self.regex, style="dim"))
        grid.add_row("context", self.context)
        grid.add_row("validator", self.validator)
        grid.add_row("score", self.score)
        console.print(Padding(grid, (0, 0, 0, 2)))
        console.print()


@dataclass(frozen=True)
class NearMiss:
    """A pattern's match that is not a finding, and why."""

    start: int
    end: int
    recognizer: Recognizer
    pattern: Pattern
    context_word: str | None
    reason: str


def near_misses(
    engine: Engine, text: str, field: str | None, findings: list[Finding]
) -> list[NearMiss]:
    """Every match of every pattern in `text` that is not among `findings` (the engine's
    ``scan_text_all`` of the same text and field), with the reason `hub.dlp.base.evaluate`
    drops it: a context-gated recognizer without a context word, or its validator (checksum
    or structure) saying no. Each pattern is searched on its own, as the reference scan
    does: slow, for one text at a time."""
    found = {(f.recognizer, f.start, f.end) for f in findings}
    out: list[NearMiss] = []
    for recognizer in engine.recognizers:
        field_ctx = recognizer.field_is_context(field)
        for pattern in recognizer.patterns:
            for m in re.finditer(pattern.regex, text):
                start, end = m.span()
                if start == end or (recognizer.name, start, end) in found:
                    continue  # a finding (of this pattern or an earlier one of the recognizer)
                word = "field name" if field_ctx else recognizer.context_in(text, start, end)
                if recognizer.context_required and word is None:
                    reason = NO_CONTEXT
                elif recognizer.validate(m.group(), pattern) is None:
                    reason = REJECTED
                else:  # pragma: no cover - the engine would have reported it
                    continue
                out.append(NearMiss(start, end, recognizer, pattern, word, reason))
    return sorted(out, key=lambda n: (n.start, n.recognizer.name))


@app.command("vault-keygen")
def vault_keygen(
    private_key: Annotated[Path, typer.Argument(help="Where to write the private key (0600)")],
) -> None:
    """Make a token-vault key pair: the private key to PRIVATE_KEY, for whoever may reveal
    tokens; the public key on standard output, for the processors
    (HUB_DLP_VAULT_PUBLIC_KEY)."""
    from hub.dlp.vault import VaultPrivateKey

    key = VaultPrivateKey.generate()
    try:
        key.save(private_key)
    except FileExistsError:
        raise ConfigError(f"{private_key} exists; a vault key is never overwritten") from None
    except OSError as exc:
        raise ConfigError(f"cannot write {private_key}: {exc.strerror}") from None
    sys.stdout.write(f"HUB_DLP_VAULT_PUBLIC_KEY={key.public.text()}\n")


@app.command()
def reveal(
    token: str,
    role: Annotated[str, typer.Option(help="The role you act in (policies/dlp.yaml vault)")],
    reason: Annotated[str, typer.Option(help="Why: recorded in the vault's access log")],
    actor: Annotated[str | None, typer.Option(help="Who you are (default: the OS user)")] = None,
    private_key: Annotated[
        Path | None,
        typer.Option(help="The vault private key (default: the one HUB_HOME generated)"),
    ] = None,
) -> None:
    """Turn TOKEN (or a key of the vault topic, TOKEN@OWNER) back into its value, for a
    role the DLP policy lets reveal and with the vault's private key. Every attempt,
    refused or not, is in the access log (dlp_vault_reveals, a signed hash chain that
    `crmhub audit verify` checks), never with the value."""
    import getpass
    from datetime import UTC, datetime

    from hub.dlp.policy import load_dlp_policy
    from hub.dlp.vault import TokenVault, VaultPrivateKey
    from hub.settings import load_settings
    from projections.db import read_model

    settings = load_settings()
    key = VaultPrivateKey.load(private_key or settings.vault_private_key_path)
    policy = load_dlp_policy(settings.policies_dir / "dlp.yaml")
    engine = read_model(settings.effective_database_url)
    try:
        log_key = settings.existing_audit_key()
        vault = TokenVault(
            engine,
            set(policy.vault.reveal_roles),
            log_key=log_key,
            detector=_engine(),
            min_score=policy.min_score,
        )
        value = vault.reveal(
            token,
            key,
            actor=actor or getpass.getuser(),
            role=role,
            reason=reason,
            now=datetime.now(UTC),
        )
    finally:
        engine.dispose()
    sys.stdout.write(value + "\n")


@app.command("access-log")
def access_log(
    token: Annotated[str | None, typer.Option(help="Only attempts on this token")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor's attempts")] = None,
    since: Annotated[
        datetime | None,
        typer.Option(
            help="Only attempts at or after this time (UTC unless it names a zone)",
            formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first")] = 50,
    fmt: Annotated[str, typer.Option("--format", help="table or jsonl")] = "table",
) -> None:
    """The token vault's access log, newest first: who asked for which token, in which
    role, why, and what came of it — never a value. `crmhub audit verify` proves it
    unaltered."""
    from sqlalchemy import select

    from hub.dlp.vault import token_of
    from hub.settings import load_settings
    from projections.audit import canonical_time, utc
    from projections.db import read_model
    from projections.models import DlpVaultReveal

    if fmt not in ("table", "jsonl"):
        raise ConfigError("--format must be table or jsonl")
    query = select(DlpVaultReveal).order_by(DlpVaultReveal.seq.desc()).limit(limit)
    if token is not None:
        query = query.where(DlpVaultReveal.token == token_of(token))
    if actor is not None:
        query = query.where(DlpVaultReveal.actor == actor)
    if since is not None:
        query = query.where(DlpVaultReveal.at >= utc(since))
    engine = read_model(load_settings().effective_database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    finally:
        engine.dispose()
    if fmt == "jsonl":
        for r in rows:
            entry = {
                "seq": r.seq, "at": canonical_time(r.at), "actor": r.actor, "role": r.role,
                "outcome": r.outcome, "entity": r.entity, "token": r.token, "reason": r.reason,
            }  # fmt: skip
            sys.stdout.write(json.dumps(entry) + "\n")
        return
    # One block per attempt, not a table: at 80 columns, eight columns cut the token,
    # which is what a reader copies to look further.
    for r in rows:
        at = utc(r.at).strftime("%Y-%m-%d %H:%M:%S UTC")
        style = "green" if r.outcome == "revealed" else "red"
        console.print(Text.assemble((f"#{r.seq}", "bold"), f"  {at}  ", (r.outcome, style)))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        # Text, not markup: the actor and reason are whatever the caller typed.
        grid.add_row("actor", Text(f"{r.actor} (role {r.role})"))
        grid.add_row("token", Text(f"{r.token} ({r.entity or 'not in the vault'})"))
        grid.add_row("reason", Text(r.reason))
        console.print(Padding(grid, (0, 0, 1, 4)))
    console.print(f"{len(rows)} attempt(s)")
