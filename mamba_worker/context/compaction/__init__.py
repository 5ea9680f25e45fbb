"""Compaction strategies: pure functions from a message history to a smaller, still valid one.

Every strategy takes the messages, a `CompactionConfig`, a token counter and optionally a model,
and returns a `CompactionOutcome` without touching its input, so the durable runtime can run one
directly on a history loaded from SQL. `get_strategy` builds one from its configured name.

Part of layer 3 (`mamba_worker.context`): imports config, errors and pydantic-ai only.
"""

from mamba_worker.context.compaction._base import (
    SUMMARY_METADATA_KEY,
    CompactionOutcome,
    CompactionResult,
    CompactionStrategy,
    MessageTokenCounter,
    TokenCounterLike,
    message_counter,
)
from mamba_worker.context.compaction._hybrid import HybridStrategy
from mamba_worker.context.compaction._importance import ImportanceScoringStrategy, parse_scores
from mamba_worker.context.compaction._registry import get_strategy
from mamba_worker.context.compaction._selective import SelectivePruningStrategy
from mamba_worker.context.compaction._sliding_window import SlidingWindowStrategy
from mamba_worker.context.compaction._summarize import SummarizeOlderStrategy

__all__ = [
    "CompactionOutcome",
    "CompactionResult",
    "CompactionStrategy",
    "HybridStrategy",
    "ImportanceScoringStrategy",
    "MessageTokenCounter",
    "SUMMARY_METADATA_KEY",
    "SelectivePruningStrategy",
    "SlidingWindowStrategy",
    "SummarizeOlderStrategy",
    "TokenCounterLike",
    "get_strategy",
    "message_counter",
    "parse_scores",
]
