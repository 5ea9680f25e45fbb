"""`PgPipeline`: the hot write transactions on PostgreSQL, in psycopg's pipeline mode.

Why this exists: through SQLAlchemy every statement is its own round trip (psycopg even sends
``BEGIN`` on its own), and each costs about 0.1 ms of client CPU in SQLAlchemy's execution path.
A step commit was 7 round trips; a model call's ledger, 5. In pipeline mode psycopg queues the
statements and sends them together, so a step commit takes two round trips (the guards, then the
inserts with ``COMMIT``) and a ledger write one. The statements are the same ones the portable
``*_txn`` writers make (`write_step_txn`, `record_model_call_txn`, the tool-call writers), written
out as SQL text once; psycopg prepares them server-side after a few uses.

The connection comes from the engine's pool (`Engine.raw_connection`) and goes back idle. A
psycopg error is re-raised as SQLAlchemy's `DBAPIError` (what the runtime classifies as
transient), with the parameters hidden (they hold run state). A lost connection is invalidated
and the pool disposed, as SQLAlchemy does itself after a disconnect, so a restarted server costs
one failed attempt, not one per pooled connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import psycopg
from sqlalchemy import Column, Engine
from sqlalchemy.exc import DBAPIError

from mamba_client.schemas import Event, RunStatus, StepStatus, Usage
from mamba_worker.durable.store._runs import UNSET
from mamba_worker.durable.store._step_write import StepWrite, StepWritten, WriteRefused, numbered_events
from mamba_worker.durable.store._steps import StepClaim
from mamba_worker.durable.store._tables import RUNS, RunRow
from mamba_worker.durable.store._types import JSONText

_USAGE = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "requests", "cost_usd")

_MARK_COMMITTED = (
    "UPDATE steps SET status = 'committed', lease_owner = NULL, lease_expires_at = NULL, finished_at = %(now)s "
    "WHERE run_id = %(run_id)s AND seq = %(seq)s AND status = 'running' AND lease_owner = %(owner)s "
    "AND attempt = %(attempt)s"
)
_INSERT_STEP = (
    "INSERT INTO steps (run_id, seq, name, status, attempt, lease_owner, lease_expires_at, started_at, checkpoint, "
    "input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests, cost_usd, created_at) "
    "VALUES (%(run_id)s, %(seq)s, %(name)s, %(status)s, %(attempt)s, %(lease_owner)s, %(lease_expires_at)s, "
    "%(started_at)s, NULL, 0, 0, 0, 0, 0, 0, %(now)s)"
)
_INSERT_OUTBOX = (
    "INSERT INTO outbox (run_id, seq, task_name, queue, priority, attempt, task_id, created_at, queued_at, "
    "not_before, dispatched_at) VALUES (%(run_id)s, %(seq)s, %(task_name)s, %(queue)s, %(priority)s, 1, "
    "%(task_id)s, %(now)s, %(now)s, NULL, %(now)s) ON CONFLICT (run_id, seq) DO NOTHING"
)
_INSERT_EVENT = (
    "INSERT INTO events (run_id, seq, type, payload, created_at) "
    "VALUES (%(run_id)s, %(seq)s, %(type)s, %(payload)s, %(created_at)s)"
)
# The ledger of a model call: the row, and only if it is new, the step's and the run's totals.
# One statement, so the "only if new" needs no round trip in between.
_RECORD_MODEL_CALL = (
    "WITH ins AS (INSERT INTO model_calls (run_id, seq, attempt, call_index, model_name, "
    + ", ".join(_USAGE)
    + ", response, superseded, created_at) VALUES (%(run_id)s, %(seq)s, %(attempt)s, %(call_index)s, "
    "%(model_name)s, " + ", ".join(f"%({name})s" for name in _USAGE) + ", %(response)s, false, %(now)s) "
    "ON CONFLICT (run_id, seq, attempt, call_index) DO NOTHING RETURNING " + ", ".join(_USAGE) + "), "
    "s AS (UPDATE steps SET "
    + ", ".join(f"{name} = steps.{name} + ins.{name}" for name in _USAGE)
    + " FROM ins WHERE steps.run_id = %(run_id)s AND steps.seq = %(seq)s), "
    "r AS (UPDATE runs SET "
    + ", ".join(f"{name} = runs.{name} + ins.{name}" for name in _USAGE)
    + " FROM ins WHERE runs.id = %(run_id)s) SELECT count(*) FROM ins"
)
_START_TOOL_CALL = (
    "INSERT INTO tool_calls (run_id, seq, tool_call_id, tool_name, idempotent, status, attempt, args, result, "
    "error, started_at, finished_at) VALUES (%(run_id)s, %(seq)s, %(tool_call_id)s, %(tool_name)s, "
    "%(idempotent)s, 'started', %(attempt)s, %(args)s, NULL, NULL, %(now)s, NULL) "
    "ON CONFLICT (run_id, seq, tool_call_id) DO NOTHING"
)
_RESTART_TOOL_CALL = (
    "UPDATE tool_calls SET status = 'started', attempt = %(attempt)s, started_at = %(now)s, error = NULL "
    "WHERE run_id = %(run_id)s AND seq = %(seq)s AND tool_call_id = %(tool_call_id)s "
    "AND status IN ('started', 'in_doubt', 'failed') AND attempt < %(attempt)s"
)
_FINISH_TOOL_CALL = (
    "UPDATE tool_calls SET status = 'finished', result = %(result)s, error = NULL, finished_at = %(now)s "
    "WHERE run_id = %(run_id)s AND seq = %(seq)s AND tool_call_id = %(tool_call_id)s "
    "AND status IN ('started', 'in_doubt')"
)

_CLAIM_RUNNING = (
    "UPDATE steps SET status = 'running', lease_owner = %(owner)s, lease_expires_at = %(expires)s, "
    "attempt = attempt + 1, started_at = %(now)s WHERE run_id = %(run_id)s AND seq = %(seq)s "
    "AND (status IN ('pending', 'dispatched') OR (status = 'running' AND lease_expires_at < %(now)s)) "
    "AND EXISTS (SELECT 1 FROM runs WHERE runs.id = steps.run_id AND runs.status = 'running' "
    "AND runs.cancel_requested IS false) RETURNING attempt, name"
)
_RUN_COLUMNS = tuple(RUNS.c)
_RESERVE_EVENT = "UPDATE runs SET next_event_seq = next_event_seq + 1 WHERE id = %(run_id)s RETURNING " + ", ".join(
    column.name for column in _RUN_COLUMNS
)

# The ledger rows that may be lost if the *database server* crashes (not the worker) commit without
# waiting for their WAL flush: the step's own commit, which is synchronous, flushes them with it
# (WAL is written in order), so only a server crash between the ledger write and the step's commit
# loses one, and then the step has not committed either and runs again. What that costs: a model
# call's usage is missed from the totals, an idempotent tool call runs again. A worker crash loses
# nothing (the server has the row). A non-idempotent call's ledger stays synchronous: it is what
# keeps the call from running twice. This saves the flush wait (about half of a small write
# transaction here) on every think and act step.
_ASYNC_COMMIT = "SET LOCAL synchronous_commit = off"

_UNKNOWN = object()

ToolCallStart = Literal["insert", "restart"]
"""How `record_tool_call_finished` also records the call's start: a new row, or a later attempt's takeover."""


@dataclass(frozen=True, kw_only=True)
class RunningClaim:
    """What `RunStore.claim_running_step` took and wrote."""

    run: RunRow
    """The run as of the claim (state included)."""
    claim: StepClaim
    event: Event
    """The claim's event (``step.started``), numbered."""


class PgPipeline:
    """Writes the hot transactions of one PostgreSQL engine in pipeline mode.

    Args:
        engine: A ``postgresql+psycopg`` engine (its pool lends the connections).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Encoded exactly as the ORM columns encode them (JSON documents, enum values).
        self._dialect = engine.dialect
        self._output_type = cast("JSONText[Any]", RUNS.c.output.type)
        self._error_type = cast("JSONText[Any]", RUNS.c.error.type)
        self._processors: dict[str, Any] = {}

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        pooled = self._engine.raw_connection()
        conn: psycopg.Connection[Any] = pooled.driver_connection  # type: ignore[assignment]
        try:
            yield conn
        except psycopg.Error as error:
            if self._dialect.is_disconnect(cast(Any, error), pooled, None):
                pooled.invalidate(error)
                # Every pooled connection is as dead as this one: drop them now, not one failed
                # attempt each (SQLAlchemy does the same after a disconnect on its own path).
                self._engine.dispose()
            elif not conn.closed:
                conn.rollback()
            raise DBAPIError.instance(
                "<pipelined step write>", None, error, psycopg.Error, hide_parameters=True, dialect=self._dialect
            ) from error
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise
        finally:
            pooled.close()

    def write_step(self, write: StepWrite) -> StepWritten | WriteRefused:
        """`write_step_txn`'s rows in one transaction and two round trips: the guards, then the rest."""
        params: dict[str, Any] = {
            "run_id": write.run_id,
            "seq": write.seq,
            "owner": write.owner,
            "attempt": write.attempt,
            "now": write.now,
            "state": write.state,
            "events": write.event_count,
        }
        with self._connection() as conn, conn.pipeline() as pipeline:
            marked = conn.execute(_MARK_COMMITTED, params)
            advanced = conn.execute(self._advance_sql(write, params), params)
            pipeline.sync()
            if marked.rowcount != 1 or (row := advanced.fetchone()) is None:
                conn.rollback()
                return WriteRefused.LEASE_LOST if marked.rowcount != 1 else WriteRefused.RUN_STOPPED
            usage = Usage(**dict(zip(_USAGE, row[1:], strict=True)))
            successor = write.successor
            if successor is not None:
                claimed = successor.claimed_by is not None
                step = {
                    "run_id": write.run_id,
                    "seq": successor.seq,
                    "name": successor.name,
                    "status": (StepStatus.RUNNING if claimed else StepStatus.PENDING).value,
                    "attempt": 1 if claimed else 0,
                    "lease_owner": successor.claimed_by,
                    "lease_expires_at": write.now + timedelta(seconds=successor.lease_seconds) if claimed else None,
                    "started_at": write.now if claimed else None,
                    "now": write.now,
                }
                conn.execute(_INSERT_STEP, step)
                outbox = {
                    "run_id": write.run_id,
                    "seq": successor.seq,
                    "task_name": successor.task_name,
                    "queue": successor.queue,
                    "priority": successor.priority,
                    "task_id": successor.task_id,
                    "now": write.now,
                }
                conn.execute(_INSERT_OUTBOX, outbox)
            events = numbered_events(write, write.events(usage), first_seq=row[0] - write.event_count)
            if events:
                conn.cursor().executemany(_INSERT_EVENT, [_event_params(event) for event in events])
            conn.commit()
        return StepWritten(events=events, usage=usage)

    def claim_running_step(
        self,
        *,
        run_id: str,
        seq: int,
        owner: str,
        lease_seconds: float,
        now: datetime,
        started: Callable[[RunRow, StepClaim], Event | None],
    ) -> RunningClaim | None:
        """`claim_running_step_txn`, `reserve_events_txn` and the one event, in two round trips.

        ``None`` (nothing written) when the fast path does not apply or ``started`` refuses.
        """
        params = {
            "run_id": run_id,
            "seq": seq,
            "owner": owner,
            "now": now,
            "expires": now + timedelta(seconds=lease_seconds),
        }
        with self._connection() as conn, conn.pipeline() as pipeline:
            claimed = conn.execute(_CLAIM_RUNNING, params)
            reserved = conn.execute(_RESERVE_EVENT, params)
            pipeline.sync()
            claim_row, run_row = claimed.fetchone(), reserved.fetchone()
            if claim_row is None or run_row is None:
                conn.rollback()
                return None
            run = RunRow(
                **{
                    column.name: self._decode(column, value)
                    for column, value in zip(_RUN_COLUMNS, run_row, strict=True)
                }
            )
            claim = StepClaim(attempt=claim_row[0], name=claim_row[1])
            event = started(run, claim)
            if event is None:
                conn.rollback()
                return None
            event = event.model_copy(update={"seq": run.next_event_seq - 1})
            conn.execute(_INSERT_EVENT, _event_params(event))
            conn.commit()
        return RunningClaim(run=run, claim=claim, event=event)

    def _decode(self, column: Column[Any], value: Any) -> Any:
        """A value as SQLAlchemy would have loaded it (JSON documents, enums, UTC datetimes)."""
        processor = self._processors.get(column.name, _UNKNOWN)
        if processor is _UNKNOWN:
            processor = self._processors[column.name] = column.type.result_processor(self._dialect, None)
        return value if processor is None else processor(value)

    def _advance_sql(self, write: StepWrite, params: dict[str, Any]) -> str:
        """`advance_run_txn`'s ``UPDATE runs ... RETURNING``, with the columns this write sets."""
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
            params["output"] = self._output_type.process_bind_param(write.output, self._dialect)
        if write.error is not UNSET:
            sets.append("error = %(error)s")
            params["error"] = self._error_type.process_bind_param(write.error, self._dialect)
        return (
            f"UPDATE runs SET {', '.join(sets)} WHERE id = %(run_id)s AND status = 'running' "
            f"AND cancel_requested IS false RETURNING next_event_seq, {', '.join(_USAGE)}"
        )

    def record_model_call(
        self,
        *,
        run_id: str,
        seq: int,
        attempt: int,
        call_index: int,
        usage: Usage,
        model_name: str | None,
        response: str | None,
        now: datetime,
    ) -> bool:
        """`record_model_call_txn` in one statement and one round trip; whether the row was new.

        Committed without waiting for the WAL flush (see ``_ASYNC_COMMIT``).
        """
        params = {
            "run_id": run_id,
            "seq": seq,
            "attempt": attempt,
            "call_index": call_index,
            "model_name": model_name,
            "response": response,
            "now": now,
            **{name: getattr(usage, name) for name in _USAGE},
        }
        with self._connection() as conn, conn.pipeline():
            conn.execute(_ASYNC_COMMIT)
            inserted = conn.execute(_RECORD_MODEL_CALL, params)
            conn.commit()
            row = inserted.fetchone()
        return row is not None and row[0] == 1

    def record_tool_call_finished(
        self,
        *,
        run_id: str,
        seq: int,
        tool_call_id: str,
        result: str,
        start: ToolCallStart | None,
        tool_name: str,
        idempotent: bool,
        attempt: int,
        args: str | None,
        now: datetime,
    ) -> bool:
        """A call's result, and with ``start`` its start too, in one transaction and one round trip.

        An idempotent call's is committed without waiting for the WAL flush (see ``_ASYNC_COMMIT``).
        """
        params = {
            "run_id": run_id,
            "seq": seq,
            "tool_call_id": tool_call_id,
            "tool_name": tool_name,
            "idempotent": idempotent,
            "attempt": attempt,
            "args": args,
            "result": result,
            "now": now,
        }
        with self._connection() as conn, conn.pipeline():
            if idempotent:
                conn.execute(_ASYNC_COMMIT)
            if start == "insert":
                conn.execute(_START_TOOL_CALL, params)
            elif start == "restart":
                conn.execute(_RESTART_TOOL_CALL, params)
            finished = conn.execute(_FINISH_TOOL_CALL, params)
            conn.commit()
        return finished.rowcount == 1


def _event_params(event: Any) -> dict[str, Any]:
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "type": event.type,
        "payload": event.model_dump_json(),
        "created_at": event.ts,
    }
