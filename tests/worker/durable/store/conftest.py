"""Store fixtures: one migrated database per backend per test session, emptied before each test.

PostgreSQL tests get their own database (``mamba_test_<random>``), created through an autocommit
connection to the ``test`` database and dropped at the end, so concurrent test sessions of other
engineers never see each other's rows; tests that need an empty database get a fresh schema in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

from mamba_client.schemas import SubmitRun
from mamba_worker.durable.store import (
    RunStore,
    create_engine,
    insert_run_txn,
    insert_step_txn,
    metadata,
    new_run_id,
    upgrade_database,
)
from tests._support.wait import wait_until


class PostgresDatabases:
    """One throwaway PostgreSQL database per test session, with a fresh schema per caller.

    Schemas are much cheaper to create than databases; ``search_path`` in the URL points the
    connections at one.
    """

    def __init__(self) -> None:
        self._admin: Engine | None = None
        self._database: str | None = None
        self._url: str | None = None

    def fresh(self, base_url: str) -> str:
        if self._url is None:
            self._admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
            self._database = f"mamba_test_{uuid.uuid4().hex[:12]}"
            with self._admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{self._database}"')
            self._url = make_url(base_url).set(database=self._database).render_as_string(hide_password=False)
        schema = f"s_{uuid.uuid4().hex[:12]}"
        with sa.create_engine(self._url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool).connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        return (
            make_url(self._url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )

    def drop_all(self) -> None:
        if self._admin is None:
            return
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases]:
    databases = PostgresDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def _migrated_engines() -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def fresh_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, postgres_databases: PostgresDatabases
) -> str:
    """A URL of an empty database of ``backend`` (nothing migrated)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'mamba.db'}"
    return postgres_databases.fresh(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    postgres_databases: PostgresDatabases,
    _migrated_engines: dict[str, Engine],
) -> Engine:
    """A migrated engine of ``backend``, shared by the session's tests and emptied before each."""
    engine = _migrated_engines.get(backend)
    if engine is None:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mamba.db'}"
        else:
            url = postgres_databases.fresh(request.getfixturevalue("postgres_url"))
        engine = create_engine(url)
        upgrade_database(engine)
        _migrated_engines[backend] = engine
    elif backend == "postgresql":
        request.getfixturevalue("postgres_url")  # still skip (or fail in CI) if it went away
    with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            connection.execute(table.delete())
    return engine


@pytest.fixture
def store(engine: Engine) -> Iterator[RunStore]:
    store = RunStore(engine)
    yield store
    store.close()


MakeRun = Callable[..., str]


@pytest.fixture
def make_run(store: RunStore) -> MakeRun:
    """Insert a run (and, with ``steps``, its steps named by position); returns its id."""

    def make(
        *,
        steps: tuple[str, ...] = (),
        idempotency_key: str | None = None,
        now: datetime | None = None,
        workflow: str = "react",
    ) -> str:
        run_id = new_run_id()
        submit = SubmitRun(workflow=workflow, input="hello", idempotency_key=idempotency_key)
        with store.session() as session, session.begin():
            assert insert_run_txn(session, submit, run_id=run_id, queue="mamba", now=now)
            for seq, name in enumerate(steps, start=1):
                insert_step_txn(session, run_id=run_id, seq=seq, name=name, now=now)
        return run_id

    return make


OTHER_BACKENDS = "datname = current_database() AND pid <> pg_backend_pid()"
"""The ``pg_stat_activity`` rows of every other connection to the database: what a restart ends."""


def terminate_backends(engine: Engine, where: str = OTHER_BACKENDS) -> None:
    """End the PostgreSQL server processes ``where`` selects, as a restart does, and wait until they are gone."""
    admin = sa.create_engine(engine.url, poolclass=sa.NullPool)
    with admin.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {where}")

        def gone() -> bool:
            rows = connection.exec_driver_sql(f"SELECT 1 FROM pg_stat_activity WHERE {where}").all()
            connection.rollback()  # a fresh snapshot of pg_stat_activity on each poll
            return not rows

        wait_until(gone, what=f"the server processes where {where} to end")
    admin.dispose()


def plan_of_update(engine: Engine, table: str, write: Callable[[], object]) -> str:
    """PostgreSQL's plan, for the same values, of the one ``UPDATE`` of ``table`` that ``write`` sends."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if f"UPDATE {table} " in statement:
            sent.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        write()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    assert len(sent) == 1, sent
    statement, parameters = sent[0]
    with engine.connect() as connection:
        return "\n".join(row[0] for row in connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))


def finished_and_analysed(engine: Engine, **assignments: str) -> None:
    """Set every row of each table (``table="<SET clause>"``), then ANALYZE those tables.

    Statistics like a deployment's, in which the statuses the runtime's writes test look rare: a
    write planned to scan a status index would walk every row in that status to find its own.
    """
    with engine.begin() as connection:
        for table, assignment in assignments.items():
            connection.exec_driver_sql(f"UPDATE {table} SET {assignment}")
        for table in assignments:
            connection.exec_driver_sql(f"ANALYZE {table}")
