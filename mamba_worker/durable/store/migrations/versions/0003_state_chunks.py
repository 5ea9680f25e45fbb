"""State chunks: ``state_chunks``, the journal lists of a run's state, a chunk per commit.

Runs stored before this revision keep their whole state in ``runs.state`` and have no chunks; the
first commit after the upgrade rewrites each journal list as one chunk (the runtime sees that no
chunk exists). Plain SQLAlchemy types only, like 0001.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "state_chunks",
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("field", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_state_chunks_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "field", "seq", name=op.f("pk_state_chunks")),
    )


def downgrade() -> None:
    # The chunks hold lists runs.state no longer has: fold them back into each run's state
    # document (what revision 0002's code reads) before dropping them.
    bind = op.get_bind()
    chunks = sa.table("state_chunks", sa.column("run_id"), sa.column("field"), sa.column("seq"), sa.column("data"))
    runs = sa.table("runs", sa.column("id"), sa.column("state"))
    lists: dict[str, dict[str, list[str]]] = {}
    ordered = sa.select(chunks.c.run_id, chunks.c.field, chunks.c.data).order_by(
        chunks.c.run_id, chunks.c.field, chunks.c.seq
    )
    for run_id, field, data in bind.execute(ordered):
        items = lists.setdefault(run_id, {}).setdefault(field, [])
        if data:
            items.append(data)
    for run_id, fields in lists.items():
        head = bind.execute(sa.select(runs.c.state).where(runs.c.id == run_id)).scalar_one()
        document = json.loads(head or "{}")
        for field, items in fields.items():
            document[field] = json.loads(f"[{','.join(items)}]")
        bind.execute(sa.update(runs).where(runs.c.id == run_id).values(state=json.dumps(document)))
    op.drop_table("state_chunks")
