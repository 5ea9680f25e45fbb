"""`StepToolbox`: a run's model and toolset as steps use them, shared by both drivers.

It opens the toolset once for the run (MCP servers start here, not once per step), caches the
tool definitions, makes the single model request a step asks for, and executes tool calls through
pydantic-ai's public toolset API. The in-process context and the durable one wrap it: the durable
one adds the ledgers around each call.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

from pydantic import ValidationError
from pydantic_ai import ModelRetry, ToolFailed
from pydantic_ai.direct import model_request
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext, ToolDefinition
from pydantic_ai.toolsets import AbstractToolset
from pydantic_ai.toolsets.abstract import ToolsetTool
from pydantic_ai.usage import RunUsage

from mamba_worker.config import CompactionConfig
from mamba_worker.context import CompactionOutcome, get_strategy
from mamba_worker.tokens import TokenCounter
from mamba_worker.workflows._step import ToolOutcome

logger = logging.getLogger(__name__)


class FetchedTools:
    """A toolset's tools as fetched once, for the toolboxes of one run's steps to share.

    The durable driver builds a toolbox per step (each step's model records to its own ledger);
    a chain of steps run in one task shares one of these, so the toolset is asked for its tools
    once per chain, as the in-process driver asks once per run.
    """

    def __init__(self) -> None:
        self.tools: dict[str, ToolsetTool[Any]] | None = None
        """The tools by name; ``None`` until a toolbox fetched them."""


class StepToolbox:
    """The model and the toolset of one run, opened once.

    Args:
        model: The model requests go to.
        toolset: The tools the model may call.
        model_settings: Settings for every request (temperature, max tokens, ...).
        fetched: Where the toolset's tools are kept once fetched (default: this toolbox's own).
    """

    def __init__(
        self,
        model: Model,
        toolset: AbstractToolset[Any],
        *,
        model_settings: ModelSettings | None = None,
        fetched: FetchedTools | None = None,
    ) -> None:
        self.model = model
        self.toolset = toolset
        self._model_settings = model_settings
        self._fetched = fetched or FetchedTools()

    @functools.cached_property
    def _run_context(self) -> RunContext[Any]:
        # Built when a tool is fetched or called, not with the toolbox: the durable driver builds a
        # toolbox per step, and most steps call no tool (9 of a step context's 14 µs were this).
        return RunContext(deps=None, model=self.model, usage=RunUsage())

    async def __aenter__(self) -> StepToolbox:
        await self.toolset.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.toolset.__aexit__(exc_type, exc, tb)

    async def tools(self) -> dict[str, ToolsetTool[Any]]:
        """The tools by name (asked of the toolset once)."""
        fetched = self._fetched
        if fetched.tools is None:
            fetched.tools = await self.toolset.get_tools(self._run_context)
        return fetched.tools

    async def definitions(self) -> list[ToolDefinition]:
        """The tools as the model sees them."""
        return [tool.tool_def for tool in (await self.tools()).values()]

    async def request(
        self, messages: Sequence[ModelMessage], *, extra_tools: Sequence[ToolDefinition] = ()
    ) -> ModelResponse:
        """One model request with the run's tools (plus ``extra_tools``)."""
        params = ModelRequestParameters(
            function_tools=[*await self.definitions(), *extra_tools], allow_text_output=True
        )
        return await model_request(
            self.model, list(messages), model_settings=self._model_settings, model_request_parameters=params
        )

    async def call(self, call: ToolCallPart, *, retries: int = 0) -> ToolOutcome:
        """Execute ``call``; any failure becomes a readable result for the model."""
        return await execute_tool_call(self.toolset, await self.tools(), self._run_context, call, retries=retries)


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


class ToolboxStepContext:
    """What both step contexts share: the run id, the open toolbox, token counting, compaction.

    The `StepToolbox` is opened for the context's lifetime (MCP servers start once per run).

    The in-process context (`LocalStepContext`) and the durable one subclass it; they differ in
    how a request, a tool call and an event are handled, not in this.

    Args:
        run_id: The run.
        toolbox: The run's model and tools.
        counter: Counts tokens (cached per message).
        compaction: Compaction settings.
        compaction_ratio: Fraction of ``compaction.trigger_threshold_tokens`` at which to compact.
        compaction_model: The model LLM compaction strategies use.
    """

    def __init__(
        self,
        *,
        run_id: str,
        toolbox: StepToolbox,
        counter: TokenCounter,
        compaction: CompactionConfig,
        compaction_ratio: float,
        compaction_model: Model,
    ) -> None:
        self._run_id = run_id
        self._toolbox = toolbox
        self._counter = counter
        self._compaction = compaction
        self._ratio = compaction_ratio
        self._compaction_model = compaction_model

    async def __aenter__(self) -> Self:
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

    async def tool_definitions(self) -> list[ToolDefinition]:
        """The run's tools, as the model sees them."""
        return await self._toolbox.definitions()

    def count_tokens(self, messages: Sequence[ModelMessage]) -> int:
        """Tokens in ``messages`` (cached per message by the counter)."""
        return self._counter.count_messages(messages)

    @property
    def compaction_threshold(self) -> int:
        """Tokens at which the history is compacted."""
        return int(self._compaction.trigger_threshold_tokens * self._ratio)

    async def compact(self, messages: Sequence[ModelMessage]) -> CompactionOutcome:
        """Compact with the configured strategy (LLM strategies use the compaction model)."""
        strategy = get_strategy(self._compaction.strategy)
        return await strategy.compact(
            list(messages), config=self._compaction, counter=self._counter, model=self._compaction_model
        )
