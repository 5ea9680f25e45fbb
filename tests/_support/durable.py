"""Fixtures' building blocks for the durable runtime's tests.

- `PostgresDatabases`: one throwaway PostgreSQL database per test session, a fresh schema per test.
- `RuntimeFactory`: settings and `Runtime`s for one test on SQLite (a temporary file) or PostgreSQL,
  with the embedded broker (a temporary file) or Redis (a queue of its own, whose keys it deletes
  at the end), and short leases and intervals so recovery paths run in well under a second.
- `RecordingDispatcher` and friends: dispatchers that keep, lose or drop messages, so tests can
  drive steps one by one with a `StepExecutor` and no worker, or stage a lost doorbell.
- `drive`: execute a run's steps in order until it settles.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from kombu.exceptions import OperationalError
from pydantic import SecretStr
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter
from pydantic_ai.models import Model
from sqlalchemy.engine import make_url

from mamba_client.schemas import Event, RunOptions, SubmitRun
from mamba_worker.config import AgentSettings, RuntimeSettings
from mamba_worker.durable import EmbeddedRuntime, FaultPoint, Registry, RunService, Runtime, StepExecutor, StepOutcome
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable.store import RunStore, utcnow
from mamba_worker.tools import FilesystemSecurity
from mamba_worker.workflows import ReActState
from tests._support.wait import wait_until

FAST: dict[str, Any] = {
    "lease_seconds": 2.0,
    "heartbeat_seconds": 0.5,
    "reconciler_interval_seconds": 0.2,
    "dispatch_grace_seconds": 0.2,
    "redispatch_after_seconds": 1.0,
    "retry_backoff_seconds": 0.01,
    "embedded_polling_seconds": 0.02,
}
"""Runtime settings that make every recovery path quick (tests override single values)."""


class PostgresDatabases:
    """One throwaway PostgreSQL database per test session, with a fresh schema per caller."""

    def __init__(self, base_url: str) -> None:
        self._admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        self._database = f"mamba_test_{uuid.uuid4().hex[:12]}"
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{self._database}"')
        self._url = make_url(base_url).set(database=self._database).render_as_string(hide_password=False)

    def fresh(self) -> str:
        """The URL of a new, empty schema in the session's database."""
        schema = f"s_{uuid.uuid4().hex[:12]}"
        engine = sa.create_engine(self._url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        engine.dispose()
        return (
            make_url(self._url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )

    def drop(self) -> None:
        """Drop the session's database."""
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self._database}" WITH (FORCE)')
        self._admin.dispose()


@dataclass
class RuntimeFactory:
    """Settings and runtimes of one test; `close` releases them and deletes the test's Redis keys.

    Args:
        database_url: The test's state store.
        broker_url: The test's broker.
        queue: A queue no other test uses.
        sandbox: The directory built-in tools are confined to.
        redis_url: Set when the broker is Redis (for cleanup and pub/sub).
    """

    database_url: str
    broker_url: str
    queue: str
    sandbox: Path
    redis_url: str | None = None
    registry: Registry = field(default_factory=lambda: registry_with_test_workflows())
    """The test's own registry (`registry_with_test_workflows`), where `model` puts scripted models."""
    runtimes: list[Runtime] = field(default_factory=list)

    def runtime_settings(self, **overrides: Any) -> RuntimeSettings:
        """Fast runtime settings over this test's database, broker and queue."""
        values: dict[str, Any] = {
            **FAST,
            "database_url": SecretStr(self.database_url),
            "broker_url": SecretStr(self.broker_url),
            "default_queue": self.queue,
            "tool_sandbox": self.sandbox,
            **overrides,
        }
        return RuntimeSettings(**values)

    def settings(self, *, agent: dict[str, Any] | None = None, **overrides: Any) -> AgentSettings:
        """`AgentSettings` with `runtime_settings` (``overrides``); ``agent``: other sections (``context``...)."""
        return AgentSettings(runtime=self.runtime_settings(**overrides), **(agent or {}))

    def harness(self, **overrides: Any) -> Harness:
        """A `Harness` over a new runtime (keywords as for `runtime`)."""
        return Harness.over(self.runtime(**overrides))

    def runtime(
        self, *, registry: Registry | None = None, agent: dict[str, Any] | None = None, **overrides: Any
    ) -> Runtime:
        """A new `Runtime` (a "worker process" of its own: its own engine and worker id)."""
        runtime = Runtime(self.settings(agent=agent, **overrides), registry=registry or self.registry)
        self.runtimes.append(runtime)
        return runtime

    def model(self, name: str, model: Model) -> str:
        """Let runs of this test name ``model``; returns ``name``."""
        self.registry.add_model(name, lambda: model)
        return name

    def close(self) -> None:
        """Dispose every runtime's engine and delete the Redis keys of this test's queue."""
        for runtime in self.runtimes:
            runtime.dispose()
        if self.redis_url is not None:
            client = redis.Redis.from_url(self.redis_url)
            try:
                keys = [key for key in client.scan_iter(match=f"*{self.queue}*")]
                if keys:
                    client.delete(*keys)
                for binding in client.scan_iter(match="_kombu.binding.*"):
                    members = [m for m in client.smembers(binding) if self.queue.encode() in m]
                    if members:
                        client.srem(binding, *members)
            finally:
                client.close()


def registry_with_test_workflows() -> Registry:
    """A fresh registry with the ``dt_*`` tools and workflows of `tests._support.durable_workflows`.

    Tests register their scripted models in it without touching the process-wide registry.
    """
    from mamba_worker.durable import default_registry
    from mamba_worker.workflows import WorkflowConfig
    from tests._support.durable_workflows import CountWorkflow, SwallowingWorkflow

    registry = Registry()

    def count_workflow(options: RunOptions, prompts: object) -> CountWorkflow:
        limits = {"max_steps": options.max_steps, "step_timeout_seconds": options.step_timeout_seconds}
        return CountWorkflow(config=WorkflowConfig(**{k: v for k, v in limits.items() if v is not None}))

    registry.add_workflow("dt_count", count_workflow, steps=CountWorkflow.step_names())
    swallowing = SwallowingWorkflow.step_names()
    registry.add_workflow("dt_swallow", lambda options, prompts: SwallowingWorkflow(), steps=swallowing)
    names = [name for name in default_registry.tool_names() if name.startswith("dt_")]
    for tool in default_registry.tools_for(names, sandbox=FilesystemSecurity(sandbox_mode=True)):
        registry.add_tool(tool)
    return registry


# -- dispatchers --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """A message a dispatcher was asked to send."""

    run_id: str
    seq: int
    task_name: str
    queue: str
    priority: int | None = None
    countdown: float | None = None


class RecordingDispatcher(Dispatcher):
    """Keeps messages instead of sending them; the outbox is stamped exactly as in production.

    Tests then execute the steps themselves (`drive`), deterministically and without a worker.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.app, runtime.store)
        self.sent: list[Sent] = []

    def publish(
        self,
        *,
        run_id: str,
        seq: int,
        task_name: str,
        queue: str,
        task_id: str,
        priority: int | None = None,
        countdown: float | None = None,
    ) -> None:
        """Record the message instead of sending it (`Dispatcher.send` still stamps the outbox)."""
        self.sent.append(Sent(run_id, seq, task_name, queue, priority, countdown))

    def seqs(self, run_id: str) -> list[int]:
        """The step numbers sent for ``run_id``, in order."""
        return [sent.seq for sent in self.sent if sent.run_id == run_id]


class LosingDispatcher(RecordingDispatcher):
    """Stamps the outbox as sent, but the broker "loses" the message (it is only recorded)."""


class DroppingDispatcher(Dispatcher):
    """A process that dies right after its commit: nothing is sent.

    A commit that stamps its outbox row (a submit, a step's successor) leaves it looking sent: the
    reconciler's stalled-dispatch path. A `send` after a commit leaves it unstamped: the unsent path.
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.app, runtime.store)
        self.dropped: list[Sent] = []

    def send(
        self,
        *,
        run_id: str,
        seq: int,
        task_name: str,
        queue: str,
        priority: int | None = None,
        countdown: float | None = None,
    ) -> str:
        """Forget the message."""
        self.dropped.append(Sent(run_id, seq, task_name, queue, priority, countdown))
        return ""

    def publish(
        self, *, run_id: str, seq: int, task_name: str, queue: str, task_id: str, priority: int | None = None
    ) -> None:
        """Forget the message (the commit stamped its outbox row: the reconciler's stalled-dispatch path)."""
        self.dropped.append(Sent(run_id, seq, task_name, queue, priority))


class FailingDispatcher(Dispatcher):
    """The broker refuses every message: a send raises, as kombu does when the broker is down."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime.app, runtime.store)

    def publish(
        self,
        *,
        run_id: str,
        seq: int,
        task_name: str,
        queue: str,
        task_id: str,
        priority: int | None = None,
        countdown: float | None = None,
    ) -> None:
        """Refuse the message."""
        raise OperationalError(f"the broker is down: step {seq} of run {run_id} not sent")


def submit_refused(runtime: Runtime, request: SubmitRun) -> str:
    """Submit ``request`` while the broker refuses every message; returns the run's id.

    The submit raises the broker's error, and the run exists with its first step's outbox row unsent.
    """
    with pytest.raises(OperationalError):
        RunService(runtime, dispatcher=FailingDispatcher(runtime)).submit(request)
    (run,) = runtime.store.list_runs().items
    return run.id


def executor(runtime: Runtime, dispatcher: Dispatcher | None = None) -> StepExecutor:
    """A `StepExecutor` over ``runtime`` sending through ``dispatcher`` (default: a `RecordingDispatcher`)."""
    return StepExecutor(runtime, dispatcher=dispatcher or RecordingDispatcher(runtime))


async def drive(
    step_executor: StepExecutor, store: RunStore, run_id: str, *, max_steps: int = 100
) -> list[StepOutcome]:
    """Execute ``run_id``'s newest step until the run settles; the outcomes, in order."""
    outcomes: list[StepOutcome] = []
    for _ in range(max_steps):
        run = store.get_run(run_id)
        if run.status.is_settled:
            return outcomes
        outcomes.append(await step_executor.execute(run_id, run.current_seq))
    raise AssertionError(f"run {run_id} did not settle within {max_steps} steps: {outcomes}")


@dataclass
class Harness:
    """One "worker" without Celery: a runtime, a `RecordingDispatcher`, a `RunService` and a `StepExecutor`."""

    runtime: Runtime
    dispatcher: RecordingDispatcher
    service: RunService
    executor: StepExecutor

    @classmethod
    def over(cls, runtime: Runtime) -> Harness:
        """A harness over ``runtime``."""
        dispatcher = RecordingDispatcher(runtime)
        return cls(
            runtime=runtime,
            dispatcher=dispatcher,
            service=RunService(runtime, dispatcher=dispatcher),
            executor=StepExecutor(runtime, dispatcher=dispatcher),
        )

    @property
    def store(self) -> RunStore:
        """The runtime's store."""
        return self.runtime.store

    def submit(self, input: str = "What is 2 + 3?", **fields: Any) -> str:
        """Submit a run; its id."""
        return self.service.submit(SubmitRun(input=input, **fields)).id

    async def step(self, run_id: str, seq: int | None = None) -> StepOutcome:
        """Execute step ``seq`` (default: the newest) once."""
        return await self.executor.execute(run_id, seq if seq is not None else self.store.get_run(run_id).current_seq)

    async def drive(self, run_id: str) -> list[StepOutcome]:
        """Execute steps until the run settles."""
        return await drive(self.executor, self.store, run_id)


def stored_history(store: RunStore, run_id: str) -> list[object]:
    """The run's stored ReAct message history, as JSON (to compare with what its model was asked)."""
    document = store.get_state(run_id)
    assert document is not None, f"run {run_id} has no state"
    return messages_json(ReActState.model_validate_json(document).messages)


def messages_json(messages: Sequence[ModelMessage]) -> list[object]:
    """``messages`` as JSON, as the state stores them."""
    return ModelMessagesTypeAdapter.dump_python(list(messages), mode="json")


def event_types(events: list[Event]) -> list[str]:
    """The ``type`` of each event."""
    return [event.type for event in events]


def start_embedded(
    factory: RuntimeFactory, *, registry: Registry | None = None, **overrides: Any
) -> Iterator[EmbeddedRuntime]:
    """Start an `EmbeddedRuntime` (worker thread + reconciler) over ``factory``'s config; stop it after."""
    runtime = factory.runtime(registry=registry, **overrides)
    embedded = EmbeddedRuntime(runtime.settings, runtime=runtime)
    embedded.start()
    try:
        yield embedded
    finally:
        embedded.stop()


BACKENDS = ("sqlite", "postgresql")
"""The state stores (the ``db`` fixture's values)."""
BROKERS = ("embedded", "redis")
"""The brokers (the ``broker`` fixture's values)."""


def arm_fault(monkeypatch: Any, point: FaultPoint, *, times: int = 1, skip: int = 0) -> None:
    """Make ``times`` passes through ``point``, after the next ``skip``, "crash" this worker (raise `SimulatedCrash`).

    The in-process twin of ``MAMBA_FAULTS=<point>:kill``: the step path is left exactly where a
    ``kill -9`` would leave it (lease held, nothing committed past the point).
    """
    from mamba_worker.durable import _commit, _executor, _faults, _recording
    from tests._support.durable_workflows import SimulatedCrash

    skipping, remaining = [skip], [times]
    original = _faults.fault

    def fault(reached: FaultPoint) -> None:
        if reached == point and skipping[0] > 0:
            skipping[0] -= 1
        elif reached == point and remaining[0] > 0:
            remaining[0] -= 1
            raise SimulatedCrash(f"crash at {point.value}")
        original(reached)

    for module in (_commit, _executor, _recording):
        monkeypatch.setattr(module, "fault", fault)


async def after_crash(h: Harness, run_id: str, seq: int | None = None) -> StepOutcome:
    """Deliver the step again once the crashed attempt's lease has expired (what the reconciler does)."""
    seq = seq if seq is not None else h.store.get_run(run_id).current_seq

    def expired() -> bool:
        row = h.store.get_step_row(run_id, seq)
        return row.lease_expires_at is not None and row.lease_expires_at < utcnow()

    wait_until(expired, timeout=10, interval=0.02, what=f"the lease of step {seq} to expire")
    return await h.executor.execute(run_id, seq)


def redis_binding_keys(queue: str) -> list[str]:
    """kombu's Redis keys recording ``queue``'s exchange bindings (deleting the queue leaves them)."""
    return [f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}"]


def drop_redis_queue(client: Any, queue: str) -> None:
    """Delete everything kombu keeps in Redis for ``queue``: its lists, its bindings, its unacked messages.

    A worker killed mid-step leaves its message in kombu's ``unacked`` hash (global to the
    database): an hour later (the visibility timeout) any worker on the database would restore it
    into ``queue``'s list, long after the test that owned the queue dropped it.
    """
    client.delete(*redis_queue_keys(queue), *redis_binding_keys(queue))
    for tag, entry in client.hscan_iter("unacked"):
        _message, _exchange, routing_key = json.loads(entry)
        if routing_key == queue:
            client.hdel("unacked", tag)
            client.zrem("unacked_index", tag)


def redis_queue_keys(queue: str) -> list[str]:
    """The Redis lists holding ``queue``'s messages: one per priority step (kombu's ``queue<sep><step>``).

    Step 0 is the bare queue name. Mamba sends a message without a priority at step 9 (the least urgent),
    so a plain ``LLEN <queue>`` does not see it.
    """
    from kombu.transport.redis import Channel

    return [queue, *(f"{queue}{Channel.sep}{step}" for step in range(1, 10))]
