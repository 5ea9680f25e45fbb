"""Errors, retries and circuit breaking.

Owns the `MambaError` tree (see `mamba_worker.errors._exceptions` for the drawing), the tenacity
retry decorator and `CircuitBreaker`. The lowest layer: it imports nothing from Mamba, so the retry
API takes plain numbers rather than settings.
"""

from mamba_worker.errors._circuit_breaker import CircuitBreaker, CircuitBreakerStats, CircuitState
from mamba_worker.errors._exceptions import (
    AgentError,
    AuthenticationError,
    CircuitOpenError,
    ConfigurationError,
    MambaError,
    ModelBackendError,
    RateLimitError,
    ToolExecutionError,
    UsageError,
)
from mamba_worker.errors._retry import (
    RETRY_LEVEL_PRESETS,
    RetryPreset,
    create_retry_decorator,
    is_permanent_error,
    is_transient_error,
)

__all__ = [
    "AgentError",
    "AuthenticationError",
    "CircuitBreaker",
    "CircuitBreakerStats",
    "CircuitOpenError",
    "CircuitState",
    "ConfigurationError",
    "MambaError",
    "ModelBackendError",
    "RETRY_LEVEL_PRESETS",
    "RateLimitError",
    "RetryPreset",
    "ToolExecutionError",
    "UsageError",
    "create_retry_decorator",
    "is_permanent_error",
    "is_transient_error",
]
