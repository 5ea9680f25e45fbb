"""The conversation context: messages, token accounting and compaction.

`ContextManager` keeps a history of pydantic-ai messages with a running token total and compacts
it with one of five strategies (`mamba_worker.context.compaction`). `to_model_messages` turns
role/content dicts into pydantic-ai messages; `validate_history` lists what would make a model
refuse a history.

Layer 3: imports config, errors, tokens and pydantic-ai; never agent, workflows, durable or cli.
"""

from mamba_worker.config import CompactionConfig
from mamba_worker.context._convert import to_model_messages
from mamba_worker.context._history import validate_history
from mamba_worker.context._manager import ContextManager, ContextState
from mamba_worker.context.compaction import (
    CompactionOutcome,
    CompactionResult,
    CompactionStrategy,
    HybridStrategy,
    ImportanceScoringStrategy,
    MessageTokenCounter,
    SelectivePruningStrategy,
    SlidingWindowStrategy,
    SummarizeOlderStrategy,
    TokenCounterLike,
    get_strategy,
)
from mamba_worker.context.errors import CompactionError, MessageFormatError

__all__ = [
    "CompactionConfig",
    "CompactionError",
    "CompactionOutcome",
    "CompactionResult",
    "CompactionStrategy",
    "ContextManager",
    "ContextState",
    "HybridStrategy",
    "ImportanceScoringStrategy",
    "MessageFormatError",
    "MessageTokenCounter",
    "SelectivePruningStrategy",
    "SlidingWindowStrategy",
    "SummarizeOlderStrategy",
    "TokenCounterLike",
    "get_strategy",
    "to_model_messages",
    "validate_history",
]
