"""Priorities: a nullable ``priority`` on ``runs`` and ``outbox``.

Existing runs and outbox rows keep ``NULL`` (no priority, treated as the least urgent), which is how
they were sent before this revision. Plain SQLAlchemy types only, like 0001.

Revision ID: 0002
Revises: 0001
Create Date: 2026-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("runs", "outbox")


def upgrade() -> None:
    # ADD COLUMN of a nullable column needs no table rebuild, on SQLite either.
    for table in _TABLES:
        op.add_column(table, sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Batch mode: SQLite before 3.35 cannot DROP COLUMN; alembic rebuilds the table there.
    for table in reversed(_TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("priority")
