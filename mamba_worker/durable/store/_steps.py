"""Writers for ``steps``: create a step, claim it under a lease, heartbeat, commit, fail, expire.

Every state change of a step is one conditional ``UPDATE ... WHERE run_id = :run_id AND seq = :seq
AND <the status and owner it must have>``, and the caller learns from the row count (or the
returned row) whether it won. Two workers can therefore never both run, commit or fail the same
attempt of a step, whatever the broker delivers. Where the test is not a claim's, the step is
locked by primary key first and tested after (a CTE), so PostgreSQL never plans the write as a scan
of the status index; a claim keeps its test in the ``UPDATE`` (re-tested on the row a concurrent
claim left) and reads its run by primary key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, insert, or_, select, update
from sqlalchemy.sql.dml import ReturningUpdate
from sqlmodel import Session

from mamba_client.schemas import ErrorBody, RunStatus, StepStatus
from mamba_worker.durable.errors import StepNotFoundError
from mamba_worker.durable.store._sql import connection
from mamba_worker.durable.store._tables import RUNS, STEPS, StepRow
from mamba_worker.durable.store._types import utcnow

_CLAIMABLE = (StepStatus.PENDING, StepStatus.DISPATCHED)


def insert_step_txn(
    session: Session,
    *,
    run_id: str,
    seq: int,
    name: str,
    checkpoint: str | None = None,
    claimed_by: str | None = None,
    lease_seconds: float = 0.0,
    bump_last_seq: bool = True,
    now: datetime | None = None,
) -> None:
    """Insert a ``pending`` step and make it the run's newest (``runs.last_seq``).

    A plain ``INSERT``: ``(run_id, seq)`` is the primary key, so a duplicate raises
    ``IntegrityError`` and the caller's whole transaction rolls back. That is what makes a
    duplicate harmless: a second commit of the same predecessor cannot fork the run, it fails.

    Args:
        session: The caller's session; not committed here.
        run_id: The run.
        seq: The step's position, one more than its predecessor's.
        name: Step name.
        checkpoint: The state the step starts from (JSON text), kept so the run can be forked here.
        claimed_by: Insert it already claimed by this worker (attempt 1, ``running``, its lease
            starting now): a successor run inline. The insert is its claim; nobody else can hold it.
        lease_seconds: The lease of a step inserted claimed.
        bump_last_seq: Also set ``runs.last_seq`` (``False``: the caller's own run update does).
        now: The time to record (default: now).
    """
    now = now or utcnow()
    conn = connection(session)
    claim: dict[str, object] = {
        "status": StepStatus.PENDING,
        "attempt": 0,
        "lease_owner": None,
        "lease_expires_at": None,
        "started_at": None,
    }
    if claimed_by is not None:
        claim = {
            "status": StepStatus.RUNNING,
            "attempt": 1,
            "lease_owner": claimed_by,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "started_at": now,
        }
    params = {"run_id": run_id, "seq": seq, "name": name, "checkpoint": checkpoint, "now": now, **claim}
    conn.execute(_INSERT_STEP, _bound(params))
    if bump_last_seq:
        conn.execute(_BUMP_LAST_SEQ, _bound({"run_id": run_id, "seq": seq, "now": now}))


def claim_step_txn(
    session: Session,
    run_id: str,
    seq: int,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> int | None:
    """Take the step's lease and start a new attempt; its number, or ``None`` when it is not claimable.

    ``UPDATE steps SET status = 'running', lease_owner = :owner, lease_expires_at = :now + lease,
    attempt = attempt + 1 WHERE run_id AND seq AND (status IN ('pending', 'dispatched') OR
    (status = 'running' AND lease_expires_at < :now)) RETURNING attempt``.

    A duplicate delivery is harmless: the row lock (PostgreSQL) or the write lock (SQLite) orders
    concurrent claims; the first moves the step to ``running`` with a live lease and the second no
    longer matches the predicate, so it gets ``None`` and must not execute the step. A committed
    or failed step is never claimable. An expired lease is: its holder is presumed dead, and its
    late commit will fail `mark_step_committed_txn`'s owner-and-attempt predicate.
    """
    now = now or utcnow()
    params = {
        "run_id": run_id,
        "seq": seq,
        "owner": owner,
        "now": now,
        "expires": now + timedelta(seconds=lease_seconds),
    }
    attempt: int | None = connection(session).execute(_CLAIM, _bound(params)).scalar_one_or_none()
    return attempt


@dataclass(frozen=True, kw_only=True)
class StepClaim:
    """What `claim_running_step_txn` took."""

    attempt: int
    name: str


def claim_running_step_txn(
    session: Session,
    run_id: str,
    seq: int,
    *,
    owner: str,
    lease_seconds: float,
    now: datetime | None = None,
) -> StepClaim | None:
    """`claim_step_txn` for the common case, guarded by the run's status in the same statement.

    It claims only while the run is ``running`` and not asked to cancel, and it also returns the
    step's name.

    ``None`` only says that this path does not apply (the run is pending, waiting, finished or
    being cancelled, or the step is not claimable): the caller then takes the general path, which
    loads the run and the step and finds out which. The guard on the run is part of the same
    ``UPDATE``, so a claim it makes is one the general path would have made.
    """
    now = now or utcnow()
    params = {
        "run_id": run_id,
        "seq": seq,
        "owner": owner,
        "now": now,
        "expires": now + timedelta(seconds=lease_seconds),
    }
    row = connection(session).execute(_CLAIM_RUNNING, _bound(params)).one_or_none()
    return None if row is None else StepClaim(attempt=row.attempt, name=row.name)


def heartbeat_txn(
    session: Session,
    run_id: str,
    seq: int,
    *,
    owner: str,
    attempt: int,
    lease_seconds: float,
    now: datetime | None = None,
) -> bool:
    """Extend the lease to ``now + lease_seconds``; ``False`` when the caller no longer holds it.

    ``UPDATE ... WHERE run_id AND seq`` and, read from the step locked first, ``status = 'running'
    AND lease_owner = :owner AND attempt = :attempt``. Only the holder of this attempt can extend
    it, so a repeated heartbeat just moves the same deadline again, and a worker whose lease was
    taken over learns it (and should stop).
    """
    now = now or utcnow()
    params = {"run_id": run_id, "seq": seq, "owner": owner, "attempt": attempt}
    extended = connection(session).execute(
        _HEARTBEAT, _bound({**params, "expires": now + timedelta(seconds=lease_seconds)})
    )
    return extended.first() is not None


def expire_lease_txn(session: Session, run_id: str, seq: int, *, now: datetime | None = None) -> bool:
    """Put a step whose lease has expired back to ``pending``; ``False`` if its lease is live or it finished.

    ``UPDATE ... SET status = 'pending', lease_owner = NULL WHERE run_id AND seq`` and, read from
    the step locked first, ``status = 'running' AND lease_expires_at < :now``. The reconciler calls
    it before sending the step again.
    Repeating it is harmless: the second call finds the step no longer ``running`` and changes
    nothing; a holder that was merely slow loses its lease and its commit fails the owner predicate.
    The attempt counter is left alone: the next claim increments it.
    """
    params = {"run_id": run_id, "seq": seq, "now": now or utcnow()}
    return connection(session).execute(_EXPIRE_LEASE, _bound(params)).first() is not None


def mark_step_committed_txn(
    session: Session, run_id: str, seq: int, *, owner: str, attempt: int, now: datetime | None = None
) -> bool:
    """Mark the step ``committed`` and release its lease; ``False`` when the caller lost the lease.

    ``UPDATE ... WHERE run_id AND seq`` and, read from the step locked first, ``status = 'running'
    AND lease_owner = :owner AND attempt = :attempt``. The caller must roll back on ``False``:
    someone else now owns the step. A duplicate commit is harmless because the first one left the
    step ``committed``, which the test no longer matches.
    """
    params = {"run_id": run_id, "seq": seq, "owner": owner, "attempt": attempt, "now": now or utcnow()}
    return connection(session).execute(_MARK_COMMITTED, _bound(params)).first() is not None


def mark_step_failed_txn(
    session: Session,
    run_id: str,
    seq: int,
    *,
    owner: str,
    attempt: int,
    error: ErrorBody,
    traceback: str | None = None,
    will_retry: bool = False,
    now: datetime | None = None,
) -> bool:
    """Record that the caller's attempt failed; ``False`` when the caller lost the lease.

    The error and traceback are kept. With ``will_retry`` the step goes back to ``pending`` (the
    caller then re-queues its outbox row), otherwise it is ``failed`` until someone retries it.
    Guarded like `mark_step_committed_txn`, so a duplicate report changes nothing.
    """
    now = now or utcnow()
    statement = locked_step_update(
        *_HELD,
        status=StepStatus.PENDING if will_retry else StepStatus.FAILED,
        lease_owner=None,
        lease_expires_at=None,
        error=error,
        traceback=traceback,
        finished_at=None if will_retry else now,
    )
    params = _bound({"run_id": run_id, "seq": seq, "owner": owner, "attempt": attempt})
    return connection(session).execute(statement, params).first() is not None


def abort_step_txn(session: Session, run_id: str, seq: int, *, error: ErrorBody, now: datetime | None = None) -> bool:
    """Fail a step that is not finished, whoever holds it (poison message, cancel); ``False`` if it finished.

    ``UPDATE ... WHERE run_id AND seq AND status NOT IN ('committed', 'failed')``. A live holder's
    later commit then fails its owner predicate. Repeating it is harmless: the step is ``failed``.
    """
    now = now or utcnow()
    statement = (
        update(STEPS)
        .where(
            STEPS.c.run_id == run_id,
            STEPS.c.seq == seq,
            STEPS.c.status.not_in([StepStatus.COMMITTED, StepStatus.FAILED]),
        )
        .values(status=StepStatus.FAILED, lease_owner=None, lease_expires_at=None, error=error, finished_at=now)
    )
    return connection(session).execute(statement).rowcount == 1


def reset_step_txn(session: Session, run_id: str, seq: int) -> bool:
    """Make a ``failed`` step ``pending`` again (``retry``/``resume``); ``False`` if it was not failed.

    The error and attempt count stay for the record. Repeating it is harmless: the second call finds
    the step ``pending`` and changes nothing.
    """
    return connection(session).execute(_RESET, _bound({"run_id": run_id, "seq": seq})).first() is not None


def load_step_txn(session: Session, run_id: str, seq: int) -> StepRow:
    """The step's row (checkpoint included), as of now in this transaction.

    Raises:
        StepNotFoundError: The run has no such step.
    """
    row = session.get(StepRow, (run_id, seq), populate_existing=True)
    if row is None:
        raise StepNotFoundError(f"run {run_id!r} has no step {seq}", run_id=run_id, seq=seq)
    return row


def _bound(params: dict[str, object]) -> dict[str, object]:
    """Parameters for the prebuilt statements (their names may not be column names: ``b_`` prefix)."""
    return {f"b_{name}": value for name, value in params.items()}


# The hot path's statements, built once: building a statement and its cache key on every call
# cost more CPU than the database round trip it makes (bench/RESULTS.md, "Where a step's time goes").
_INSERT_STEP = insert(STEPS).values(
    run_id=bindparam("b_run_id"),
    seq=bindparam("b_seq"),
    name=bindparam("b_name"),
    status=bindparam("b_status"),
    attempt=bindparam("b_attempt"),
    lease_owner=bindparam("b_lease_owner"),
    lease_expires_at=bindparam("b_lease_expires_at"),
    started_at=bindparam("b_started_at"),
    checkpoint=bindparam("b_checkpoint"),
    input_tokens=0,
    output_tokens=0,
    cache_read_tokens=0,
    cache_write_tokens=0,
    requests=0,
    cost_usd=0.0,
    created_at=bindparam("b_now"),
)
_BUMP_LAST_SEQ = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_run_id"), RUNS.c.last_seq < bindparam("b_seq"))
    .values(last_seq=bindparam("b_seq"), updated_at=bindparam("b_now"))
)
_CLAIM_UPDATE = (
    update(STEPS)
    .where(
        STEPS.c.run_id == bindparam("b_run_id"),
        STEPS.c.seq == bindparam("b_seq"),
        or_(
            STEPS.c.status.in_(_CLAIMABLE),
            and_(STEPS.c.status == StepStatus.RUNNING, STEPS.c.lease_expires_at < bindparam("b_now")),
        ),
    )
    .values(
        status=StepStatus.RUNNING,
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_expires"),
        attempt=STEPS.c.attempt + 1,
        started_at=bindparam("b_now"),
    )
)
_CLAIM = _CLAIM_UPDATE.returning(STEPS.c.attempt)
# The run is found by primary key, then tested (as `_pg_sql`'s claims do): correlated to the step,
# the test made PostgreSQL plan a scan of the runs' status index. MATERIALIZED: inlined into the
# EXISTS, the status test would be the scan's again. The step's own test stays in the UPDATE's
# WHERE: a claim that waited on a concurrent one re-tests the row that claim left.
_RUN_STATUS = (
    select(RUNS.c.status, RUNS.c.cancel_requested)
    .where(RUNS.c.id == bindparam("b_run_id"))
    .cte("run_status")
    .prefix_with("MATERIALIZED", dialect="postgresql")
)
_CLAIM_RUNNING = _CLAIM_UPDATE.where(
    exists().where(_RUN_STATUS.c.status == RunStatus.RUNNING, _RUN_STATUS.c.cancel_requested.is_(False))
).returning(STEPS.c.attempt, STEPS.c.name)
# A heartbeat, a commit, a failure, a retry or a lease's expiry finds its step by primary key and
# locks it, then tests it: with the test in the scan's own WHERE, PostgreSQL's planner took the
# status index whenever its statistics made the status look rare, and walked every step in it (8 ms
# a heartbeat with 15,000 running). The lock is taken before the test, so a writer that waited on
# it tests the row the other writer left.
LOCKED_STEP = (
    select(STEPS.c.status, STEPS.c.lease_owner, STEPS.c.attempt, STEPS.c.lease_expires_at)
    .where(STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.seq == bindparam("b_seq"))
    .with_for_update()
    .cte("locked_step")
)
"""The step ``(b_run_id, b_seq)``, locked: what `locked_step_update` tests."""


def locked_step_update(*tests: ColumnElement[bool], **values: Any) -> ReturningUpdate[tuple[int]]:
    """``UPDATE steps SET values`` for the step ``(b_run_id, b_seq)``, made only if ``tests`` hold on it locked.

    The tests read `LOCKED_STEP`. It returns the step's ``seq`` when made (not ``rowcount``:
    Python's sqlite3 counts no rows for a statement that starts with ``WITH``).
    """
    return (
        update(STEPS)
        .where(STEPS.c.run_id == bindparam("b_run_id"), STEPS.c.seq == bindparam("b_seq"), exists().where(*tests))
        .values(**values)
        .returning(STEPS.c.seq)
    )


_HELD = (
    LOCKED_STEP.c.status == StepStatus.RUNNING,
    LOCKED_STEP.c.lease_owner == bindparam("b_owner"),
    LOCKED_STEP.c.attempt == bindparam("b_attempt"),
)
_HEARTBEAT = locked_step_update(*_HELD, lease_expires_at=bindparam("b_expires"))
_MARK_COMMITTED = locked_step_update(
    *_HELD, status=StepStatus.COMMITTED, lease_owner=None, lease_expires_at=None, finished_at=bindparam("b_now")
)
_RESET = locked_step_update(LOCKED_STEP.c.status == StepStatus.FAILED, status=StepStatus.PENDING, finished_at=None)
_EXPIRE_LEASE = locked_step_update(
    LOCKED_STEP.c.status == StepStatus.RUNNING,
    LOCKED_STEP.c.lease_expires_at < bindparam("b_now"),
    status=StepStatus.PENDING,
    lease_owner=None,
    lease_expires_at=None,
)
