"""`RunService.answer`: a person decides for a run waiting on a tool call in doubt (invariant 6).

The run gets there as in `test_recording`: act crashes inside the non-idempotent ``dt_send``, and
the re-run finds the call ``started`` but not finished, so the run waits.
"""

from __future__ import annotations

import pytest

from mamba_client.schemas import (
    AnswerRun,
    InDoubtDecision,
    ResumeReason,
    RunResumed,
    RunStatus,
    ToolCallStatus,
)
from mamba_worker.durable import StepOutcome
from mamba_worker.durable._recording import UNKNOWN_OUTCOME
from mamba_worker.durable.errors import RunConflictError, RunNotFoundError
from tests._support.durable import BACKENDS, Harness, RuntimeFactory, after_crash
from tests._support.durable_workflows import CALLS, SEEN, Script, SimulatedCrash, answer, arm_crash, call


async def _waiting_in_doubt(factory: RuntimeFactory, *, crashes: int = 1) -> tuple[Harness, str]:
    """A run whose act (step 2) crashed inside ``dt_send`` and now waits for a decision."""
    arm_crash("dt_send", times=crashes)
    script = Script([call("dt_send", {"to": "bob"}, call_id="c1"), answer("sent")])
    h = factory.harness(lease_seconds=0.3)
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_send"])
    assert await h.step(run_id) == StepOutcome.COMMITTED  # think
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)  # act, attempt 1: dies inside the call
    assert await after_crash(h, run_id) == StepOutcome.WAITING
    return h, run_id


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_rerun_runs_the_call_again_with_the_same_idempotency_key(factory: RuntimeFactory) -> None:
    h, run_id = await _waiting_in_doubt(factory)

    answered = h.service.answer(run_id, AnswerRun(decision=InDoubtDecision.RERUN))

    assert (answered.status, answered.waiting) == (RunStatus.RUNNING, None)
    assert h.dispatcher.seqs(run_id)[-1] == 2
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED
    assert CALLS["dt_send"] == 2
    assert SEEN["dt_send"] == [f"{run_id}:2:c1", f"{run_id}:2:c1"]
    [row] = h.store.get_tool_calls(run_id, 2)
    assert (row.status, row.attempt) == (ToolCallStatus.FINISHED, 3)
    resumed = [e for e in h.service.events(run_id) if isinstance(e, RunResumed)]
    assert [(e.reason, e.from_seq) for e in resumed] == [(ResumeReason.ANSWER, 2)]


async def test_a_crash_during_the_approved_rerun_puts_the_call_in_doubt_again(factory: RuntimeFactory) -> None:
    h, run_id = await _waiting_in_doubt(factory, crashes=2)
    h.service.answer(run_id, AnswerRun(decision=InDoubtDecision.RERUN))

    with pytest.raises(SimulatedCrash):
        await h.step(run_id)  # attempt 3: the approved rerun dies inside the call too

    assert await after_crash(h, run_id) == StepOutcome.WAITING  # attempt 4 asks again
    assert CALLS["dt_send"] == 2


async def test_skip_tells_the_model_the_outcome_is_unknown_and_never_runs_the_call(factory: RuntimeFactory) -> None:
    h, run_id = await _waiting_in_doubt(factory)

    h.service.answer(run_id, AnswerRun(decision=InDoubtDecision.SKIP))
    await h.drive(run_id)

    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "sent")
    assert CALLS["dt_send"] == 1
    [row] = h.store.get_tool_calls(run_id, 2)
    assert row.status == ToolCallStatus.FINISHED
    state = h.store.get_state(run_id)
    assert state is not None and UNKNOWN_OUTCOME in state


async def test_fail_fails_the_run_and_a_later_resume_asks_again(factory: RuntimeFactory) -> None:
    h, run_id = await _waiting_in_doubt(factory)

    failed = h.service.answer(run_id, AnswerRun(decision=InDoubtDecision.FAIL))

    assert failed.status == RunStatus.FAILED
    assert failed.error is not None and failed.error.code == "in_doubt_failed"
    assert "c1" in failed.error.message
    assert CALLS["dt_send"] == 1
    h.service.resume(run_id)
    assert await h.step(run_id) == StepOutcome.WAITING


async def test_a_run_that_is_not_waiting_cannot_be_answered(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", Script([answer("5")]).model))

    with pytest.raises(RunConflictError, match="only a waiting run can be answered"):
        h.service.answer(run_id, AnswerRun(decision=InDoubtDecision.RERUN))


async def test_an_answer_text_does_not_decide_calls_in_doubt(factory: RuntimeFactory) -> None:
    h, run_id = await _waiting_in_doubt(factory)

    with pytest.raises(RunConflictError, match="decision=rerun, skip or fail"):
        h.service.answer(run_id, AnswerRun(answer="yes"))

    assert h.service.get(run_id).status == RunStatus.WAITING


async def test_answering_an_unknown_run_names_it(factory: RuntimeFactory) -> None:
    h = factory.harness()

    with pytest.raises(RunNotFoundError, match="no-such-run"):
        h.service.answer("no-such-run", AnswerRun(decision=InDoubtDecision.SKIP))
