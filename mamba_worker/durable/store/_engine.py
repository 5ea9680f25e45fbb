"""`create_engine`: one engine factory for SQLite and PostgreSQL, with the settings each needs.

SQLite (the embedded default):

- WAL journal, so readers never block the writer and the writer never blocks readers;
  ``synchronous=NORMAL`` (durable across application crashes; the last commits can be lost only
  on power loss, the usual WAL trade-off); ``foreign_keys=ON``; ``busy_timeout`` so a writer waits
  for the lock instead of failing.
- Transactions begin with ``BEGIN IMMEDIATE``: a transaction that reads and then writes holds the
  write lock from the start. With SQLite's default deferred ``BEGIN``, two such transactions can
  deadlock on the upgrade and one fails with "database is locked" without waiting. Read-only work
  (`RunStore`'s queries) uses a plain deferred ``BEGIN`` through `read_only`.
- ``check_same_thread=False``: the pool hands connections to whichever thread checks them out.

PostgreSQL: ``pool_pre_ping`` (a broker-length idle connection may have been dropped), a bounded
pool, and ``application_name`` so ``pg_stat_activity`` shows Mamba's connections.

Nothing connects here: the first query does.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from pydantic import SecretStr
from sqlalchemy import Engine, event
from sqlalchemy.engine import URL, make_url

from mamba_worker.errors import ConfigurationError

_READ_ONLY = "mamba_read_only"


def create_engine(
    url: str | SecretStr | URL,
    *,
    busy_timeout_seconds: float = 30.0,
    pool_size: int = 5,
    max_overflow: int = 10,
    pool_recycle_seconds: int = 1800,
    pool_pre_ping: bool = False,
    application_name: str = "mamba",
    echo: bool = False,
) -> Engine:
    """Build an engine for the state store.

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg://user@host/db``); a
            `SecretStr` (as in `RuntimeSettings.database_url`) keeps its password out of logs.
        busy_timeout_seconds: SQLite: how long a writer waits for the write lock.
        pool_size: PostgreSQL: connections kept open.
        max_overflow: PostgreSQL: extra connections allowed under load.
        pool_recycle_seconds: PostgreSQL: replace connections older than this.
        pool_pre_ping: PostgreSQL: test each connection on checkout. Off by default: it costs a
            round trip per transaction (a quarter of a step's database time), and a connection
            the server dropped fails as a `DBAPIError` that the runtime retries anyway (SQLAlchemy
            then invalidates the whole pool, so one failure refreshes every stale connection).
        application_name: PostgreSQL: the name shown in ``pg_stat_activity``.
        echo: Log every statement (debugging); on PostgreSQL not the per-step writes, which
            `PgPipeline` sends through psycopg directly.

    Raises:
        ConfigurationError: The URL cannot be parsed or names a database other than SQLite or PostgreSQL.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed, busy_timeout_seconds=busy_timeout_seconds, echo=echo)
    if backend == "postgresql":
        connect_args: dict[str, Any] = {}
        if parsed.get_driver_name() in ("psycopg", "psycopg2"):
            connect_args["application_name"] = application_name
        return sqlalchemy.create_engine(
            parsed,
            pool_pre_ping=pool_pre_ping,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_recycle=pool_recycle_seconds,
            connect_args=connect_args,
            echo=echo,
        )
    raise ConfigurationError(
        f"database URL {parsed.render_as_string(hide_password=True)!r} uses {backend!r}: "
        "set runtime.database_url to a sqlite:/// or postgresql+psycopg:// URL"
    )


def read_only(engine: Engine) -> Engine:
    """The same engine (same pool), marked for read-only transactions.

    On SQLite its transactions begin with a deferred ``BEGIN``, which takes no write lock; on
    PostgreSQL it changes nothing.
    """
    return engine.execution_options(**{_READ_ONLY: True})


def is_postgresql(engine: Engine) -> bool:
    """Whether the engine talks to PostgreSQL (otherwise SQLite)."""
    return engine.dialect.name == "postgresql"


def _parse(url: str | SecretStr | URL) -> URL:
    if isinstance(url, URL):
        return url
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    try:
        return make_url(raw)
    except sqlalchemy.exc.ArgumentError:
        # The raw URL may hold a password: do not echo it.
        raise ConfigurationError(
            "runtime.database_url is not a valid SQLAlchemy URL; expected e.g. sqlite:///.mamba/mamba.db "
            "or postgresql+psycopg://user:password@host/db"
        ) from None


def _sqlite_engine(url: URL, *, busy_timeout_seconds: float, echo: bool) -> Engine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(url, connect_args={"check_same_thread": False}, echo=echo)
    busy_timeout_ms = int(busy_timeout_seconds * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module (it skips it before SELECT and DDL); the
        # "begin" listener below emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            _ensure_wal(cursor, timeout=busy_timeout_seconds)
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: sqlalchemy.Connection) -> None:
        if connection.get_execution_options().get(_READ_ONLY):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _ensure_wal(cursor: sqlite3.Cursor, *, timeout: float) -> None:
    """Switch the database to WAL (a persistent setting), tolerating other processes doing the same.

    Changing the journal mode needs an exclusive lock, and SQLite answers "database is locked" at
    once instead of calling the busy handler; so wait here, up to the busy timeout. Once the file
    is in WAL mode, later connections only read the mode and never need the lock.
    """
    deadline = time.monotonic() + timeout
    while True:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            return
        try:
            # An in-memory database answers "memory" and stays so; that is fine.
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.005)
