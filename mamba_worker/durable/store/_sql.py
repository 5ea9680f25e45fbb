"""Small SQL helpers shared by the writers: the dialect-specific ``INSERT ... ON CONFLICT DO NOTHING``."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, CursorResult, Executable, Table
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
    dialect's own ``insert`` construct. The statement is built once per dialect, table and
    conflict target, and the values travel as parameters (building it per call was a large part
    of a step's CPU).
    """
    conn = connection(session)
    # SQLAlchemy 2.x only keeps an INSERT's row count when asked to.
    return conn.execute(
        _insert_ignore(conn.dialect.name, table, tuple(conflict)),
        dict(values),
        execution_options={"preserve_rowcount": True},
    )


@functools.cache
def _insert_ignore(dialect: str, table: Table, conflict: tuple[str, ...]) -> Executable:
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(conflict))
