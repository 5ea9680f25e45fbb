"""`WorkflowConfig`: limits and switches shared by every workflow."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WorkflowConfig(BaseModel):
    """Limits and switches for a workflow run."""

    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(default=50, ge=1)
    """Steps after which the run stops (a step is one think, act, observe, ...)."""
    max_iterations: int = Field(default=10, ge=1)
    """Iterations (full cycles) after which the run stops."""
    timeout_seconds: float | None = Field(default=300.0, gt=0)
    """Wall-clock limit for the whole run; ``None`` for none."""
    step_timeout_seconds: float | None = Field(default=30.0, gt=0)
    """Wall-clock limit for one step; ``None`` for none."""
    enable_hooks: bool = True
    """Call the hook callbacks."""
    track_state: bool = True
    """Keep a record of every step in ``WorkflowState.steps``."""
