"""`LocalStepContext`: the in-process driver's side of the step contract, backed by an `Agent`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any

from pydantic import ValidationError
from pydantic_ai import ModelRetry, ToolFailed
from pydantic_ai.direct import model_request
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, CombinedToolset, FunctionToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import RunUsage

from mamba_worker.agent import Agent
from mamba_worker.config import CompactionConfig
from mamba_worker.context import CompactionOutcome, get_strategy
from mamba_worker.workflows._step import StepEvent, ToolOutcome

logger = logging.getLogger(__name__)


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
        self._toolset: AbstractToolset[Any] = CombinedToolset([FunctionToolset(agent.tools), *agent.toolsets])
        self._run_context: RunContext[Any] = RunContext(deps=None, model=agent.model, usage=RunUsage())
        self._tools: dict[str, ToolsetTool[Any]] | None = None
        self.events: list[StepEvent] = []

    async def __aenter__(self) -> LocalStepContext:
        await self._toolset.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._toolset.__aexit__(exc_type, exc, tb)

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self._run_id

    @property
    def attempt(self) -> int:
        """Always 1: in-process steps are not retried."""
        return 1

    async def _get_tools(self) -> dict[str, ToolsetTool[Any]]:
        if self._tools is None:
            self._tools = await self._toolset.get_tools(self._run_context)
        return self._tools

    async def tool_definitions(self) -> list[ToolDefinition]:
        """The agent's tools, as the model sees them."""
        return [tool.tool_def for tool in (await self._get_tools()).values()]

    async def request(
        self, messages: Sequence[ModelMessage], *, extra_tools: Sequence[ToolDefinition] = ()
    ) -> ModelResponse:
        """One model request through the agent's (retrying) model; usage goes to the agent's tracker."""
        params = ModelRequestParameters(
            function_tools=[*await self.tool_definitions(), *extra_tools], allow_text_output=True
        )
        response = await model_request(self._agent.model, list(messages), model_request_parameters=params)
        self._agent.usage_tracker.record_run_usage(
            response.usage, model=response.model_name or self._agent.model.model_name
        )
        return response

    async def call_tool(self, call: ToolCallPart, *, retries: int = 0) -> ToolOutcome:
        """Execute ``call``; any failure becomes a readable result for the model."""
        return await execute_tool_call(self._toolset, await self._get_tools(), self._run_context, call, retries=retries)

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


async def execute_tool_call(
    toolset: AbstractToolset[Any],
    tools: dict[str, ToolsetTool[Any]],
    run_context: RunContext[Any],
    call: ToolCallPart,
    *,
    retries: int = 0,
) -> ToolOutcome:
    """Validate and run one tool call through pydantic-ai's toolset API.

    Unknown tools, invalid arguments and `ModelRetry` become a return with ``outcome="retried"``
    (the model can fix its call); `ToolFailed` becomes ``outcome="failed"`` at once; any other
    exception is retried up to ``retries`` times, then becomes ``outcome="failed"`` carrying the error
    text, so the model can react instead of the run crashing.
    Shared by the in-process and the durable drivers.
    """
    tool = tools.get(call.tool_name)
    if tool is None:
        names = ", ".join(sorted(tools)) or "none"
        return _retry(call, f"Unknown tool {call.tool_name!r}. Available tools: {names}.")
    try:
        args = tool.args_validator.validate_python(call.args_as_dict())
    except ValidationError as error:
        return _retry(call, f"Invalid arguments for {call.tool_name!r}: {error}")
    ctx = replace(run_context, tool_call_id=call.tool_call_id, tool_name=call.tool_name)
    last_error: Exception | None = None
    for attempt in range(retries + 1):
        try:
            result = await toolset.call_tool(call.tool_name, args, ctx, tool)
        except ModelRetry as retry:
            return _retry(call, str(retry))
        except ToolFailed as failed:
            # A definitive failure (file not found, sandbox refusal): retrying cannot help.
            return _failed(call, failed.message)
        except Exception as error:
            last_error = error
            logger.warning("tool %s failed (attempt %d of %d): %s", call.tool_name, attempt + 1, retries + 1, error)
            continue
        return ToolOutcome(
            part=ToolReturnPart(tool_name=call.tool_name, content=result, tool_call_id=call.tool_call_id)
        )
    return _failed(call, f"tool {call.tool_name!r} failed: {type(last_error).__name__}: {last_error}")


def _failed(call: ToolCallPart, message: str) -> ToolOutcome:
    part = ToolReturnPart(
        tool_name=call.tool_name, content=f"Error: {message}", tool_call_id=call.tool_call_id, outcome="failed"
    )
    return ToolOutcome(part=part, is_error=True)


def _retry(call: ToolCallPart, message: str) -> ToolOutcome:
    part = ToolReturnPart(tool_name=call.tool_name, content=message, tool_call_id=call.tool_call_id, outcome="retried")
    return ToolOutcome(part=part, is_error=True)
