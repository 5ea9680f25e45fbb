"""`ReActWorkflow`: Thought → Action → Observation, as four steps over `ReActState`.

The steps (``think``, ``act``, ``observe``, ``compact``) are the only ReAct logic in Mamba. The
in-process `run` drives them with a `LocalStepContext`; the durable runtime drives the same
methods one Celery task at a time.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.tools import ToolDefinition

from mamba_worker.agent import Agent
from mamba_worker.prompts import PromptManager
from mamba_worker.workflows._state import WorkflowState
from mamba_worker.workflows._step import (
    ActionEvent,
    CompactionEvent,
    Finish,
    Next,
    ObservationEvent,
    StepContext,
    StepEvent,
    StepResult,
    ThoughtEvent,
)
from mamba_worker.workflows._stepwise import StepWorkflow, step
from mamba_worker.workflows.react._config import ReActConfig
from mamba_worker.workflows.react._hooks import ReActHooks
from mamba_worker.workflows.react._prompts import render_iteration_prompt, render_system_prompt
from mamba_worker.workflows.react._state import ReActState, ScratchpadEntry


class ReActWorkflow(StepWorkflow[None, str, ReActState]):
    """The ReAct loop.

    Example:
        ```python
        workflow = ReActWorkflow(agent, config=ReActConfig(max_iterations=15))
        result = await workflow.run("Find and explain the bug in src/utils.py")
        print(result.output, result.state.iteration_count, workflow.get_reasoning_trace())
        ```

    Args:
        agent: Supplies model and tools in-process; ``None`` when the durable runtime drives it.
        config: ReAct settings.
        hooks: `ReActHooks` (or plain `WorkflowHooks`).
        prompt_manager: Renders the ReAct templates; default: the agent's, or one with the defaults.
    """

    state_type: ClassVar[type[ReActState]] = ReActState
    initial_step: ClassVar[str] = "think"
    # Each step appends to these; compaction replaces `messages` with a new list.
    journal_fields: ClassVar[tuple[str, ...]] = ("messages", "scratchpad")

    def __init__(
        self,
        agent: Agent[Any, Any] | None = None,
        *,
        config: ReActConfig | None = None,
        hooks: ReActHooks | None = None,
        prompt_manager: PromptManager | None = None,
    ) -> None:
        self.react_config = config if config is not None else ReActConfig()
        super().__init__(agent, config=self.react_config, hooks=hooks)
        if prompt_manager is None:
            prompt_manager = agent.prompt_manager if agent is not None else PromptManager()
        self.prompts = prompt_manager
        self._last_state: WorkflowState[ReActState] | None = None

    @property
    def name(self) -> str:
        """``react``."""
        return "react"

    def initial_context(self, prompt: str) -> ReActState:
        """A fresh state for ``prompt``."""
        agent_prompt = self.agent.get_system_prompt() if self.agent is not None else ""
        return ReActState(task=prompt, system_prompt=agent_prompt)

    @property
    def final_answer_tool(self) -> ToolDefinition:
        """The tool the model calls to finish."""
        return ToolDefinition(
            name=self.react_config.final_answer_tool_name,
            description="Give the final answer to the task. Call this once you are done.",
            parameters_json_schema={
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "The complete final answer."}},
                "required": ["answer"],
                "additionalProperties": False,
            },
        )

    # -- the steps ---------------------------------------------------------------------------

    @step
    async def think(self, state: ReActState, ctx: StepContext) -> StepResult:
        """One model request. Tool calls lead to ``act``; a reply without one to ``observe``."""
        if not state.messages:
            system = render_system_prompt(
                self.prompts, self.react_config, tools=await ctx.tool_definitions(), agent_prompt=state.system_prompt
            )
            state.messages.append(
                ModelRequest(parts=[SystemPromptPart(content=system), UserPromptPart(content=state.task)])
            )
        response = await ctx.request(state.messages, extra_tools=[self.final_answer_tool])
        state.messages.append(response)
        thought = "\n".join(part.content for part in response.parts if isinstance(part, TextPart)).strip()
        if thought:
            if self.react_config.expose_reasoning:
                state.scratchpad.append(
                    ScratchpadEntry(entry_type="thought", content=thought, iteration=state.iteration)
                )
            ctx.emit(ThoughtEvent(text=thought))
        return Next(step="act") if response.tool_calls else Next(step="observe")

    @step
    async def act(self, state: ReActState, ctx: StepContext) -> StepResult:
        """Execute the tool calls of the last response; ``final_answer`` records the answer."""
        response = state.messages[-1]
        assert isinstance(response, ModelResponse), "act runs right after think"
        parts: list[ToolReturnPart] = []
        for call in response.tool_calls:
            args = call.args_as_dict()
            state.scratchpad.append(
                ScratchpadEntry(
                    entry_type="action",
                    content=f"{call.tool_name}({json.dumps(args, default=str)})",
                    iteration=state.iteration,
                    tool_name=call.tool_name,
                    tool_args=args,
                )
            )
            ctx.emit(ActionEvent(tool_name=call.tool_name, args=args, tool_call_id=call.tool_call_id))
            if call.tool_name == self.react_config.final_answer_tool_name:
                answer = args.get("answer")
                if isinstance(answer, str) and answer.strip():
                    state.final_answer = answer
                    parts.append(
                        ToolReturnPart(
                            tool_name=call.tool_name, content="Final answer recorded.", tool_call_id=call.tool_call_id
                        )
                    )
                else:
                    parts.append(
                        ToolReturnPart(
                            tool_name=call.tool_name,
                            content="`answer` must be a non-empty string with your final answer.",
                            tool_call_id=call.tool_call_id,
                            outcome="retried",
                        )
                    )
                continue
            outcome = await ctx.call_tool(call, retries=self.react_config.tool_retry_count)
            parts.append(outcome.part)
        state.consecutive_thoughts = 0
        state.messages.append(ModelRequest(parts=list(parts)))
        return Next(step="observe")

    @step
    async def observe(self, state: ReActState, ctx: StepContext) -> StepResult:
        """Record observations, apply the termination rules, and decide: think again or compact."""
        last = state.messages[-1]
        if isinstance(last, ModelRequest):
            for part in last.parts:
                if isinstance(part, ToolReturnPart) and part.tool_name != self.react_config.final_answer_tool_name:
                    is_error = part.outcome != "success"
                    text = part.model_response_str()
                    state.scratchpad.append(
                        ScratchpadEntry(
                            entry_type="observation",
                            content=text,
                            iteration=state.iteration,
                            tool_name=part.tool_name,
                            is_error=is_error,
                        )
                    )
                    ctx.emit(
                        ObservationEvent(
                            tool_name=part.tool_name,
                            content=text,
                            is_error=is_error,
                            tool_call_id=part.tool_call_id,
                        )
                    )
        if state.final_answer is not None:
            return Finish(output=state.final_answer)
        state.iteration += 1
        if state.iteration >= self.react_config.max_iterations:
            return Finish(error=f"no final answer after max_iterations={self.react_config.max_iterations}")
        if isinstance(last, ModelResponse):
            # The model replied without acting.
            state.consecutive_thoughts += 1
        force = state.consecutive_thoughts >= self.react_config.max_consecutive_thoughts
        prompt = render_iteration_prompt(
            self.prompts,
            self.react_config,
            iteration=state.iteration + 1,
            task=state.task,
            scratchpad=state.scratchpad,
            force_action=force,
        )
        # Its own request (not appended to the tool returns): each iteration then starts a turn,
        # which is where compaction may cut the history without splitting a tool call from its return.
        state.messages.append(ModelRequest(parts=[UserPromptPart(content=prompt)]))
        compact = (
            self.react_config.auto_compact_in_workflow and ctx.count_tokens(state.messages) >= ctx.compaction_threshold
        )
        return Next(step="compact" if compact else "think", iteration_done=True)

    @step
    async def compact(self, state: ReActState, ctx: StepContext) -> StepResult:
        """Compact the history with the configured strategy, then think again."""
        outcome = await ctx.compact(state.messages)
        state.messages = list(outcome.messages)
        state.compaction_count += 1
        ctx.emit(CompactionEvent(outcome=outcome))
        return Next(step="think")

    # -- in-process conveniences ----------------------------------------------------------

    def step_context(self, state: WorkflowState[ReActState]) -> Any:
        """The in-process context, compacting at ``compact_threshold_ratio`` of the threshold."""
        from mamba_worker.workflows._local import LocalStepContext

        if self.agent is None:
            return super().step_context(state)
        self._last_state = state
        return LocalStepContext(
            self.agent,
            run_id=state.workflow_id,
            compaction=self.react_config.compaction,
            compaction_ratio=self.react_config.compact_threshold_ratio,
        )

    async def on_events(self, state: WorkflowState[ReActState], events: list[StepEvent]) -> None:
        """Map step events to `ReActHooks` callbacks."""
        for event in events:
            match event:
                case ThoughtEvent(text=text):
                    await self._trigger("on_thought", state, text)
                case ActionEvent(tool_name=tool, args=args):
                    await self._trigger("on_action", state, tool, args)
                case ObservationEvent(content=content, is_error=is_error):
                    await self._trigger("on_observation", state, content, is_error)
                case CompactionEvent(outcome=outcome):
                    await self._trigger("on_compaction", outcome)

    def get_reasoning_trace(self) -> str:
        """The last run's thoughts, actions and observations, one per line with their prefixes."""
        if self._last_state is None or self._last_state.context is None:
            return ""
        prefixes = {
            "thought": self.react_config.reasoning_prefix,
            "action": self.react_config.action_prefix,
            "observation": self.react_config.observation_prefix,
        }
        return "\n".join(f"{prefixes[e.entry_type]}{e.content}" for e in self._last_state.context.scratchpad)

    def get_cost(self) -> float:
        """Estimated cost of the agent's model usage so far (US dollars)."""
        return self.agent.get_cost() if self.agent is not None else 0.0
