"""`RunService`: submit (idempotent), read, wait, cancel and resume."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, SystemPromptPart

from mamba_client.schemas import RunCancelled, RunOptions, RunStatus, StepCommitted, StepStatus, SubmitRun
from mamba_worker.durable import StepOutcome, WaitTimeoutError
from mamba_worker.durable.errors import RunConflictError, RunNotFoundError
from mamba_worker.errors import ConfigurationError
from tests._support.durable import BACKENDS, RuntimeFactory
from tests._support.durable_workflows import Gate, Script, answer
from tests._support.wait import wait_until


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_a_repeated_submit_with_the_same_key_returns_the_same_run(factory: RuntimeFactory) -> None:
    h = factory.harness()
    request = SubmitRun(input="What is 2 + 3?", model="offline", idempotency_key="job-42")

    first = h.service.submit(request)
    second = h.service.submit(request)

    assert second.id == first.id
    assert second.idempotency_key == "job-42"
    assert [run.id for run in h.service.list_runs().items] == [first.id]
    assert h.dispatcher.seqs(first.id) == [1]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_concurrent_submits_with_one_key_create_one_run(factory: RuntimeFactory) -> None:
    services = [factory.harness().service for _ in range(3)]
    request = SubmitRun(input="What is 2 + 3?", model="offline", idempotency_key="job-7")
    barrier = threading.Barrier(len(services))
    ids: list[str] = []

    def submit(index: int) -> None:
        barrier.wait()
        ids.append(services[index].submit(request).id)

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(services))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert len(ids) == 3
    assert len(set(ids)) == 1
    assert len(services[0].list_runs().items) == 1


def test_the_same_key_with_another_input_is_a_conflict(factory: RuntimeFactory) -> None:
    h = factory.harness()
    first = h.service.submit(SubmitRun(input="What is 2 + 3?", model="offline", idempotency_key="job-1"))

    with pytest.raises(RunConflictError) as raised:
        h.service.submit(SubmitRun(input="What is 3 + 4?", model="offline", idempotency_key="job-1"))

    assert raised.value.run_id == first.id
    assert "job-1" in str(raised.value)


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"workflow": "nope"}, "nope"),
        ({"tools": ["no_such_tool"]}, "no_such_tool"),
        ({"model": "no-such-provider:model"}, "no-such-provider"),
    ],
)
def test_a_submit_naming_something_unknown_fails_before_creating_a_run(
    factory: RuntimeFactory, fields: dict[str, object], needle: str
) -> None:
    h = factory.harness()
    request = SubmitRun.model_validate({"input": "hi", "model": "offline", **fields})

    with pytest.raises(ConfigurationError, match=needle):
        h.service.submit(request)

    assert h.service.list_runs().items == []


def test_a_submit_without_any_model_says_how_to_configure_one(factory: RuntimeFactory) -> None:
    h = factory.harness()

    with pytest.raises(ConfigurationError, match="MAMBA_MODEL_BACKEND__MODEL"):
        h.service.submit(SubmitRun(input="hi"))


def test_reading_an_unknown_run_raises_not_found(factory: RuntimeFactory) -> None:
    h = factory.harness()

    with pytest.raises(RunNotFoundError):
        h.service.get("nope")
    with pytest.raises(RunNotFoundError):
        h.service.events("nope")


def test_wait_gives_up_after_its_timeout(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")

    with pytest.raises(WaitTimeoutError) as raised:
        h.service.wait(run_id, timeout=0.05)

    assert raised.value.run_id == run_id


@pytest.mark.parametrize("broker", ["redis"], indirect=True)
async def test_wait_on_redis_wakes_on_the_runs_settle_notice_not_its_poll_interval(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    waited: list[RunStatus] = []
    waiter = threading.Thread(
        target=lambda: waited.append(h.service.wait(run_id, timeout=120, poll_interval=60).status), daemon=True
    )
    waiter.start()

    await h.drive(run_id)

    # A poll every 60 s would still be asleep; the notice wakes the waiter (or at worst its
    # one-second re-read of SQL does).
    wait_until(lambda: waited == [RunStatus.SUCCEEDED], timeout=10, what="the waiter to return")


async def test_a_system_prompt_option_replaces_the_workflows(factory: RuntimeFactory) -> None:
    seen: list[str] = []

    def capture(messages: list[ModelMessage]) -> ModelResponse:
        first = messages[0]
        assert isinstance(first, ModelRequest)
        seen.extend(p.content for p in first.parts if isinstance(p, SystemPromptPart))
        return answer("ok")

    script = Script([capture])
    h = factory.harness()
    run_id = h.submit(
        model=factory.model("scripted", script.model), options=RunOptions(system_prompt="You are a pirate.")
    )

    await h.drive(run_id)

    assert any("You are a pirate." in text for text in seen)


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_cancelling_a_pending_run_stops_it_at_once(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")

    run = h.service.cancel(run_id)

    assert run.status == RunStatus.CANCELLED
    assert run.cancel_requested is True
    assert h.store.get_step_row(run_id, 1).status == StepStatus.FAILED
    assert [type(e) for e in h.service.events(run_id)][-1] is RunCancelled
    # The message already sent finds the run stopped.
    assert await h.step(run_id, 1) == StepOutcome.NOT_CLAIMABLE


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_cancelling_during_a_step_refuses_its_commit(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("5"))])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    outcomes: list[StepOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(asyncio.run(h.executor.execute(run_id, 1))))
    worker.start()
    try:
        wait_until(gate.entered.is_set, what="the step in its model call")
        requested = h.service.cancel(run_id)
        assert (requested.status, requested.cancel_requested) == (RunStatus.RUNNING, True)
    finally:
        gate.open()
        worker.join(10)

    assert outcomes == [StepOutcome.CANCELLED]
    run = h.service.get(run_id)
    assert run.status == RunStatus.CANCELLED
    assert not any(isinstance(e, StepCommitted) for e in h.service.events(run_id))
    assert [type(e) for e in h.service.events(run_id)].count(RunCancelled) == 1
    assert [s.seq for s in h.service.steps(run_id)] == [1]
    assert h.dispatcher.seqs(run_id) == [1]


def test_cancelling_a_finished_run_changes_nothing(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    h.service.cancel(run_id)
    events = h.service.events(run_id)

    again = h.service.cancel(run_id)

    assert again.status == RunStatus.CANCELLED
    assert h.service.events(run_id) == events


async def test_resuming_a_succeeded_run_is_a_conflict(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    await h.drive(run_id)

    with pytest.raises(RunConflictError):
        h.service.resume(run_id)


async def test_resuming_a_run_whose_doorbell_was_lost_sends_its_step_again(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")

    h.service.resume(run_id)

    assert h.dispatcher.seqs(run_id) == [1, 1]
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


def test_a_cancel_stops_a_long_step_at_its_next_heartbeat(factory: RuntimeFactory) -> None:
    gate = Gate()  # the model call would never end by itself
    script = Script([gate.then(answer("5"))])
    h = factory.harness(lease_seconds=5, heartbeat_seconds=0.05)
    run_id = h.submit(model=factory.model("scripted", script.model))
    outcomes: list[StepOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(asyncio.run(h.executor.execute(run_id, 1))))
    worker.start()
    try:
        wait_until(gate.entered.is_set, what="the step in its model call")
        h.service.cancel(run_id)

        wait_until(lambda: bool(outcomes), timeout=10, what="the step to stop")
    finally:
        gate.open()
        worker.join(10)

    assert outcomes == [StepOutcome.CANCELLED]
    assert h.service.get(run_id).status == RunStatus.CANCELLED
    assert h.store.get_step_row(run_id, 1).status == StepStatus.FAILED
