"""`TokenizerConfig`: how tokens are counted."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TokenizerConfig(BaseModel):
    """Token counting settings (the ``tokenizer`` section, ``MAMBA_TOKENIZER__*``)."""

    model_config = ConfigDict(extra="forbid")

    encoding: str = "cl100k_base"
    """tiktoken encoding. ``cl100k_base`` ships offline; others need a tiktoken cache.

    An encoding that cannot be loaded (unknown name, or its file is not cached and cannot be
    downloaded) is replaced by ``cl100k_base`` with a logged warning.
    """
    message_overhead_tokens: int = Field(default=4, ge=0)
    """Tokens each chat message costs beyond its content (role and separators)."""
    media_tokens: int = Field(default=85, ge=0)
    """Tokens counted for each image, audio, video or document item, whose bytes are not text.

    85 is what OpenAI charges for a low-detail image; real costs vary by provider and size.
    """
    cache_max_chars: int = Field(default=32_000_000, ge=0)
    """Characters of text whose token counts are remembered, so a history is not re-encoded.

    About 32 MB of memory at the default; ``0`` turns the cache off.
    """
