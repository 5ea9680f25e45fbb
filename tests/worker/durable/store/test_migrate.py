from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mamba_client.schemas import SubmitRun
from mamba_worker.durable.store import (
    VERSION_TABLE,
    OutboxRow,
    RunStore,
    StateChunk,
    alembic_config,
    create_engine,
    current_revision,
    insert_run_txn,
    metadata,
    upgrade_database,
    write_state_chunks_txn,
)


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_migrated_schema_matches_the_table_models(engine: sa.Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_upgrade_creates_every_table_and_records_the_head(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine)
        assert set(sa.inspect(engine).get_table_names()) == {*metadata.tables, VERSION_TABLE}
        assert current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_upgrade_twice_is_a_no_op(fresh_url: str) -> None:
    upgrade_database(fresh_url)
    upgrade_database(fresh_url)
    engine = create_engine(fresh_url)
    try:
        assert current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_concurrent_upgrades_both_succeed(fresh_url: str) -> None:
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            barrier.wait()
            upgrade_database(fresh_url)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=upgrade) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    engine = create_engine(fresh_url)
    try:
        assert current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_a_fresh_database_has_no_revision(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        assert current_revision(engine) is None
    finally:
        engine.dispose()


def test_downgrade_removes_every_table(fresh_url: str) -> None:
    from alembic import command

    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "base")
        assert set(sa.inspect(engine).get_table_names()) == {VERSION_TABLE}
    finally:
        engine.dispose()


def test_sqlite_connections_enforce_foreign_keys_after_an_upgrade(tmp_path: object) -> None:
    engine = create_engine(f"sqlite:///{tmp_path}/state.db", busy_timeout_seconds=1)
    try:
        upgrade_database(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_upgrading_from_0001_keeps_runs_and_their_outbox_without_a_priority(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine, revision="0001")
        now = datetime(2030, 1, 1, tzinfo=UTC)
        usage = {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0}
        usage |= {"requests": 0, "cost_usd": 0.0}
        with engine.begin() as connection:
            # As a 0001 deployment wrote them: plain SQL, no priority column anywhere.
            connection.execute(
                sa.table("runs", *(sa.column(name) for name in _RUN_0001)).insert(),
                [
                    {
                        "id": "old-run",
                        "workflow": "react",
                        "status": "running",
                        "input": "hi",
                        "model": None,
                        "tools": "[]",
                        "options": "{}",
                        "run_metadata": "{}",
                        "queue": "agents",
                        "idempotency_key": None,
                        "state": None,
                        "output": None,
                        "error": None,
                        "waiting": None,
                        **usage,
                        "last_seq": 1,
                        "next_event_seq": 1,
                        "cancel_requested": False,
                        "parent_run_id": None,
                        "parent_seq": None,
                        "created_at": now,
                        "updated_at": now,
                        "finished_at": None,
                    }
                ],
            )
            connection.execute(
                sa.text(
                    "INSERT INTO steps (run_id, seq, name, status, attempt, input_tokens, output_tokens, "
                    "cache_read_tokens, cache_write_tokens, requests, cost_usd, created_at) "
                    "VALUES ('old-run', 1, 'think', 'dispatched', 0, 0, 0, 0, 0, 0, 0.0, :now)"
                ),
                {"now": now},
            )
            connection.execute(
                sa.text(
                    "INSERT INTO outbox (run_id, seq, task_name, queue, attempt, created_at, queued_at) "
                    "VALUES ('old-run', 1, 'mamba.think', 'agents', 1, :now, :now)"
                ),
                {"now": now},
            )

        upgrade_database(engine)

        assert current_revision(engine) == _head()
        run = RunStore(engine).get_run("old-run")
        assert (run.queue, run.priority, run.current_step) == ("agents", None, "think")
        with RunStore(engine).session() as session:
            outbox = session.get(OutboxRow, ("old-run", 1))
            assert outbox is not None
            assert (outbox.task_name, outbox.queue, outbox.priority) == ("mamba.think", "agents", None)
    finally:
        engine.dispose()


def test_downgrading_0002_keeps_the_runs(fresh_url: str) -> None:
    from alembic import command

    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine)
        store = RunStore(engine)
        with store.session() as session, session.begin():
            insert_run_txn(session, SubmitRun(input="hi"), run_id="r1", queue="q", priority=7)
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0001")
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT id, queue FROM runs").all() == [("r1", "q")]
        assert "priority" not in {column["name"] for column in sa.inspect(engine).get_columns("outbox")}
    finally:
        engine.dispose()


def test_downgrading_0003_folds_the_state_chunks_back_into_the_state(fresh_url: str) -> None:
    from alembic import command

    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine)
        store = RunStore(engine)
        with store.session() as session, session.begin():
            insert_run_txn(session, SubmitRun(input="hi"), run_id="r1", queue="q", state='{"task":"hi"}')
            write_state_chunks_txn(session, "r1", 0, [StateChunk(field="messages", data='"a"', replace=True)])
            write_state_chunks_txn(session, "r1", 1, [StateChunk(field="messages", data='"b","c"')])
            write_state_chunks_txn(session, "r1", 1, [StateChunk(field="notes", data="", replace=True)])
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0002")
        with engine.connect() as connection:
            state = connection.exec_driver_sql("SELECT state FROM runs").scalar_one()
        assert json.loads(state) == {"task": "hi", "messages": ["a", "b", "c"], "notes": []}
        assert "state_chunks" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_upgrading_from_0003_keeps_events_and_chunks_without_their_keys(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine, revision="0003")
        store = RunStore(engine)
        with store.session() as session, session.begin():
            insert_run_txn(session, SubmitRun(input="hi"), run_id="r1", queue="q")
            write_state_chunks_txn(session, "r1", 0, [StateChunk(field="messages", data='"a"', replace=True)])
            session.execute(
                sa.text("INSERT INTO events (run_id, seq, type, payload, created_at) VALUES ('r1', 1, 't', '{}', :t)"),
                {"t": datetime(2026, 11, 26, tzinfo=UTC)},
            )

        upgrade_database(engine)

        inspector = sa.inspect(engine)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT run_id, seq, type FROM events").all() == [("r1", 1, "t")]
            assert connection.exec_driver_sql("SELECT run_id, data FROM state_chunks").all() == [("r1", '"a"')]
        assert inspector.get_foreign_keys("events") == inspector.get_foreign_keys("state_chunks") == []
    finally:
        engine.dispose()


def test_downgrading_0004_restores_the_keys_and_drops_rows_of_runs_deleted_since(fresh_url: str) -> None:
    from alembic import command

    engine = create_engine(fresh_url)
    try:
        upgrade_database(engine)
        store = RunStore(engine)
        with store.session() as session, session.begin():
            insert_run_txn(session, SubmitRun(input="hi"), run_id="r1", queue="q")
            for run_id in ("r1", "deleted"):  # no key at the head: a deleted run's rows can stay behind
                write_state_chunks_txn(session, run_id, 0, [StateChunk(field="messages", data='"a"', replace=True)])
                session.execute(
                    sa.text(
                        "INSERT INTO events (run_id, seq, type, payload, created_at) VALUES (:r, 1, 't', '{}', :t)"
                    ),
                    {"r": run_id, "t": datetime(2026, 11, 26, tzinfo=UTC)},
                )
        with engine.begin() as connection:
            command.downgrade(alembic_config(connection=connection), "0003")
        inspector = sa.inspect(engine)
        for table in ("events", "state_chunks"):
            with engine.connect() as connection:
                assert connection.exec_driver_sql(f"SELECT run_id FROM {table}").scalars().all() == ["r1"]
            assert [key["referred_table"] for key in inspector.get_foreign_keys(table)] == ["runs"]
    finally:
        engine.dispose()


_RUN_0001 = (
    "id workflow status input model tools options run_metadata queue idempotency_key state output error waiting "
    "input_tokens output_tokens cache_read_tokens cache_write_tokens requests cost_usd last_seq next_event_seq "
    "cancel_requested parent_run_id parent_seq created_at updated_at finished_at"
).split()
