"""`StepWriter`: the write transactions every step makes, on the fastest path the database has.

A step's claim, its model calls' and tool calls' ledger rows, and its commit run on every step
of every run, each in a transaction of its own. On PostgreSQL with psycopg they go through
`PgPipeline` (one or two round trips each); elsewhere through the portable ``*_txn`` writers on a
session. Both paths write the same rows under the same guards. Everything else writes through
`RunStore.session` and the ``*_txn`` writers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlmodel import Session

from mamba_client.schemas import Event, StepStarted, SubmitRun
from mamba_worker.durable.errors import RunNotFoundError
from mamba_worker.durable.store._chunks import read_state_chunks_txn
from mamba_worker.durable.store._engine import is_postgresql
from mamba_worker.durable.store._events import insert_numbered_events_txn
from mamba_worker.durable.store._ledger import (
    record_model_call_txn,
    record_tool_call_finished_txn,
    record_tool_call_started_txn,
    restart_tool_call_txn,
)
from mamba_worker.durable.store._runs import (
    load_run_by_idempotency_key_txn,
    load_run_view_txn,
    reserve_events_txn,
)
from mamba_worker.durable.store._step_write import (
    ModelCallRecord,
    PendingStepWrite,
    RunningClaim,
    SettledStepWrite,
    StepWrite,
    StepWritten,
    ToolCallRecord,
    ToolCallResult,
    ToolCallStart,
    WriteRefused,
    write_step_txn,
)
from mamba_worker.durable.store._steps import StepClaim, claim_running_step_txn
from mamba_worker.durable.store._submit import (
    NewRun,
    SubmittedRun,
    insert_submitted_run_txn,
    submitted_run_view,
)
from mamba_worker.durable.store._tables import RunRow
from mamba_worker.durable.store._types import utcnow

if TYPE_CHECKING:
    from mamba_worker.durable.store._pg_pipeline import PgPipeline


class StepWriter:
    """The per-step write transactions of one engine (`RunStore` is one).

    Args:
        engine: The state store's engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._pipeline: PgPipeline | None = None
        if is_postgresql(engine) and engine.dialect.driver == "psycopg":
            # Imported here: psycopg is the ``postgres`` extra; a SQLite-only install has none.
            from mamba_worker.durable.store._pg_pipeline import PgPipeline

            self._pipeline = PgPipeline(engine)

    def close(self) -> None:
        """Close the connections the per-step writes hold (each thread keeps one on PostgreSQL)."""
        if self._pipeline is not None:
            self._pipeline.close()

    def session(self) -> Session:
        """A new session for writers; the caller opens the transaction (``with session.begin():``).

        Objects stay readable after the commit (``expire_on_commit=False``). A model-call row this
        thread sent without waiting is committed first (`settle`).
        """
        self.settle()
        return Session(self._engine, expire_on_commit=False)

    def settle(self) -> None:
        """Wait for this thread's writes sent without waiting (a model-call row, a step commit); raise their error.

        Every write and read of the store does it first, so a thread always sees its own rows,
        and a step's commit always comes after its calls' rows (the run's totals include them).
        """
        if self._pipeline is not None:
            self._pipeline.settle()

    @property
    def pipelined(self) -> bool:
        """Whether the hot-path writes go through `PgPipeline` (PostgreSQL with psycopg)."""
        return self._pipeline is not None

    def insert_submitted_run(self, submit: SubmitRun, new: NewRun, *, now: datetime | None = None) -> SubmittedRun:
        """A submit's rows (`insert_submitted_run_txn`) in one transaction, and the run as the API shows it.

        With an idempotency key another run may already hold, nothing is written and the run
        returned is that one. The new run is not read back: its view is what was inserted.
        """
        now = now or utcnow()
        view = submitted_run_view(submit, new, now=now)
        if self._pipeline is not None and submit.idempotency_key is None:
            # Imported here, as `PgPipeline` is: psycopg is the ``postgres`` extra.
            from mamba_worker.durable.store._pg_submit import SUBMIT_RUN, submit_params

            params, events = submit_params(submit, new, dialect=self._engine.dialect, now=now)
            self._pipeline.execute_once(SUBMIT_RUN, params)
            return SubmittedRun(run=view, events=events)
        with self.session() as session, session.begin():
            written = insert_submitted_run_txn(session, submit, new, now=now)
            if written is not None:
                return SubmittedRun(run=view, events=written)
            # Another submit with this key won (on PostgreSQL the insert waited for its commit).
            winner = load_run_by_idempotency_key_txn(session, submit.idempotency_key or "")
            assert winner is not None
            return SubmittedRun(run=load_run_view_txn(session, winner.id), events=None)

    def write_step(self, write: StepWrite) -> StepWritten | WriteRefused:
        """Commit a step's rows (`StepWrite`) in one transaction; nothing is written on `WriteRefused`."""
        if self._pipeline is not None:
            return self._pipeline.write_step(write)
        try:
            with self.session() as session, session.begin():
                for done in write.tool_results:
                    _finish_txn(session, done, now=write.now)
                written = write_step_txn(session, write)
                if isinstance(written, WriteRefused):
                    raise _Refused(written)  # rolls the transaction back
        except _Refused as refused:
            return refused.reason
        return written

    def send_step(self, write: StepWrite) -> PendingStepWrite:
        """`write_step`, with its outcome read later (`PendingStepWrite.confirm`) where the store allows.

        On PostgreSQL with psycopg a commit that is one statement is sent without waiting: the
        server commits it whatever happens to this process, and the caller runs on meanwhile. It
        must confirm the write before this thread's next commit. Elsewhere it is written now.
        """
        if self._pipeline is not None:
            return self._pipeline.send_step(write)
        return SettledStepWrite(self.write_step(write))

    def record_tool_results(self, results: Sequence[ToolCallResult], *, now: datetime | None = None) -> None:
        """`record_tool_call_finished` for each of ``results``."""
        for done in results:
            self.record_tool_call_finished(done.call, result=done.result, start=done.start, now=now)

    def claim_running_step(
        self,
        *,
        run_id: str,
        seq: int,
        owner: str,
        lease_seconds: float,
        started: Callable[[RunRow, StepClaim], Event | None],
        fresh: StepStarted | None = None,
        after_seq: int | None = None,
        now: datetime | None = None,
    ) -> RunningClaim | None:
        """Claim a running run's step, read the run and record ``started``'s event, in one transaction.

        The common case of a claim (`claim_running_step_txn`, then `reserve_events_txn`).
        ``started`` builds the claim's event from the run and the claim, or returns ``None`` to
        refuse it. ``None`` means nothing was written: the run is not running, the step is not
        claimable, or ``started`` refused; the caller's general path finds out which.

        ``fresh``: the event of a first attempt (``seq`` and ``step`` to be filled in), which
        ``started`` would return for any run at attempt 1. On PostgreSQL a step never claimed is
        then claimed with its event in one statement, without calling ``started``; a run's first
        step is claimed there too, from the run still ``pending``, which the statement starts
        (``run.started`` first, as the general path writes it).

        ``after_seq``: the caller holds the state's journal lists as of that step's commit; only the
        chunks written since are read (`ChunkRead`).
        """
        now = now or utcnow()
        if self._pipeline is not None:
            return self._pipeline.claim_running_step(
                run_id=run_id,
                seq=seq,
                owner=owner,
                lease_seconds=lease_seconds,
                now=now,
                started=started,
                fresh=fresh,
                after_seq=after_seq,
            )
        try:
            with self.session() as session, session.begin():
                claim = claim_running_step_txn(session, run_id, seq, owner=owner, lease_seconds=lease_seconds, now=now)
                if claim is None:
                    return None
                reserved = reserve_events_txn(session, run_id, events=1)
                if reserved is None:  # cannot happen: the claim's guard saw the run in this transaction
                    raise RunNotFoundError(f"no run with id {run_id!r}", run_id=run_id)
                run, first = reserved
                event = started(run, claim)
                if event is None:
                    raise _Refused(WriteRefused.REFUSED)  # rolls the claim back
                numbered = event.model_copy(update={"seq": first})
                payload = numbered.model_dump_json()
                insert_numbered_events_txn(session, [numbered], [payload])
                chunks = read_state_chunks_txn(session, run_id, after_seq=after_seq)
        except _Refused:
            return None
        return RunningClaim(run=run, chunks=chunks, claim=claim, events=[numbered], payloads=[payload])

    def record_model_call(self, record: ModelCallRecord) -> None:
        """`record_model_call_txn` in a transaction of its own, committed whatever happens to this process.

        On PostgreSQL it is sent without waiting for the reply (`PgPipeline.record_model_call`):
        the next write or read of this thread waits for it first, and raises its error if it failed.
        """
        if self._pipeline is not None:
            self._pipeline.record_model_call(record)
            return
        with self.session() as session, session.begin():
            record_model_call_txn(
                session,
                run_id=record.run_id,
                seq=record.seq,
                attempt=record.attempt,
                call_index=record.call_index,
                usage=record.usage,
                model_name=record.model_name,
                response=record.response,
                now=record.now,
            )

    def record_tool_call_started(
        self, call: ToolCallRecord, *, start: ToolCallStart, now: datetime | None = None
    ) -> None:
        """Record that ``call`` is about to run, in a transaction of its own (durable before it runs).

        ``start``: ``"insert"`` a new row (`record_tool_call_started_txn`), ``"restart"`` a later
        attempt's takeover of an unfinished one (`restart_tool_call_txn`).
        """
        now = now or utcnow()
        if self._pipeline is not None:
            self._pipeline.record_tool_call_started(call, start=start, now=now)
            return
        with self.session() as session, session.begin():
            _start_txn(session, call, start, now=now)

    def record_tool_call_finished(
        self, call: ToolCallRecord, *, result: str, start: ToolCallStart | None, now: datetime | None = None
    ) -> bool:
        """``call``'s result (JSON text) in a transaction of its own; whether it was recorded.

        With ``start`` the call's start is recorded in the same transaction (an idempotent call,
        whose start need not be durable before it runs; see `record_tool_call_started`).
        """
        now = now or utcnow()
        if self._pipeline is not None:
            return self._pipeline.record_tool_call_finished(call, result=result, start=start, now=now)
        with self.session() as session, session.begin():
            return _finish_txn(session, ToolCallResult(call=call, result=result, start=start), now=now)


def _finish_txn(session: Session, done: ToolCallResult, *, now: datetime) -> bool:
    call = done.call
    if done.start is not None:
        _start_txn(session, call, done.start, now=now)
    return record_tool_call_finished_txn(session, call.run_id, call.seq, call.tool_call_id, result=done.result, now=now)


def _start_txn(session: Session, call: ToolCallRecord, start: ToolCallStart, *, now: datetime) -> None:
    if start == "insert":
        record_tool_call_started_txn(
            session,
            run_id=call.run_id,
            seq=call.seq,
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            idempotent=call.idempotent,
            attempt=call.attempt,
            args=call.args,
            now=now,
        )
    else:
        restart_tool_call_txn(session, call.run_id, call.seq, call.tool_call_id, attempt=call.attempt, now=now)


class _Refused(Exception):
    """Carries a `WriteRefused` out of the transaction it rolls back."""

    def __init__(self, reason: WriteRefused) -> None:
        super().__init__(reason.value)
        self.reason = reason
