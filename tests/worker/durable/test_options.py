"""A run's options (`RunOptions`) hold in the durable runtime as they do in-process."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mamba_client.schemas import RunOptions, RunStatus
from mamba_worker.durable import StepOutcome
from mamba_worker.durable.errors import RunConflictError
from mamba_worker.durable.store import utcnow
from tests._support.durable import RuntimeFactory
from tests._support.durable_workflows import Gate, Script, answer, say
from tests._support.wait import wait_until


async def test_temperature_and_max_tokens_reach_the_model(factory: RuntimeFactory) -> None:
    script = Script([answer("5")])
    h = factory.harness()
    options = RunOptions(temperature=0.25, max_tokens=123)
    run_id = h.submit(model=factory.model("scripted", script.model), options=options)

    await h.drive(run_id)

    [info] = script.infos
    assert info.model_settings is not None
    assert (info.model_settings.get("temperature"), info.model_settings.get("max_tokens")) == (0.25, 123)


async def test_without_options_the_model_gets_no_settings(factory: RuntimeFactory) -> None:
    script = Script([answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))

    await h.drive(run_id)

    assert not script.infos[0].model_settings


async def test_max_iterations_ends_a_react_run_without_an_answer(factory: RuntimeFactory) -> None:
    script = Script([say("hmm, let me think")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), options=RunOptions(max_iterations=2))

    await h.drive(run_id)

    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "workflow_failed"
    assert "max_iterations=2" in run.error.message
    assert script.calls == 2


async def test_max_steps_stops_a_workflow_that_would_go_on(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit("1000", workflow="dt_count", model="offline", options=RunOptions(max_steps=4))

    outcomes = await h.drive(run_id)

    assert outcomes[-1] == StepOutcome.FAILED
    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "max_steps_exceeded"
    assert len(h.service.steps(run_id)) == 5  # four committed, the fifth refused


async def test_a_step_that_outlives_its_timeout_fails_with_a_readable_error(factory: RuntimeFactory) -> None:
    gate = Gate()  # never opened while the step runs
    script = Script([gate.then(answer("late"))])
    h = factory.harness(max_step_attempts=1)
    run_id = h.submit(model=factory.model("scripted", script.model), options=RunOptions(step_timeout_seconds=0.2))
    try:
        assert await h.step(run_id) == StepOutcome.FAILED
    finally:
        gate.open()

    run = h.service.get(run_id)
    assert run.error is not None
    assert run.error.code == "step_timeout"
    assert "step_timeout_seconds=0.2" in run.error.message
    assert "(think)" in run.error.message


async def test_a_step_timeout_is_tried_again(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("late")), answer("in time")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), options=RunOptions(step_timeout_seconds=0.2))
    try:
        assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED
    finally:
        gate.open()

    await h.drive(run_id)
    assert h.service.get(run_id).output == "in time"


async def test_a_run_that_outlives_its_timeout_fails(factory: RuntimeFactory) -> None:
    h = factory.harness()
    # Long enough that the first step commits within it even on a loaded machine (it takes ms).
    run_id = h.submit("1000", workflow="dt_count", model="offline", options=RunOptions(timeout_seconds=2.0))
    assert await h.step(run_id) == StepOutcome.COMMITTED
    created = h.service.get(run_id).created_at
    wait_until(lambda: utcnow() - created > timedelta(seconds=2.0), timeout=10, what="the run's timeout to pass")

    await h.drive(run_id)

    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "workflow_timeout"


async def test_a_run_its_workflow_failed_cannot_be_resumed(factory: RuntimeFactory) -> None:
    script = Script([say("no answer")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), options=RunOptions(max_iterations=1))
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.FAILED

    with pytest.raises(RunConflictError, match="ended by its workflow"):
        h.service.resume(run_id)
