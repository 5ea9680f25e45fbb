"""The Mamba exception tree.

Every error Mamba raises derives from `MambaError` and carries a stable `code`; the gateway maps
codes to HTTP statuses and `mamba_client` maps them back to its own classes::

    MambaError
    ├── ConfigurationError          a setting, file or argument is wrong (raised early)
    │   └── UsageError              the API was called the wrong way
    └── AgentError                  something failed while an agent was working
        ├── ModelBackendError       the model server failed or could not be reached
        │   ├── RateLimitError      the server said 429
        │   └── AuthenticationError the server refused the credentials
        ├── CircuitOpenError        a circuit breaker is open; the call was not attempted
        └── ToolExecutionError      a tool failed in a way the model cannot fix

Capabilities add their own leaves in their public ``errors.py`` (``mcp.errors``,
``prompts.errors``, ``workflows.errors``, ``tools.errors``), always under this root.

Every class here pickles with its attributes (Celery moves exceptions between processes), and no
message ever contains a secret: callers pass names of settings, never their values.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MambaError(Exception):
    """Root of every error Mamba raises.

    Attributes:
        code: A stable, machine-readable code (``"configuration_error"``, ...). A rename is a
            breaking change.
        message: The human-readable message; it says what was wrong and what to change.
    """

    code: ClassVar[str] = "mamba_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details

    def __reduce__(self) -> tuple[Any, ...]:
        # Celery pickles exceptions across processes; keep the message and the details.
        return (_rebuild, (type(self), self.message, self.details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[MambaError], message: str, details: dict[str, Any]) -> MambaError:
    error = cls.__new__(cls)
    MambaError.__init__(error, message, **details)
    for key, value in details.items():
        setattr(error, key, value)
    return error


class ConfigurationError(MambaError):
    """A setting, configuration file or argument is wrong. Raised early, before work starts."""

    code = "configuration_error"


class UsageError(ConfigurationError):
    """The API was used in a way it does not support (a developer mistake)."""

    code = "usage_error"


class AgentError(MambaError):
    """Something failed while an agent was working."""

    code = "agent_error"


class ModelBackendError(AgentError):
    """The model backend failed, answered with an error, or could not be reached.

    Attributes:
        model: The model name, when known.
        status_code: The HTTP status the server answered with, when there was one.
    """

    code = "model_backend_error"

    def __init__(self, message: str, *, model: str | None = None, status_code: int | None = None) -> None:
        super().__init__(message, model=model, status_code=status_code)
        self.model = model
        self.status_code = status_code


class RateLimitError(ModelBackendError):
    """The model backend is rate limiting us (HTTP 429).

    Attributes:
        retry_after: Seconds the server asked us to wait, when it said.
    """

    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        status_code: int | None = 429,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, model=model, status_code=status_code)
        self.retry_after = retry_after
        self.details["retry_after"] = retry_after


class AuthenticationError(ModelBackendError):
    """The model backend refused the credentials (HTTP 401/403) or none were configured."""

    code = "authentication_error"


class CircuitOpenError(AgentError):
    """A circuit breaker is open; the call was refused without being attempted.

    Attributes:
        name: The breaker's name.
        retry_in: Seconds until the breaker lets a trial call through.
    """

    code = "circuit_open"

    def __init__(self, message: str, *, name: str, retry_in: float) -> None:
        super().__init__(message, name=name, retry_in=retry_in)
        self.name = name
        self.retry_in = retry_in


class ToolExecutionError(AgentError):
    """A tool failed in a way that cannot be reported back to the model.

    Attributes:
        tool_name: The tool that failed.
    """

    code = "tool_execution_error"

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message, tool_name=tool_name)
        self.tool_name = tool_name
