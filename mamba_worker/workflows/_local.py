"""`LocalStepContext`: the in-process driver's side of the step contract, backed by an `Agent`."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import CombinedToolset, FunctionToolset

from mamba_worker.agent import Agent
from mamba_worker.config import CompactionConfig
from mamba_worker.context import CompactionOutcome, get_strategy
from mamba_worker.workflows._step import StepEvent, ToolOutcome
from mamba_worker.workflows._toolbox import StepToolbox


class LocalStepContext:
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
        self._run_id = run_id
        self._compaction = compaction or agent.context_manager.config
        self._ratio = compaction_ratio
        self._toolbox = StepToolbox(agent.model, CombinedToolset([FunctionToolset(agent.tools), *agent.toolsets]))
        self.events: list[StepEvent] = []

    async def __aenter__(self) -> LocalStepContext:
        await self._toolbox.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._toolbox.__aexit__(exc_type, exc, tb)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def attempt(self) -> int:
        """Always 1: in-process steps are not retried."""
        return 1

    async def tool_definitions(self) -> list[ToolDefinition]:
        """The agent's tools, as the model sees them."""
        return await self._toolbox.definitions()

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

    def count_tokens(self, messages: Sequence[ModelMessage]) -> int:
        """Tokens in ``messages`` (cached per message by the agent's counter)."""
        return self._agent.token_counter.count_messages(messages)

    @property
    def compaction_threshold(self) -> int:
        """Tokens at which the history is compacted."""
        return int(self._compaction.trigger_threshold_tokens * self._ratio)

    async def compact(self, messages: Sequence[ModelMessage]) -> CompactionOutcome:
        """Compact with the configured strategy, using the agent's model for LLM strategies."""
        strategy = get_strategy(self._compaction.strategy)
        return await strategy.compact(
            list(messages), config=self._compaction, counter=self._agent.token_counter, model=self._agent.model
        )

    def emit(self, event: StepEvent) -> None:
        """Queue ``event`` for the driver, which turns it into hook calls after the step."""
        self.events.append(event)
