"""`StepExecutor`: a run's steps executed one by one, each committed exactly once.

These tests drive the executor directly (no Celery worker): a `RecordingDispatcher` keeps the
successor messages, and `drive` executes the run's newest step until the run settles.
"""

from __future__ import annotations

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart

from mamba_client.schemas import RunStatus, StepCommitted, StepStatus, ToolCallFinished
from mamba_worker.durable import StepOutcome
from tests._support.durable import BACKENDS, RuntimeFactory, event_types
from tests._support.durable_workflows import CALLS, Script, answer, call


def _tool_results(messages: list[ModelMessage]) -> list[object]:
    return [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]


def _answer_with_tool_result(messages: list[ModelMessage]) -> ModelResponse:
    return answer(f"the sum is {_tool_results(messages)[-1]}", tokens=(20, 7))


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_react_run_commits_each_step_once_in_order(factory: RuntimeFactory) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), _answer_with_tool_result])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    outcomes = await h.drive(run_id)

    assert outcomes == [StepOutcome.COMMITTED] * 6
    steps = h.service.steps(run_id)
    assert [(s.seq, s.name, s.status, s.attempt) for s in steps] == [
        (1, "think", StepStatus.COMMITTED, 1),
        (2, "act", StepStatus.COMMITTED, 1),
        (3, "observe", StepStatus.COMMITTED, 1),
        (4, "think", StepStatus.COMMITTED, 1),
        (5, "act", StepStatus.COMMITTED, 1),
        (6, "observe", StepStatus.COMMITTED, 1),
    ]
    events = h.service.events(run_id)
    assert [event.seq for event in events] == list(range(1, len(events) + 1))
    committed = [event for event in events if isinstance(event, StepCommitted)]
    assert [event.step_seq for event in committed] == [1, 2, 3, 4, 5, 6]
    assert [event.next_step for event in committed] == ["act", "observe", "think", "act", "observe", None]
    assert event_types(events)[0] == "run.submitted"
    assert event_types(events)[-1] == "run.succeeded"
    assert h.dispatcher.seqs(run_id) == [1, 2, 3, 4, 5, 6]
    run = h.service.get(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == "the sum is 5"
    assert (run.usage.input_tokens, run.usage.output_tokens, run.usage.requests) == (30, 12, 2)
    assert sum(s.usage.input_tokens for s in steps) == run.usage.input_tokens
    assert CALLS["dt_add"] == 1
    assert script.calls == 2


async def test_step_usage_is_reported_in_its_committed_event(factory: RuntimeFactory) -> None:
    script = Script([answer("5", tokens=(11, 4))])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))

    await h.drive(run_id)

    first = next(e for e in h.service.events(run_id) if isinstance(e, StepCommitted) and e.step_seq == 1)
    assert (first.usage.input_tokens, first.usage.output_tokens, first.usage.requests) == (11, 4, 1)


async def test_tool_results_are_committed_as_events(factory: RuntimeFactory) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await h.drive(run_id)

    finished = [e for e in h.service.events(run_id) if isinstance(e, ToolCallFinished)]
    assert [(e.step_seq, e.tool_call_id, e.tool_name, e.result) for e in finished] == [(2, "c1", "dt_add", 5)]


async def test_a_builtin_tool_runs_in_the_sandbox(factory: RuntimeFactory) -> None:
    (factory.sandbox / "notes.txt").write_text("the secret number is 42\n")
    script = Script(
        [
            call("read_file", {"path": "notes.txt"}, call_id="r1"),
            lambda messages: answer(str(_tool_results(messages)[-1]).strip()),
        ]
    )
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["read_file"])

    await h.drive(run_id)

    run = h.service.get(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert run.output == "the secret number is 42"


async def test_a_builtin_tool_cannot_leave_the_sandbox(factory: RuntimeFactory) -> None:
    outside = factory.sandbox.parent / "outside.txt"
    outside.write_text("not for the model")
    script = Script(
        [
            call("read_file", {"path": str(outside)}, call_id="r1"),
            lambda messages: answer(str(_tool_results(messages)[-1])),
        ]
    )
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["read_file"])

    await h.drive(run_id)

    run = h.service.get(run_id)
    assert run.status == RunStatus.SUCCEEDED
    assert "not for the model" not in str(run.output)
    assert "Error" in str(run.output)


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_custom_workflow_runs_step_by_step(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit("3", workflow="dt_count", model="offline")

    outcomes = await h.drive(run_id)

    assert outcomes == [StepOutcome.COMMITTED] * 5
    assert [s.name for s in h.service.steps(run_id)] == ["start", "count", "count", "count", "done"]
    assert [sent.task_name for sent in h.dispatcher.sent] == [
        "mamba.dt_count.start",
        "mamba.dt_count.count",
        "mamba.dt_count.count",
        "mamba.dt_count.count",
        "mamba.dt_count.done",
    ]
    assert h.service.get(run_id).output == 3


async def test_a_long_history_is_compacted_in_its_own_step(factory: RuntimeFactory) -> None:
    from mamba_client.schemas import Compacted
    from mamba_worker.config import CompactionConfig

    compaction = CompactionConfig(trigger_threshold_tokens=300, target_tokens=200, preserve_recent_turns=1)
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness(agent={"context": compaction})
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await h.drive(run_id)

    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "5")
    names = [s.name for s in h.service.steps(run_id)]
    assert names[:5] == ["think", "act", "observe", "compact", "think"]
    assert "mamba.compact" in [sent.task_name for sent in h.dispatcher.sent]
    [compacted] = [e for e in h.service.events(run_id) if isinstance(e, Compacted)]
    assert compacted.step_seq == 4
    assert compacted.tokens_after < compacted.tokens_before
