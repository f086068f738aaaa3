"""Engines for the read model and programmatic Alembic migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=NORMAL`` and foreign keys
on, and its transactions are started with an explicit ``BEGIN`` so a batch is one real
transaction. PostgreSQL URLs are switched to the psycopg 3 driver.

Why these SQLite settings: in WAL mode ``synchronous=NORMAL`` writes every commit to the WAL
before ``COMMIT`` returns and syncs it to disk at checkpoints. A killed process (kill -9)
loses nothing that was committed; a power cut can lose the last transactions, never
half of one, and since the projection's offsets are in the same transactions the worker
then re-reads exactly those events from Kafka. ``FULL`` (an fsync per commit) would buy no
correctness here. The page cache (64 MiB instead of 2 MiB) keeps the indexes keyed by
random ids (event id, lead id) in memory, and checkpoints every 10,000 pages (~40 MiB of
WAL, instead of 1,000) copy a page that several batches touched once instead of once per
batch: together ~15 % less CPU per event applied (#3). Neither changes durability.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

HERE = Path(__file__).resolve().parent
ALEMBIC_INI = HERE / "alembic.ini"
MIGRATIONS = HERE / "migrations"
SQLITE_CACHE_KIB = 64 * 1024
SQLITE_CHECKPOINT_PAGES = 10_000


def normalize_url(url: str | URL) -> URL:
    """``postgresql://`` / ``postgres://`` / ``postgresql+psycopg2://`` -> psycopg 3."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url``. Its errors never quote bound values (they are event data,
    possibly personal); pass ``hide_parameters=False`` to see them while debugging."""
    kwargs.setdefault("hide_parameters", True)
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True, **kwargs)

    database = parsed.database
    in_memory = not database or database == ":memory:" or database.startswith("file::memory")
    if not in_memory:
        Path(database).parent.mkdir(parents=True, exist_ok=True)  # type: ignore[arg-type]
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
            cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_PAGES}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=10000")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def alembic_config() -> Config:
    cfg = Config(str(ALEMBIC_INI))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(url: str | URL, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent)."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migration this code has (what `migrate` brings a database to)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None  # the migrations directory ships with the code
    return head


def read_model(url: str | URL) -> Engine:
    """An engine on a read model that this code can read: at the head revision. Commands
    that only read or append (audit verify, the vault, quarantine) would otherwise fail on
    a database the projection worker never set up, or has not upgraded yet, with a raw SQL
    error; this says what is wrong and what to do. Never migrates: that is the worker's
    job, at its start (a command for auditors should not change the schema)."""
    from alembic.migration import MigrationContext

    from hub.errors import ConfigError

    engine = make_engine(url)
    shown = normalize_url(url).render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as exc:  # not there, or refuses us: the driver's first line says why
        engine.dispose()
        why = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "refused"
        raise ConfigError(f"cannot open the read model at {shown}: {why}") from None
    head = head_revision()
    if current != head:
        engine.dispose()
        state = "has no tables yet" if current is None else f"is at revision {current}"
        raise ConfigError(
            f"the read model at {shown} {state}; this hub needs revision {head}. The "
            "projection worker creates and upgrades it when it starts (crmhub up)"
        )
    return engine
