from __future__ import annotations

import threading

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mamba_worker.durable.store import (
    VERSION_TABLE,
    alembic_config,
    create_engine,
    current_revision,
    metadata,
    upgrade_database,
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
