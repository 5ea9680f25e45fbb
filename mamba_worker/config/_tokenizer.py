"""`TokenizerConfig`: how tokens are counted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenizerConfig(BaseModel):
    """Token counting settings (the ``tokenizer`` section, ``MAMBA_TOKENIZER__*``)."""

    model_config = ConfigDict(extra="forbid")

    encoding: str = "cl100k_base"
    """tiktoken encoding. ``cl100k_base`` ships offline; others need a tiktoken cache."""
    message_overhead_tokens: int = Field(default=4, ge=0)
    """Tokens each chat message costs beyond its content (role and separators)."""
