"""Writers for ``outbox``: the doorbell of each step.

The step's commit inserts its successor's outbox row in the same transaction; after the commit the
worker sends the task and stamps ``dispatched_at``. If it dies in between, the row stays
undispatched and the reconciler sends it (`RunStore.get_outbox_pending`). If the broker loses a
sent message, the step stays ``dispatched`` and the reconciler re-queues it
(`RunStore.get_stalled_dispatches`, `requeue_outbox_txn`). A message sent twice is harmless
because only one worker can claim the step (`claim_step_txn`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, exists, select, update
from sqlmodel import Session

from mamba_client.schemas import StepStatus
from mamba_worker.durable.store._sql import connection, insert_ignore
from mamba_worker.durable.store._steps import LOCKED_STEP, locked_step_update
from mamba_worker.durable.store._tables import OUTBOX
from mamba_worker.durable.store._types import utcnow


def insert_outbox_txn(
    session: Session,
    *,
    run_id: str,
    seq: int,
    task_name: str,
    queue: str,
    priority: int | None = None,
    not_before: datetime | None = None,
    dispatching_as: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Queue the step's task message; ``False`` when the step already has an outbox row.

    ``INSERT ... ON CONFLICT (run_id, seq) DO NOTHING``: a step has one doorbell, and a duplicate
    insert (a repeated commit path) leaves the existing row, and its dispatch state, as it was. To
    ring again, use `requeue_outbox_txn`.

    Args:
        session: The caller's session; not committed here.
        run_id: The run.
        seq: The step the message starts (its ``steps`` row must exist).
        task_name: Celery task name (`mamba_worker.durable._names.step_task_name`).
        queue: Celery queue.
        priority: Message priority on Mamba's 0-9 scale (the run's); ``None``: none. Kept for re-sends.
        not_before: Do not send before this time (retry backoff).
        dispatching_as: The caller sends the message right after its commit, with this task id:
            the row is stamped dispatched now, saving a transaction per step. If the sender dies
            before sending, the row looks dispatched but the step is never claimed, and the
            reconciler re-sends it after ``redispatch_after`` (`RunStore.get_stalled_dispatches`).
        now: The time to record (default: now).
    """
    now = now or utcnow()
    values = {
        "run_id": run_id,
        "seq": seq,
        "task_name": task_name,
        "queue": queue,
        "priority": priority,
        "attempt": 0 if dispatching_as is None else 1,
        "task_id": dispatching_as,
        "created_at": now,
        "queued_at": now,
        "not_before": not_before,
        "dispatched_at": None if dispatching_as is None else now,
    }
    return insert_ignore(session, OUTBOX, values, conflict=["run_id", "seq"]).rowcount == 1


def mark_dispatched_txn(session: Session, run_id: str, seq: int, *, task_id: str, now: datetime | None = None) -> bool:
    """Record that the message was handed to the broker; ``False`` when someone recorded it first.

    ``UPDATE outbox SET dispatched_at = :now, task_id = :task_id, attempt = attempt + 1 WHERE
    run_id AND seq`` and, read from the row locked first, ``dispatched_at IS NULL``; the step moves
    from ``pending`` to ``dispatched`` (unless a worker already claimed it, which is fine). When
    the worker and the reconciler both send, both messages exist anyway, and only one claim can
    win; ``False`` here only tells the second sender that it was second.
    """
    now = now or utcnow()
    conn = connection(session)
    keys = {"b_run_id": run_id, "b_seq": seq}
    stamp = {"b_now": now, "b_task_id": task_id}
    stamped = conn.execute(_STAMP, keys | stamp).first() is not None
    if stamped:
        conn.execute(_DISPATCH_STEP, keys)
    return stamped


# Both rows are found by primary key and locked, then tested: with the test in the scan's own
# WHERE, PostgreSQL's planner took the pending-outbox index (or the steps' status index) whenever
# its statistics made undispatched rows look rare, and walked every row of a backlog. Locked
# first, a second sender that waited on the lock tests the row the first one left.
_LOCKED_OUTBOX = (
    select(OUTBOX.c.dispatched_at)
    .where(OUTBOX.c.run_id == bindparam("b_run_id"), OUTBOX.c.seq == bindparam("b_seq"))
    .with_for_update()
    .cte("locked_outbox")
)
_STAMP = (
    update(OUTBOX)
    .where(
        OUTBOX.c.run_id == bindparam("b_run_id"),
        OUTBOX.c.seq == bindparam("b_seq"),
        exists().where(_LOCKED_OUTBOX.c.dispatched_at.is_(None)),
    )
    .values(dispatched_at=bindparam("b_now"), task_id=bindparam("b_task_id"), attempt=OUTBOX.c.attempt + 1)
    # Not ``rowcount``: Python's sqlite3 counts no rows for a statement that starts with ``WITH``.
    .returning(OUTBOX.c.seq)
)
_DISPATCH_STEP = locked_step_update(LOCKED_STEP.c.status == StepStatus.PENDING, status=StepStatus.DISPATCHED)


def requeue_outbox_txn(
    session: Session, run_id: str, seq: int, *, not_before: datetime | None = None, now: datetime | None = None
) -> bool:
    """Mark the step's message as due again (lost message, expired lease, retry); ``False`` if no row.

    ``UPDATE outbox SET dispatched_at = NULL, queued_at = :now, not_before = :not_before``. Doing
    it twice is harmless: the row is simply due, once, until `mark_dispatched_txn` stamps it.
    """
    now = now or utcnow()
    statement = (
        update(OUTBOX)
        .where(OUTBOX.c.run_id == run_id, OUTBOX.c.seq == seq)
        .values(dispatched_at=None, queued_at=now, not_before=not_before)
    )
    return connection(session).execute(statement).rowcount == 1
