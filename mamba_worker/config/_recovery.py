"""`ErrorRecoveryConfig`: retry behaviour and circuit breaking (the ``retry`` section)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ErrorRecoveryConfig(BaseModel):
    """Retry settings (the ``retry`` section, ``MAMBA_RETRY__*``)."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(default=3, ge=0, le=20)
    """Attempts after the first one for a retryable failure."""
    retry_level: int = Field(default=2, ge=1, le=3)
    """Preset aggressiveness: 1 conservative, 2 balanced, 3 aggressive."""
    base_wait: float = Field(default=1.0, ge=0)
    """First back-off wait in seconds."""
    max_wait: float = Field(default=60.0, gt=0)
    """Longest back-off wait in seconds."""
    circuit_breaker_threshold: int = Field(default=5, ge=1)
    """Consecutive failures that open a circuit breaker."""
    circuit_breaker_timeout: float = Field(default=30.0, gt=0)
    """Seconds an open circuit waits before letting a trial call through."""
