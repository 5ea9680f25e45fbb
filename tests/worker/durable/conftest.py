"""Fixtures of the durable runtime's tests.

``db`` (``sqlite`` by default) and ``broker`` (``embedded`` by default) pick the test's state store
and broker; parametrize them indirectly to run a test on PostgreSQL or Redis too::

    @pytest.mark.parametrize("db", BACKENDS, indirect=True)

``factory`` then builds settings and runtimes over a database and a queue of the test's own, and
``embedded`` starts an `EmbeddedRuntime` (in-process Celery worker + reconciler) that is stopped
at the end of the test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from mamba_worker.durable import EmbeddedRuntime
from tests._support import durable_workflows
from tests._support.durable import PostgresDatabases, RuntimeFactory, start_embedded
from tests._support.services import POSTGRES_URL


@pytest.fixture(scope="session")
def durable_postgres() -> Iterator[Callable[[], PostgresDatabases]]:
    """The session's throwaway PostgreSQL database, created on first use and dropped at the end."""
    created: list[PostgresDatabases] = []

    def get() -> PostgresDatabases:
        if not created:
            created.append(PostgresDatabases(POSTGRES_URL))
        return created[0]

    yield get
    for databases in created:
        databases.drop()


@pytest.fixture
def db(request: pytest.FixtureRequest) -> str:
    """The state store: ``sqlite`` (default) or ``postgresql``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> str:
    """The broker: ``embedded`` (default) or ``redis``."""
    return str(getattr(request, "param", "embedded"))


@pytest.fixture(autouse=True)
def _fresh_test_tools() -> None:
    durable_workflows.reset()


@pytest.fixture
def factory(
    db: str,
    broker: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    durable_postgres: Callable[[], PostgresDatabases],
) -> Iterator[RuntimeFactory]:
    """Settings and runtimes over a database, broker queue and sandbox of this test's own."""
    if db == "postgresql":
        request.getfixturevalue("postgres_url")  # skip locally, fail in CI, when PostgreSQL is away
        database_url = durable_postgres().fresh()
    else:
        database_url = f"sqlite:///{tmp_path / 'state.db'}"
    redis_url: str | None = None
    if broker == "redis":
        redis_url = request.getfixturevalue("redis_url")
        broker_url = redis_url
    else:
        broker_url = f"mamba+sqlite:///{tmp_path / 'broker.db'}"
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    made = RuntimeFactory(
        database_url=database_url,
        broker_url=broker_url,
        queue=f"mamba-test-{uuid.uuid4().hex[:10]}",
        sandbox=sandbox,
        redis_url=redis_url,
    )
    yield made
    made.close()


@pytest.fixture
def embedded(factory: RuntimeFactory) -> Iterator[Callable[..., EmbeddedRuntime]]:
    """Start an `EmbeddedRuntime` over ``factory`` (runtime settings as keywords); stopped after the test."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> EmbeddedRuntime:
            return stack.enter_context(contextmanager(start_embedded)(factory, **overrides))

        yield start
