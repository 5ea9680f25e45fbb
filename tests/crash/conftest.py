"""Crash-test rigs: a database, a broker and a queue of the test's own, gates, and real workers.

`rig` builds a `CrashRig` on SQLite + the embedded broker; `rig_factory` builds one on any
database/broker pair. Teardown always SIGKILLs every worker the test started (whole process
groups), then removes the test's queue and PostgreSQL database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
import redis
import sqlalchemy as sa
from kombu import Connection
from sqlalchemy.engine import make_url

from mamba_client.schemas import Event, Run, RunStatus, StepCommitted, StepRedispatched, SubmitRun
from mamba_worker.config import AgentSettings, RuntimeSettings
from mamba_worker.durable import RunService, Runtime
from mamba_worker.durable.errors import RunNotFoundError
from tests._support.crash import workflow
from tests._support.crash.gates import Gates
from tests._support.crash.workers import WORKFLOW_MODULE, Stack, Workers, Zygote
from tests._support.durable import drop_redis_queue
from tests._support.wait import WaitTimeout, wait_until

Database = Literal["sqlite", "postgresql"]
Broker = Literal["embedded", "redis", "rabbitmq"]


@dataclass
class CrashRig:
    """One test's stack, seen from the test process: submit runs, read SQL, start and kill workers."""

    stack: Stack
    gates: Gates
    workers: Workers
    runtime: Runtime
    service: RunService
    directory: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list)

    @property
    def lease(self) -> float:
        """The lease length workers use."""
        return self.stack.lease_seconds

    @property
    def recovery_deadline(self) -> float:
        """Seconds a crashed run gets to finish: about one lease to notice, generous slack for busy CI."""
        return 3 * self.lease + 20

    def submit(self, *, queue: str | None = None) -> Run:
        """Submit the scripted ReAct run."""
        return self.service.submit(
            SubmitRun(input=workflow.TASK, model=workflow.MODEL_NAME, tools=workflow.TOOLS, queue=queue)
        )

    def wait_status(self, run_id: str, *statuses: RunStatus, timeout: float) -> Run:
        """Wait for the run to reach one of ``statuses``; on timeout, fail with the run, its steps and the logs."""

        def reached() -> Run | None:
            try:
                run = self.service.get(run_id)
            except sa.exc.DBAPIError:
                # This process's pooled connection died with a database restart; the next poll
                # reconnects (the test observes the system, it is not the system under test).
                return None
            return run if run.status in statuses else None

        try:
            return wait_until(
                reached,
                timeout=timeout,
                interval=0.05,
                what=f"run {run_id} to be {'/'.join(statuses)}",
            )
        except WaitTimeout as error:
            raise AssertionError(f"{error}\n{self.describe(run_id)}") from None

    def wait_finished(self, run_id: str, *, timeout: float | None = None) -> Run:
        """Wait until the run settles, and require it to have succeeded."""
        settled = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.WAITING)
        run = self.wait_status(run_id, *settled, timeout=timeout or self.recovery_deadline)
        assert run.status == RunStatus.SUCCEEDED, f"run ended {run.status}\n{self.describe(run_id)}"
        return run

    def run_uninterrupted(self) -> Run:
        """A fresh run of the same script with no gate held (the reference a crashed run must equal)."""
        return self.wait_finished(self.submit().id)

    def wait(self, predicate: Callable[[], object], what: str, *, run_id: str, timeout: float = 60.0) -> None:
        """`wait_until`, failing with the run's story and the workers' logs."""
        try:
            wait_until(predicate, timeout=timeout, what=what)
        except WaitTimeout as error:
            raise AssertionError(f"{error}\n{self.describe(run_id)}") from None

    def wait_entered(self, point: str, run_id: str, *, count: int = 1, timeout: float = 60.0) -> list[int]:
        """`Gates.wait_entered`, failing with the run's story and the workers' logs."""
        try:
            return self.gates.wait_entered(point, count=count, timeout=timeout)
        except WaitTimeout as error:
            raise AssertionError(f"{error}\n{self.describe(run_id)}") from None

    def wait_done(self, task_id: str, run_id: str, *, timeout: float = 60.0) -> str:
        """`Gates.wait_done`, failing with the run's story and the workers' logs."""
        try:
            return self.gates.wait_done(task_id, timeout=timeout)
        except WaitTimeout as error:
            raise AssertionError(f"{error}\n{self.describe(run_id)}") from None

    def events(self, run_id: str) -> list[Event]:
        """Every event of the run, in order."""
        return self.service.events(run_id, limit=10_000)

    def step_rows(self, run_id: str) -> list[tuple[int, str, str, int]]:
        """``(seq, name, status, attempt)`` of every row of the steps table for the run, straight from SQL."""
        with self.runtime.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT seq, name, status, attempt FROM steps WHERE run_id = :run ORDER BY seq"),
                {"run": run_id},
            )
            return [(int(seq), str(name), str(status), int(attempt)) for seq, name, status, attempt in rows]

    def assert_committed_once(self, run_id: str) -> list[str]:
        """Every step of the run committed exactly once, with no gap; returns the step names in order."""
        rows = self.step_rows(run_id)
        seqs = [row[0] for row in rows]
        assert seqs == list(range(1, len(rows) + 1)), f"gaps or duplicates in steps: {rows}"
        assert all(row[2] == "committed" for row in rows), f"not every step committed: {rows}"
        commits = [event.step_seq for event in self.events(run_id) if isinstance(event, StepCommitted)]
        assert sorted(commits) == seqs, f"step.committed events {commits} for steps {seqs}"
        return [row[1] for row in rows]

    def redispatch_reasons(self, run_id: str) -> list[str]:
        """The reasons of the run's ``step.redispatched`` events."""
        return [str(event.reason) for event in self.events(run_id) if isinstance(event, StepRedispatched)]

    def send_step(self, task_name: str, run_id: str, seq: int) -> str:
        """Send a step's task message by hand, as a broker redelivery would (bypasses the outbox); returns its id."""
        task_id = f"dup-{uuid.uuid4().hex[:12]}"
        self.runtime.app.send_task(task_name, args=[run_id, seq], queue=self.stack.queue, task_id=task_id)
        return task_id

    def describe(self, run_id: str) -> str:
        """The run, its steps and its events, and the workers' logs: what a failure message needs."""
        try:
            run = self.service.get(run_id)
            events = "\n".join(f"  {e.seq} {e.type} {_short(e)}" for e in self.events(run_id))
            head = f"run {run.status} error={run.error} waiting={run.waiting}\nsteps: {self.step_rows(run_id)}"
        except (RunNotFoundError, sa.exc.SQLAlchemyError) as error:
            head, events = f"run unreadable: {error}", ""
        return f"{head}\nevents:\n{events}\n{self.workers.logs()}"

    def close(self) -> None:
        """Kill the workers, release the test process's connections, and drop what the test created."""
        try:
            self.workers.kill_all()
        finally:
            self.runtime.app.close()
            self.runtime.dispose()
            for cleanup in reversed(self.cleanups):
                cleanup()


def _short(event: Event) -> str:
    data = event.model_dump(mode="json", exclude={"run_id", "seq", "type", "ts"})
    return json.dumps(data, default=str)[:200]


def _sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'state.db'}"


def _postgres_database(base_url: str, cleanups: list[Callable[[], None]]) -> str:
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    name = f"mamba_crash_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        # The PostgreSQL-restart test may have left the server starting up: wait for it.
        wait_until(_accepts(admin), timeout=60, interval=0.2, what="PostgreSQL to accept connections")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    cleanups.append(drop)
    return make_url(base_url).set(database=name).render_as_string(hide_password=False)


def _accepts(engine: sa.Engine) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError:
            return False
        return True

    return check


def _redis_broker(base_url: str, queue: str, cleanups: list[Callable[[], None]]) -> str:
    def drop() -> None:
        client = redis.Redis.from_url(base_url)
        try:
            drop_redis_queue(client, queue)
        finally:
            client.close()

    cleanups.append(drop)
    return base_url


def _rabbitmq_broker(base_url: str, queue: str, cleanups: list[Callable[[], None]]) -> str:
    def drop() -> None:
        with Connection(base_url) as connection:
            channel: Any = connection.default_channel
            channel.queue_delete(queue)
            channel.exchange_delete(queue)

    cleanups.append(drop)
    return base_url


RigFactory = Callable[..., CrashRig]


@pytest.fixture(scope="session")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    """The process that forks the session's workers ready-imported (see `tests._support.crash.boot`)."""
    factory = Zygote(tmp_path_factory.mktemp("zygote"))
    yield factory
    factory.close()


@pytest.fixture
def rig_factory(tmp_path: Path, request: pytest.FixtureRequest, zygote: Zygote) -> Iterator[RigFactory]:
    """``rig_factory(database="postgresql", broker="redis", **stack_options)`` builds a `CrashRig`."""
    rigs: list[CrashRig] = []

    def build(*, database: Database = "sqlite", broker: Broker = "embedded", **options: Any) -> CrashRig:
        directory = tmp_path / f"rig{len(rigs)}"
        directory.mkdir()
        queue = f"mamba-crash-{uuid.uuid4().hex[:10]}"
        cleanups: list[Callable[[], None]] = []
        if database == "sqlite":
            database_url = _sqlite_url(directory)
        else:
            database_url = _postgres_database(request.getfixturevalue("postgres_url"), cleanups)
        if broker == "embedded":
            broker_url = f"mamba+sqlite:///{directory / 'broker.db'}"
        elif broker == "redis":
            broker_url = _redis_broker(request.getfixturevalue("redis_url"), queue, cleanups)
        else:
            broker_url = _rabbitmq_broker(request.getfixturevalue("rabbitmq_url"), queue, cleanups)
        stack = Stack(database_url=database_url, broker_url=broker_url, queue=queue, **options)
        settings = AgentSettings(
            runtime=RuntimeSettings(
                database_url=stack.database_url,
                broker_url=stack.broker_url,
                default_queue=stack.queue,
                lease_seconds=stack.lease_seconds,
                reconciler_interval_seconds=stack.reconciler_interval_seconds,
                dispatch_grace_seconds=stack.dispatch_grace_seconds,
                retry_backoff_seconds=stack.retry_backoff_seconds,
                workflow_modules=[WORKFLOW_MODULE],
            )
        )
        # Migrates the database here, once, before any worker starts (workers then find it current).
        runtime = Runtime(settings)
        rig = CrashRig(
            stack=stack,
            gates=Gates(directory),
            workers=Workers(stack, directory, zygote),
            runtime=runtime,
            service=RunService(runtime),
            directory=directory,
            cleanups=cleanups,
        )
        rigs.append(rig)
        return rig

    yield build
    for rig in rigs:
        rig.close()


@pytest.fixture
def rig(rig_factory: RigFactory) -> CrashRig:
    """A `CrashRig` on SQLite and the embedded broker (no server needed)."""
    return rig_factory()
