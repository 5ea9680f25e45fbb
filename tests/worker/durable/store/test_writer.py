"""`StepWriter`: the per-step write transactions, on SQLite (``*_txn`` writers) and PostgreSQL (`PgPipeline`).

Both paths must write the same rows under the same guards; every test runs on both backends.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from mamba_client.schemas import (
    Event,
    RunStarted,
    RunStatus,
    RunSucceeded,
    StepCommitted,
    StepStarted,
    StepStatus,
    ToolCallStatus,
    Usage,
)
from mamba_worker.durable.store import (
    ChunkRead,
    ModelCallRecord,
    RunRow,
    RunStore,
    StateChunk,
    StepClaim,
    StepWrite,
    StepWritten,
    SuccessorWrite,
    ToolCallRecord,
    ToolCallResult,
    WriteRefused,
    append_events_txn,
    claim_step_txn,
    record_tool_call_started_txn,
    update_run_txn,
    write_state_chunks_txn,
)
from tests._support.wait import wait_until
from tests.worker.durable.store.conftest import MakeRun, terminate_backends

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
USAGE = Usage(input_tokens=100, output_tokens=20, requests=1, cost_usd=0.25)
# The PostgreSQL writer has two paths: one statement when the writer guesses the run's event
# counter, else guards then inserts. Tests marked with this run both (SQLite has one path).
GUESSES = pytest.mark.parametrize("expected_event_seq", [None, 1], ids=["counter-unknown", "counter-guessed"])


def _running(store: RunStore, make_run: MakeRun, *, owner: str = "w1") -> str:
    """A running run whose step 1 (think) is claimed by ``owner`` (attempt 1)."""
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)
        assert claim_step_txn(session, run_id, 1, owner=owner, lease_seconds=60) == 1
    return run_id


def _events(run_id: str, *extra: Event) -> list[Event]:
    committed = StepCommitted(run_id=run_id, step_seq=1, step="think", attempt=1, next_step="act")
    return [committed, *extra]


def _counting_pg_statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, every statement `PgPipeline` sends is listed here: through a kept cursor
    (``ThreadConnections.execute``, ``send_deferred``) or a cursor of its own (``psycopg.Connection.execute``)."""
    import psycopg  # the postgres extra

    from mamba_worker.durable.store._pg_connections import ThreadConnections

    statements: list[str] = []
    kept, deferred, own = ThreadConnections.execute, ThreadConnections.send_deferred, psycopg.Connection.execute

    def through_kept(self: ThreadConnections, conn: Any, statement: str, *args: Any) -> Any:
        statements.append(statement)
        return kept(self, conn, statement, *args)

    def sent_deferred(self: ThreadConnections, conn: Any, statement: str, *args: Any) -> Any:
        statements.append(statement)
        return deferred(self, conn, statement, *args)

    def through_own(self: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        statements.append(str(query))
        return own(self, query, *args, **kwargs)

    monkeypatch.setattr(ThreadConnections, "execute", through_kept)
    monkeypatch.setattr(ThreadConnections, "send_deferred", sent_deferred)
    monkeypatch.setattr(psycopg.Connection, "execute", through_own)
    return statements


def _next(run_id: str, *, owner: str = "w1", claimed: bool = False, expected_event_seq: int | None = None) -> StepWrite:
    return StepWrite(
        run_id=run_id,
        seq=1,
        owner=owner,
        attempt=1,
        state='{"step": 1}',
        successor=SuccessorWrite(
            seq=2,
            name="act",
            task_name="mamba.act",
            queue="mamba",
            priority=3,
            task_id=f"{run_id}:2",
            claimed_by=owner if claimed else None,
            lease_seconds=60,
        ),
        events=_events(run_id),
        expected_event_seq=expected_event_seq,
        now=T0,
    )


@GUESSES
def test_a_step_write_commits_the_step_state_successor_outbox_and_events(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)

    written = store.write_step(_next(run_id, expected_event_seq=expected_event_seq))

    assert isinstance(written, StepWritten)
    [committed] = written.events
    assert isinstance(committed, StepCommitted) and committed.seq == 1
    first, second = store.get_steps(run_id)
    assert (first.status, second.status, second.name, second.attempt) == (
        StepStatus.COMMITTED,
        StepStatus.PENDING,
        "act",
        0,
    )
    run = store.get_run_row(run_id)
    assert (run.state, run.last_seq, run.next_event_seq, run.status) == ('{"step": 1}', 2, 2, RunStatus.RUNNING)
    [outbox] = store.get_stalled_dispatches(dispatched_before=datetime(2031, 1, 1, tzinfo=UTC))
    assert (outbox.seq, outbox.task_name, outbox.priority, outbox.task_id, outbox.dispatched_at) == (
        2,
        "mamba.act",
        3,
        f"{run_id}:2",
        T0,
    )
    assert [event.type for event in store.get_events(run_id)] == ["step.committed"]


@GUESSES
def test_a_successor_written_claimed_is_running_under_the_writers_lease(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)

    assert isinstance(store.write_step(_next(run_id, claimed=True, expected_event_seq=expected_event_seq)), StepWritten)

    step = store.get_step_row(run_id, 2)
    assert (step.status, step.attempt, step.lease_owner, step.started_at) == (StepStatus.RUNNING, 1, "w1", T0)
    assert step.lease_expires_at is not None and step.lease_expires_at > T0


@GUESSES
def test_a_write_by_a_worker_that_lost_the_lease_writes_nothing(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run, owner="w1")

    refused = store.write_step(_next(run_id, owner="w2", expected_event_seq=expected_event_seq))

    assert refused is WriteRefused.LEASE_LOST
    assert [s.status for s in store.get_steps(run_id)] == [StepStatus.RUNNING]
    assert (store.get_run_row(run_id).state, store.get_events(run_id)) == (None, [])


@GUESSES
def test_a_write_to_a_run_asked_to_cancel_writes_nothing(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, cancel_requested=True)

    refused = store.write_step(_next(run_id, expected_event_seq=expected_event_seq))

    assert refused is WriteRefused.RUN_STOPPED
    # The step's own update came first in the transaction; it was rolled back with the rest.
    assert [s.status for s in store.get_steps(run_id)] == [StepStatus.RUNNING]
    assert store.get_events(run_id) == []


@GUESSES
def test_a_write_appends_to_one_state_list_and_replaces_another(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)
    with store.session() as session, session.begin():
        submitted = [StateChunk(field="messages", data='"a"', replace=True), StateChunk(field="notes", data='"n"')]
        write_state_chunks_txn(session, run_id, 0, submitted)
    chunks = [StateChunk(field="messages", data='"b","c"'), StateChunk(field="notes", data='"x"', replace=True)]

    written = store.write_step(dataclasses.replace(_next(run_id, expected_event_seq=expected_event_seq), chunks=chunks))

    assert isinstance(written, StepWritten)
    state = store.get_state(run_id)
    assert state is not None
    assert json.loads(state) == {"step": 1, "messages": ["a", "b", "c"], "notes": ["x"]}


@GUESSES
def test_a_refused_write_leaves_the_state_lists_as_they_were(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run, owner="w1")
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, state="{}")
        write_state_chunks_txn(session, run_id, 0, [StateChunk(field="messages", data='"a"', replace=True)])
    chunks = [StateChunk(field="messages", data='"z"', replace=True)]

    refused = store.write_step(
        dataclasses.replace(_next(run_id, owner="w2", expected_event_seq=expected_event_seq), chunks=chunks)
    )

    assert refused is WriteRefused.LEASE_LOST
    assert store.get_state(run_id) == '{"messages":["a"]}'


def test_a_final_write_reports_the_runs_usage_as_of_the_commit(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)
    store.record_model_call(
        ModelCallRecord(run_id=run_id, seq=1, attempt=1, call_index=0, usage=USAGE, model_name="m", response="{}")
    )
    committed = StepCommitted(run_id=run_id, step_seq=1, step="think", attempt=1)
    write = StepWrite(
        run_id=run_id,
        seq=1,
        owner="w1",
        attempt=1,
        state="{}",
        status=RunStatus.SUCCEEDED,
        output={"answer": 4},
        events=[committed],
        final=lambda usage: RunSucceeded(run_id=run_id, output={"answer": 4}, usage=usage),
        expected_event_seq=1,  # a final write still reads the totals first
        now=T0,
    )

    written = store.write_step(write)

    assert isinstance(written, StepWritten) and written.usage == USAGE
    run = store.get_run(run_id)
    assert (run.status, run.output, run.finished_at, run.usage) == (RunStatus.SUCCEEDED, {"answer": 4}, T0, USAGE)
    [_, succeeded] = store.get_events(run_id)
    assert isinstance(succeeded, RunSucceeded) and (succeeded.seq, succeeded.usage) == (2, USAGE)


@pytest.mark.parametrize("expected_event_seq", [1, 7], ids=["right", "wrong"])
def test_a_write_numbered_by_the_writers_guess_lands_numbered_right(
    store: RunStore, make_run: MakeRun, expected_event_seq: int
) -> None:
    run_id = _running(store, make_run)
    extra = StepStarted(run_id=run_id, step_seq=2, step="act", attempt=1, worker="w1")
    write = dataclasses.replace(_next(run_id, expected_event_seq=expected_event_seq), events=_events(run_id, extra))

    written = store.write_step(write)

    # A wrong guess (another writer appended events meanwhile) costs a round trip, never a gap.
    assert isinstance(written, StepWritten) and written.next_event_seq == 3
    assert [(event.seq, event.type) for event in written.events] == [(1, "step.committed"), (2, "step.started")]
    assert [(event.seq, event.type) for event in store.get_events(run_id)] == [
        (1, "step.committed"),
        (2, "step.started"),
    ]
    assert (store.get_run_row(run_id).next_event_seq, store.get_step_row(run_id, 2).status) == (3, StepStatus.PENDING)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_non_final_write_whose_guess_is_right_is_one_statement_on_postgresql(
    store: RunStore, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _running(store, make_run)
    statements = _counting_pg_statements(monkeypatch)
    chunks = [StateChunk(field="messages", data='"a"'), StateChunk(field="notes", data="", replace=True)]

    assert isinstance(
        store.write_step(dataclasses.replace(_next(run_id, expected_event_seq=1), chunks=chunks)), StepWritten
    )

    assert len(statements) == 1
    assert store.get_step_row(run_id, 1).status == StepStatus.COMMITTED
    assert store.get_state(run_id) == '{"step": 1,"messages":["a"],"notes":[]}'


def _finished_call(run_id: str) -> ToolCallResult:
    call = ToolCallRecord(
        run_id=run_id, seq=1, tool_call_id="c1", tool_name="dt_add", idempotent=True, attempt=1, args='{"a": 2}'
    )
    return ToolCallResult(call=call, result='"5"', start="insert")


@GUESSES
def test_a_write_records_the_finished_calls_it_carries(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)
    write = dataclasses.replace(
        _next(run_id, expected_event_seq=expected_event_seq), tool_results=[_finished_call(run_id)]
    )

    assert isinstance(store.write_step(write), StepWritten)

    rows = store.get_tool_calls(run_id, 1)
    assert [(row.tool_call_id, row.status, row.result) for row in rows] == [("c1", ToolCallStatus.FINISHED, '"5"')]
    assert store.get_step_row(run_id, 1).status == StepStatus.COMMITTED


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_on_postgresql_the_finished_calls_ride_in_the_step_s_statement(
    store: RunStore, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _running(store, make_run)
    statements = _counting_pg_statements(monkeypatch)
    write = dataclasses.replace(_next(run_id, expected_event_seq=1), tool_results=[_finished_call(run_id)])
    before = _pg_write_transactions(store)

    assert isinstance(store.write_step(write), StepWritten)

    # The call's row is one more CTE of the step's one statement: one transaction, one round trip.
    assert len(statements) == 1
    assert _pg_write_transactions(store) - before == 1


def _pg_write_transactions(store: RunStore) -> int:
    """The next transaction id PostgreSQL will assign (one per writing transaction)."""
    with store.session() as session:
        return int(session.connection().execute(sa.text("SELECT pg_snapshot_xmax(pg_current_snapshot())")).scalar_one())


def test_a_database_error_in_a_write_is_a_dbapi_error_and_rolls_back(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)
    with store.session() as session, session.begin():
        # A step 2 that should not exist yet: the successor's insert collides with it.
        claim_step_txn(session, run_id, 1, owner="w1", lease_seconds=60)
        session.connection().execute(
            sa.text(
                "INSERT INTO steps (run_id, seq, name, status, attempt, input_tokens, output_tokens, "
                "cache_read_tokens, cache_write_tokens, requests, cost_usd, created_at) "
                "VALUES (:r, 2, 'act', 'pending', 0, 0, 0, 0, 0, 0, 0, :t)"
            ),
            {"r": run_id, "t": T0},
        )

    with pytest.raises(IntegrityError):
        store.write_step(_next(run_id))

    assert store.get_step_row(run_id, 1).status == StepStatus.RUNNING
    # The connection went back to the pool usable: the next write on it works.
    with store.session() as session, session.begin():
        session.connection().execute(sa.text("DELETE FROM steps WHERE run_id = :r AND seq = 2"), {"r": run_id})
    assert isinstance(store.write_step(_next(run_id)), StepWritten)


def test_a_running_runs_step_is_claimed_with_its_event(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING, state='{"s": 0}')
        write_state_chunks_txn(session, run_id, 0, [StateChunk(field="messages", data='"a"', replace=True)])
        write_state_chunks_txn(session, run_id, 1, [StateChunk(field="messages", data='"b"')])
    seen: list[tuple[RunRow, StepClaim]] = []

    def started(run: RunRow, claim: StepClaim) -> Event:
        seen.append((run, claim))
        return StepStarted(run_id=run_id, step_seq=1, step=claim.name, attempt=claim.attempt, worker="w1")

    taken = store.claim_running_step(run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started, now=T0)

    assert taken is not None
    assert (taken.claim.name, taken.claim.attempt, taken.event.seq) == ("think", 1, 1)
    assert taken.chunks == ChunkRead(chunks={"messages": ['"a"', '"b"']})
    [(run, _)] = seen
    # The run is read as the ORM would load it: typed columns decoded.
    assert (run.status, run.state, run.tools, run.created_at.tzinfo) == (RunStatus.RUNNING, '{"s": 0}', [], UTC)
    loaded = store.get_run_row(run_id)
    assert (run.model_dump(), run.model_fields_set) == (loaded.model_dump(), loaded.model_fields_set)
    step = store.get_step_row(run_id, 1)
    assert (step.status, step.lease_owner, step.attempt) == (StepStatus.RUNNING, "w1", 1)
    assert [event.type for event in store.get_events(run_id)] == ["step.started"]


def _fresh(run_id: str) -> StepStarted:
    return StepStarted(run_id=run_id, step_seq=1, step="", attempt=1, worker="w1", ts=T0)


def _stored_payloads(store: RunStore, run_id: str) -> list[str]:
    with store.session() as session:
        rows = session.connection().execute(
            sa.text("SELECT payload FROM events WHERE run_id = :r ORDER BY seq"), {"r": run_id}
        )
        return [payload for (payload,) in rows]


def test_a_fresh_steps_claim_writes_the_first_attempts_event(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)
        append_events_txn(session, [RunStarted(run_id=run_id)])

    def started(run: RunRow, claim: StepClaim) -> Event:
        return StepStarted(run_id=run_id, step_seq=1, step=claim.name, attempt=claim.attempt, worker="w1", ts=T0)

    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started, fresh=_fresh(run_id), now=T0
    )

    assert taken is not None
    expected = StepStarted(run_id=run_id, seq=2, step_seq=1, step="think", attempt=1, worker="w1", ts=T0)
    assert (taken.event, taken.claim.attempt, taken.run.next_event_seq) == (expected, 1, 3)
    # Stored exactly as pydantic writes the event, and published as stored.
    assert _stored_payloads(store, run_id)[1] == taken.payload == expected.model_dump_json()
    assert store.get_events(run_id)[1] == expected


def test_a_step_claimed_before_is_not_claimed_as_fresh(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)  # attempt 1 holds it for 60 s
    seen: list[StepClaim] = []

    def started(run: RunRow, claim: StepClaim) -> Event:
        seen.append(claim)
        return StepStarted(run_id=run_id, step_seq=1, step=claim.name, attempt=claim.attempt, worker="w2")

    later = datetime(2031, 1, 1, tzinfo=UTC)  # the lease has expired
    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w2", lease_seconds=60, started=started, fresh=_fresh(run_id), now=later
    )

    assert taken is not None and isinstance(taken.event, StepStarted)
    assert (seen, taken.event.attempt) == ([StepClaim(attempt=2, name="think")], 2)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_fresh_steps_claim_is_one_statement_on_postgresql(
    store: RunStore, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)
    statements = _counting_pg_statements(monkeypatch)

    def started(run: RunRow, claim: StepClaim) -> Event:
        raise AssertionError("not called: a first attempt's event is the fresh one")

    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started, fresh=_fresh(run_id)
    )

    assert taken is not None and len(statements) == 1
    assert store.get_step_row(run_id, 1).status == StepStatus.RUNNING


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_on_postgresql_a_pending_run_s_first_claim_starts_the_run_in_the_same_statement(
    store: RunStore, make_run: MakeRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = make_run(steps=("think",))  # pending, as submitted
    statements = _counting_pg_statements(monkeypatch)

    def started(run: RunRow, claim: StepClaim) -> Event:
        raise AssertionError("not called: a first attempt's event is the fresh one")

    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started, fresh=_fresh(run_id), now=T0
    )

    assert taken is not None and len(statements) == 1
    expected = [
        RunStarted(run_id=run_id, seq=1, ts=T0),
        StepStarted(run_id=run_id, seq=2, step_seq=1, step="think", attempt=1, worker="w1", ts=T0),
    ]
    assert list(taken.events) == store.get_events(run_id) == expected
    assert list(taken.payloads) == _stored_payloads(store, run_id) == [event.model_dump_json() for event in expected]
    run = store.get_run_row(run_id)
    assert (run.status, run.next_event_seq, taken.run.status, taken.run.next_event_seq) == (
        RunStatus.RUNNING,
        3,
        RunStatus.RUNNING,
        3,
    )


def test_a_pending_run_asked_to_cancel_is_not_claimed_on_the_fast_path(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, cancel_requested=True)

    def started(run: RunRow, claim: StepClaim) -> Event:
        raise AssertionError("not called: nothing is claimable on the fast path")

    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started, fresh=_fresh(run_id)
    )

    assert taken is None  # the general path cancels it
    assert (store.get_run_row(run_id).status, store.get_step_row(run_id, 1).status) == (
        RunStatus.PENDING,
        StepStatus.PENDING,
    )
    assert store.get_events(run_id) == []


def test_a_refused_claim_writes_nothing(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)

    taken = store.claim_running_step(run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=lambda run, c: None)

    assert taken is None
    step = store.get_step_row(run_id, 1)
    assert (step.status, step.attempt, store.get_run_row(run_id).next_event_seq) == (StepStatus.PENDING, 0, 1)


def test_the_claim_fast_path_does_not_apply_to_a_pending_run(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))

    def started(run: RunRow, claim: StepClaim) -> Event:
        raise AssertionError("not called: the run is not running")

    assert store.claim_running_step(run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=started) is None
    assert store.get_step_row(run_id, 1).status == StepStatus.PENDING


def test_a_model_call_is_counted_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)
    record = ModelCallRecord(
        run_id=run_id, seq=1, attempt=1, call_index=0, usage=USAGE, model_name="m", response='{"r": 1}'
    )

    store.record_model_call(record)
    store.record_model_call(record)

    assert store.get_run(run_id).usage == USAGE
    assert store.get_step_row(run_id, 1).usage == USAGE
    [call] = store.get_model_calls(run_id, 1)
    assert (call.model_name, call.response, call.usage) == ("m", '{"r": 1}', USAGE)


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_tool_calls_start_is_written_with_its_result(store: RunStore, make_run: MakeRun, idempotent: bool) -> None:
    run_id = _running(store, make_run)

    call = ToolCallRecord(
        run_id=run_id, seq=1, tool_call_id="c1", tool_name="lookup", idempotent=idempotent, attempt=1, args='{"q": 1}'
    )

    recorded = store.record_tool_call_finished(call, result='"ok"', start="insert", now=T0)

    assert recorded
    [call] = store.get_tool_calls(run_id, 1)
    assert (call.status, call.result, call.args, call.idempotent, call.finished_at) == (
        ToolCallStatus.FINISHED,
        '"ok"',
        '{"q": 1}',
        idempotent,
        T0,
    )


def test_a_later_attempt_takes_an_unfinished_call_over_and_finishes_it(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)
    common = {"run_id": run_id, "seq": 1, "tool_call_id": "c1", "tool_name": "lookup", "idempotent": True}
    # Attempt 1 crashed mid-call: its row says started.
    with store.session() as session, session.begin():
        record_tool_call_started_txn(session, **common, attempt=1, args=None)

    assert store.record_tool_call_finished(
        ToolCallRecord(**common, attempt=2, args=None), result='"y"', start="restart"
    )

    [call] = store.get_tool_calls(run_id, 1)
    assert (call.status, call.attempt, call.result) == (ToolCallStatus.FINISHED, 2, '"y"')


def test_a_calls_start_is_recorded_on_its_own_and_a_later_attempt_takes_it_over(
    store: RunStore, make_run: MakeRun
) -> None:
    run_id = _running(store, make_run)
    call = ToolCallRecord(
        run_id=run_id, seq=1, tool_call_id="c1", tool_name="charge", idempotent=False, attempt=1, args='{"n": 1}'
    )

    store.record_tool_call_started(call, start="insert", now=T0)
    store.record_tool_call_started(call, start="insert")  # a duplicate changes nothing

    [started] = store.get_tool_calls(run_id, 1)
    assert (started.status, started.attempt, started.args, started.started_at) == (
        ToolCallStatus.STARTED,
        1,
        '{"n": 1}',
        T0,
    )
    store.record_tool_call_started(dataclasses.replace(call, attempt=2), start="restart")
    [restarted] = store.get_tool_calls(run_id, 1)
    assert (restarted.status, restarted.attempt) == (ToolCallStatus.STARTED, 2)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_lost_mid_write_fails_that_write_and_the_next_one_reconnects(
    store: RunStore, make_run: MakeRun, engine: Engine
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    first, second = _running(store, make_run), _running(store, make_run)
    assert store.pipelined
    writer = ThreadPoolExecutor(max_workers=1)  # both writes on one thread, hence one connection
    try:
        with pytest.raises(DBAPIError) as raised:
            _lose_connection_mid_write(engine, first, lambda: writer.submit(store.write_step, _next(first)).result(20))

        assert raised.value.connection_invalidated or "terminat" in str(raised.value).lower()
        assert isinstance(writer.submit(store.write_step, _next(second)).result(20), StepWritten)
    finally:
        writer.shutdown()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_connection_the_server_ended_while_idle_is_replaced_without_failing_a_write(
    store: RunStore, make_run: MakeRun, engine: Engine
) -> None:
    first, second = _running(store, make_run), _running(store, make_run)
    assert isinstance(store.write_step(_next(first)), StepWritten)  # this thread's connection is open
    terminate_backends(engine)

    assert isinstance(store.write_step(_next(second)), StepWritten)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_each_thread_writes_on_a_connection_of_its_own_and_close_closes_them(
    store: RunStore, make_run: MakeRun
) -> None:
    import threading

    import psycopg  # the postgres extra

    run_ids = [_running(store, make_run) for _ in range(2)]
    held: list[psycopg.Connection[Any]] = []
    backends: list[int] = []
    wrote = threading.Barrier(3)
    closed = threading.Event()
    pipeline = store._pipeline
    assert pipeline is not None

    def write(run_id: str) -> None:
        assert isinstance(store.write_step(_next(run_id)), StepWritten)
        conn = pipeline.connections.get()  # the one this thread wrote on
        held.append(conn)
        backends.append(conn.info.backend_pid)
        wrote.wait(20)
        closed.wait(20)  # alive until the store is closed: `close` must close live threads' connections

    threads = [threading.Thread(target=write, args=(run_id,)) for run_id in run_ids]
    for thread in threads:
        thread.start()
    wrote.wait(20)

    assert len(set(backends)) == 2
    store.close()
    assert len(held) == 2 and all(conn.closed for conn in held)
    closed.set()
    for thread in threads:
        thread.join(20)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_thread_that_wrote_and_ended_has_its_connection_closed(store: RunStore, make_run: MakeRun) -> None:
    import gc
    import threading

    import psycopg  # the postgres extra

    run_id = _running(store, make_run)
    held: list[psycopg.Connection[Any]] = []
    pipeline = store._pipeline
    assert pipeline is not None

    def write() -> None:
        assert isinstance(store.write_step(_next(run_id)), StepWritten)
        held.append(pipeline.connections.get())  # the one this thread wrote on
        assert not held[0].closed

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(20)
    gc.collect()  # the thread's locals are gone with it

    # Not left open until the store closes: a pool whose threads come and go would pile them up.
    assert len(held) == 1 and held[0].closed


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_forked_child_writes_on_a_connection_of_its_own_and_leaves_its_parents_alone(
    store: RunStore, make_run: MakeRun
) -> None:

    first, second, third = (_running(store, make_run) for _ in range(3))
    pipeline = store._pipeline
    assert pipeline is not None
    assert isinstance(store.write_step(_next(first)), StepWritten)
    parents = pipeline.connections.get()

    assert _written_in_a_forked_child(store, _next(second), not_on=parents) == 0
    # The parent's connection still works: the child neither used nor closed it.
    assert pipeline.connections.get() is parents and not parents.closed
    assert isinstance(store.write_step(_next(third)), StepWritten)
    assert [store.get_step_row(run_id, 1).status for run_id in (first, second, third)] == [StepStatus.COMMITTED] * 3


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_forked_child_never_settles_its_parents_model_call_row(store: RunStore, make_run: MakeRun) -> None:

    first, second = (_running(store, make_run) for _ in range(2))
    pipeline = store._pipeline
    assert pipeline is not None
    parents = pipeline.connections.get()
    # The parent's row is in flight when it forks: its reply is the parent's to read.
    store.record_model_call(
        ModelCallRecord(run_id=first, seq=1, attempt=1, call_index=0, usage=USAGE, model_name="m", response="{}")
    )

    # A one-statement write, which settles a row in flight with it.
    assert _written_in_a_forked_child(store, _next(second, expected_event_seq=1), not_on=parents) == 0
    # The parent's row and its reply were left to the parent, whose write settles them.
    written = store.write_step(_next(first, expected_event_seq=1))
    assert isinstance(written, StepWritten) and written.usage == USAGE
    assert pipeline.connections.get() is parents
    assert [store.get_step_row(run_id, 1).status for run_id in (first, second)] == [StepStatus.COMMITTED] * 2


def _written_in_a_forked_child(store: RunStore, write: StepWrite, *, not_on: Any) -> int:
    """Fork; the child writes ``write`` on a connection other than ``not_on``, as a prefork pool
    process does with the store it inherited. The child's exit status (0: it did)."""
    import os

    pipeline = store._pipeline
    assert pipeline is not None
    child = os.fork()
    if child == 0:
        status = 1
        try:
            store.engine.dispose(close=False)  # `Runtime.after_fork`: forget the parent's pool
            written = store.write_step(write)
            status = 0 if isinstance(written, StepWritten) and pipeline.connections.get() is not not_on else 2
            store.close()
        finally:
            os._exit(status)
    _, status = os.waitpid(child, 0)
    return os.waitstatus_to_exitcode(status)


def _lose_connection_mid_write(engine: Engine, run_id: str, write: Callable[[], object]) -> None:
    """Run ``write`` (a step commit of ``run_id``) while its server process is killed mid-statement.

    The run's row is held locked, so the commit waits on it; its server process is then ended,
    as a restart ends it, and the write fails with the connection, not before it.
    """
    from concurrent.futures import ThreadPoolExecutor

    locker = sa.create_engine(engine.url, poolclass=sa.NullPool)
    with locker.connect() as holder, locker.connect() as admin, ThreadPoolExecutor(max_workers=1) as pool:
        holder.execute(sa.text("SELECT 1 FROM runs WHERE id = :id FOR UPDATE"), {"id": run_id})
        pending = pool.submit(write)

        def waiting() -> int | None:
            pid = admin.execute(
                sa.text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar()
            admin.commit()  # a fresh snapshot of pg_stat_activity on each poll
            return pid

        pid = wait_until(waiting, what="the commit to wait on the run's lock")
        admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        admin.commit()
        holder.rollback()
        pending.result(20)
    locker.dispose()


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_once_one_thread_finds_its_connection_dead_the_others_replace_theirs_before_writing(
    store: RunStore, make_run: MakeRun, engine: Engine
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    runs = [_running(store, make_run) for _ in range(4)]
    first, second = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)  # a thread each
    connections = store._pipeline.connections  # type: ignore[union-attr]  # each thread's connection
    try:
        assert isinstance(first.submit(store.write_step, _next(runs[0])).result(20), StepWritten)
        assert isinstance(second.submit(store.write_step, _next(runs[1])).result(20), StepWritten)
        seconds = second.submit(connections.get).result(20)

        with pytest.raises(DBAPIError):
            _lose_connection_mid_write(
                engine, runs[2], lambda: first.submit(store.write_step, _next(runs[2])).result(20)
            )

        # The second thread's connection is alive and silent, but opened before the first one
        # was found dead (a restart ends them all): it is replaced before its next write.
        assert isinstance(second.submit(store.write_step, _next(runs[3])).result(20), StepWritten)
        assert second.submit(connections.get).result(20) is not seconds
        assert seconds.closed
    finally:
        first.shutdown()
        second.shutdown()


@GUESSES
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_model_call_row_that_failed_fails_the_threads_next_write(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    # Sent without waiting: the error comes with the next write, which must not commit without it.
    run_id = _running(store, make_run)
    too_big = USAGE.model_copy(update={"input_tokens": 2**70})  # past bigint: the server refuses it

    with pytest.raises(DBAPIError, match="out of range"):
        # The server sends an error at once: it may already come while the row's COMMIT is queued.
        store.record_model_call(
            ModelCallRecord(run_id=run_id, seq=1, attempt=1, call_index=0, usage=too_big, model_name="m", response="{}")
        )
        store.write_step(_next(run_id, expected_event_seq=expected_event_seq))

    assert store.get_model_calls(run_id, 1) == []
    assert store.get_run(run_id).usage == Usage()
    assert store.get_step_row(run_id, 1).status == StepStatus.RUNNING
    assert store.get_events(run_id) == []
    # The connection is usable again.
    assert isinstance(store.write_step(_next(run_id, expected_event_seq=expected_event_seq)), StepWritten)


_RECORD_AND_DIE = """
import os, signal, sys
from mamba_client.schemas import Usage
from mamba_worker.durable.store import ModelCallRecord, RunStore, create_engine

store = RunStore(create_engine(sys.argv[1]))
usage = Usage(input_tokens=100, output_tokens=20, requests=1, cost_usd=0.25)
store.record_model_call(
    ModelCallRecord(run_id=sys.argv[2], seq=1, attempt=1, call_index=0, usage=usage, model_name="m", response="{}")
)
os.kill(os.getpid(), signal.SIGKILL)  # before anything reads the reply
"""


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_model_call_row_is_committed_though_the_worker_dies_right_after(
    store: RunStore, make_run: MakeRun, engine: Engine, tmp_path: Path
) -> None:
    run_id = _running(store, make_run)
    script = tmp_path / "record_and_die.py"
    script.write_text(_RECORD_AND_DIE)
    url = engine.url.render_as_string(hide_password=False)

    died = subprocess.run([sys.executable, str(script), url, run_id], capture_output=True, check=False)

    assert died.returncode == -signal.SIGKILL, died.stderr.decode()
    wait_until(lambda: store.get_run(run_id).usage == USAGE, what="the model-call row sent before the kill")
    [call] = store.get_model_calls(run_id, 1)
    assert call.usage == USAGE


# -- a step sent without waiting for its outcome (`RunStore.send_step`) ------------------------------


def _step_status_elsewhere(engine: Engine, run_id: str, seq: int) -> str | None:
    """The step's status as another connection sees it (a read through the store would settle the write)."""
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT status FROM steps WHERE run_id = :r AND seq = :s"), {"r": run_id, "s": seq}
        )
        return row.scalar_one_or_none()


@GUESSES
def test_a_step_sent_is_confirmed_with_what_writing_it_returns(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run)

    pending = store.send_step(_next(run_id, claimed=True, expected_event_seq=expected_event_seq))
    written = pending.confirm()

    assert isinstance(written, StepWritten) and [event.seq for event in written.events] == [1]
    assert written.next_event_seq == 2
    assert pending.confirm() is written
    assert [step.status for step in store.get_steps(run_id)] == [StepStatus.COMMITTED, StepStatus.RUNNING]


@GUESSES
def test_a_step_sent_by_a_worker_that_lost_the_lease_is_confirmed_refused(
    store: RunStore, make_run: MakeRun, expected_event_seq: int | None
) -> None:
    run_id = _running(store, make_run, owner="w1")

    refused = store.send_step(_next(run_id, owner="w2", expected_event_seq=expected_event_seq)).confirm()

    assert refused is WriteRefused.LEASE_LOST
    assert [s.status for s in store.get_steps(run_id)] == [StepStatus.RUNNING]


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_on_postgresql_a_step_sent_is_committed_before_its_outcome_is_read(
    store: RunStore, make_run: MakeRun, engine: Engine
) -> None:
    run_id = _running(store, make_run)
    # Step 1's commit claims step 2 for this worker, and prepares the statement on this thread's
    # connection (psycopg waits for a statement's preparation before it sends it).
    store.write_step(_next(run_id, claimed=True, expected_event_seq=1))
    first = _next(run_id, claimed=True, expected_event_seq=2)
    assert first.successor is not None
    successor = dataclasses.replace(first.successor, seq=3, name="observe", task_id=f"{run_id}:3")

    pending = store.send_step(dataclasses.replace(first, seq=2, successor=successor))

    wait_until(lambda: _step_status_elsewhere(engine, run_id, 2) == "committed", what="the sent step to be committed")
    written = pending.confirm()
    assert isinstance(written, StepWritten) and written.next_event_seq == 3


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_step_sent_is_confirmed_after_another_read_of_the_thread_took_its_reply(
    store: RunStore, make_run: MakeRun
) -> None:
    run_id = _running(store, make_run)
    pending = store.send_step(_next(run_id, expected_event_seq=1))

    assert store.get_run_row(run_id).next_event_seq == 2  # this thread's read waits for its write first

    assert isinstance(pending.confirm(), StepWritten)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_step_sent_behind_a_model_call_row_that_failed_is_not_written(store: RunStore, make_run: MakeRun) -> None:
    run_id = _running(store, make_run)
    too_big = USAGE.model_copy(update={"input_tokens": 2**70})  # past bigint: the server refuses it

    with pytest.raises(DBAPIError, match="out of range"):
        # The error comes with the row's send (the server sends errors at once), or with the
        # step's, which settles the row first.
        store.record_model_call(
            ModelCallRecord(run_id=run_id, seq=1, attempt=1, call_index=0, usage=too_big, model_name="m", response="{}")
        )
        store.send_step(_next(run_id, expected_event_seq=1))

    assert store.get_step_row(run_id, 1).status == StepStatus.RUNNING
    assert store.get_events(run_id) == []
