"""Which step failures are worth another attempt, and how a failure is reported (code and message)."""

from __future__ import annotations

from pydantic_ai.exceptions import UnexpectedModelBehavior
from sqlalchemy.exc import DBAPIError

from mamba_client.schemas import ErrorBody
from mamba_worker.errors import AuthenticationError, ConfigurationError, MambaError, ModelBackendError


def is_transient(error: BaseException) -> bool:
    """Failures that another attempt may not meet: infrastructure, not the step's logic."""
    if isinstance(error, AuthenticationError | ConfigurationError):
        return False
    return isinstance(error, ModelBackendError | DBAPIError | ConnectionError | TimeoutError | OSError)


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
