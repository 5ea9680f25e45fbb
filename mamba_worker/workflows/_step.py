"""The step contract: what a step is, what it returns and what it may ask of its runner.

A step-wise workflow is a set of named steps over a serialisable state. Each step is an async
method ``(state, ctx) -> StepResult`` that changes ``state`` and says what happens next. Steps
never touch SQL, Celery or hooks directly; everything outside the state goes through the
`StepContext` they are given. That is what lets two drivers run the same steps:

- in-process (`LocalStepContext`, used by ``Workflow.run``), and
- durable (``mamba_worker.durable``), which loads the state from SQL, runs ONE step in a Celery
  task and commits the new state, recording every model response and tool result on the way.

A step that raises leaves its (in-memory) state undefined: the in-process driver fails the run,
and the durable driver discards it and retries from the last committed state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.tools import ToolDefinition

from mamba_worker.context import CompactionOutcome


@dataclass(frozen=True, kw_only=True)
class Next:
    """Continue with the step named ``step``."""

    step: str
    """Name of the next step."""
    iteration_done: bool = False
    """This step closed an iteration (the driver counts it and calls the iteration hooks)."""
    kind: Literal["next"] = "next"


@dataclass(frozen=True, kw_only=True)
class Finish:
    """End the run: with ``output`` on success, or with ``error`` on failure."""

    output: Any = None
    """The run's output."""
    error: str | None = None
    """Why the run failed; ``None`` means it succeeded."""
    kind: Literal["finish"] = "finish"

    @property
    def success(self) -> bool:
        """Whether the run succeeded."""
        return self.error is None


StepResult = Next | Finish
"""What a step returns."""


@dataclass(frozen=True, kw_only=True)
class ThoughtEvent:
    """The model reasoned in text."""

    text: str
    kind: Literal["thought"] = "thought"


@dataclass(frozen=True, kw_only=True)
class ActionEvent:
    """The model asked for a tool call."""

    tool_name: str
    args: dict[str, Any]
    tool_call_id: str
    kind: Literal["action"] = "action"


@dataclass(frozen=True, kw_only=True)
class ObservationEvent:
    """A tool call produced a result (or an error the model will see)."""

    tool_name: str
    content: str
    is_error: bool
    tool_call_id: str
    kind: Literal["observation"] = "observation"


@dataclass(frozen=True, kw_only=True)
class CompactionEvent:
    """The history was compacted."""

    outcome: CompactionOutcome
    kind: Literal["compaction"] = "compaction"


StepEvent = ThoughtEvent | ActionEvent | ObservationEvent | CompactionEvent
"""Something a step reports; drivers turn these into hooks (in-process) or SQL events (durable)."""


@dataclass(frozen=True, kw_only=True)
class ToolOutcome:
    """The message part a tool call produced, ready to append to the history."""

    part: ToolReturnPart
    """The return for the model; its ``outcome`` is ``retried`` (the model should fix its call) or
    ``failed`` (the tool failed; the content says why) when the call did not succeed."""
    is_error: bool = False
    """The call failed (the part carries a readable error for the model)."""
    reused: bool = False
    """The result came from the durable ledger instead of a new execution."""
    metadata: dict[str, Any] = field(default_factory=dict)


class StepContext(Protocol):
    """What a step may ask of the driver running it."""

    @property
    def run_id(self) -> str:
        """The run's id."""
        ...

    @property
    def attempt(self) -> int:
        """1 for the first execution of this step, more on a retry after a crash or failure."""
        ...

    async def tool_definitions(self) -> list[ToolDefinition]:
        """The tools the model may call."""
        ...

    async def request(
        self, messages: Sequence[ModelMessage], *, extra_tools: Sequence[ToolDefinition] = ()
    ) -> ModelResponse:
        """One model request with ``messages`` and the tools (plus ``extra_tools``)."""
        ...

    async def call_tool(self, call: ToolCallPart, *, retries: int = 0) -> ToolOutcome:
        """Execute one tool call; failures come back as readable outcomes, not exceptions."""
        ...

    def count_tokens(self, messages: Sequence[ModelMessage]) -> int:
        """Tokens in ``messages``."""
        ...

    @property
    def compaction_threshold(self) -> int:
        """Tokens at which the history should be compacted."""
        ...

    async def compact(self, messages: Sequence[ModelMessage]) -> CompactionOutcome:
        """Compact ``messages`` with the configured strategy."""
        ...

    def emit(self, event: StepEvent) -> None:
        """Report something that happened in the step."""
        ...
