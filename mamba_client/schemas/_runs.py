"""Run and step bodies: what a client submits and what it reads back."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

from mamba_client.schemas._errors import ErrorBody
from mamba_client.schemas._status import InDoubtDecision, RunStatus, StepStatus, WaitReason
from mamba_client.schemas._usage import Usage

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100)]
"""A workflow or step name: it becomes part of a Celery task name, so no dots or spaces."""

MIN_PRIORITY = 0
"""The least urgent priority; a run without a priority is treated as this one."""
MAX_PRIORITY = 9
"""The most urgent priority."""

Priority = Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)]
"""Mamba's one priority scale for a run's step messages: 0 (least urgent) to 9 (most urgent).

Higher is more urgent on every broker, as on RabbitMQ; the runtime maps it onto each broker's own
scale (Redis, in kombu, reads lower numbers first). The embedded broker has no priorities.
"""


class RunOptions(BaseModel):
    """Per-run limits and model settings. ``None`` means "the workflow's or runtime's default"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_iterations: int | None = Field(default=None, ge=1)
    """ReAct: the most think → act → observe cycles before the run stops."""
    max_steps: int | None = Field(default=None, ge=1)
    """The most steps (of any name) the run may commit."""
    timeout_seconds: float | None = Field(default=None, gt=0)
    """Wall-clock limit for the whole run, counted from submission."""
    step_timeout_seconds: float | None = Field(default=None, gt=0)
    """Limit for one attempt of one step."""
    max_step_attempts: int | None = Field(default=None, ge=1)
    """How often a step may be attempted (crashes and retries) before the run fails as a poison message."""
    system_prompt: str | None = None
    """Replaces the workflow's system prompt."""
    temperature: float | None = Field(default=None, ge=0)
    """Sampling temperature passed to the model."""
    max_tokens: int | None = Field(default=None, ge=1)
    """The most tokens one model response may have."""


class SubmitRun(BaseModel):
    """Body of ``POST /runs``: start a run.

    Example:
        >>> SubmitRun(input="Summarise README.md", tools=["read_file"], idempotency_key="job-42").workflow
        'react'
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: Name = "react"
    """Registered workflow to run."""
    input: str
    """The prompt, or the workflow's input document (as JSON text)."""
    model: str | None = None
    """Model name (``"openai:gpt-4o"``, a local backend's model, ...); ``None``: the configured default."""
    tools: list[str] = Field(default_factory=list)
    """Names of registered tools the run may use."""
    options: RunOptions = Field(default_factory=RunOptions)
    """Limits and model settings."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    """Submitting twice with the same key returns the first run instead of starting another."""
    queue: str | None = Field(default=None, min_length=1, max_length=200)
    """Celery queue for the run's steps; ``None``: the workflow's route (settings, then the workflow's own
    default), else the runtime's default queue."""
    priority: Priority | None = None
    """Priority of the run's step messages, 0 (least urgent) to 9 (most urgent); ``None``: the workflow's
    route, else none (treated as 0). Honoured by Redis and RabbitMQ, not by the embedded broker."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Free labels, stored and returned as given (never interpreted)."""


class Waiting(BaseModel):
    """What a ``waiting`` run waits for."""

    model_config = ConfigDict(frozen=True)

    reason: WaitReason
    """A question for a person, or tool calls in doubt."""
    seq: int = Field(ge=1)
    """The step that paused."""
    prompt: str | None = None
    """The question (``input``), or a description of the doubtful calls (``in_doubt``)."""
    tool_call_ids: list[str] = Field(default_factory=list)
    """The tool calls in doubt (``in_doubt`` only)."""


class Run(BaseModel):
    """A run as the gateway reports it (``GET /runs/{id}``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    """The run's id."""
    workflow: str
    """The workflow it runs."""
    status: RunStatus
    """Where it is."""
    input: str
    """What it was submitted with."""
    model: str | None = None
    """The model it was submitted with (``None``: the configured default)."""
    tools: list[str] = Field(default_factory=list)
    """The tools it may use."""
    options: RunOptions = Field(default_factory=RunOptions)
    """Its limits and model settings."""
    queue: str
    """The Celery queue its steps go to."""
    priority: int | None = None
    """The priority of its step messages (0 to 9, higher is more urgent); ``None``: none (as 0)."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Labels given at submission."""
    idempotency_key: str | None = None
    """The key it was submitted with."""
    output: JsonValue = None
    """The result once ``succeeded`` (ReAct: the final answer, a string)."""
    error: ErrorBody | None = None
    """Why it failed, once ``failed``."""
    waiting: Waiting | None = None
    """What it waits for, while ``waiting``."""
    usage: Usage = Field(default_factory=Usage)
    """Everything its model calls used and cost, retried attempts included."""
    current_seq: int = 0
    """Sequence number of its newest step (0 before the first)."""
    current_step: str | None = None
    """Name of its newest step."""
    current_attempt: int = 0
    """Attempt number of its newest step (0 until a worker claims it)."""
    cancel_requested: bool = False
    """A cancel was requested; the run stops at its next step boundary."""
    parent_run_id: str | None = None
    """The run it was forked from."""
    parent_seq: int | None = None
    """The step of the parent it was forked from."""
    created_at: datetime
    """When it was submitted."""
    updated_at: datetime
    """When it last changed."""
    finished_at: datetime | None = None
    """When it reached a terminal status."""


class StepRecord(BaseModel):
    """One step of a run (``GET /runs/{id}/steps``)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    """The run."""
    seq: int
    """Position in the run, from 1; unique per run."""
    name: str
    """Step name (``think``, ``act``, ``observe``, ``compact`` or a custom workflow's)."""
    status: StepStatus
    """Where it is."""
    attempt: int = 0
    """How many times a worker claimed it."""
    worker: str | None = None
    """The worker holding its lease, while running."""
    created_at: datetime
    """When the previous step's commit created it."""
    started_at: datetime | None = None
    """When its latest attempt started."""
    finished_at: datetime | None = None
    """When it committed or failed."""
    error: ErrorBody | None = None
    """The error of its latest failed attempt."""
    usage: Usage = Field(default_factory=Usage)
    """What its model calls used, across attempts."""


class RunPage(BaseModel):
    """One page of ``GET /runs``, newest first."""

    model_config = ConfigDict(frozen=True)

    items: list[Run]
    """The runs on this page."""
    next_cursor: str | None = None
    """Pass as ``cursor`` to get the next page; ``None`` on the last page."""


class AnswerRun(BaseModel):
    """Body of ``POST /runs/{id}/answer``: unblock a ``waiting`` run.

    Give ``answer`` when it waits for input, ``decision`` when tool calls are in doubt.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    answer: str | None = None
    """The answer to the workflow's question."""
    decision: InDoubtDecision | None = None
    """What to do with the tool calls in doubt."""

    @model_validator(mode="after")
    def _exactly_one(self) -> AnswerRun:
        if (self.answer is None) == (self.decision is None):
            raise ValueError("give exactly one of 'answer' (for a question) or 'decision' (for calls in doubt)")
        return self


class ForkRun(BaseModel):
    """Body of ``POST /runs/{id}/fork``: start a new run from a step of this one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_seq: int = Field(ge=1)
    """The new run starts with the state this step started from, and runs this step first."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    """As in `SubmitRun`."""
    metadata: dict[str, str] = Field(default_factory=dict)
    """Labels for the new run."""


class CancelRun(BaseModel):
    """Body of ``POST /runs/{id}/cancel``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: str | None = Field(default=None, max_length=1000)
    """Why; recorded in the ``run.cancelled`` event."""
