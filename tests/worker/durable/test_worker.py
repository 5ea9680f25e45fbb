"""Runs through real Celery workers: the in-process `EmbeddedRuntime` worker thread, on the embedded
broker and on Redis, over SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery.signals import task_prerun

from mamba_client.schemas import RunStatus, StepCommitted, StepStatus, SubmitRun
from mamba_worker.durable import EmbeddedRuntime, default_registry
from mamba_worker.durable.store import append_events_txn, insert_outbox_txn, insert_run_txn, insert_step_txn, new_run_id
from mamba_worker.errors import ModelBackendError
from tests._support.durable import BACKENDS, BROKERS, RuntimeFactory
from tests._support.durable_workflows import CALLS, SEEN, CountWorkflow, Script, answer, call

StartEmbedded = Callable[..., EmbeddedRuntime]


@pytest.fixture
def task_names() -> Iterator[list[str]]:
    """The names of the Celery tasks workers in this process start, in order."""
    names: list[str] = []

    def record(sender: Any = None, **_: Any) -> None:
        names.append(sender.name)

    task_prerun.connect(record, weak=False)
    yield names
    task_prerun.disconnect(record)


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_a_react_run_with_a_tool_completes_on_a_worker(factory: RuntimeFactory, embedded: StartEmbedded) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    model = factory.model("scripted", script.model)
    runtime = embedded()

    run = runtime.service.submit(SubmitRun(input="What is 2 + 3?", model=model, tools=["dt_add"]))
    done = runtime.service.wait(run.id, timeout=30)

    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "5")
    steps = runtime.service.steps(run.id)
    assert [(s.name, s.status, s.attempt) for s in steps] == [
        ("think", StepStatus.COMMITTED, 1),
        ("act", StepStatus.COMMITTED, 1),
        ("observe", StepStatus.COMMITTED, 1),
        ("think", StepStatus.COMMITTED, 1),
        ("act", StepStatus.COMMITTED, 1),
        ("observe", StepStatus.COMMITTED, 1),
    ]
    events = runtime.service.events(run.id)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [e.step_seq for e in events if isinstance(e, StepCommitted)] == [1, 2, 3, 4, 5, 6]
    assert CALLS["dt_add"] == 1
    assert done.usage.requests == 2


def test_a_registered_custom_workflow_runs_with_its_own_task_names(
    factory: RuntimeFactory, embedded: StartEmbedded, task_names: list[str]
) -> None:
    assert default_registry.steps_of("dt_count") == CountWorkflow.step_names() == {"start", "count", "done"}
    runtime = embedded(registry=default_registry)

    run = runtime.service.submit(SubmitRun(workflow="dt_count", input="2", model="offline"))
    done = runtime.service.wait(run.id, timeout=30)

    assert (done.status, done.output) == (RunStatus.SUCCEEDED, 2)
    assert [s.name for s in runtime.service.steps(run.id)] == ["start", "count", "count", "done"]
    # Each step ran as the task of its own name. (On a slow machine the reconciler may re-send a
    # message it thinks lost, and the duplicate runs as a no-op: names may repeat, in this order.)
    assert list(dict.fromkeys(task_names)) == ["mamba.dt_count.start", "mamba.dt_count.count", "mamba.dt_count.done"]


def test_react_steps_run_as_mamba_think_act_observe(
    factory: RuntimeFactory, embedded: StartEmbedded, task_names: list[str]
) -> None:
    runtime = embedded()

    run = runtime.service.submit(SubmitRun(input="What is 2 + 2?", model="offline"))
    runtime.service.wait(run.id, timeout=30)

    assert [s.name for s in runtime.service.steps(run.id)] == ["think", "act", "observe"]
    # As above: a re-sent duplicate may repeat a name, never reorder the first runs.
    assert list(dict.fromkeys(task_names)) == ["mamba.think", "mamba.act", "mamba.observe"]


def test_consecutive_steps_on_a_worker_thread_share_one_event_loop(
    factory: RuntimeFactory, embedded: StartEmbedded
) -> None:
    script = Script([call("dt_loop", {}, call_id="l1"), call("dt_loop", {}, call_id="l2"), answer("done")])
    model = factory.model("scripted", script.model)
    runtime = embedded()

    run = runtime.service.submit(SubmitRun(input="loop twice", model=model, tools=["dt_loop"]))
    assert runtime.service.wait(run.id, timeout=30).status == RunStatus.SUCCEEDED

    loops = SEEN["dt_loop"]
    assert len(loops) == 2
    assert loops[0] == loops[1]


def _stage_run_of_unregistered_workflow(runtime: EmbeddedRuntime) -> str:
    """A run of workflow ``ghost`` (registered nowhere), as a worker that knew it left it."""
    store = runtime.runtime.store
    run_id = new_run_id()
    with store.session() as session, session.begin():
        insert_run_txn(session, SubmitRun(workflow="ghost", input="boo"), run_id=run_id, queue="q", state="{}")
        insert_step_txn(session, run_id=run_id, seq=1, name="haunt")
        insert_outbox_txn(session, run_id=run_id, seq=1, task_name="mamba.ghost.haunt", queue="q")
        append_events_txn(session, [])
    return run_id


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_a_task_no_worker_knows_fails_its_run_and_the_worker_goes_on(
    factory: RuntimeFactory, embedded: StartEmbedded
) -> None:
    runtime = embedded()
    ghost = _stage_run_of_unregistered_workflow(runtime)
    queue = runtime.runtime.runtime.default_queue

    runtime.runtime.app.send_task("mamba.ghost.haunt", args=[ghost, 1], queue=queue)
    runtime.runtime.app.send_task("mamba.think", args=["not", "a", "step"], queue=queue)
    runtime.runtime.app.send_task("mamba.think", args=["no-such-run", 1], queue=queue)
    run = runtime.service.submit(SubmitRun(input="What is 2 + 2?", model="offline"))

    assert runtime.service.wait(run.id, timeout=30).status == RunStatus.SUCCEEDED
    failed = runtime.service.wait(ghost, timeout=10)
    assert failed.status == RunStatus.FAILED
    assert failed.error is not None
    assert failed.error.code == "unknown_step"
    assert "mamba.ghost.haunt" in failed.error.message


def test_a_run_whose_first_message_was_lost_is_completed_by_the_reconciler(
    factory: RuntimeFactory, embedded: StartEmbedded
) -> None:
    from mamba_worker.durable import RunService
    from tests._support.durable import DroppingDispatcher

    runtime = embedded()
    lossy = RunService(runtime.runtime, dispatcher=DroppingDispatcher(runtime.runtime))

    run = lossy.submit(SubmitRun(input="What is 2 + 2?", model="offline"))

    assert runtime.service.wait(run.id, timeout=30).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_a_transient_failure_is_retried_by_the_worker_without_waiting_for_the_reconciler(
    factory: RuntimeFactory, embedded: StartEmbedded
) -> None:
    # The reconciler would only look again in an hour: the run can only finish in time if the
    # failing worker sent the retry itself (with its back-off as a Celery countdown).
    script = Script([ModelBackendError("server busy", status_code=503), answer("5")])
    model = factory.model("scripted", script.model)
    runtime = embedded(reconciler_interval_seconds=3600, retry_backoff_seconds=0.2)

    run = runtime.service.submit(SubmitRun(input="What is 2 + 3?", model=model))
    done = runtime.service.wait(run.id, timeout=30)

    assert (done.status, done.output) == (RunStatus.SUCCEEDED, "5")
    assert [(s.name, s.attempt) for s in runtime.service.steps(run.id)][0] == ("think", 2)
