"""`Event`: every state change of a run, numbered per run.

An event is one of a closed set of models, told apart by ``type``. Each carries the run's id, a
per-run ``seq`` (1, 2, 3, ... without gaps: a client that reconnects with its last ``seq`` misses
nothing) and a timestamp. Parse with `EventAdapter`::

    event = EventAdapter.validate_json(data)
    match event:
        case StepCommitted(step=step, usage=usage): ...
        case RunSucceeded(output=output): ...

``seq`` is 0 on an event that was built but not yet stored: the store assigns it when it appends
the event, in the same transaction as the state change it describes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from mamba_client.schemas._errors import ErrorBody
from mamba_client.schemas._runs import Waiting
from mamba_client.schemas._status import RedispatchReason, ResumeReason
from mamba_client.schemas._usage import Usage


def _now() -> datetime:
    return datetime.now(UTC)


class _EventBase(BaseModel):
    model_config = ConfigDict(frozen=True)

    run_id: str
    """The run it belongs to."""
    seq: int = Field(default=0, ge=0)
    """Position in the run's event log, from 1, without gaps (0 until stored)."""
    ts: datetime = Field(default_factory=_now)
    """When it happened (UTC)."""


class _StepEventBase(_EventBase):
    step_seq: int = Field(ge=1)
    """The step (``StepRecord.seq``) it concerns."""


class RunSubmitted(_EventBase):
    """A run was created (submitted or forked)."""

    type: Literal["run.submitted"] = "run.submitted"
    workflow: str
    """The workflow it runs."""
    input: str
    """Its input."""
    model: str | None = None
    """Its model, when given."""
    queue: str
    """Its queue."""
    priority: int | None = None
    """Its priority (0 to 9, higher is more urgent); ``None``: none."""
    parent_run_id: str | None = None
    """The run it was forked from."""
    parent_seq: int | None = None
    """The parent's step it was forked from."""


class RunStarted(_EventBase):
    """The run's first step was claimed by a worker."""

    type: Literal["run.started"] = "run.started"


class StepStarted(_StepEventBase):
    """A worker claimed a step and started an attempt."""

    type: Literal["step.started"] = "step.started"
    step: str
    """Step name."""
    attempt: int = Field(ge=1)
    """Attempt number, from 1."""
    worker: str
    """The lease owner."""


class StepCommitted(_StepEventBase):
    """A step committed its result, the run's new state and its successor."""

    type: Literal["step.committed"] = "step.committed"
    step: str
    """Step name."""
    attempt: int = Field(ge=1)
    """The attempt that committed."""
    next_step: str | None = None
    """The successor's name; ``None`` when the run finished or paused."""
    usage: Usage = Field(default_factory=Usage)
    """What the step used, across attempts."""


class StepFailed(_StepEventBase):
    """An attempt of a step raised."""

    type: Literal["step.failed"] = "step.failed"
    step: str
    """Step name."""
    attempt: int = Field(ge=1)
    """The attempt that failed."""
    error: ErrorBody
    """What went wrong."""
    will_retry: bool
    """Whether the runtime will attempt the step again."""


class StepRedispatched(_StepEventBase):
    """A step's task message was sent again."""

    type: Literal["step.redispatched"] = "step.redispatched"
    step: str
    """Step name."""
    reason: RedispatchReason
    """Why."""


class ToolCallRef(BaseModel):
    """A tool call requested by a model response."""

    model_config = ConfigDict(frozen=True)

    tool_call_id: str
    """The call's id, unique within the step."""
    tool_name: str
    """The tool."""


class ModelResponseRecorded(_StepEventBase):
    """A model response was recorded (a re-run of the step reuses it)."""

    type: Literal["model.response"] = "model.response"
    model: str | None = None
    """The model that answered."""
    text: str | None = None
    """The response's text, if any."""
    tool_calls: list[ToolCallRef] = Field(default_factory=list)
    """The tool calls it asked for."""
    finish_reason: str | None = None
    """Why the model stopped (``stop``, ``length``, ``tool_call``, ...)."""
    usage: Usage = Field(default_factory=Usage)
    """What the request used."""


class ToolCallStarted(_StepEventBase):
    """A tool call was recorded as started, just before the tool ran."""

    type: Literal["tool_call.started"] = "tool_call.started"
    tool_call_id: str
    """The call's id."""
    tool_name: str
    """The tool."""
    args: JsonValue = None
    """The arguments the model gave."""


class ToolCallFinished(_StepEventBase):
    """A tool returned and its result was recorded."""

    type: Literal["tool_call.finished"] = "tool_call.finished"
    tool_call_id: str
    """The call's id."""
    tool_name: str
    """The tool."""
    result: JsonValue = None
    """What it returned."""


class ToolCallFailed(_StepEventBase):
    """A tool raised."""

    type: Literal["tool_call.failed"] = "tool_call.failed"
    tool_call_id: str
    """The call's id."""
    tool_name: str
    """The tool."""
    error: ErrorBody
    """What went wrong."""


class ToolCallInDoubt(_StepEventBase):
    """A non-idempotent tool call was started but never recorded as finished (a crash in between)."""

    type: Literal["tool_call.in_doubt"] = "tool_call.in_doubt"
    tool_call_id: str
    """The call's id."""
    tool_name: str
    """The tool."""


class ReasoningRecorded(_StepEventBase):
    """A reasoning entry (thought, action, observation) was added to the scratchpad."""

    type: Literal["reasoning.recorded"] = "reasoning.recorded"
    entry_type: str
    """``thought``, ``action`` or ``observation``."""
    content: str
    """The entry's text."""


class Compacted(_StepEventBase):
    """The message history was compacted."""

    type: Literal["context.compacted"] = "context.compacted"
    strategy: str
    """The compaction strategy used."""
    messages_before: int = Field(ge=0)
    """Messages before compaction."""
    messages_after: int = Field(ge=0)
    """Messages after compaction."""
    tokens_before: int = Field(ge=0)
    """Estimated history tokens before."""
    tokens_after: int = Field(ge=0)
    """Estimated history tokens after."""


class RunWaiting(_EventBase):
    """The run paused until someone answers."""

    type: Literal["run.waiting"] = "run.waiting"
    waiting: Waiting
    """What it waits for."""


class RunResumed(_EventBase):
    """A failed or waiting run started moving again."""

    type: Literal["run.resumed"] = "run.resumed"
    reason: ResumeReason
    """``resume``, ``retry`` or ``answer``."""
    from_seq: int = Field(ge=1)
    """The step it continues with."""


class RunSucceeded(_EventBase):
    """The run finished with an output."""

    type: Literal["run.succeeded"] = "run.succeeded"
    output: JsonValue = None
    """The result."""
    usage: Usage = Field(default_factory=Usage)
    """The run's total usage."""


class RunFailed(_EventBase):
    """The run stopped with an error."""

    type: Literal["run.failed"] = "run.failed"
    error: ErrorBody
    """Why."""
    usage: Usage = Field(default_factory=Usage)
    """The run's total usage."""


class RunCancelled(_EventBase):
    """The run was cancelled."""

    type: Literal["run.cancelled"] = "run.cancelled"
    reason: str | None = None
    """Why, as given by whoever cancelled it."""
    usage: Usage = Field(default_factory=Usage)
    """The run's total usage."""


Event: TypeAlias = Annotated[
    RunSubmitted
    | RunStarted
    | StepStarted
    | StepCommitted
    | StepFailed
    | StepRedispatched
    | ModelResponseRecorded
    | ToolCallStarted
    | ToolCallFinished
    | ToolCallFailed
    | ToolCallInDoubt
    | ReasoningRecorded
    | Compacted
    | RunWaiting
    | RunResumed
    | RunSucceeded
    | RunFailed
    | RunCancelled,
    Field(discriminator="type"),
]
"""Any event; ``type`` says which."""

EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)
"""Parses and dumps `Event`s: ``EventAdapter.validate_json(data)``, ``EventAdapter.dump_json(event)``."""

EVENT_TYPES: frozenset[str] = frozenset(
    str(member.model_fields["type"].default) for member in get_args(get_args(Event)[0])
)
"""Every event ``type`` string, in no order."""
