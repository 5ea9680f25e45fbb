"""`CompactionConfig`: how the context window is kept in bounds (the ``context`` section)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CompactionStrategyName = Literal[
    "sliding_window", "summarize_older", "selective_pruning", "importance_scoring", "hybrid"
]


def _default_hybrid() -> list[CompactionStrategyName]:
    return ["selective_pruning", "sliding_window"]


class CompactionConfig(BaseModel):
    """Context compaction settings (the ``context`` section, ``MAMBA_CONTEXT__*``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: CompactionStrategyName = "sliding_window"
    """Which of the five strategies compacts the history."""
    trigger_threshold_tokens: int = Field(default=100_000, gt=0)
    """Compaction starts when the history reaches this many tokens."""
    target_tokens: int = Field(default=80_000, gt=0)
    """Compaction removes messages until the history is at or below this many tokens."""
    preserve_recent_turns: int = Field(default=5, ge=0)
    """The most recent turns (a user prompt and everything after it) are never removed."""
    preserve_system_prompt: bool = True
    """The system prompt is always kept."""
    summarization_model: str | None = None
    """Model used by ``summarize_older`` (``None``: the agent's own model)."""
    scoring_model: str | None = None
    """Model used by ``importance_scoring`` (``None``: the agent's own model)."""
    hybrid_strategies: list[CompactionStrategyName] = Field(default_factory=lambda: _default_hybrid())
    """Strategies ``hybrid`` applies in order, stopping once under ``target_tokens``."""

    @model_validator(mode="after")
    def _target_below_trigger(self) -> CompactionConfig:
        if self.target_tokens > self.trigger_threshold_tokens:
            raise ValueError(
                f"target_tokens ({self.target_tokens}) must not exceed "
                f"trigger_threshold_tokens ({self.trigger_threshold_tokens})"
            )
        if "hybrid" in self.hybrid_strategies:
            raise ValueError("hybrid_strategies may not contain 'hybrid' itself")
        return self
