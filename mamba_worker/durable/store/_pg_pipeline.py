"""`PgPipeline`: the per-step write transactions on PostgreSQL, with psycopg, in few statements.

Why this exists: through SQLAlchemy every statement is its own round trip (psycopg even sends
``BEGIN`` on its own) and costs about 0.1 ms of client CPU, and on the server each statement costs
about as much as a round trip. A step commit was nine statements; a model call's ledger, five.
Here the ``*_txn`` writers' statements are folded into data-modifying CTEs (``_pg_sql``) and sent
in psycopg's pipeline mode: a step commit is one autocommitted statement when the writer knows the
run's event counter (`step_write_once`), else ``BEGIN`` + the guards (one statement), then the
inserts (one statement) + ``COMMIT``, in two round trips; a ledger row is one autocommitted
statement.

Every statement is prepared server-side on its first use on a connection (``prepare=True``).
psycopg's own rule (prepare after five uses) almost never fires here: any ``ROLLBACK`` on a
connection (SQLAlchemy resets a pooled connection that way after a read) empties psycopg's cache of
prepared statements, so these CTEs were parsed and planned on every execution (the server log
showed parse + bind at twice the execution time).

Only imported on PostgreSQL with psycopg (`StepWriter`): psycopg is the ``postgres`` extra, and
the default install (SQLite) has no psycopg.

Each thread runs them on a connection of its own (`ThreadConnections`), left idle between uses.
A psycopg error is re-raised as SQLAlchemy's `DBAPIError` (what the runtime classifies as
transient), with the parameters hidden (they hold run state). A lost connection is dropped and
the engine's pool disposed, as SQLAlchemy does itself after a disconnect, so a restarted server
costs one failed attempt, not one per connection.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, cast

import psycopg
from sqlalchemy import Column, Engine
from sqlalchemy.exc import DBAPIError, StatementError

from mamba_client.schemas import Event, RunStarted, StepStarted
from mamba_worker.durable.store._chunks import ChunkRead, group_chunks
from mamba_worker.durable.store._pg_connections import ThreadConnections
from mamba_worker.durable.store._pg_sql import (
    CLAIM_FRESH,
    CLAIM_RUNNING,
    INSERT_EVENT,
    RECORD_MODEL_CALL,
    RESTART_TOOL_CALL,
    RUN_COLUMNS,
    START_TOOL_CALL,
    USAGE,
    spliced_event,
    tool_result_statements,
)
from mamba_worker.durable.store._pg_step_write import PgStepWriter
from mamba_worker.durable.store._step_write import (
    ModelCallRecord,
    PendingStepWrite,
    RunningClaim,
    StepWrite,
    StepWritten,
    ToolCallRecord,
    ToolCallResult,
    ToolCallStart,
    WriteRefused,
)
from mamba_worker.durable.store._steps import StepClaim
from mamba_worker.durable.store._tables import RunRow, loaded_run_row

_UNKNOWN = object()


class PgPipeline:
    """Writes the per-step transactions of one PostgreSQL engine.

    Args:
        engine: A ``postgresql+psycopg`` engine (its pool lends the connections).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Encoded exactly as the ORM columns encode them (JSON documents, enum values).
        self.dialect = engine.dialect
        self._processors: dict[str, Any] = {}
        self.connections = ThreadConnections(engine)
        self._steps = PgStepWriter(self)

    @contextmanager
    def connection(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
        """This thread's connection, left idle; with ``autocommit`` each statement is its own transaction.

        A write sent before on it without waiting (a model-call row, a step commit) is settled
        first: its error, if any, is raised here.
        """
        self.settle()
        conn = self.connections.get()
        try:
            if conn.autocommit != autocommit:
                conn.autocommit = autocommit
            yield conn
        except psycopg.Error as error:
            raise self._failed(conn, error, "<per-step write>") from error
        except BaseException:
            if not conn.closed:
                conn.rollback()
            raise

    def _failed(self, conn: psycopg.Connection[Any], error: psycopg.Error, what: str) -> StatementError:
        """``error`` as SQLAlchemy's `DBAPIError` (parameters hidden), after putting ``conn`` right."""
        if self.dialect.is_disconnect(cast(Any, error), cast(Any, conn), None):
            # Every connection is as dead as this one: the other threads' and the pool's are
            # replaced before their next use, not after one failed attempt each (SQLAlchemy
            # does the same for its pool after a disconnect on its own path).
            self.connections.lost(conn)
            self._engine.dispose()
        elif not conn.closed:
            conn.rollback()
        return DBAPIError.instance(what, None, error, psycopg.Error, hide_parameters=True, dialect=self.dialect)

    def settle(self) -> None:
        """Wait for this thread's writes in flight (a model-call row, a step commit sent by `send_step`), if any.

        Raises:
            DBAPIError: One failed (a model-call row that is not there: the step must not commit; the
                commit behind it did not run).
        """
        conn = self.connections.unsettled()
        if conn is None:
            self.connections.settle()  # a closed connection's writes: their outcome is recorded as unknown
            return
        try:
            self.connections.settle()
        except psycopg.Error as error:
            raise self._failed(conn, error, "<per-step write, sent earlier>") from error

    def close(self) -> None:
        """Close every thread's connection this process opened (at shutdown)."""
        self.connections.close()

    def write_step(self, write: StepWrite) -> StepWritten | WriteRefused:
        """`write_step_txn`'s rows in one transaction (`PgStepWriter.write_step`)."""
        return self._steps.write_step(write)

    def send_step(self, write: StepWrite) -> PendingStepWrite:
        """`write_step`, sent without waiting for its outcome where it can be (`PgStepWriter.send_step`)."""
        return self._steps.send_step(write)

    def claim_running_step(
        self,
        *,
        run_id: str,
        seq: int,
        owner: str,
        lease_seconds: float,
        now: datetime,
        started: Callable[[RunRow, StepClaim], Event | None],
        fresh: StepStarted | None = None,
        after_seq: int | None = None,
    ) -> RunningClaim | None:
        """The claim and the run read back (one statement), then the event with ``COMMIT``.

        With ``fresh`` (the event of a first attempt, its ``seq`` and ``step`` left for the claim to
        fill in), a step never claimed is claimed in one autocommitted statement that writes that
        event; anything else takes the two round trips, with ``started`` deciding. ``None``
        (nothing written) when the fast path does not apply or ``started`` refuses.
        """
        params: dict[str, Any] = {
            "run_id": run_id,
            "seq": seq,
            "owner": owner,
            "now": now,
            "expires": now + timedelta(seconds=lease_seconds),
            # Chunk seqs start at 0 (the submit's): -1 reads them all.
            "after_seq": -1 if after_seq is None else after_seq,
        }
        if fresh is not None:
            # Most claims: the step its predecessor's commit inserted, never claimed since.
            head, mid, tail = spliced_event(fresh)
            # A run's first step starts the run too: its event as `_claim_general_txn` writes it.
            started_run = RunStarted(run_id=run_id, seq=0, ts=fresh.ts)
            run_head, run_tail = started_run.model_dump_json().split('"seq":0', 1)
            template = {
                "event_type": fresh.type,
                "event_head": head,
                "event_mid": mid,
                "event_tail": tail,
                "event_time": fresh.ts,
                "run_event_type": started_run.type,
                "run_event_head": run_head + '"seq":',
                "run_event_tail": run_tail,
            }
            with self.connection(autocommit=True) as conn:
                # A fresh cursor, not a kept one: the row carries the run's state, which a kept cursor
                # would hold on to until the thread's next claim.
                row = conn.execute(CLAIM_FRESH, params | template, prepare=True).fetchone()
            if row is not None:
                run, claim, chunks = self._claimed(row[1:], after_seq=after_seq)
                number = run.next_event_seq - 1
                events: list[Event] = [fresh.model_copy(update={"seq": number, "step": claim.name})]
                payloads = [f"{head}{number}{mid}{json.dumps(claim.name, ensure_ascii=False)}{tail}"]
                if row[0]:  # the run was pending
                    events.insert(0, started_run.model_copy(update={"seq": number - 1}))
                    payloads.insert(0, f'{run_head}"seq":{number - 1}{run_tail}')
                return RunningClaim(run=run, chunks=chunks, claim=claim, events=events, payloads=payloads)
        with self.connection() as conn, conn.pipeline() as pipeline:
            claimed = conn.execute(CLAIM_RUNNING, params, prepare=True)  # carries the state: see CLAIM_FRESH
            pipeline.sync()
            row = claimed.fetchone()
            if row is None:
                conn.rollback()
                return None
            run, claim, chunks = self._claimed(row, after_seq=after_seq)
            built = started(run, claim)
            if built is None:
                conn.rollback()
                return None
            numbered = built.model_copy(update={"seq": run.next_event_seq - 1})
            payload = numbered.model_dump_json()
            self.connections.execute(
                conn,
                INSERT_EVENT,
                {
                    "run_id": numbered.run_id,
                    "seq": numbered.seq,
                    "type": numbered.type,
                    "payload": payload,
                    "created_at": numbered.ts,
                },
            )
            conn.commit()
        return RunningClaim(run=run, chunks=chunks, claim=claim, events=[numbered], payloads=[payload])

    def _claimed(self, row: Sequence[Any], *, after_seq: int | None) -> tuple[RunRow, StepClaim, ChunkRead]:
        """A claim statement's row: the run as the ORM would load it, the claim, the state's chunks."""
        run = loaded_run_row(
            {column.name: self._decode(column, value) for column, value in zip(RUN_COLUMNS, row[2:-3], strict=True)}
        )
        chunks = ChunkRead(
            after_seq=after_seq,
            chunks=group_chunks(zip(row[-3] or (), row[-2] or (), strict=True)),
            kept=dict(Counter(row[-1] or ())) if after_seq is not None else {},
        )
        return run, StepClaim(attempt=row[0], name=row[1]), chunks

    def _decode(self, column: Column[Any], value: Any) -> Any:
        """A value as SQLAlchemy would have loaded it (JSON documents, enums, UTC datetimes)."""
        processor = self._processors.get(column.name, _UNKNOWN)
        if processor is _UNKNOWN:
            processor = self._processors[column.name] = column.type.result_processor(self.dialect, None)
        return value if processor is None else processor(value)

    def execute_once(self, statement: str, params: dict[str, Any]) -> None:
        """One autocommitted, server-prepared statement on this thread's connection (a submit's)."""
        with self.connection(autocommit=True) as conn:
            self.connections.execute(conn, statement, params)

    def record_model_call(self, record: ModelCallRecord) -> None:
        """`record_model_call_txn` in a transaction sent without waiting for its reply.

        Once this returns, ``BEGIN``, the statement and ``COMMIT`` are on the socket: the server
        commits the row even if this process is killed now, which is the ledger's guarantee (a
        response paid for is never lost to a worker's crash). What is saved is the wait: the reply
        is read (`settle`) by the next write or read of this thread, before the step's commit,
        which must see the call's usage in the run's totals.
        """
        params = {
            "run_id": record.run_id,
            "seq": record.seq,
            "attempt": record.attempt,
            "call_index": record.call_index,
            "model_name": record.model_name,
            "response": record.response,
            "now": record.now,
            **{name: getattr(record.usage, name) for name in USAGE},
        }
        with self.connection(autocommit=True) as conn:
            self.connections.send_unsettled(conn, [("BEGIN", None), (RECORD_MODEL_CALL, params), ("COMMIT", None)])

    def record_tool_call_started(self, call: ToolCallRecord, *, start: ToolCallStart, now: datetime) -> None:
        """`record_tool_call_started_txn` or `restart_tool_call_txn` as one autocommitted statement."""
        params = {**dataclasses.asdict(call), "now": now}
        with self.connection(autocommit=True) as conn:
            self.connections.execute(conn, START_TOOL_CALL if start == "insert" else RESTART_TOOL_CALL, params)

    def record_tool_call_finished(
        self, call: ToolCallRecord, *, result: str, start: ToolCallStart | None, now: datetime
    ) -> bool:
        """A call's result, and with ``start`` its start, in one transaction (one statement but for a restart)."""
        statements = tool_result_statements(ToolCallResult(call=call, result=result, start=start), now=now)
        if len(statements) == 1:
            with self.connection(autocommit=True) as conn:
                return self.connections.execute(conn, *statements[0]).rowcount == 1
        with self.connection() as conn, conn.pipeline():
            for statement, params in statements[:-1]:
                self.connections.execute(conn, statement, params)
            finished = self.connections.execute(conn, *statements[-1])
            conn.commit()
        return finished.rowcount == 1
