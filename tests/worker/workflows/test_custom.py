from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models.test import TestModel

from mamba_worker.agent import Agent
from mamba_worker.config import AgentSettings
from mamba_worker.workflows import (
    Finish,
    Next,
    StepContext,
    StepResult,
    StepWorkflow,
    UnknownStepError,
    Workflow,
    WorkflowConfig,
    WorkflowHooks,
    WorkflowState,
    step,
)


class MyWorkflow(Workflow[None, str, dict[str, Any]]):
    """The spec's custom workflow example, as written there."""

    def __init__(self, agent: Agent[Any, Any], config: WorkflowConfig | None = None):
        super().__init__(config=config)
        self.agent = agent

    @property
    def name(self) -> str:
        return "my_workflow"

    def _create_initial_state(self, prompt: str) -> WorkflowState[dict[str, Any]]:
        return WorkflowState(context={"prompt": prompt, "observations": []})

    async def _execute(self, prompt: str, state: WorkflowState[dict[str, Any]], deps: None = None) -> str:
        while state.iteration_count < self._config.max_iterations:
            state.iteration_count += 1
            result = await self.agent.run(prompt)
            if self._is_complete(result):
                return str(result.output)
        return "Max iterations reached"

    def _is_complete(self, result: Any) -> bool:
        return "3" in str(result.output)


class Counter(BaseModel):
    topic: str
    notes: list[str] = []


class Research(StepWorkflow[None, str, Counter]):
    """A custom workflow as named steps over a serialisable state."""

    state_type = Counter
    initial_step = "plan"

    @property
    def name(self) -> str:
        return "research"

    def initial_context(self, prompt: str) -> Counter:
        return Counter(topic=prompt)

    @step
    async def plan(self, state: Counter, ctx: StepContext) -> StepResult:
        state.notes.append("planned")
        return Next(step="search")

    @step
    async def search(self, state: Counter, ctx: StepContext) -> StepResult:
        response = await ctx.request([ModelRequest.user_text_prompt(f"search {state.topic}")])
        state.notes.append(str(response.parts[0].content))  # type: ignore[union-attr]
        if len(state.notes) < 3:
            return Next(step="search", iteration_done=True)
        return Finish(output=" | ".join(state.notes))


def _agent(text: str) -> Agent[None, str]:
    return Agent(TestModel(custom_output_text=text), settings=AgentSettings())


async def test_spec_custom_workflow_runs(in_tmp_cwd: Path) -> None:
    workflow = MyWorkflow(_agent("3 papers"), config=WorkflowConfig(max_iterations=5))
    result = await workflow.run("Research and summarize recent AI papers")
    assert result.success
    assert result.output == "3 papers"
    assert result.state.iteration_count == 1


async def test_spec_custom_workflow_hits_iteration_limit(in_tmp_cwd: Path) -> None:
    workflow = MyWorkflow(_agent("nothing"), config=WorkflowConfig(max_iterations=2))
    result = await workflow.run("x")
    assert result.output == "Max iterations reached"
    assert result.state.iteration_count == 2


async def test_step_workflow_runs_named_steps(in_tmp_cwd: Path) -> None:
    steps: list[str] = []
    hooks = WorkflowHooks(on_step_complete=lambda state, record: steps.append(record.step_type))
    result = await Research(_agent("found"), hooks=hooks).run("snakes")
    assert result.success
    assert result.output == "planned | found | found"
    assert steps == ["plan", "search", "search"]
    assert result.total_steps == 3
    assert result.state.iteration_count == 1


async def test_step_workflow_max_steps_fails_the_run(in_tmp_cwd: Path) -> None:
    result = await Research(_agent("found"), config=WorkflowConfig(max_steps=2)).run("snakes")
    assert not result.success
    assert "max_steps=2" in (result.error or "")


async def test_unknown_step_is_a_clear_error(in_tmp_cwd: Path) -> None:
    workflow = Research(_agent("x"))
    try:
        await workflow.run_step("gone", Counter(topic="t"), None)  # type: ignore[arg-type]
    except UnknownStepError as error:
        assert "'gone'" in str(error) and "plan" in str(error)
    else:
        raise AssertionError("expected UnknownStepError")


async def test_async_hooks_are_awaited_and_failing_hooks_ignored(in_tmp_cwd: Path) -> None:
    seen: list[str] = []

    async def on_start(state: Any) -> None:
        seen.append("async start")

    def broken(result: Any) -> None:
        raise RuntimeError("hook bug")

    hooks = WorkflowHooks(on_workflow_start=on_start, on_workflow_complete=broken)
    result = await Research(_agent("found"), hooks=hooks).run("snakes")
    assert result.success
    assert seen == ["async start"]
