"""`WorkflowState`, `WorkflowStep` and `WorkflowResult`: what a run knows and what it returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Generic
from uuid import uuid4

from pydantic import BaseModel, Field
from typing_extensions import TypeVar

StateT = TypeVar("StateT", default=Any)
OutputT = TypeVar("OutputT", default=Any)


def _now() -> datetime:
    return datetime.now(UTC)


class WorkflowStep(BaseModel):
    """The record of one executed step."""

    step_number: int
    """1-based position of the step in the run."""
    step_type: str
    """The step's name (``think``, ``act``, ...)."""
    description: str = ""
    """What the step did, for people."""
    started_at: datetime = Field(default_factory=_now)
    """When the step started."""
    completed_at: datetime | None = None
    """When the step finished."""
    error: str | None = None
    """The error, when the step failed."""


class WorkflowState(BaseModel, Generic[StateT]):
    """The state of a workflow run: progress counters, step records and the workflow's own context.

    ``context`` holds the workflow-specific state (``ReActState`` for ReAct, anything
    serialisable for custom workflows).
    """

    workflow_id: str = Field(default_factory=lambda: uuid4().hex)
    """Identifier of this run."""
    current_step: int = 0
    """Number of steps executed so far."""
    iteration_count: int = 0
    """Number of iterations completed so far."""
    steps: list[WorkflowStep] = Field(default_factory=list)
    """Step records (when ``track_state`` is on)."""
    context: StateT | None = None
    """The workflow's own state."""
    is_completed: bool = False
    """The run ended successfully."""
    is_failed: bool = False
    """The run ended with an error."""
    started_at: datetime = Field(default_factory=_now)
    """When the run started."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form annotations."""


class WorkflowResult(BaseModel, Generic[OutputT, StateT]):
    """The outcome of `Workflow.run`."""

    success: bool
    """Whether the workflow produced its output."""
    output: OutputT | None = None
    """The output, when successful."""
    state: WorkflowState[StateT]
    """The final state."""
    error: str | None = None
    """Why it failed, when it did."""
    total_steps: int = 0
    """Steps executed."""
    duration_seconds: float = 0.0
    """Wall-clock duration of the run."""
