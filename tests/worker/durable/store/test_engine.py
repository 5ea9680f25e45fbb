from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from mamba_worker.durable.store import create_engine, read_only
from mamba_worker.errors import ConfigurationError


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp_path / 'nested' / 'dir' / 'state.db'}")
    yield engine
    engine.dispose()


def test_sqlite_creates_the_parent_directory(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'state.db'}")
    engine.dispose()
    assert (tmp_path / "a" / "b").is_dir()


def test_sqlite_uses_wal(sqlite_engine: Engine) -> None:
    assert _pragma(sqlite_engine, "journal_mode") == "wal"


def test_sqlite_enforces_foreign_keys(sqlite_engine: Engine) -> None:
    assert _pragma(sqlite_engine, "foreign_keys") == 1


def test_sqlite_synchronous_is_normal(sqlite_engine: Engine) -> None:
    assert _pragma(sqlite_engine, "synchronous") == 1  # NORMAL


def test_sqlite_waits_for_locks(sqlite_engine: Engine) -> None:
    assert _pragma(sqlite_engine, "busy_timeout") == 30_000


def test_sqlite_write_transactions_take_the_write_lock_at_begin(sqlite_engine: Engine) -> None:
    other = create_engine(sqlite_engine.url, busy_timeout_seconds=0)
    try:
        with sqlite_engine.begin() as connection:
            connection.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE ran before this
            with pytest.raises(Exception, match="locked"), other.begin() as blocked:
                blocked.exec_driver_sql("SELECT 1")
    finally:
        other.dispose()


def test_sqlite_read_only_transactions_do_not_block_writers(sqlite_engine: Engine) -> None:
    other = create_engine(sqlite_engine.url, busy_timeout_seconds=0)
    try:
        with read_only(sqlite_engine).begin() as reader:
            reader.exec_driver_sql("SELECT 1")
            with other.begin() as writer:
                writer.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    finally:
        other.dispose()


def test_postgres_engine_does_not_connect_when_built() -> None:
    # Port 1 has no server: building the engine must still succeed (nothing connects at import or build).
    engine = create_engine("postgresql+psycopg://nobody:pw@127.0.0.1:1/none")
    assert engine.pool is not None
    assert engine.dialect.name == "postgresql"


def test_postgres_engine_does_not_ping_by_default_but_can() -> None:
    # A ping per checkout costs a round trip per transaction; a dropped connection fails as a
    # DBAPIError that the runtime retries, so it is opt-in.
    assert not create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none").pool._pre_ping  # type: ignore[attr-defined]
    pinging = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", pool_pre_ping=True)
    assert pinging.pool._pre_ping  # type: ignore[attr-defined]


def test_accepts_a_secret_url(tmp_path: Path) -> None:
    engine = create_engine(SecretStr(f"sqlite:///{tmp_path / 'state.db'}"))
    engine.dispose()
    assert engine.dialect.name == "sqlite"


def test_rejects_other_databases_without_showing_the_password() -> None:
    with pytest.raises(ConfigurationError, match="runtime.database_url") as caught:
        create_engine(SecretStr("mysql://user:hunter2@db/x"))
    assert "hunter2" not in str(caught.value)


def test_rejects_a_malformed_url_without_echoing_it() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_engine(SecretStr("::not a url hunter2::"))
    assert "hunter2" not in str(caught.value)


def test_the_default_relative_path_is_created_under_the_working_directory(in_tmp_cwd: Path) -> None:
    engine = create_engine("sqlite:///.mamba/mamba.db")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
    assert (in_tmp_cwd / ".mamba" / "mamba.db").is_file()
