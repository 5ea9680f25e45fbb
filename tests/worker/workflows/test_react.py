from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.agent import Agent
from mamba_worker.config import AgentSettings, CompactionConfig
from mamba_worker.workflows import (
    Finish,
    LocalStepContext,
    Next,
    ReActConfig,
    ReActHooks,
    ReActState,
    ReActWorkflow,
    WorkflowState,
)


def _tool_returns(messages: list[ModelMessage]) -> list[ToolReturnPart]:
    return [p for m in messages if isinstance(m, ModelRequest) for p in m.parts if isinstance(p, ToolReturnPart)]


def scripted_model() -> FunctionModel:
    """Looks up a word with a tool, then answers with what the tool returned."""

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [r for r in _tool_returns(messages) if r.tool_name == "lookup"]
        if not returns:
            return ModelResponse(parts=[TextPart("I should look it up."), ToolCallPart("lookup", {"word": "mamba"})])
        return ModelResponse(parts=[ToolCallPart("final_answer", {"answer": f"It means {returns[-1].content}"})])

    return FunctionModel(reply)


def lookup(word: str) -> str:
    """Look a word up in the dictionary."""
    return {"mamba": "a fast snake"}.get(word, "unknown")


def _agent(model: FunctionModel, **kwargs: Any) -> Agent[None, str]:
    return Agent(model, settings=AgentSettings(), tools=[lookup], **kwargs)


async def test_react_runs_to_final_answer(in_tmp_cwd: Path) -> None:
    workflow = ReActWorkflow(_agent(scripted_model()), config=ReActConfig(max_iterations=5))
    result = await workflow.run("What does mamba mean?")
    assert result.success, result.error
    assert result.output == "It means a fast snake"
    assert result.state.iteration_count == 1
    kinds = [entry.entry_type for entry in result.state.context.scratchpad]  # type: ignore[union-attr]
    assert kinds == ["thought", "action", "observation", "action"]
    trace = workflow.get_reasoning_trace()
    assert "Thought: I should look it up." in trace
    assert "Observation: a fast snake" in trace
    assert workflow.get_cost() == 0.0


async def test_react_hooks_fire(in_tmp_cwd: Path) -> None:
    seen: list[str] = []
    hooks = ReActHooks(
        on_workflow_start=lambda state: seen.append("start"),
        on_workflow_complete=lambda result: seen.append(f"complete:{result.success}"),
        on_step_start=lambda state, number, kind: seen.append(f"step:{kind}"),
        on_thought=lambda state, text: seen.append("thought"),
        on_action=lambda state, tool, args: seen.append(f"action:{tool}"),
        on_observation=lambda state, obs, err: seen.append(f"observation:{obs}"),
        on_iteration_complete=lambda state, i: seen.append(f"iteration:{i}"),
    )
    workflow = ReActWorkflow(_agent(scripted_model()), hooks=hooks)
    await workflow.run("What does mamba mean?")
    assert seen == [
        "start",
        "step:think",
        "thought",
        "step:act",
        "action:lookup",
        "step:observe",
        "observation:a fast snake",
        "iteration:1",
        "step:think",
        "step:act",
        "action:final_answer",
        "step:observe",
        "complete:True",
    ]


async def test_react_stops_at_max_iterations(in_tmp_cwd: Path) -> None:
    def ponder(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=[TextPart("hmm")])

    workflow = ReActWorkflow(_agent(FunctionModel(ponder)), config=ReActConfig(max_iterations=3))
    result = await workflow.run("?")
    assert not result.success
    assert "max_iterations=3" in (result.error or "")


async def test_react_nudges_after_consecutive_thoughts(in_tmp_cwd: Path) -> None:
    prompts: list[str] = []

    def ponder(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        last = messages[-1]
        prompts.append(" ".join(str(p.content) for p in last.parts if p.part_kind == "user-prompt"))
        if "without acting" in prompts[-1]:
            return ModelResponse(parts=[ToolCallPart("final_answer", {"answer": "acted"})])
        return ModelResponse(parts=[TextPart("hmm")])

    config = ReActConfig(max_iterations=10, max_consecutive_thoughts=2)
    result = await ReActWorkflow(_agent(FunctionModel(ponder)), config=config).run("?")
    assert result.output == "acted"
    assert sum("without acting" in p for p in prompts) == 1


async def test_tool_error_reaches_model_as_observation(in_tmp_cwd: Path) -> None:
    attempts: list[int] = []

    def flaky(x: int) -> int:
        """Always fails."""
        attempts.append(x)
        raise OSError("disk on fire")

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = _tool_returns(messages)
        if not returns:
            return ModelResponse(parts=[ToolCallPart("flaky", {"x": 1})])
        return ModelResponse(parts=[ToolCallPart("final_answer", {"answer": str(returns[-1].content)})])

    agent = Agent(FunctionModel(reply), settings=AgentSettings(), tools=[flaky])
    result = await ReActWorkflow(agent, config=ReActConfig(tool_retry_count=2)).run("go")
    assert result.success
    assert "disk on fire" in str(result.output)
    assert len(attempts) == 3  # first try + tool_retry_count


async def test_steps_survive_a_json_round_trip_between_each_step(in_tmp_cwd: Path) -> None:
    """The durable driver's shape: load state, run one step, dump state, repeat."""
    agent = _agent(scripted_model())
    workflow = ReActWorkflow(agent)
    data = workflow.dump_state(workflow.initial_context("What does mamba mean?"))
    step_name = workflow.initial_step
    names = []
    async with LocalStepContext(agent, run_id="r1") as ctx:
        while True:
            names.append(step_name)
            state = workflow.load_state(data)
            result = await workflow.run_step(step_name, state, ctx)
            data = workflow.dump_state(state)
            if isinstance(result, Finish):
                break
            assert isinstance(result, Next)
            step_name = result.step
    assert names == ["think", "act", "observe", "think", "act", "observe"]
    assert result.output == "It means a fast snake"
    assert ReActState.model_validate_json(data).final_answer == "It means a fast snake"


async def test_compaction_step_runs_when_history_grows(in_tmp_cwd: Path) -> None:
    compactions: list[int] = []

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(_tool_returns(messages)) >= 6:
            return ModelResponse(parts=[ToolCallPart("final_answer", {"answer": "done"})])
        return ModelResponse(parts=[ToolCallPart("lookup", {"word": "mamba " * 30})])

    config = ReActConfig(
        max_iterations=20,
        compact_threshold_ratio=1.0,
        compaction=CompactionConfig(
            strategy="sliding_window", trigger_threshold_tokens=400, target_tokens=250, preserve_recent_turns=1
        ),
    )
    hooks = ReActHooks(on_compaction=lambda outcome: compactions.append(outcome.removed_count))
    result = await ReActWorkflow(_agent(FunctionModel(reply)), config=config, hooks=hooks).run("go")
    assert compactions and all(removed > 0 for removed in compactions)
    assert result.state.context is not None
    assert result.state.context.compaction_count == len(compactions)


def test_run_sync(in_tmp_cwd: Path) -> None:
    result = ReActWorkflow(_agent(scripted_model())).run_sync("What does mamba mean?")
    assert result.output == "It means a fast snake"


def test_state_type_is_generic_workflow_state(in_tmp_cwd: Path) -> None:
    state = ReActWorkflow(_agent(scripted_model()))._create_initial_state("x")
    assert isinstance(state, WorkflowState)
    assert isinstance(state.context, ReActState)


@pytest.mark.parametrize("name", ["think", "act", "observe", "compact"])
def test_react_declares_its_steps(name: str) -> None:
    assert name in ReActWorkflow.step_names()


async def test_step_records_describe_their_step(in_tmp_cwd: Path) -> None:
    # The spec's on_step_complete hook prints step.description: each step says what it does.
    result = await ReActWorkflow(_agent(scripted_model())).run("What does mamba mean?")
    descriptions = {step.step_type: step.description for step in result.state.steps}
    assert descriptions["think"].startswith("One model request.")
    assert descriptions["act"].startswith("Execute the tool calls of the last response")
    assert descriptions["observe"].startswith("Record observations")
