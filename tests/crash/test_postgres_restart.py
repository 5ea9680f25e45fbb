"""PostgreSQL restarted while a step runs: the step goes on (or retries) and the run finishes.

Every connection dies with the restart: the held step's lease heartbeats fail meanwhile, and its
pooled connections are dead when it records the model's response and commits. The engine's pre-ping
replaces them; a failure in between is a transient error whose step is tried again.

The restart uses the local cluster's ``pg_ctlcluster`` (Debian's PostgreSQL packaging, as in CI);
the fixture brings the server back and waits until it accepts connections, whatever the test did.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests._support.services import services_required
from tests._support.wait import wait_until
from tests.crash.conftest import RigFactory

pytestmark = pytest.mark.slow

CLUSTER = "main"


def _pg_ctlcluster(version: str, action: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, CLUSTER, action],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _accepting(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 2})
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


class LocalPostgres:
    """The local PostgreSQL cluster, controlled with ``pg_ctlcluster``."""

    def __init__(self, version: str, url: str) -> None:
        self.version = version
        self.url = url

    def _ctl(self, action: str) -> None:
        done = _pg_ctlcluster(self.version, action)
        assert done.returncode == 0, f"pg_ctlcluster {action} failed: {done.stdout}{done.stderr}"

    def wait_accepting(self) -> None:
        """Block until PostgreSQL accepts connections."""
        wait_until(lambda: _accepting(self.url), timeout=60, interval=0.2, what="PostgreSQL to accept connections")

    def restart(self) -> None:
        """Restart the server (every connection dies) and wait until it accepts connections."""
        self._ctl("restart")
        self.wait_accepting()

    def stop(self) -> None:
        """Stop the server."""
        self._ctl("stop")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        self._ctl("start")
        self.wait_accepting()


@pytest.fixture
def local_postgres(postgres_url: str) -> Iterator[LocalPostgres]:
    """The local cluster, to restart or stop; it is running again after the test, always."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*") if (p / CLUSTER).is_dir())
    if shutil.which("pg_ctlcluster") is None or not versions:
        message = "no local PostgreSQL cluster to restart (pg_ctlcluster and /etc/postgresql/<version>/main)"
        if services_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    postgres = LocalPostgres(versions[-1], postgres_url)
    try:
        yield postgres
    finally:
        if _pg_ctlcluster(postgres.version, "status").returncode != 0:
            _pg_ctlcluster(postgres.version, "start")
        postgres.wait_accepting()


def test_postgresql_restarted_while_a_step_runs(rig_factory: RigFactory, local_postgres: LocalPostgres) -> None:
    rig = rig_factory(database="postgresql", broker="redis")
    rig.gates.hold("think-1")
    worker = rig.workers.start("worker")
    run = rig.submit()
    rig.wait_entered("think-1", run.id)

    local_postgres.restart()
    rig.gates.release("think-1")

    finished = rig.wait_finished(run.id)
    rig.assert_committed_once(run.id)
    assert worker.alive()
    assert finished.output == rig.run_uninterrupted().output


def test_postgresql_down_when_a_step_ends_makes_the_step_run_again(
    rig_factory: RigFactory, local_postgres: LocalPostgres
) -> None:
    rig = rig_factory(database="postgresql", broker="redis")
    rig.gates.hold("think-1")
    worker = rig.workers.start("worker")
    run = rig.submit()
    rig.wait_entered("think-1", run.id)

    local_postgres.stop()
    try:
        rig.gates.release("think-1")
        # The step's model call returns into a dead database: nothing of it can be recorded.
        wait_until(lambda: list(rig.directory.glob("done.*")), timeout=60, what="the step's task to end")
    finally:
        local_postgres.start()

    finished = rig.wait_finished(run.id)
    rig.assert_committed_once(run.id)
    assert rig.step_rows(run.id)[0][3] == 2  # step 1 ran again
    assert worker.alive()
    assert finished.output == rig.run_uninterrupted().output
