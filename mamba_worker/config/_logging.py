"""`LoggingConfig`: how Mamba logs."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


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
    """Additional regular expressions whose matches are masked (when ``redact_sensitive`` is on)."""
    propagate: bool = False
    """Also hand Mamba's records to the root logger's handlers, for applications that configure
    logging themselves. Off by default, so that a configured root logger does not print them twice."""

    @field_validator("extra_redact_patterns")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"{pattern!r} is not a valid regular expression ({error}); fix or remove it") from None
        return patterns
