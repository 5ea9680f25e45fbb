"""The append-only tables lose their foreign keys: ``events`` and ``state_chunks`` → ``runs``.

Why: a step's commit inserts 3-5 events and 1-2 chunks, and PostgreSQL checks each inserted row's
foreign key with a query of its own that locks the run's row again (``FOR KEY SHARE``), although
the same statement has just locked and updated that row. Those checks were about a third of the
commit statement's server time (``EXPLAIN ANALYZE``), 8% of an inline step. No row of either
table can dangle without them: every writer (a step's commit, a submit, a cancel, a resume)
writes them in a statement or transaction that has updated the run's row first.

What is lost is ``ON DELETE CASCADE``: deleting a run deletes its events and chunks only when
they are deleted first (docs/DESIGN.md, "Deleting runs"). The structural keys (steps → runs,
outbox, tool and model calls → steps: one row per step each) stay.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_KEYS = (("events", "fk_events_run_id_runs"), ("state_chunks", "fk_state_chunks_run_id_runs"))


def upgrade() -> None:
    # Batch mode: SQLite cannot drop a constraint in place; alembic rebuilds the table there.
    for table, name in _KEYS:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    runs = sa.table("runs", sa.column("id"))
    for table, name in _KEYS:
        # Rows of runs deleted since the upgrade would fail the restored key: they are gone with their run.
        child = sa.table(table, sa.column("run_id"))
        op.get_bind().execute(sa.delete(child).where(~child.c.run_id.in_(sa.select(runs.c.id))))
        with op.batch_alter_table(table) as batch:
            batch.create_foreign_key(name, "runs", ["run_id"], ["id"], ondelete="CASCADE")
