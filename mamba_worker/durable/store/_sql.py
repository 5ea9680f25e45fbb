"""Small SQL helpers shared by the writers: the dialect-specific ``INSERT ... ON CONFLICT DO NOTHING``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session


def connection(session: Session) -> Connection:
    """The connection of the session's current transaction (Core statements run on it)."""
    return session.connection()


def insert_ignore(
    session: Session, table: Table, values: Mapping[str, Any], *, conflict: Sequence[str]
) -> CursorResult[Any]:
    """``INSERT ... ON CONFLICT (conflict) DO NOTHING``; ``rowcount`` is 1 when a row was inserted, else 0.

    Both SQLite (3.24+) and PostgreSQL spell it the same way, but SQLAlchemy builds it with each
    dialect's own ``insert`` construct.
    """
    conn = connection(session)
    # SQLAlchemy 2.x only keeps an INSERT's row count when asked to.
    options = {"preserve_rowcount": True}
    if conn.dialect.name == "postgresql":
        pg_statement = postgresql.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
        return conn.execute(pg_statement, execution_options=options)
    lite_statement = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=list(conflict))
    return conn.execute(lite_statement, execution_options=options)
