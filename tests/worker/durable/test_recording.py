"""The ledgers: a re-run step reuses finished tool calls and recorded model responses (invariant 6).

A "crash" is `SimulatedCrash` (raised by an armed tool or fault point): it leaves the step running
under its lease, as ``kill -9`` would. `after_crash` delivers the step again once that lease expired.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from pydantic_ai.messages import (
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.usage import RequestUsage
from sqlalchemy.exc import OperationalError

from mamba_client.schemas import (
    ModelResponseRecorded,
    RunStatus,
    StepCommitted,
    StepStatus,
    ToolCallStatus,
    WaitReason,
)
from mamba_worker.durable import FaultPoint, StepOutcome
from mamba_worker.durable._recording import ToolLedger, dump_response, load_response, unknown_outcome_result
from mamba_worker.durable.store import StepWrite
from mamba_worker.workflows import ToolOutcome
from tests._support.durable import BACKENDS, Harness, RuntimeFactory, after_crash, arm_fault
from tests._support.durable_workflows import (
    CALLS,
    SEEN,
    Move,
    Script,
    SimulatedCrash,
    answer,
    arm_crash,
    call,
    calls,
)
from tests._support.wait import async_wait_until

FAST_LEASE = {"lease_seconds": 0.3}


def _outcome(tool_call_id: str) -> ToolOutcome:
    return ToolOutcome(part=ToolReturnPart(tool_name="dt_add", content=5, tool_call_id=tool_call_id))


async def _crash_in_act(
    factory: RuntimeFactory, moves: list[Move], tools: list[str], **settings: object
) -> tuple[Harness, str, Script]:
    """Run think, then an act that crashes; returns the harness, the run id and the script."""
    script = Script(moves)
    h = factory.harness(**{**FAST_LEASE, **settings})
    run_id = h.submit(model=factory.model("scripted", script.model), tools=tools)
    assert await h.step(run_id) == StepOutcome.COMMITTED  # think
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)  # act, attempt 1
    return h, run_id, script


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_rerun_of_act_reuses_finished_calls_and_reruns_an_unfinished_idempotent_one(
    factory: RuntimeFactory,
) -> None:
    arm_crash("dt_loop")
    h, run_id, _ = await _crash_in_act(
        factory,
        [calls([("dt_add", {"a": 2, "b": 3}, "c1"), ("dt_loop", {}, "c2")]), answer("5")],
        ["dt_add", "dt_loop"],
    )
    # An idempotent call's start is written with its result (it may simply run again), so the
    # call that crashed left no row at all.
    assert {row.tool_call_id: row.status for row in h.store.get_tool_calls(run_id, 2)} == {
        "c1": ToolCallStatus.FINISHED,
    }

    assert await after_crash(h, run_id) == StepOutcome.COMMITTED

    assert CALLS["dt_add"] == 1  # finished in attempt 1: reused
    assert CALLS["dt_loop"] == 2  # unfinished and idempotent: run again
    rows = h.store.get_tool_calls(run_id, 2)
    assert {row.tool_call_id: (row.status, row.attempt) for row in rows} == {
        "c1": (ToolCallStatus.FINISHED, 1),
        "c2": (ToolCallStatus.FINISHED, 2),
    }
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_the_last_idempotent_call_s_result_is_written_by_the_step_s_commit(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness(**FAST_LEASE)
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])
    assert await h.step(run_id) == StepOutcome.COMMITTED  # think
    arm_fault(monkeypatch, FaultPoint.BEFORE_STEP_COMMIT)
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)  # act: the call finished, the commit that would record it never happened

    assert h.store.get_tool_calls(run_id, 2) == []
    assert await after_crash(h, run_id) == StepOutcome.COMMITTED
    assert CALLS["dt_add"] == 2  # run again, which an idempotent tool allows
    rows = h.store.get_tool_calls(run_id, 2)
    assert [(row.tool_call_id, row.status, row.attempt) for row in rows] == [("c1", ToolCallStatus.FINISHED, 2)]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_step_whose_commit_fails_keeps_its_finished_calls_for_the_next_attempt(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])
    assert await h.step(run_id) == StepOutcome.COMMITTED  # think
    send_step = h.store.send_step

    def failing_once(write: StepWrite) -> object:
        monkeypatch.setattr(h.store, "send_step", send_step)
        raise OperationalError("UPDATE steps ...", {}, Exception("server closed the connection"))

    monkeypatch.setattr(h.store, "send_step", failing_once)
    assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED  # act, attempt 1: its commit failed

    rows = h.store.get_tool_calls(run_id, 2)
    assert [(row.tool_call_id, row.status, row.attempt) for row in rows] == [("c1", ToolCallStatus.FINISHED, 1)]
    assert await h.step(run_id) == StepOutcome.COMMITTED  # attempt 2
    assert CALLS["dt_add"] == 1  # reused


async def test_a_call_finishing_while_another_runs_is_written_at_once(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    ledger = ToolLedger(h.store, run_id=run_id, seq=1, attempt=1)
    other_started, release_other = asyncio.Event(), asyncio.Event()

    async def slow() -> ToolOutcome:
        other_started.set()
        await release_other.wait()
        return _outcome("c2")

    async def fast() -> ToolOutcome:
        await other_started.wait()
        return _outcome("c1")

    async def call_run(tool_call_id: str, execute: Callable[[], Awaitable[ToolOutcome]]) -> ToolOutcome:
        return await ledger.run(
            tool_call_id=tool_call_id, tool_name="dt_add", idempotent=True, args_json="{}", execute=execute
        )

    running = asyncio.gather(call_run("c2", slow), call_run("c1", fast))

    # c1 finishes while c2 still runs (for as long as it takes): its row cannot wait for a commit.
    async def c1_recorded() -> bool:
        return [row.tool_call_id for row in h.store.get_tool_calls(run_id, 1)] == ["c1"]

    await async_wait_until(c1_recorded, what="c1's row")
    release_other.set()
    await running
    # c2 finished with nothing else running: its row waits for the step's commit.
    assert [done.call.tool_call_id for done in ledger.deferred] == ["c2"]


async def test_a_reused_call_gives_the_model_the_same_result(factory: RuntimeFactory) -> None:
    arm_crash("dt_loop")
    h, run_id, _ = await _crash_in_act(
        factory,
        [calls([("dt_add", {"a": 2, "b": 3}, "c1"), ("dt_loop", {}, "c2")]), answer("5")],
        ["dt_add", "dt_loop"],
    )
    await after_crash(h, run_id)

    state = h.store.get_state(run_id)
    assert state is not None
    assert '"content":5' in state.replace(" ", "")


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_an_unfinished_non_idempotent_call_makes_the_run_wait(factory: RuntimeFactory) -> None:
    arm_crash("dt_send")
    h, run_id, _ = await _crash_in_act(
        factory, [call("dt_send", {"to": "bob"}, call_id="c1"), answer("sent")], ["dt_send"]
    )

    assert await after_crash(h, run_id) == StepOutcome.WAITING

    assert CALLS["dt_send"] == 1
    run = h.service.get(run_id)
    assert run.status == RunStatus.WAITING
    assert run.waiting is not None
    assert (run.waiting.reason, run.waiting.seq, run.waiting.tool_call_ids) == (WaitReason.IN_DOUBT, 2, ["c1"])
    assert [row.status for row in h.store.get_tool_calls(run_id, 2)] == [ToolCallStatus.IN_DOUBT]
    assert "run.waiting" in [event.type for event in h.service.events(run_id)]


async def test_with_the_rerun_policy_an_unfinished_non_idempotent_call_runs_again(factory: RuntimeFactory) -> None:
    arm_crash("dt_send")
    h, run_id, _ = await _crash_in_act(
        factory, [call("dt_send", {"to": "bob"}, call_id="c1"), answer("sent")], ["dt_send"], in_doubt_policy="rerun"
    )

    assert await after_crash(h, run_id) == StepOutcome.COMMITTED

    assert CALLS["dt_send"] == 2
    # Both executions carried the same idempotency key, for the external API to deduplicate.
    assert SEEN["dt_send"] == [f"{run_id}:2:c1", f"{run_id}:2:c1"]
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


async def test_with_the_fail_policy_an_unfinished_non_idempotent_call_fails_the_run(factory: RuntimeFactory) -> None:
    arm_crash("dt_send")
    h, run_id, _ = await _crash_in_act(
        factory, [call("dt_send", {"to": "bob"}, call_id="c1"), answer("sent")], ["dt_send"], in_doubt_policy="fail"
    )

    assert await after_crash(h, run_id) == StepOutcome.FAILED

    assert CALLS["dt_send"] == 1
    run = h.service.get(run_id)
    assert run.status == RunStatus.FAILED
    assert run.error is not None
    assert run.error.code == "step_in_doubt"


async def test_a_tool_s_own_rerun_policy_beats_the_runtime_s_wait(factory: RuntimeFactory) -> None:
    arm_crash("dt_notify")
    h, run_id, _ = await _crash_in_act(
        factory, [call("dt_notify", {"to": "bob"}, call_id="c1"), answer("done")], ["dt_notify"]
    )

    assert await after_crash(h, run_id) == StepOutcome.COMMITTED

    assert CALLS["dt_notify"] == 2
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


async def test_a_tool_s_own_wait_policy_beats_the_runtime_s_rerun(factory: RuntimeFactory) -> None:
    arm_crash("dt_charge")
    h, run_id, _ = await _crash_in_act(
        factory,
        [call("dt_charge", {"amount": 5}, call_id="c1"), answer("done")],
        ["dt_charge"],
        in_doubt_policy="rerun",
    )

    assert await after_crash(h, run_id) == StepOutcome.WAITING

    assert CALLS["dt_charge"] == 1
    assert h.service.get(run_id).status == RunStatus.WAITING


async def test_tools_see_their_call_identity(factory: RuntimeFactory) -> None:
    script = Script([calls([("dt_add", {"a": 1, "b": 1}, "ca"), ("dt_send", {"to": "x"}, "cs")]), answer("ok")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add", "dt_send"])

    await h.drive(run_id)

    assert SEEN["dt_add"] == [f"{run_id}:2:ca"]  # a sync tool (run in a thread)
    assert SEEN["dt_send"] == [f"{run_id}:2:cs"]  # an async tool


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_recorded_model_response_is_replayed_after_a_crash(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script([answer("first", tokens=(100, 10)), answer("second", tokens=(1000, 100))])
    h = factory.harness(**FAST_LEASE)
    run_id = h.submit(model=factory.model("scripted", script.model))
    arm_fault(monkeypatch, FaultPoint.BEFORE_STEP_COMMIT)
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)  # think: the response is recorded, the commit never happens

    assert await after_crash(h, run_id) == StepOutcome.COMMITTED
    await h.drive(run_id)

    assert script.calls == 1
    run = h.service.get(run_id)
    assert run.output == "first"
    assert (run.usage.input_tokens, run.usage.output_tokens, run.usage.requests) == (100, 10, 1)
    committed = next(e for e in h.service.events(run_id) if isinstance(e, StepCommitted) and e.step_seq == 1)
    assert (committed.attempt, committed.usage.requests) == (2, 0)
    replayed = [e for e in h.service.events(run_id) if isinstance(e, ModelResponseRecorded)]
    assert len(replayed) == 1


async def test_usage_of_every_attempt_counts_and_totals_equal_the_ledger(factory: RuntimeFactory) -> None:
    from mamba_worker.errors import ModelBackendError

    # Attempt 1's request fails after nothing was recorded; attempt 2's succeeds.
    script = Script([ModelBackendError("server busy", status_code=503), answer("5", tokens=(40, 4))])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    assert await h.step(run_id) == StepOutcome.RETRY_SCHEDULED
    assert await h.step(run_id) == StepOutcome.COMMITTED
    await h.drive(run_id)

    ledger = h.store.get_model_calls(run_id, 1)
    run = h.service.get(run_id)
    assert [(row.attempt, row.requests) for row in ledger] == [(2, 1)]
    every_call = [row for step in h.service.steps(run_id) for row in h.store.get_model_calls(run_id, step.seq)]
    assert run.usage.input_tokens == sum(row.input_tokens for row in every_call) == 40
    assert h.store.get_step_row(run_id, 1).status == StepStatus.COMMITTED


async def test_a_run_waiting_on_a_call_in_doubt_can_be_cancelled(factory: RuntimeFactory) -> None:
    arm_crash("dt_send")
    h, run_id, _ = await _crash_in_act(
        factory, [call("dt_send", {"to": "bob"}, call_id="c1"), answer("sent")], ["dt_send"]
    )
    assert await after_crash(h, run_id) == StepOutcome.WAITING

    run = h.service.cancel(run_id)

    assert run.status == RunStatus.CANCELLED
    assert await h.step(run_id) == StepOutcome.NOT_CLAIMABLE
    assert CALLS["dt_send"] == 1


def test_a_response_s_ledger_json_is_pydantic_ai_s_message_list_of_one() -> None:
    # Written through the response's own type adapter, read back through the message list's: the
    # two must agree for every part kind, or a replay after a crash would not get its response.
    response = ModelResponse(
        parts=[
            ThinkingPart(content="let me see", signature="sig"),
            TextPart(content="I'll look it up \u2013 \U0001f50e"),
            ToolCallPart(tool_name="lookup", args={"query": "q", "page": 2}, tool_call_id="c1"),
            ToolCallPart(tool_name="lookup", args='{"query": "raw"}', tool_call_id="c2"),
        ],
        usage=RequestUsage(input_tokens=120, output_tokens=33, cache_read_tokens=7),
        model_name="some-model",
        provider_name="openai",
        provider_response_id="resp-1",
        provider_details={"finish": "tool_calls"},
        finish_reason="tool_call",
    )

    data = dump_response(response)

    assert data == ModelMessagesTypeAdapter.dump_json([response]).decode()
    assert load_response(data) == response


def test_a_tool_result_s_ledger_json_is_pydantic_ai_s_message_list_of_one() -> None:
    result = unknown_outcome_result(tool_name="pay", tool_call_id="c9")

    (message,) = ModelMessagesTypeAdapter.validate_json(result)
    assert isinstance(message, ModelRequest)
    assert ModelMessagesTypeAdapter.dump_json([message]).decode() == result
    assert isinstance(message.parts[0], ToolReturnPart) and message.parts[0].outcome == "interrupted"
