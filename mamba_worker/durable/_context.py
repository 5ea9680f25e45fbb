"""`DurableStepContext`: the durable driver's side of the step contract.

The same steps that run in-process run here, one per Celery task; the difference is that every
model response and tool result goes through the ledgers (`_recording`), and everything the step
reports becomes an event committed with the step.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import FunctionToolset

from mamba_client.schemas import (
    Compacted,
    Event,
    ModelResponseRecorded,
    ReasoningRecorded,
    RunOptions,
    ToolCallFinished,
    ToolCallRef,
    ToolCallStarted,
    Usage,
)
from mamba_worker.config import CompactionConfig
from mamba_worker.durable._recording import RecordingModel, ToolLedger
from mamba_worker.durable._registry import RegisteredTool
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.store import ToolCallResult
from mamba_worker.workflows import (
    ActionEvent,
    CompactionEvent,
    FetchedTools,
    ObservationEvent,
    StepEvent,
    StepToolbox,
    ThoughtEvent,
    ToolboxStepContext,
    ToolOutcome,
)

logger = logging.getLogger(__name__)


class DurableStepContext(ToolboxStepContext):
    """Runs one attempt of one step's model requests and tool calls through the ledgers.

    Args:
        runtime: The process's runtime (store, models, registry).
        run_id: The run.
        seq: The step.
        attempt: This attempt (from the claim).
        model_name: The run's model.
        tools: The run's tools.
        compaction: Compaction settings.
        compaction_ratio: Fraction of the trigger threshold at which to compact.
        model_settings: Settings for every model request (the run's temperature, max_tokens).
        toolset: The toolset of ``tools`` (default: built here), with ``fetched``, the tools as
            fetched from it: a chain of steps run in one task shares both (`RunSetup`).
        fetched: See ``toolset``.
        before_effect: Called before each model request and tool call: an inline step confirms its
            predecessor's commit there (it raises, and the step stops, if that commit failed).
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        run_id: str,
        seq: int,
        attempt: int,
        model_name: str | None,
        tools: Sequence[RegisteredTool],
        compaction: CompactionConfig,
        compaction_ratio: float = 1.0,
        model_settings: ModelSettings | None = None,
        toolset: FunctionToolset[Any] | None = None,
        fetched: FetchedTools | None = None,
        before_effect: Callable[[], object] | None = None,
    ) -> None:
        self._runtime = runtime
        self._seq = seq
        self._attempt = attempt
        self.usage = Usage()
        """Usage of the model calls this attempt made (replayed responses add nothing)."""
        self.events: list[Event] = []
        """Events to commit with the step."""
        self.model = RecordingModel(
            runtime.model(model_name),
            store=runtime.store,
            run_id=run_id,
            seq=seq,
            attempt=attempt,
            costs=runtime.costs,
            on_response=self._on_response,
            before_request=before_effect,
        )
        self._tools = {tool.name: tool for tool in tools}
        super().__init__(
            run_id=run_id,
            toolbox=StepToolbox(
                self.model,
                toolset or FunctionToolset([tool.tool for tool in tools]),
                model_settings=model_settings,
                fetched=fetched,
            ),
            counter=runtime.counter,
            compaction=compaction,
            compaction_ratio=compaction_ratio,
            compaction_model=self.model,  # LLM strategies' requests are recorded too
        )
        self._ledger = ToolLedger(runtime.store, run_id=run_id, seq=seq, attempt=attempt, before_call=before_effect)
        self._in_doubt = runtime.runtime.in_doubt_policy

    @property
    def attempt(self) -> int:
        """This attempt's number (1 for the first)."""
        return self._attempt

    @property
    def deferred_tool_results(self) -> Sequence[ToolCallResult]:
        """Finished idempotent calls whose ledger rows the step's commit writes (see `ToolLedger`)."""
        return self._ledger.deferred

    def flush_tool_results(self) -> None:
        """Write the deferred calls' rows now, for the next attempt to reuse: the step is not going to commit.

        A failure is logged, not raised (the store is down too): those calls then run again, which
        their tools allow (only idempotent calls are deferred).
        """
        try:
            self._ledger.flush()
        except Exception as error:
            logger.warning(
                "could not record the finished tool calls of run %s step %s: %s", self._run_id, self._seq, error
            )

    async def request(
        self, messages: Sequence[ModelMessage], *, extra_tools: Sequence[ToolDefinition] = ()
    ) -> ModelResponse:
        """One model request (or its recorded response, on a re-run)."""
        return await self._toolbox.request(messages, extra_tools=extra_tools)

    async def call_tool(self, call: ToolCallPart, *, retries: int = 0) -> ToolOutcome:
        """Execute one tool call through the ledger (a finished call is never run twice)."""
        registered = self._tools.get(call.tool_name)
        idempotent = registered.idempotent if registered is not None else True  # unknown tool: nothing runs
        # The tool's own policy for a call left in doubt, else the runtime's.
        in_doubt = registered.in_doubt if registered is not None and registered.in_doubt else self._in_doubt

        async def execute() -> ToolOutcome:
            return await self._toolbox.call(call, retries=retries)

        self._step_event(
            ToolCallStarted, tool_call_id=call.tool_call_id, tool_name=call.tool_name, args=call.args_as_dict()
        )
        outcome = await self._ledger.run(
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            idempotent=idempotent,
            in_doubt=in_doubt,
            args_json=json.dumps(call.args_as_dict(), default=str),
            execute=execute,
        )
        self._step_event(
            ToolCallFinished,
            tool_call_id=call.tool_call_id,
            tool_name=call.tool_name,
            result=_jsonable(outcome.part.content),
        )
        return outcome

    def emit(self, event: StepEvent) -> None:
        """Turn what the step reports into events committed with the step."""
        match event:
            case ThoughtEvent(text=text):
                self._step_event(ReasoningRecorded, entry_type="thought", content=text)
            case ActionEvent(tool_name=tool, args=args):
                self._step_event(
                    ReasoningRecorded, entry_type="action", content=f"{tool}({json.dumps(args, default=str)})"
                )
            case ObservationEvent(content=content):
                self._step_event(ReasoningRecorded, entry_type="observation", content=content)
            case CompactionEvent(outcome=outcome):
                self._step_event(
                    Compacted,
                    strategy=outcome.strategy,
                    messages_before=outcome.removed_count + len(outcome.messages),
                    messages_after=len(outcome.messages),
                    tokens_before=outcome.tokens_before,
                    tokens_after=outcome.tokens_after,
                )

    def _on_response(self, response: ModelResponse, usage: Usage, replayed: bool) -> None:
        self.usage = self.usage + usage
        text = "\n".join(part.content for part in response.parts if isinstance(part, TextPart)) or None
        self._step_event(
            ModelResponseRecorded,
            model=response.model_name,
            text=text,
            tool_calls=[ToolCallRef(tool_call_id=c.tool_call_id, tool_name=c.tool_name) for c in response.tool_calls],
            finish_reason=response.finish_reason,
            usage=usage,
        )

    def _step_event(self, kind: type[Any], **fields: Any) -> None:
        self.events.append(kind(run_id=self._run_id, step_seq=self._seq, **fields))


def model_settings_for(options: RunOptions) -> ModelSettings | None:
    """The run's own model settings, or ``None`` for the model's defaults."""
    settings = ModelSettings()
    if options.temperature is not None:
        settings["temperature"] = options.temperature
    if options.max_tokens is not None:
        settings["max_tokens"] = options.max_tokens
    return settings or None


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value, default=str))
    except (TypeError, ValueError):
        return str(value)
