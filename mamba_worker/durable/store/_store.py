"""`RunStore`: the read queries, each in its own short read-only transaction (writes: `StepWriter`, `*_txn`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Engine, and_, or_, select
from sqlmodel import Session
from sqlmodel import select as orm_select

from mamba_client.schemas import Event, EventAdapter, Run, RunPage, RunStatus, StepRecord, StepStatus
from mamba_worker.durable.store._chunks import StoredChunks, joined_state, load_state_chunks_txn
from mamba_worker.durable.store._convert import STEP_COLUMNS, decode_cursor, encode_cursor, run_select, to_run, to_step
from mamba_worker.durable.store._engine import read_only
from mamba_worker.durable.store._runs import load_run_txn, load_run_view_txn
from mamba_worker.durable.store._steps import load_step_txn
from mamba_worker.durable.store._tables import (
    EVENTS,
    MODEL_CALLS,
    OUTBOX,
    RUNS,
    STEPS,
    TOOL_CALLS,
    ModelCallRow,
    OutboxRow,
    RunRow,
    StepRow,
    ToolCallRow,
)
from mamba_worker.durable.store._types import utcnow
from mamba_worker.durable.store._writer import StepWriter

_TERMINAL = [status for status in RunStatus if status.is_terminal]


class RunStore(StepWriter):
    """Read access to the state store, plus sessions for the ``*_txn`` writers.

    Reads that serve the API return `mamba_client.schemas` models; reads that serve the runtime
    return table rows (detached, safe to use after the session closed).

    Example:
        >>> store = RunStore(create_engine("sqlite:///.mamba/mamba.db"))  # doctest: +SKIP
        >>> with store.session() as session, session.begin():  # doctest: +SKIP
        ...     claim_step_txn(session, run_id, 1, owner="worker-1", lease_seconds=60)
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._read_engine = read_only(engine)

    @property
    def engine(self) -> Engine:
        """The engine writers use."""
        return self._engine

    @contextmanager
    def _read(self) -> Iterator[Session]:
        self.settle()  # this thread reads its own model-call rows
        with Session(self._read_engine, expire_on_commit=False) as session, session.begin():
            yield session

    # -- runs ---------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Run:
        """The run as the API shows it (without its state document).

        Raises:
            RunNotFoundError: No run has this id.
        """
        with self._read() as session:
            return load_run_view_txn(session, run_id)

    def get_run_row(self, run_id: str) -> RunRow:
        """The run's full row, state document included (for the runtime).

        Raises:
            RunNotFoundError: No run has this id.
        """
        with self._read() as session:
            return load_run_txn(session, run_id)

    def get_state(self, run_id: str) -> str | None:
        """The run's whole state document as of its last commit (``runs.state`` joined with its chunks).

        Raises:
            RunNotFoundError: No run has this id.
        """
        with self._read() as session:
            head = load_run_txn(session, run_id).state
            chunks = load_state_chunks_txn(session, run_id)
        return None if head is None else joined_state(head, chunks)

    def get_state_chunks(self, run_id: str) -> StoredChunks:
        """The run's state chunks (its journal lists) as of its last commit; empty for an unknown run."""
        with self._read() as session:
            return load_state_chunks_txn(session, run_id)

    def get_run_by_idempotency_key(self, idempotency_key: str) -> Run | None:
        """The run submitted with this idempotency key, if any."""
        with self._read() as session:
            row = session.connection().execute(run_select().where(RUNS.c.idempotency_key == idempotency_key)).first()
        return None if row is None else to_run(row)

    def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> RunPage:
        """Runs, newest first, one page at a time.

        Keyset pagination on ``(created_at, id)``: pages stay consistent while runs are added.

        Raises:
            InvalidCursorError: ``cursor`` is not a ``next_cursor`` this method returned.
        """
        statement = run_select().order_by(RUNS.c.created_at.desc(), RUNS.c.id.desc()).limit(limit + 1)
        if status is not None:
            statement = statement.where(RUNS.c.status == status)
        if workflow is not None:
            statement = statement.where(RUNS.c.workflow == workflow)
        if cursor is not None:
            created_at, run_id = decode_cursor(cursor)
            statement = statement.where(
                or_(RUNS.c.created_at < created_at, and_(RUNS.c.created_at == created_at, RUNS.c.id < run_id))
            )
        with self._read() as session:
            rows = session.connection().execute(statement).all()
        items = [to_run(row) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1]) if len(rows) > limit else None
        return RunPage(items=items, next_cursor=next_cursor)

    # -- steps --------------------------------------------------------------------------------

    def get_steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in order (empty for an unknown run)."""
        statement = select(*STEP_COLUMNS).where(STEPS.c.run_id == run_id).order_by(STEPS.c.seq)
        with self._read() as session:
            rows = session.connection().execute(statement).all()
        return [to_step(row) for row in rows]

    def get_step_row(self, run_id: str, seq: int) -> StepRow:
        """One step's full row, checkpoint included.

        Raises:
            StepNotFoundError: The run has no such step.
        """
        with self._read() as session:
            return load_step_txn(session, run_id, seq)

    # -- events -------------------------------------------------------------------------------

    def get_events(self, run_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order (a client's replay from its last event)."""
        statement = (
            select(EVENTS.c.payload)
            .where(EVENTS.c.run_id == run_id, EVENTS.c.seq > after_seq)
            .order_by(EVENTS.c.seq)
            .limit(limit)
        )
        with self._read() as session:
            payloads = session.connection().execute(statement).scalars().all()
        return [EventAdapter.validate_json(payload) for payload in payloads]

    # -- ledgers ------------------------------------------------------------------------------

    def get_tool_calls(self, run_id: str, seq: int) -> list[ToolCallRow]:
        """The step's recorded tool calls, in the order they started."""
        statement = (
            orm_select(ToolCallRow)
            .where(TOOL_CALLS.c.run_id == run_id, TOOL_CALLS.c.seq == seq)
            .order_by(TOOL_CALLS.c.started_at, TOOL_CALLS.c.tool_call_id)
        )
        with self._read() as session:
            return list(session.exec(statement).all())

    def get_model_calls(self, run_id: str, seq: int) -> list[ModelCallRow]:
        """The step's recorded model calls, by attempt and position (superseded ones included)."""
        statement = (
            orm_select(ModelCallRow)
            .where(MODEL_CALLS.c.run_id == run_id, MODEL_CALLS.c.seq == seq)
            .order_by(MODEL_CALLS.c.attempt, MODEL_CALLS.c.call_index)
        )
        with self._read() as session:
            return list(session.exec(statement).all())

    # -- reconciler ---------------------------------------------------------------------------

    def get_outbox_pending(
        self, *, older_than: datetime, now: datetime | None = None, limit: int = 100
    ) -> list[OutboxRow]:
        """Messages never sent: queued before ``older_than``, due by ``now``, of runs still going.

        ``older_than`` leaves the committing worker time to send its own message first.
        """
        now = now or utcnow()
        statement = (
            orm_select(OutboxRow)
            .join(RUNS, RUNS.c.id == OUTBOX.c.run_id)
            .where(
                OUTBOX.c.dispatched_at.is_(None),
                OUTBOX.c.queued_at < older_than,
                or_(OUTBOX.c.not_before.is_(None), OUTBOX.c.not_before <= now),
                RUNS.c.status.not_in(_TERMINAL),
            )
            .order_by(OUTBOX.c.queued_at)
            .limit(limit)
        )
        with self._read() as session:
            return list(session.exec(statement).all())

    def get_stalled_dispatches(self, *, dispatched_before: datetime, limit: int = 100) -> list[OutboxRow]:
        """Messages sent before ``dispatched_before`` whose step no worker has claimed (the broker lost them).

        Starts from the few steps that are ``pending`` or ``dispatched`` (the status index), not
        from the outbox, which keeps a row for every step ever run.
        """
        statement = (
            orm_select(OutboxRow)
            .join(STEPS, and_(STEPS.c.run_id == OUTBOX.c.run_id, STEPS.c.seq == OUTBOX.c.seq))
            .join(RUNS, RUNS.c.id == OUTBOX.c.run_id)
            .where(
                STEPS.c.status.in_([StepStatus.PENDING, StepStatus.DISPATCHED]),
                OUTBOX.c.dispatched_at < dispatched_before,
                RUNS.c.status.not_in(_TERMINAL),
            )
            .order_by(OUTBOX.c.dispatched_at)
            .limit(limit)
        )
        with self._read() as session:
            return list(session.exec(statement).all())

    def get_expired_leases(self, *, now: datetime | None = None, limit: int = 100) -> list[StepRow]:
        """Running steps whose lease expired before ``now`` (their worker is presumed dead)."""
        statement = (
            orm_select(StepRow)
            .where(STEPS.c.status == StepStatus.RUNNING, STEPS.c.lease_expires_at < (now or utcnow()))
            .order_by(STEPS.c.lease_expires_at)
            .limit(limit)
        )
        with self._read() as session:
            return list(session.exec(statement).all())
