"""`ThreadConnections`: each thread's PostgreSQL connection, replaced once the server ended it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from mamba_client.schemas import SubmitRun
from mamba_worker.durable.store import FirstStep, NewRun, RunStore
from mamba_worker.durable.store._pg_connections import ThreadConnections
from tests._support.wait import wait_until
from tests.worker.durable.store.conftest import terminate_backends

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def test_an_idle_connection_is_kept(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)

    first = connections.get()

    assert connections.get() is first
    connections.close()


def test_a_connection_the_server_ended_is_replaced_before_its_next_use(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)
    first = connections.get()
    terminate_backends(engine, f"pid = {first.info.backend_pid}")

    second = connections.get()

    assert second is not first
    assert first.closed
    assert second.execute("SELECT 1").fetchone() == (1,)
    connections.close()


def test_a_write_sent_without_waiting_is_settled_before_the_connection_is_used_again(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)
    conn = connections.get()
    connections.send_unsettled(conn, [("BEGIN", None), ("SELECT pg_sleep(0.2)", None), ("COMMIT", None)])

    with pytest.raises(RuntimeError, match="settle it first"):
        connections.get()
    connections.settle()

    # Its replies were read, not taken for the server ending the connection: the same one is kept.
    assert connections.get() is conn
    assert conn.execute("SELECT 1").fetchone() == (1,)
    connections.close()


def _autocommitting(engine: sa.Engine) -> tuple[ThreadConnections, psycopg.Connection[Any]]:
    """This thread's connection, autocommitting (as `PgPipeline` sends its writes)."""
    connections = ThreadConnections(engine)
    conn = connections.get()
    conn.autocommit = True
    return connections, conn


def _with_ledger(engine: sa.Engine) -> tuple[ThreadConnections, psycopg.Connection[Any]]:
    """`_autocommitting`, with a table to write."""
    connections, conn = _autocommitting(engine)
    conn.execute("CREATE TEMPORARY TABLE ledger (n int)")
    return connections, conn


def test_a_statement_runs_through_the_cursor_kept_for_it(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)
    conn = connections.get()
    statement = "SELECT %(numbers)s::bigint[], %(names)s::text[]"

    first = connections.execute(conn, statement, {"numbers": [1, 2], "names": ["a"]})
    assert first.fetchone() == ([1, 2], ["a"])
    # Ints that need a wider type than the kept cursor's first dumper, and other names.
    again = connections.execute(conn, statement, {"numbers": [3, 2**40, None], "names": ["b", None]})

    assert again is first
    assert again.fetchone() == ([3, 2**40, None], ["b", None])
    assert connections.execute(conn, "SELECT 1").fetchone() == (1,)
    assert connections.execute(conn, "SELECT 1") is not first
    connections.close()


def test_a_replaced_connection_runs_statements_on_cursors_of_its_own(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)
    first = connections.get()
    connections.execute(first, "SELECT %(x)s::int", {"x": 1})
    terminate_backends(engine, f"pid = {first.info.backend_pid}")

    second = connections.get()

    assert connections.execute(second, "SELECT %(x)s::int", {"x": 2}).fetchone() == (2,)
    connections.close()


def test_a_statement_on_another_threads_connection_is_refused(engine: sa.Engine) -> None:
    connections, others = ThreadConnections(engine), ThreadConnections(engine)
    connections.get()

    with pytest.raises(ValueError, match="this thread's connection"):
        connections.execute(others.get(), "SELECT 1")
    connections.close()
    others.close()


def _new(run_id: str, first: FirstStep) -> NewRun:
    return NewRun(run_id=run_id, queue="mamba", priority=None, state="{}", chunks=[], first=first)


def test_a_submit_after_a_server_restart_succeeds(store: RunStore) -> None:
    # A submit has no retry: a connection the restart ended must not be found by failing one.
    submit = SubmitRun(input="hi", model="offline")
    first = FirstStep(name="think", task_name="mamba.react.think", task_id="t1")
    store.insert_submitted_run(submit, _new("r1", first))
    terminate_backends(store.engine)

    written = store.insert_submitted_run(submit, _new("r2", first))

    assert written.events is not None
    assert store.get_run("r2").id == "r2"


@pytest.fixture
def shared_ledger(engine: sa.Engine) -> Iterator[str]:
    """A table other connections see (a temporary one is the creating connection's only)."""
    name = f"ledger_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {name} (n int)")
    yield name
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE {name}")


def _count(engine: sa.Engine, table: str) -> int:
    """The rows of ``table`` as another connection sees them."""
    with engine.connect() as connection:
        return int(connection.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def test_a_deferred_statement_is_committed_before_its_reply_is_read(engine: sa.Engine, shared_ledger: str) -> None:
    connections, conn = _autocommitting(engine)
    insert = f"WITH i AS (INSERT INTO {shared_ledger} VALUES (%(n)s) RETURNING n) SELECT count(*) FROM i"
    connections.execute(conn, insert, {"n": 0})  # prepared: what goes out next is the statement itself

    sent = connections.send_deferred(conn, insert, {"n": 1})

    # Sent with its Sync: the server commits it while nothing here waits for it.
    wait_until(lambda: _count(engine, shared_ledger) == 2, what="the deferred insert to be committed")
    assert not sent.settled
    assert connections.unsettled() is conn
    connections.settle()
    assert (sent.settled, sent.error) == (True, None)
    assert sent.rows == [[(1,)]]
    assert connections.get() is conn
    connections.close()


def test_a_deferred_statement_not_yet_prepared_runs_when_it_is_settled(engine: sa.Engine) -> None:
    connections, conn = _with_ledger(engine)

    # psycopg prepares it first and waits for that: the statement goes out with the settle.
    sent = connections.send_deferred(conn, "INSERT INTO ledger VALUES (%(n)s) RETURNING n", {"n": 7})
    connections.settle()

    assert sent.rows == [[(7,)]]
    assert conn.execute("SELECT count(*) FROM ledger").fetchone() == (1,)
    connections.close()


def test_a_deferred_statements_error_is_raised_by_the_settle_and_kept_for_its_writer(engine: sa.Engine) -> None:
    connections, conn = _autocommitting(engine)

    sent = connections.send_deferred(conn, "SELECT 1 / %(zero)s::int", {"zero": 0})
    with pytest.raises(RuntimeError, match="settle it first"):
        connections.get()
    with pytest.raises(RuntimeError, match="settle it first"):
        connections.send_unsettled(conn, [("SELECT 1", None)])
    with pytest.raises(psycopg.errors.DivisionByZero):
        connections.settle()

    assert sent.settled and isinstance(sent.error, psycopg.errors.DivisionByZero)
    assert connections.get() is conn
    assert conn.execute("SELECT 1").fetchone() == (1,)
    connections.close()


def test_a_write_in_flight_on_a_closed_connection_settles_with_its_outcome_unknown(engine: sa.Engine) -> None:
    connections, conn = _autocommitting(engine)
    sent = connections.send_deferred(conn, "SELECT %(x)s::int", {"x": 1})
    conn.close()

    connections.settle()  # nothing to read; whoever waits for the write is told

    assert sent.settled and isinstance(sent.error, psycopg.OperationalError)
    assert connections.get() is not conn
    connections.close()


def test_a_settled_writes_rows_are_kept_though_its_statement_runs_again(engine: sa.Engine) -> None:
    connections, conn = _autocommitting(engine)
    statement = "SELECT %(x)s::int"
    sent = connections.send_deferred(conn, statement, {"x": 1})
    connections.settle()

    # The same statement, on the cursor kept for it: the write's rows were taken when it settled.
    assert connections.execute(conn, statement, {"x": 2}).fetchone() == (2,)

    assert sent.rows == [[(1,)]]
    connections.close()
