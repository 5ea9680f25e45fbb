"""Queues and priorities per workflow: resolved once at submit, stored on the run, kept by every re-send."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery.signals import task_prerun
from pydantic import ValidationError
from sqlmodel import select

from mamba_client.schemas import RunStatus, RunSubmitted, SubmitRun
from mamba_worker.config import RuntimeSettings, WorkflowRoute
from mamba_worker.durable import Reconciler, RunService, register_tasks, set_runtime
from mamba_worker.durable._routing import broker_priority, resolve_route, routed_queues, settings_route
from mamba_worker.durable._worker import WorkerThread
from mamba_worker.durable.store import OutboxRow
from mamba_worker.errors import ConfigurationError
from mamba_worker.workflows import WorkflowConfig
from tests._support.durable import (
    BACKENDS,
    BROKERS,
    LosingDispatcher,
    RecordingDispatcher,
    RuntimeFactory,
    Sent,
    submit_refused,
)
from tests._support.durable_workflows import CountWorkflow
from tests._support.wait import wait_until

# -- resolution order (no I/O) --------------------------------------------------------------------


def _runtime(**routes: dict[str, Any]) -> RuntimeSettings:
    return RuntimeSettings(default_queue="default", routes={k: WorkflowRoute(**v) for k, v in routes.items()})


def _resolve(runtime: RuntimeSettings, workflow_default: WorkflowRoute | None = None, **submit: Any) -> tuple[str, Any]:
    route = resolve_route(
        SubmitRun(workflow="research", input="x", **submit), runtime=runtime, workflow_default=workflow_default
    )
    return route.queue, route.priority


def test_without_any_route_a_run_goes_to_the_default_queue_without_priority() -> None:
    assert _resolve(_runtime()) == ("default", None)


def test_the_workflows_own_default_applies_when_settings_say_nothing() -> None:
    assert _resolve(_runtime(), WorkflowRoute(queue="cls", priority=2)) == ("cls", 2)


def test_a_settings_route_overrides_the_workflows_default() -> None:
    runtime = _runtime(research={"queue": "settings", "priority": 6})
    assert _resolve(runtime, WorkflowRoute(queue="cls", priority=2)) == ("settings", 6)


def test_the_runs_own_queue_and_priority_override_everything() -> None:
    runtime = _runtime(research={"queue": "settings", "priority": 6})
    assert _resolve(runtime, WorkflowRoute(queue="cls", priority=2), queue="mine", priority=0) == ("mine", 0)


def test_each_field_falls_through_on_its_own() -> None:
    runtime = _runtime(research={"priority": 6})
    assert _resolve(runtime, WorkflowRoute(queue="cls", priority=2)) == ("cls", 6)
    assert _resolve(runtime, WorkflowRoute(queue="cls"), queue="mine") == ("mine", 6)


def test_an_exact_route_beats_patterns_and_patterns_match_in_order() -> None:
    routes = {
        "*": WorkflowRoute(queue="catch-all"),
        "res*": WorkflowRoute(queue="prefix"),
        "research": WorkflowRoute(queue="exact"),
    }
    assert settings_route(routes, "research") == WorkflowRoute(queue="exact")
    assert settings_route(routes, "resume") == WorkflowRoute(queue="catch-all")  # "*" comes first
    assert settings_route({"res*": WorkflowRoute(queue="prefix")}, "Research") is None  # case-sensitive


def test_routed_queues_lists_the_default_queue_first_without_repeats() -> None:
    runtime = _runtime(a={"queue": "q1"}, b={"priority": 3}, c={"queue": "q1"})
    assert routed_queues(runtime, [WorkflowRoute(queue="q2"), None]) == ["default", "q1", "q2"]


@pytest.mark.parametrize(
    ("broker_url", "expected"),
    [
        ("redis://localhost:6379/0", [9, 9, 5, 0]),  # kombu's Redis reads the lowest number first
        ("sentinel://localhost:26379", [9, 9, 5, 0]),
        ("amqp://guest@localhost//", [None, 0, 4, 9]),  # AMQP: higher is more urgent; none counts as 0
        ("mamba+sqlite:///broker.db", [None, None, None, None]),  # the embedded broker has no priorities
    ],
)
def test_one_priority_scale_is_mapped_onto_each_broker(broker_url: str, expected: list[int | None]) -> None:
    assert [broker_priority(broker_url, p) for p in (None, 0, 4, 9)] == expected


def test_priorities_outside_0_to_9_are_refused_everywhere() -> None:
    with pytest.raises(ValidationError):
        SubmitRun(input="x", priority=10)
    with pytest.raises(ValidationError):
        WorkflowRoute(priority=-1)
    with pytest.raises(ValidationError):
        RuntimeSettings(routes={"": WorkflowRoute(queue="q")})


def test_register_workflow_rejects_a_bad_default_route() -> None:
    from mamba_worker.durable import register_workflow

    with pytest.raises(ConfigurationError, match="priority=11"):
        register_workflow(priority=11)


# -- submit, resume and re-sends keep the stored route ------------------------------------------------


def _with_route(factory: RuntimeFactory, route: WorkflowRoute) -> None:
    def count(options: Any, prompts: Any) -> CountWorkflow:
        return CountWorkflow(config=WorkflowConfig())

    factory.registry.add_workflow("dt_count", count, steps=CountWorkflow.step_names(), route=route)


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_submit_stores_the_resolved_route_and_sends_the_first_step_with_it(factory: RuntimeFactory) -> None:
    _with_route(factory, WorkflowRoute(queue="from-class", priority=2))
    h = factory.harness(routes={"dt_*": {"priority": 7}})

    run = h.service.submit(SubmitRun(workflow="dt_count", input="2", model="offline"))

    assert (run.queue, run.priority) == ("from-class", 7)
    assert h.dispatcher.sent == [Sent(run.id, 1, "mamba.dt_count.start", "from-class", 7)]
    with h.store.session() as session:
        outbox = session.get(OutboxRow, (run.id, 1))
        assert outbox is not None
        assert (outbox.queue, outbox.priority) == ("from-class", 7)
    submitted = [e for e in h.service.events(run.id) if isinstance(e, RunSubmitted)]
    assert [(e.queue, e.priority) for e in submitted] == [("from-class", 7)]


async def test_every_successor_is_sent_on_the_runs_queue_and_priority(factory: RuntimeFactory) -> None:
    h = factory.harness(routes={"dt_count": {"queue": "routed", "priority": 7}})
    run = h.service.submit(SubmitRun(workflow="dt_count", input="3", model="offline"))

    await h.drive(run.id)

    assert h.service.get(run.id).status == RunStatus.SUCCEEDED
    sent = [(m.queue, m.priority) for m in h.dispatcher.sent if m.run_id == run.id]
    assert len(sent) > 2
    assert set(sent) == {("routed", 7)}
    with h.store.session() as session:
        rows = session.exec(select(OutboxRow).where(OutboxRow.run_id == run.id)).all()
        assert {(row.queue, row.priority) for row in rows} == {("routed", 7)}


def test_the_reconciler_resends_on_the_stored_route_even_after_the_settings_changed(factory: RuntimeFactory) -> None:
    before = factory.runtime(routes={"dt_count": {"queue": "old", "priority": 3}})
    # The broker refuses the submit's send: the outbox row stays unsent.
    run_id = submit_refused(before, SubmitRun(workflow="dt_count", input="2", model="offline"))
    redeployed = factory.runtime(routes={"dt_count": {"queue": "new", "priority": 9}}, dispatch_grace_seconds=0.0)

    resent = RecordingDispatcher(redeployed)
    assert Reconciler(redeployed, dispatcher=resent).run_once().unsent == 1

    assert resent.sent == [Sent(run_id, 1, "mamba.dt_count.start", "old", 3)]


def test_resume_sends_a_lost_step_again_on_the_runs_route(factory: RuntimeFactory) -> None:
    losing = factory.harness(routes={"dt_count": {"queue": "routed", "priority": 8}})
    lose = LosingDispatcher(losing.runtime)
    service = RunService(losing.runtime, dispatcher=lose)
    run = service.submit(SubmitRun(workflow="dt_count", input="2", model="offline"))

    again = RecordingDispatcher(losing.runtime)
    RunService(losing.runtime, dispatcher=again).resume(run.id)

    assert lose.sent == again.sent == [Sent(run.id, 1, "mamba.dt_count.start", "routed", 8)]


# -- a real worker consuming only the routed queue ---------------------------------------------------


@pytest.fixture
def delivered_on() -> Iterator[list[str]]:
    """The queue (routing key) every task a worker in this process starts was delivered on."""
    queues: list[str] = []

    def record(sender: Any = None, **_: Any) -> None:
        queues.append(str(sender.request.delivery_info.get("routing_key")))

    task_prerun.connect(record, weak=False)
    yield queues
    task_prerun.disconnect(record)


@pytest.mark.parametrize("broker", BROKERS, indirect=True)
def test_a_routed_workflows_steps_reach_a_worker_consuming_only_the_routed_queue(
    factory: RuntimeFactory, delivered_on: list[str]
) -> None:
    routed = f"{factory.queue}-routed"  # the factory's cleanup removes it from Redis too
    runtime = factory.runtime(routes={"dt_count": {"queue": routed}})
    register_tasks(runtime.app, step_names={name: runtime.registry.steps_of(name) for name in ["dt_count"]})
    set_runtime(runtime)
    # Not the default queue: if routing were ignored, no worker would ever see this run's steps.
    worker = WorkerThread(runtime.app, queues=[routed]).start()
    try:
        service = RunService(runtime)
        run = service.submit(SubmitRun(workflow="dt_count", input="3", model="offline"))
        done = wait_until(
            lambda: (r := service.get(run.id)).status == RunStatus.SUCCEEDED and r,
            timeout=30,
            what="the routed run to finish on the routed queue's worker",
        )
    finally:
        worker.stop()
        set_runtime(None)

    assert (done.queue, done.output) == (routed, 3)
    assert delivered_on == [routed] * len(service.steps(run.id))
