"""`LocalStepContext`: the in-process driver's side of the step contract, backed by an `Agent`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import CombinedToolset, FunctionToolset

from mamba_worker.agent import Agent
from mamba_worker.config import CompactionConfig
from mamba_worker.workflows._step import StepEvent, ToolOutcome
from mamba_worker.workflows._toolbox import StepToolbox, ToolboxStepContext


class LocalStepContext(ToolboxStepContext):
    """Runs steps' model requests and tool calls in this process, through an `Agent`'s model and tools.

    Use as an async context manager: it opens the agent's toolsets (MCP servers start here) once
    for the whole run, not once per step.

    Args:
        agent: Supplies the model, tools, token counter and usage tracking.
        run_id: Identifier of the run (handed to tools as part of idempotency keys).
        compaction: Compaction settings; default: the agent's.
        compaction_ratio: Fraction of ``compaction.trigger_threshold_tokens`` at which to compact.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        run_id: str,
        compaction: CompactionConfig | None = None,
        compaction_ratio: float = 1.0,
    ) -> None:
        self._agent = agent
        super().__init__(
            run_id=run_id,
            toolbox=StepToolbox(agent.model, CombinedToolset([FunctionToolset(agent.tools), *agent.toolsets])),
            counter=agent.token_counter,
            compaction=compaction or agent.context_manager.config,
            compaction_ratio=compaction_ratio,
            compaction_model=agent.model,
        )
        self.events: list[StepEvent] = []

    @property
    def attempt(self) -> int:
        """Always 1: in-process steps are not retried."""
        return 1

    async def request(
        self, messages: Sequence[ModelMessage], *, extra_tools: Sequence[ToolDefinition] = ()
    ) -> ModelResponse:
        """One model request through the agent's (retrying) model; usage goes to the agent's tracker."""
        response = await self._toolbox.request(messages, extra_tools=extra_tools)
        self._agent.usage_tracker.record_run_usage(
            response.usage, model=response.model_name or self._agent.model.model_name
        )
        return response

    async def call_tool(self, call: ToolCallPart, *, retries: int = 0) -> ToolOutcome:
        """Execute ``call``; any failure becomes a readable result for the model."""
        return await self._toolbox.call(call, retries=retries)

    def emit(self, event: StepEvent) -> None:
        """Queue ``event`` for the driver, which turns it into hook calls after the step."""
        self.events.append(event)
