"""Errors, retries and circuit breaking.

Owns the `MambaError` tree (see `mamba_worker.errors._exceptions` for the drawing), the tenacity
retry decorator and `CircuitBreaker`. The lowest layer: it imports nothing from Mamba.
"""

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

__all__ = [
    "AgentError",
    "AuthenticationError",
    "CircuitOpenError",
    "ConfigurationError",
    "MambaError",
    "ModelBackendError",
    "RateLimitError",
    "ToolExecutionError",
    "UsageError",
]
