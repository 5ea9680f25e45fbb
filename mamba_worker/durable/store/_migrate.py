"""`upgrade_database`: bring the store's schema to the newest alembic revision.

The runtime calls it on startup (worker, gateway, embedded run). It is idempotent, and safe when
several processes start at once: on PostgreSQL the upgrade runs under a transaction-scoped
advisory lock, so one process migrates while the others wait and then find nothing to do; on
SQLite the upgrade's transaction begins with ``BEGIN IMMEDIATE`` (see `create_engine`), which
takes the database's write lock and serialises them the same way.

The alembic environment lives in ``migrations/`` inside the package; no ``alembic.ini`` is needed
at runtime because `alembic_config` builds the configuration in code. The version table is
``mamba_alembic_version``, so an application's own alembic history in the same database is left
alone.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from pydantic import SecretStr
from sqlalchemy import Connection, Engine, text

from mamba_worker.durable.errors import MigrationError
from mamba_worker.durable.store._engine import create_engine, is_postgresql

VERSION_TABLE = "mamba_alembic_version"
"""Alembic's version table for the store's migrations."""

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
"""The alembic script directory."""

# An arbitrary constant; pg_advisory_xact_lock takes a bigint. Derived from b"mamba-mg".
_ADVISORY_LOCK_KEY = int.from_bytes(b"mamba-mg", "big") & 0x7FFF_FFFF_FFFF_FFFF


def alembic_config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    """An alembic `Config` for the store's migrations, built in code.

    Args:
        connection: Run the migrations on this connection (inside its transaction).
        url: Or connect to this URL (for alembic commands run by hand, such as ``revision --autogenerate``).
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation treats "%" specially; URL-encoded passwords contain it.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade_database(target: Engine | str | SecretStr, *, revision: str = "head") -> None:
    """Create or upgrade the store's tables; a no-op when they are current.

    Args:
        target: An engine from `create_engine`, or a database URL (an engine is made and disposed).
        revision: The alembic revision to upgrade to.
    """
    engine = target if isinstance(target, Engine) else create_engine(target)
    try:
        with engine.connect() as connection:
            if is_postgresql(engine):
                _upgrade_postgresql(connection, revision)
            else:
                _upgrade_sqlite(connection, revision)
    finally:
        if engine is not target:
            engine.dispose()


def _upgrade_postgresql(connection: Connection, revision: str) -> None:
    with connection.begin():
        # Held until this transaction ends: concurrent upgraders run one after another.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
        command.upgrade(alembic_config(connection=connection), revision)


def _upgrade_sqlite(connection: Connection, revision: str) -> None:
    # Alembic's batch mode recreates a table to alter it; with foreign keys on, dropping the old
    # table would cascade-delete its children's rows. The pragma is ignored inside a transaction,
    # so it goes straight to the driver before BEGIN; integrity is checked before the commit.
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():  # BEGIN IMMEDIATE: concurrent upgraders run one after another
            command.upgrade(alembic_config(connection=connection), revision)
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if violations:
                raise MigrationError(
                    f"upgrading the store to {revision!r} broke foreign keys ({violations[:5]!r}); "
                    "the upgrade was rolled back: fix the migration"
                )
    finally:
        driver.execute("PRAGMA foreign_keys = ON")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` before the first upgrade."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
