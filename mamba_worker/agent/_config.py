"""`AgentConfig`: per-agent options that are not deployment settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.config import CompactionConfig, TemplateConfig, TokenizerConfig


class AgentConfig(BaseModel):
    """Options for one `Agent`.

    Example:
        ```python
        config = AgentConfig(
            context=CompactionConfig(strategy="hybrid", trigger_threshold_tokens=50_000, target_tokens=40_000),
            auto_compact=True,
        )
        agent = Agent("gpt-4o", settings=settings, config=config)
        ```
    """

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | TemplateConfig = ""
    """The system prompt, or a template to render it from (the ``system_prompt=`` argument wins)."""
    track_context: bool = True
    """Keep the conversation across runs (multi-turn). Off: every run starts from an empty history."""
    auto_compact: bool = True
    """Compact the history after a run when it passes ``context.trigger_threshold_tokens``."""
    context: CompactionConfig | None = None
    """Compaction settings; ``None`` uses ``settings.context``."""
    tokenizer: TokenizerConfig | None = None
    """Token counting settings; ``None`` uses ``settings.tokenizer``."""
    max_retries: int = Field(default=1, ge=0)
    """How often pydantic-ai lets the model retry a failed tool call or invalid output."""
