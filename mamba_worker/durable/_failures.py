"""Which step failures are worth another attempt, how a failure is reported, and the limits that end a run."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic_ai.exceptions import UnexpectedModelBehavior
from sqlalchemy.exc import DBAPIError

from mamba_client.schemas import ErrorBody, RunOptions
from mamba_worker.durable.errors import StepTimeoutError
from mamba_worker.errors import AuthenticationError, ConfigurationError, MambaError, ModelBackendError
from mamba_worker.workflows import MaxStepsExceededError, WorkflowConfig, WorkflowTimeoutError


def is_transient(error: BaseException) -> bool:
    """Failures that another attempt may not meet: infrastructure, not the step's logic."""
    if isinstance(error, AuthenticationError | ConfigurationError):
        return False
    return isinstance(
        error, ModelBackendError | StepTimeoutError | DBAPIError | ConnectionError | TimeoutError | OSError
    )


def error_body(error: BaseException) -> ErrorBody:
    """The error a failed step and its run report: a stable code and a readable message."""
    if isinstance(error, MambaError):
        return ErrorBody(code=error.code, message=str(error))
    if isinstance(error, UnexpectedModelBehavior):
        # "A model that returns garbage fails the step with the raw response recorded."
        body = getattr(error, "body", None)
        raw = f" Raw response: {body[:4000]}" if isinstance(body, str) and body else ""
        return ErrorBody(code="model_garbage", message=f"{error.message}.{raw}")
    return ErrorBody(code="step_error", message=f"{type(error).__name__}: {error}")


def check_run_limits(
    config: WorkflowConfig, options: RunOptions, *, run_id: str, seq: int, created_at: datetime, now: datetime
) -> None:
    """Refuse to start step ``seq`` past the workflow's ``max_steps`` or the run's own ``timeout_seconds``.

    The same limits the in-process driver applies. The wall-clock limit counts only when the run
    asked for one (``RunOptions.timeout_seconds``): a durable run may rightly outlive the
    workflow's in-process default of minutes (it waits for people, survives restarts).

    Raises:
        MaxStepsExceededError: ``seq`` is past ``config.max_steps``.
        WorkflowTimeoutError: The run is older than ``options.timeout_seconds``.
    """
    if seq > config.max_steps:
        raise MaxStepsExceededError(
            f"run {run_id!r} reached max_steps={config.max_steps}; step {seq} is not started "
            "(raise max_steps in the run's options to let it go on, then resume it)"
        )
    limit = options.timeout_seconds
    if limit is not None and now - created_at > timedelta(seconds=limit):
        raise WorkflowTimeoutError(
            f"run {run_id!r} did not finish within timeout_seconds={limit} (submitted {created_at.isoformat()})"
        )
