"""`LoggingConfig`: how Mamba logs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LoggingConfig(BaseModel):
    """Logging settings (the ``logging`` section, ``MAMBA_LOGGING__*``)."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Minimum level of records that are emitted."""
    format: Literal["text", "json"] = "text"
    """``text`` for people, ``json`` for one JSON object per line (log shippers)."""
    redact_sensitive: bool = True
    """Mask API keys, bearer tokens and every `SecretStr` value in messages and extras."""
    include_timestamp: bool = True
    """Prefix text records with a timestamp (JSON records always carry one)."""
    extra_redact_patterns: list[str] = Field(default_factory=list)
    """Additional regular expressions whose matches are masked."""
