"""Errors raised by workflows."""

from __future__ import annotations

from mamba_worker.errors import AgentError


class WorkflowError(AgentError):
    """A workflow could not complete."""

    code = "workflow_error"


class WorkflowTimeoutError(WorkflowError):
    """A workflow or one of its steps ran past its time limit."""

    code = "workflow_timeout"


class MaxStepsExceededError(WorkflowError):
    """A workflow used up its step or iteration budget without finishing."""

    code = "max_steps_exceeded"


class UnknownStepError(WorkflowError):
    """A workflow was asked to run a step it does not have (renamed or removed since)."""

    code = "unknown_step"


__all__ = ["MaxStepsExceededError", "UnknownStepError", "WorkflowError", "WorkflowTimeoutError"]
