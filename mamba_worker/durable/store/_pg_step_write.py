"""`PgStepWriter`: a step's commit on PostgreSQL, in one statement when it can be, sent without waiting if asked.

`write_step_txn`'s rows go out as one autocommitted statement (`step_write_once`) when the writer
knows the run's event counter, else as ``BEGIN`` + both guards, then the inserts + ``COMMIT``
(`_pg_sql`). `send_step` sends the one statement without waiting for its outcome, in ``BEGIN`` ...
``COMMIT`` so that the server commits it before any Sync: an inline chain runs its next step's own
work meanwhile, and reads the outcome (`PendingStepWrite.confirm`) before that step's first effect
(DESIGN.md, "A commit's outcome is read when it is needed").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import psycopg
from sqlalchemy.exc import DBAPIError

from mamba_client.schemas import Event, RunStatus, Usage
from mamba_worker.durable.store._pg_in_flight import SentWrite
from mamba_worker.durable.store._pg_sql import (
    USAGE,
    chunk_params,
    event_params,
    step_guard,
    step_inserts,
    step_write_once,
    successor_params,
    tool_result_params,
)
from mamba_worker.durable.store._runs import UNSET
from mamba_worker.durable.store._step_write import (
    PendingStepWrite,
    SettledStepWrite,
    StepWrite,
    StepWritten,
    ToolCallResult,
    WriteRefused,
    built_events,
)
from mamba_worker.durable.store._tables import RUNS
from mamba_worker.durable.store._types import JSONText

if TYPE_CHECKING:
    from mamba_worker.durable.store._pg_pipeline import PgPipeline


class PgStepWriter:
    """Writes the step commits of one `PgPipeline` (its connections, its error handling).

    Args:
        pipeline: The pipeline whose connections and ledger writes it uses.
    """

    def __init__(self, pipeline: PgPipeline) -> None:
        self._pipeline = pipeline
        self._connections = pipeline.connections
        # Encoded exactly as the ORM columns encode them (JSON documents, enum values).
        self._output_type = cast("JSONText[Any]", RUNS.c.output.type)
        self._error_type = cast("JSONText[Any]", RUNS.c.error.type)

    def write_step(self, write: StepWrite) -> StepWritten | WriteRefused:
        """`write_step_txn`'s rows in one transaction, its outcome read at once (`send_step`, then confirm)."""
        return self.send_step(write).confirm()

    def send_step(self, write: StepWrite) -> PendingStepWrite:
        """`write_step`, sent without waiting for its outcome when it is one statement (else written now).

        The statement goes out on its own (`ThreadConnections.send_deferred`), after a think step's
        model-call row still in flight is settled: sending it in that row's pipeline instead (in
        ``BEGIN`` ... ``COMMIT``, for the server to commit it before the Sync that reads it) cost
        more client CPU than the wait it saved (`bench/durable_profile.md`).
        """
        prepared = self._prepared(write)
        if prepared.statement is None:
            return SettledStepWrite(self._write_guarded(prepared))
        with self._pipeline.connection(autocommit=True) as conn:
            sent = self._connections.send_deferred(conn, prepared.statement, prepared.params)
        return _SentStepWrite(self, prepared, sent)

    def _prepared(self, write: StepWrite) -> _PreparedWrite:
        """The write's parameters, and its one statement when the writer knows the run's event counter.

        The finished calls that cannot ride in that statement (rare: a call a person approved, or
        restarted) are written here first, each in a transaction of its own.
        """
        params: dict[str, Any] = {
            "run_id": write.run_id,
            "seq": write.seq,
            "owner": write.owner,
            "attempt": write.attempt,
            "now": write.now,
            "state": write.state,
            "events": write.event_count,
        }
        run_sets = self._run_sets(write, params)
        chunks, replace = chunk_params(write.chunks, params)
        if write.successor is not None:
            params |= successor_params(write.successor, now=write.now)
        prepared = _PreparedWrite(write=write, params=params, run_sets=run_sets, chunks=chunks, replace=replace)
        if write.expected_event_seq is None or write.final is not None:
            return prepared
        # The events do not depend on the commit's reads: number them now and send everything at
        # once. Most steps of every run take this path.
        prepared.events, prepared.payloads = built_events(write, None, first_seq=write.expected_event_seq)
        params |= event_params(prepared.events, prepared.payloads) | {"expected_seq": write.expected_event_seq}
        riding = [done for done in write.tool_results if done.start == "insert"]
        self._record_tool_results([done for done in write.tool_results if done.start != "insert"], write.now)
        if riding:
            params |= tool_result_params(riding)
        prepared.tool_results_written = True
        prepared.statement = step_write_once(
            run_sets,
            successor=write.successor is not None,
            events=bool(prepared.events),
            chunks=chunks,
            replace=replace,
            tool_results=bool(riding),
        )
        return prepared

    def _written(self, prepared: _PreparedWrite, row: Sequence[Any] | None) -> StepWritten | WriteRefused:
        """The one statement's row as the write's result; when it wrote nothing, the general path's."""
        assert row is not None  # the statement always returns one row
        if row[0] == 1:
            usage = self._usage(row[2:])
            return StepWritten(events=prepared.events, usage=usage, payloads=prepared.payloads, next_event_seq=row[1])
        # Nothing was written: the guards below say why, or write it (another writer appended events).
        return self._write_guarded(prepared)

    def confirmed(self, prepared: _PreparedWrite, sent: SentWrite) -> StepWritten | WriteRefused:
        """What a write sent by `send_step` did, its outcome read first if no use of the connection has."""
        if not sent.settled:
            self._pipeline.settle()
        if not sent.settled:
            raise RuntimeError("a step write is confirmed on the thread that sent it")
        if sent.error is not None:  # another use of the connection read it (and put the connection right)
            raise DBAPIError.instance(
                "<per-step write, sent earlier>",
                None,
                sent.error,
                psycopg.Error,
                hide_parameters=True,
                dialect=self._pipeline.dialect,
            )
        return self._written(prepared, sent.rows[0][0])

    def _write_guarded(self, prepared: _PreparedWrite) -> StepWritten | WriteRefused:
        """The general path: ``BEGIN`` + both guards (one statement), then the inserts + ``COMMIT``."""
        write, params = prepared.write, prepared.params
        if not prepared.tool_results_written:
            # Rare (the run's last step, or a worker that lost track of the run's events): before
            # the guarded transaction, which a refusal rolls back.
            self._record_tool_results(write.tool_results, write.now)
        guard = step_guard(prepared.run_sets)  # cached per set of columns
        with self._pipeline.connection() as conn, conn.pipeline() as pipeline:
            guarded = self._connections.execute(conn, guard, params)
            pipeline.sync()
            row = guarded.fetchone()
            assert row is not None  # the statement always returns one row
            if row[0] != 1 or row[1] is None:
                conn.rollback()
                return WriteRefused.LEASE_LOST if row[0] != 1 else WriteRefused.RUN_STOPPED
            usage = self._usage(row[2:])
            events, payloads = built_events(write, usage, first_seq=row[1] - write.event_count)
            if events:
                params |= event_params(events, payloads)
            inserts = step_inserts(
                successor=write.successor is not None,
                events=bool(events),
                chunks=prepared.chunks,
                replace=prepared.replace,
            )
            if inserts is not None:
                self._connections.execute(conn, inserts, params)
            conn.commit()
        return StepWritten(events=events, usage=usage, payloads=payloads, next_event_seq=row[1])

    def _record_tool_results(self, results: Sequence[ToolCallResult], now: datetime) -> None:
        for done in results:
            self._pipeline.record_tool_call_finished(done.call, result=done.result, start=done.start, now=now)

    @staticmethod
    def _usage(values: Sequence[Any]) -> Usage:
        return Usage(**dict(zip(USAGE, values, strict=True)))

    def _run_sets(self, write: StepWrite, params: dict[str, Any]) -> tuple[str, ...]:
        """`advance_run_txn`'s ``SET`` list for this write (its parameters go into ``params``)."""
        sets = ["state = %(state)s", "updated_at = %(now)s", "next_event_seq = next_event_seq + %(events)s"]
        if write.successor is not None:
            sets.append("last_seq = %(last_seq)s")
            params["last_seq"] = write.successor.seq
        if write.status is not None:
            sets += ["status = %(status)s", "finished_at = %(finished_at)s"]
            params["status"] = RunStatus(write.status).value
            params["finished_at"] = write.now if write.status.is_terminal else None
        if write.output is not UNSET:
            sets.append("output = %(output)s")
            params["output"] = self._output_type.process_bind_param(write.output, self._pipeline.dialect)
        if write.error is not UNSET:
            sets.append("error = %(error)s")
            params["error"] = self._error_type.process_bind_param(write.error, self._pipeline.dialect)
        return tuple(sets)


@dataclasses.dataclass(kw_only=True)
class _PreparedWrite:
    """A step write's parameters, and what `PgStepWriter._prepared` decided about it."""

    write: StepWrite
    params: dict[str, Any]
    run_sets: tuple[str, ...]
    chunks: bool
    replace: bool
    statement: str | None = None
    """The one statement (`step_write_once`); ``None``: the general path."""
    events: list[Event] = dataclasses.field(default_factory=list)
    """With `statement`: the events as numbered before it was sent."""
    payloads: list[str] = dataclasses.field(default_factory=list)
    tool_results_written: bool = False
    """Whether the finished calls are taken care of (in `statement`, or written first)."""


class _SentStepWrite:
    """`PgStepWriter.send_step`'s `PendingStepWrite`: the outcome, or the error, is kept once read."""

    def __init__(self, writer: PgStepWriter, prepared: _PreparedWrite, sent: SentWrite) -> None:
        self._writer, self._prepared, self._sent = writer, prepared, sent
        self._result: StepWritten | WriteRefused | None = None
        self._error: Exception | None = None

    def confirm(self) -> StepWritten | WriteRefused:
        if self._error is not None:
            raise self._error
        if self._result is None:
            try:
                self._result = self._writer.confirmed(self._prepared, self._sent)
            except Exception as error:
                self._error = error
                raise
        return self._result
