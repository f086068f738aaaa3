"""Alembic environment. ``projections.db.migrate`` passes an open connection in
``config.attributes["connection"]``; from the alembic CLI the URL comes from the hub's
settings (``HUB_DATABASE_URL``, else the embedded SQLite database)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from projections.models import Base

config = context.config
target_metadata = Base.metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    from hub.settings import load_settings
    from projections.db import normalize_url

    context.configure(
        url=normalize_url(load_settings().effective_database_url),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    from hub.settings import load_settings
    from projections.db import make_engine

    if config.config_file_name is not None:
        fileConfig(config.config_file_name)
    engine = make_engine(load_settings().effective_database_url)
    try:
        with engine.begin() as conn:
            run_with(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
