"""`ThreadConnections`: each thread's PostgreSQL connection, replaced once the server ended it."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from mamba_client.schemas import SubmitRun
from mamba_worker.durable.store import FirstStep, RunStore
from mamba_worker.durable.store._pg_connections import ThreadConnections
from tests._support.wait import wait_until

pytestmark = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def _terminate(engine: sa.Engine, conn: psycopg.Connection[Any]) -> None:
    """End ``conn``'s server process, as a server restart does, and wait until it is gone."""
    pid = conn.info.backend_pid
    with engine.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")

        def gone() -> bool:
            rows = admin.exec_driver_sql(f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}").all()
            admin.rollback()  # a fresh snapshot of pg_stat_activity on each poll
            return not rows

        wait_until(gone, what=f"server process {pid} to end")


def _terminate_all(engine: sa.Engine) -> None:
    """End every other server process of this database, as a restart does, and wait until they are gone."""
    query = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    admin = sa.create_engine(engine.url, poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) {query}")

        def gone() -> bool:
            rows = connection.exec_driver_sql(f"SELECT 1 {query}").all()
            connection.rollback()  # a fresh snapshot of pg_stat_activity on each poll
            return not rows

        wait_until(gone, what="the database's other server processes to end")
    admin.dispose()


def test_an_idle_connection_is_kept(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)

    first = connections.get()

    assert connections.get() is first
    connections.close()


def test_a_connection_the_server_ended_is_replaced_before_its_next_use(engine: sa.Engine) -> None:
    connections = ThreadConnections(engine)
    first = connections.get()
    _terminate(engine, first)

    second = connections.get()

    assert second is not first
    assert first.closed
    assert second.execute("SELECT 1").fetchone() == (1,)
    connections.close()


def test_a_submit_after_a_server_restart_succeeds(store: RunStore) -> None:
    # A submit has no retry: a connection the restart ended must not be found by failing one.
    submit = SubmitRun(input="hi", model="offline")
    first = FirstStep(name="think", task_name="mamba.react.think", task_id="t1")
    store.insert_submitted_run(submit, run_id="r1", queue="mamba", priority=None, state="{}", chunks=[], first=first)
    _terminate_all(store.engine)

    written = store.insert_submitted_run(
        submit, run_id="r2", queue="mamba", priority=None, state="{}", chunks=[], first=first
    )

    assert written.events is not None
    assert store.get_run("r2").id == "r2"
