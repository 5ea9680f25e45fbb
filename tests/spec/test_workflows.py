"""Spec README, "Workflows": ReAct, a custom workflow, the configuration and the hooks, as written.

Substitutions: ``"gpt-4o"`` is served by the fake OpenAI server (see ``conftest.py``), scripted
with the tool calls a model would make; ``src/utils.py`` lives in a temporary working directory.
The custom workflow's ``self._is_complete(result)`` is the user's own method, as the spec leaves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests._support.openai_server import Error, OpenAIServer, Text, ToolCall, ToolCalls

BUGGY_UTILS = "def last(items):\n    return items[len(items)]\n"


def _script_react_run(server: OpenAIServer) -> None:
    """Two model turns: read the file, then give the final answer."""
    server.queue(
        ToolCalls([ToolCall("read_file", {"path": "src/utils.py"})], content="I should read the file first."),
        ToolCalls(
            [ToolCall("final_answer", {"answer": "`items[len(items)]` is off by one: use `items[-1]`."})],
            content="The index is one past the end.",
        ),
    )


@pytest.fixture
def project(settings_env: OpenAIServer, in_tmp_cwd: Path) -> OpenAIServer:
    (in_tmp_cwd / "src").mkdir()
    (in_tmp_cwd / "src" / "utils.py").write_text(BUGGY_UTILS)
    _script_react_run(settings_env)
    return settings_env


async def test_react_workflow(project: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings
    from mamba_worker.tools import grep_search, read_file, run_bash
    from mamba_worker.workflows import ReActConfig, ReActWorkflow

    settings = AgentSettings()

    # Create agent with tools
    agent = Agent(
        "gpt-4o",
        settings=settings,
        tools=[read_file, run_bash, grep_search],
    )
    # Create ReAct workflow
    workflow = ReActWorkflow(
        agent=agent,
        config=ReActConfig(
            max_iterations=15,
            expose_reasoning=True,  # Include thoughts in output
        ),
    )
    # Run the workflow
    result = await workflow.run("Find and explain the bug in src/utils.py")
    print(f"Success: {result.success}")
    print(f"Answer: {result.output}")
    print(f"Iterations: {result.state.iteration_count}")
    # Access the reasoning trace
    for entry in result.state.context.scratchpad:
        print(f"{entry.entry_type}: {entry.content}")
    # Or use convenience methods
    print(workflow.get_reasoning_trace())
    print(f"Cost: ${workflow.get_cost():.4f}")

    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        "Success: True",
        "Answer: `items[len(items)]` is off by one: use `items[-1]`.",
        "Iterations: 1",
    ]
    assert out[3:9] == [
        "thought: I should read the file first.",
        'action: read_file({"path": "src/utils.py"})',
        "observation: def last(items):",
        "    return items[len(items)]",
        "",  # the file's last newline
        "thought: The index is one past the end.",
    ]
    assert out[9].startswith("action: final_answer(")
    trace = "\n".join(out[10:-1])
    assert trace.startswith("Thought: I should read the file first.\nAction: read_file(")
    assert "Observation: def last(items):" in trace
    assert out[-1].startswith("Cost: $") and workflow.get_cost() > 0
    # The model saw the tools and the file's content came back to it as the tool result.
    offered = {tool["function"]["name"] for tool in project.chat_bodies[0]["tools"]}
    assert offered == {"read_file", "run_bash", "grep_search", "final_answer"}
    assert any(m["role"] == "tool" and m["content"] == BUGGY_UTILS for m in project.chat_bodies[1]["messages"])


async def test_custom_workflow(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    settings_env.queue(Text("Still reading..."), Text("Summary: done."))

    from mamba_worker import Agent, AgentSettings, Workflow, WorkflowConfig, WorkflowHooks, WorkflowState

    settings = AgentSettings()

    # Create a custom workflow by extending Workflow
    class MyWorkflow(Workflow[None, str, dict]):
        def __init__(self, agent: Agent, config: WorkflowConfig | None = None):
            super().__init__(config=config)
            self.agent = agent

        @property
        def name(self) -> str:
            return "my_workflow"

        def _create_initial_state(self, prompt: str) -> WorkflowState[dict]:
            return WorkflowState(context={"prompt": prompt, "observations": []})

        async def _execute(self, prompt: str, state: WorkflowState[dict], deps=None) -> str:
            # Implement your workflow logic
            while state.iteration_count < self._config.max_iterations:
                state.iteration_count += 1
                result = await self.agent.run(prompt)
                if self._is_complete(result):
                    return result.output
            return "Max iterations reached"

        # The user's own completion test, which the spec's example calls.
        def _is_complete(self, result: Any) -> bool:
            return "done" in result.output

    # Run the workflow
    agent = Agent("gpt-4o", settings=settings)
    workflow = MyWorkflow(agent, config=WorkflowConfig(max_iterations=5))
    result = await workflow.run("Research and summarize recent AI papers")
    print(f"Success: {result.success}")
    print(f"Output: {result.output}")
    print(f"Steps: {result.total_steps}")

    assert capsys.readouterr().out.splitlines() == ["Success: True", "Output: Summary: done.", "Steps: 0"]
    assert result.state.iteration_count == 2
    assert WorkflowHooks  # imported from the top level, as the spec does


def test_workflow_configuration() -> None:
    from mamba_worker import WorkflowConfig
    from mamba_worker.workflows import ReActConfig

    # Base workflow configuration
    config = WorkflowConfig(
        max_steps=50,  # Maximum workflow steps
        max_iterations=10,  # Maximum iterations per step
        timeout_seconds=300.0,  # Total workflow timeout
        step_timeout_seconds=30.0,  # Per-step timeout
        enable_hooks=True,  # Enable hook callbacks
        track_state=True,  # Track detailed state history
    )
    # ReAct-specific configuration (extends WorkflowConfig)
    react_config = ReActConfig(
        max_iterations=15,
        expose_reasoning=True,  # Include thoughts in scratchpad
        reasoning_prefix="Thought: ",  # Prefix for thoughts
        action_prefix="Action: ",  # Prefix for actions
        observation_prefix="Observation: ",  # Prefix for observations
        final_answer_tool_name="final_answer",  # Termination tool name
        auto_compact_in_workflow=True,  # Auto-compact context
        compact_threshold_ratio=0.8,  # Compact at 80% of threshold
        max_consecutive_thoughts=3,  # Force action after N thoughts
        tool_retry_count=2,  # Retry failed tool calls
    )

    assert isinstance(react_config, WorkflowConfig)
    assert (config.max_steps, config.max_iterations, config.timeout_seconds) == (50, 10, 300.0)
    assert (react_config.max_iterations, react_config.max_consecutive_thoughts) == (15, 3)


async def test_hooks(project: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings, WorkflowHooks
    from mamba_worker.config import CompactionConfig
    from mamba_worker.tools import read_file
    from mamba_worker.workflows import ReActConfig, ReActHooks, ReActWorkflow

    agent = Agent("gpt-4o", settings=AgentSettings(), tools=[read_file])
    # Compaction after the first iteration, so that on_compaction fires too.
    react_config = ReActConfig(
        compaction=CompactionConfig(
            strategy="sliding_window", trigger_threshold_tokens=10, target_tokens=5, preserve_recent_turns=1
        )
    )

    # Base workflow hooks
    def on_step_complete(state, step):
        print(f"Step {step.step_number} completed: {step.description}")

    hooks = WorkflowHooks(
        on_workflow_start=lambda state: print("Workflow started"),
        on_workflow_complete=lambda result: print(f"Done: {result.success}"),
        on_workflow_error=lambda state, err: print(f"Error: {err}"),
        on_step_start=lambda state, num, type_: print(f"Step {num}: {type_}"),
        on_step_complete=on_step_complete,
        on_step_error=lambda state, step, err: print(f"Step failed: {err}"),
        on_iteration_start=lambda state, i: print(f"Iteration {i}"),
        on_iteration_complete=lambda state, i: print(f"Iteration {i} done"),
    )
    # ReAct-specific hooks (extends WorkflowHooks)
    react_hooks = ReActHooks(
        on_thought=lambda state, thought: print(f"Thought: {thought}"),
        on_action=lambda state, tool, args: print(f"Action: {tool}({args})"),
        on_observation=lambda state, obs, err: print(f"Observation: {obs}"),
        on_compaction=lambda result: print(f"Compacted: removed {result.removed_count}"),
        # Plus all base WorkflowHooks callbacks...
    )
    workflow = ReActWorkflow(agent, config=react_config, hooks=react_hooks)

    result = await workflow.run("Find and explain the bug in src/utils.py")
    assert result.success
    react_out = capsys.readouterr().out.splitlines()
    assert react_out[:2] == ["Thought: I should read the file first.", "Action: read_file({'path': 'src/utils.py'})"]
    assert react_out[2] == "Observation: " + BUGGY_UTILS.splitlines()[0]
    assert any(line.startswith("Compacted: removed ") for line in react_out)
    assert react_out[-1].startswith("Action: final_answer(")

    # The base hooks, on the same workflow.
    _script_react_run(project)
    result = await ReActWorkflow(agent, config=react_config, hooks=hooks).run("Again, please")
    assert result.success
    base_out = capsys.readouterr().out.splitlines()
    think = "Step {} completed: One model request. Tool calls lead to ``act``; a reply without one to ``observe``."
    act = "Step {} completed: Execute the tool calls of the last response; ``final_answer`` records the answer."
    observe = "Step {} completed: Record observations, apply the termination rules, and decide: think again or compact."
    compact = "Step {} completed: Compact the history with the configured strategy, then think again."
    assert base_out == [
        "Workflow started",
        "Iteration 1",
        "Step 1: think",
        think.format(1),
        "Step 2: act",
        act.format(2),
        "Step 3: observe",
        observe.format(3),
        "Iteration 1 done",
        "Iteration 2",
        "Step 4: compact",
        compact.format(4),
        "Step 5: think",
        think.format(5),
        "Step 6: act",
        act.format(6),
        "Step 7: observe",
        observe.format(7),
        "Done: True",
    ]


async def test_error_hooks(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings, WorkflowHooks
    from mamba_worker.workflows import ReActWorkflow

    settings_env.queue(Error(400, "the model refused the request"))
    hooks = WorkflowHooks(
        on_workflow_start=lambda state: print("Workflow started"),
        on_workflow_complete=lambda result: print(f"Done: {result.success}"),
        on_workflow_error=lambda state, err: print(f"Error: {err}"),
        on_step_start=lambda state, num, type_: print(f"Step {num}: {type_}"),
        on_step_error=lambda state, step, err: print(f"Step failed: {err}"),
    )
    result = await ReActWorkflow(Agent("gpt-4o", settings=AgentSettings()), hooks=hooks).run("Anything")

    out = capsys.readouterr().out.splitlines()
    assert not result.success and "the model refused the request" in (result.error or "")
    assert out[:2] == ["Workflow started", "Step 1: think"]
    assert out[2].startswith("Step failed: ") and "the model refused the request" in out[2]
    assert out[3].startswith("Error: ") and out[4] == "Done: False"
