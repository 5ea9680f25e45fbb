"""How steps fail: transient failures retry after a back-off, permanent ones fail the run (resumable),
a step that keeps crashing is a poison message, and malformed or unknown messages are discarded."""

from __future__ import annotations

import pytest
from pydantic_ai.exceptions import UnexpectedModelBehavior

from mamba_client.schemas import RedispatchReason, RunStatus, StepFailed, StepRedispatched, StepStatus
from mamba_worker.durable import Reconciler, StepExecutor, StepOutcome
from mamba_worker.durable._tasks import run_step_message
from mamba_worker.errors import ModelBackendError
from tests._support.durable import BACKENDS, DroppingDispatcher, Harness, RuntimeFactory, after_crash
from tests._support.durable_workflows import Script, SimulatedCrash, answer
from tests._support.wait import wait_until


def _failed_events(h: Harness, run_id: str) -> list[StepFailed]:
    return [e for e in h.service.events(run_id) if isinstance(e, StepFailed)]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_transient_model_failure_is_retried_after_a_back_off(factory: RuntimeFactory) -> None:
    script = Script([ModelBackendError("server busy", status_code=503), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))

    assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED

    [failed] = _failed_events(h, run_id)
    assert (failed.step_seq, failed.attempt, failed.will_retry, failed.error.code) == (
        1,
        1,
        True,
        "model_backend_error",
    )
    assert h.store.get_step_row(run_id, 1).status == StepStatus.DISPATCHED
    assert h.service.get(run_id).status == RunStatus.RUNNING
    # The failing worker sends the retry itself, delayed by the back-off (no reconciler interval).
    retry = h.dispatcher.sent[-1]
    assert (retry.seq, retry.countdown) == (1, h.runtime.runtime.retry_backoff_seconds)
    redispatched = [e for e in h.service.events(run_id) if isinstance(e, StepRedispatched)]
    assert [(e.step_seq, e.reason) for e in redispatched] == [(1, RedispatchReason.RETRY)]
    assert await h.step(run_id) == StepOutcome.COMMITTED
    await h.drive(run_id)
    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "5")
    assert h.store.get_step_row(run_id, 1).attempt == 2


async def test_the_back_off_doubles_per_attempt(factory: RuntimeFactory) -> None:
    busy = ModelBackendError("server busy", status_code=503)
    h = factory.harness(retry_backoff_seconds=0.5, max_step_attempts=4)
    run_id = h.submit(model=factory.model("scripted", Script([busy, busy, busy, answer("5")]).model))

    for _ in range(3):
        assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED

    assert [(m.seq, m.countdown) for m in h.dispatcher.sent[1:]] == [(1, 0.5), (1, 1.0), (1, 2.0)]


async def test_a_retry_the_failing_worker_never_sent_is_sent_by_the_reconciler_when_due(
    factory: RuntimeFactory,
) -> None:
    script = Script([ModelBackendError("server busy", status_code=503), answer("5")])
    h = factory.harness()
    dropping = DroppingDispatcher(h.runtime)  # the worker dies between its commit and the send
    run_id = h.submit(model=factory.model("scripted", script.model))
    assert await StepExecutor(h.runtime, dispatcher=dropping).execute(run_id, 1) == StepOutcome.RETRY_SCHEDULED
    assert [m.countdown for m in dropping.dropped] == [h.runtime.runtime.retry_backoff_seconds]

    reconciler = Reconciler(h.runtime, dispatcher=h.dispatcher)
    wait_until(lambda: reconciler.run_once().unsent == 1, what="the reconciler to send the due retry")

    assert h.dispatcher.seqs(run_id)[-1] == 1
    assert await h.step(run_id) == StepOutcome.COMMITTED


async def test_transient_failures_stop_after_max_step_attempts(factory: RuntimeFactory) -> None:
    script = Script([ModelBackendError("server busy", status_code=503)])
    h = factory.harness(max_step_attempts=2)
    run_id = h.submit(model=factory.model("scripted", script.model))

    assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED
    assert await h.step(run_id) == StepOutcome.FAILED

    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "model_backend_error"
    assert [e.will_retry for e in _failed_events(h, run_id)] == [True, False]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_garbage_from_the_model_fails_the_run_with_the_raw_response(factory: RuntimeFactory) -> None:
    garbage = UnexpectedModelBehavior("Received a response the model API does not define", body='{"choices": "??"}')
    script = Script([garbage])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))

    assert await h.step(run_id) == StepOutcome.FAILED

    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "model_garbage"
    assert '"choices": "??"' in run.error.message
    assert h.store.get_step_row(run_id, 1).traceback is not None
    assert [e.type for e in h.service.events(run_id)][-2:] == ["step.failed", "run.failed"]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_resume_continues_a_failed_run_once_the_cause_is_gone(factory: RuntimeFactory) -> None:
    garbage = UnexpectedModelBehavior("Received a response the model API does not define", body="<html>")
    script = Script([garbage, answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    assert await h.step(run_id) == StepOutcome.FAILED

    resumed = h.service.resume(run_id)

    assert resumed.status == RunStatus.RUNNING
    assert resumed.error is None
    assert h.dispatcher.seqs(run_id) == [1, 1]
    await h.drive(run_id)
    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "5")
    assert "run.resumed" in [e.type for e in h.service.events(run_id)]


async def test_a_step_that_keeps_crashing_is_a_poison_message(factory: RuntimeFactory) -> None:
    script = Script([SimulatedCrash("the model call kills the worker")])
    h = factory.harness(lease_seconds=0.2, max_step_attempts=2)
    run_id = h.submit(model=factory.model("scripted", script.model))
    for _ in range(2):
        with pytest.raises(SimulatedCrash):
            await (h.step(run_id) if script.calls == 0 else after_crash(h, run_id))

    assert await after_crash(h, run_id) == StepOutcome.POISON

    assert script.calls == 2
    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "poison_message"
    assert h.store.get_step_row(run_id, 1).status == StepStatus.FAILED
    [failed] = _failed_events(h, run_id)
    assert (failed.attempt, failed.will_retry) == (3, False)


async def test_a_poisoned_run_can_be_resumed(factory: RuntimeFactory) -> None:
    script = Script([SimulatedCrash("dies"), answer("5")])
    h = factory.harness(lease_seconds=0.2, max_step_attempts=1)
    run_id = h.submit(model=factory.model("scripted", script.model))
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)
    assert await after_crash(h, run_id) == StepOutcome.POISON

    h.service.resume(run_id)

    assert await h.step(run_id) == StepOutcome.COMMITTED
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


async def test_a_runs_own_max_step_attempts_wins(factory: RuntimeFactory) -> None:
    from mamba_client.schemas import RunOptions

    script = Script([ModelBackendError("server busy", status_code=503)])
    h = factory.harness(max_step_attempts=5)
    run_id = h.submit(model=factory.model("scripted", script.model), options=RunOptions(max_step_attempts=1))

    assert await h.step(run_id) == StepOutcome.FAILED


async def test_a_message_for_an_unknown_run_or_step_is_discarded(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")

    assert await h.executor.execute("no-such-run", 1) == StepOutcome.POISON
    assert await h.executor.execute(run_id, 7) == StepOutcome.POISON

    assert await h.step(run_id) == StepOutcome.COMMITTED


@pytest.mark.parametrize("args", [[], ["run"], [1, 2], ["run", "1"], ["run", 1, 2], "run:1", None])
def test_a_malformed_message_is_discarded(args: object) -> None:
    assert run_step_message(args) == StepOutcome.POISON


async def test_an_unknown_task_fails_its_run_with_a_readable_error(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit("2", workflow="dt_count", model="offline")

    h.executor.reject_unknown_task(run_id, 1, task_name="mamba.dt_count.start")

    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "unknown_step"
    assert "mamba.dt_count.start" in run.error.message
    assert h.store.get_step_row(run_id, 1).status == StepStatus.FAILED
    # Once the workflow is deployed, the run resumes.
    h.service.resume(run_id)
    await h.drive(run_id)
    assert h.service.get(run_id).output == 2


async def test_an_unknown_task_for_an_unknown_run_is_only_logged(factory: RuntimeFactory) -> None:
    h = factory.harness()

    h.executor.reject_unknown_task("no-such-run", 1, task_name="mamba.gone")

    assert h.service.list_runs().items == []


async def test_an_unknown_task_leaves_a_step_another_worker_is_running(factory: RuntimeFactory) -> None:
    from mamba_worker.durable.store import claim_step_txn

    h = factory.harness()
    run_id = h.submit("2", workflow="dt_count", model="offline")
    with h.store.session() as session, session.begin():
        claim_step_txn(session, run_id, 1, owner="worker-that-knows-it", lease_seconds=60)

    # A duplicate of its message reached a worker deployed without the workflow.
    h.executor.reject_unknown_task(run_id, 1, task_name="mamba.dt_count.start")

    row = h.store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner) == (StepStatus.RUNNING, "worker-that-knows-it")
    assert h.service.get(run_id).status != RunStatus.FAILED
