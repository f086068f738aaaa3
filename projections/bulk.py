"""Bulk writes of a batch's rows, one strategy per database, chosen by measurement (#3).

Rows are plain tuples in the order of the ``columns`` given with them; dates, times and JSON
are already in the form the writer's ``time`` / ``date`` / ``json`` methods give, so no
SQLAlchemy type processing runs per value.

- **SQLite**: multi-row ``INSERT … VALUES (…), (…) [ON CONFLICT …]`` of up to
  ``SQLITE_ROWS_PER_STATEMENT`` rows through ``exec_driver_sql``: one ``sqlite3_step`` per
  statement instead of one per row, and the sqlite3 module's statement cache reuses the
  full-size statement. Values in SQLAlchemy's own SQLite storage formats, so ORM reads
  give back what the ORM would have written.
- **PostgreSQL**: ``COPY … FROM STDIN`` in text format, rows formatted by psycopg's C
  extension. A table that needs ``ON CONFLICT`` is copied into a temporary staging table
  (``ON COMMIT DELETE ROWS``) and moved with ``INSERT … SELECT … ON CONFLICT``; the
  staging tables are made, and the moves run, in one statement each per batch.
  (Measured against ``INSERT … SELECT FROM unnest(<arrays>)``, which psycopg dumps element by
  element in Python, and ``json_populate_recordset``: COPY took the least client CPU and
  the least wall time.)

Errors keep SQLAlchemy's classes (``IntegrityError``, ``DataError``, …): the worker tells a
refused event from an absent database by them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol

from sqlalchemy import Connection, Table
from sqlalchemy.exc import DBAPIError

Row = tuple[Any, ...]

SQLITE_ROWS_PER_STATEMENT = 500
SQLITE_MAX_PARAMS = 32_766  # SQLITE_MAX_VARIABLE_NUMBER since 3.32 (3.40+ here)
POSTGRES_ROWS_INSERTED = 50  # up to this many rows to upsert: one INSERT, no staging


class OnConflict(NamedTuple):
    """``ON CONFLICT (keys) DO NOTHING``, or ``DO UPDATE SET update…`` where the new row's
    ``newer_by`` columns, compared as a row value, are greater than the stored row's."""

    keys: tuple[str, ...]
    update: tuple[str, ...] = ()
    newer_by: tuple[str, ...] = ()


class TableRows(NamedTuple):
    """Rows for one table, as tuples in ``columns`` order."""

    table: Table
    columns: tuple[str, ...]
    rows: list[Row]
    on_conflict: OnConflict | None = None


class BulkWriter(Protocol):
    def time(self, value: datetime) -> Any: ...

    def date(self, value: date | None) -> Any: ...

    def json(self, value: Any) -> Any: ...

    def existing(self, conn: Connection, table: Table, column: str, values: list[str]) -> set[str]:
        """Which of ``values`` are already in ``table.column`` (an indexed text column)."""
        ...

    def write(self, conn: Connection, writes: Sequence[TableRows]) -> None:
        """Write every table's rows, in order (a table referenced by a foreign key
        before the table that references it)."""
        ...


def writer_for(conn_dialect: Any) -> BulkWriter:
    name = conn_dialect.name
    if name == "sqlite":
        return SqliteWriter(conn_dialect)
    if name == "postgresql":
        return PostgresWriter(conn_dialect)
    raise ValueError(f"projections support sqlite and postgresql, not {name}")


def _conflict_sql(quote: Any, table: Table, on_conflict: OnConflict | None) -> str:
    if on_conflict is None:
        return ""
    keys = ", ".join(quote(c) for c in on_conflict.keys)
    if not on_conflict.update:
        return f" ON CONFLICT ({keys}) DO NOTHING"
    sets = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in on_conflict.update)
    sql = f" ON CONFLICT ({keys}) DO UPDATE SET {sets}"
    if on_conflict.newer_by:
        t = quote(table.name)
        new = ", ".join(f"excluded.{quote(c)}" for c in on_conflict.newer_by)
        old = ", ".join(f"{t}.{quote(c)}" for c in on_conflict.newer_by)
        sql += f" WHERE ({new}) > ({old})"
    return sql


class SqliteWriter:
    """Multi-row INSERTs with SQLAlchemy's SQLite storage formats for dates and times."""

    def __init__(self, dialect: Any) -> None:
        self._quote = dialect.identifier_preparer.quote
        self._sql: dict[tuple[Any, ...], str] = {}
        self._dates: dict[date, str] = {}

    def time(self, value: datetime) -> str:
        """The UTC instant as SQLAlchemy's SQLite DATETIME stores it."""
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(" ", "microseconds")

    def date(self, value: date | None) -> str | None:
        if value is None:
            return None
        text = self._dates.get(value)
        if text is None:
            if len(self._dates) > 10_000:
                self._dates.clear()
            text = self._dates[value] = f"{value.year:04d}-{value.month:02d}-{value.day:02d}"
        return text

    def json(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def existing(self, conn: Connection, table: Table, column: str, values: list[str]) -> set[str]:
        if not values:
            return set()
        q = self._quote
        # One JSON parameter instead of one placeholder per value.
        sql = (
            f"SELECT {q(column)} FROM {q(table.name)} "  # noqa: S608 - identifiers from metadata
            f"WHERE {q(column)} IN (SELECT value FROM json_each(?))"
        )
        return set(conn.exec_driver_sql(sql, (json.dumps(values),)).scalars())

    def write(self, conn: Connection, writes: Sequence[TableRows]) -> None:
        for table, columns, rows, on_conflict in writes:
            self._write(conn, table, columns, rows, on_conflict)

    def _write(
        self,
        conn: Connection,
        table: Table,
        columns: tuple[str, ...],
        rows: list[Row],
        on_conflict: OnConflict | None,
    ) -> None:
        if not rows:
            return
        width = len(columns)
        per_statement = max(1, min(SQLITE_ROWS_PER_STATEMENT, SQLITE_MAX_PARAMS // width))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = self._insert_sql(table, columns, len(chunk), on_conflict)
            conn.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk)))

    def _insert_sql(
        self, table: Table, columns: tuple[str, ...], n: int, on_conflict: OnConflict | None
    ) -> str:
        key = (table.name, columns, n, on_conflict)
        sql = self._sql.get(key)
        if sql is None:
            q = self._quote
            one = "(" + ", ".join("?" * len(columns)) + ")"
            sql = (
                f"INSERT INTO {q(table.name)} ({', '.join(q(c) for c in columns)}) "  # noqa: S608
                f"VALUES {', '.join([one] * n)}" + _conflict_sql(q, table, on_conflict)
            )
            if len(self._sql) > 256:  # remainders of odd sizes: keep the cache bounded
                self._sql.clear()
            self._sql[key] = sql
        return sql


def _stage(table_name: str) -> str:
    return f"_stage_{table_name}"


class PostgresWriter:
    """COPY, through a staging table where rows may conflict."""

    def __init__(self, dialect: Any) -> None:
        self._quote = dialect.identifier_preparer.quote
        self._dialect = dialect

    def time(self, value: datetime) -> datetime:
        return value  # psycopg's C dumper writes timestamptz text

    def date(self, value: date | None) -> date | None:
        return value

    def json(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def existing(self, conn: Connection, table: Table, column: str, values: list[str]) -> set[str]:
        if not values:
            return set()
        q = self._quote
        sql = (
            f"SELECT {q(column)} FROM {q(table.name)} "  # noqa: S608 - identifiers from metadata
            f"WHERE {q(column)} IN (SELECT json_array_elements_text(%(values)s::json))"
        )
        return set(conn.exec_driver_sql(sql, {"values": json.dumps(values)}).scalars())

    def write(self, conn: Connection, writes: Sequence[TableRows]) -> None:
        """Round trips are what a batch waits for, so: the staging tables in one
        statement, one COPY per table, then the moves out of staging in one statement (a
        few rows, such as the offsets, go in one INSERT instead)."""
        q = self._quote
        writes = [w for w in writes if w.rows]
        staged = {
            w.table.name
            for w in writes
            if w.on_conflict is not None and len(w.rows) > POSTGRES_ROWS_INSERTED
        }
        if staged:
            # Kept by the connection and emptied by every commit; gone with a rollback of
            # the transaction that made them, hence IF NOT EXISTS every time.
            conn.exec_driver_sql(
                "; ".join(
                    f"CREATE TEMPORARY TABLE IF NOT EXISTS {q(_stage(name))} "
                    f"(LIKE {q(name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    for name in sorted(staged)
                )
            )
        moves: list[str] = []
        for table, columns, rows, on_conflict in writes:
            names = ", ".join(q(c) for c in columns)
            if on_conflict is None:
                self._copy(conn, f"COPY {q(table.name)} ({names}) FROM STDIN", rows)
            elif table.name in staged:
                stage = q(_stage(table.name))
                self._copy(conn, f"COPY {stage} ({names}) FROM STDIN", rows)
                moves.append(
                    f"INSERT INTO {q(table.name)} ({names}) SELECT {names} FROM {stage}"  # noqa: S608
                    + _conflict_sql(q, table, on_conflict)
                )
            else:
                if moves:  # keep the order: a foreign key may point at a staged table
                    conn.exec_driver_sql("; ".join(moves))
                    moves = []
                one = "(" + ", ".join(["%s"] * len(columns)) + ")"
                conn.exec_driver_sql(
                    f"INSERT INTO {q(table.name)} ({names}) VALUES "  # noqa: S608
                    + ", ".join([one] * len(rows))
                    + _conflict_sql(q, table, on_conflict),
                    tuple(itertools.chain.from_iterable(rows)),
                )
        if moves:
            conn.exec_driver_sql("; ".join(moves))

    def _copy(self, conn: Connection, sql: str, rows: Iterable[Row]) -> None:
        driver_conn = conn.connection.driver_connection
        assert driver_conn is not None
        import psycopg

        try:
            with driver_conn.cursor() as cursor, cursor.copy(sql) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        except psycopg.Error as exc:
            # The class SQLAlchemy would raise (IntegrityError, DataError, …), without the
            # rows: they may be personal data.
            raise DBAPIError.instance(
                sql,
                None,
                exc,
                psycopg.Error,
                hide_parameters=True,
                connection_invalidated=self._dialect.is_disconnect(exc, driver_conn, None),
                dialect=self._dialect,
            ) from exc
