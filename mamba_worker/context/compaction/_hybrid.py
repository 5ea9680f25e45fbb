"""`HybridStrategy`: several strategies in sequence, until the history fits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model

from mamba_worker.config import CompactionConfig
from mamba_worker.context.compaction._base import (
    CompactionOutcome,
    CompactionResult,
    CompactionStrategy,
    TokenCounterLike,
    finish,
    message_counter,
    unchanged,
)
from mamba_worker.context.compaction._importance import ImportanceScoringStrategy
from mamba_worker.context.compaction._selective import SelectivePruningStrategy
from mamba_worker.context.compaction._sliding_window import SlidingWindowStrategy
from mamba_worker.context.compaction._summarize import SummarizeOlderStrategy
from mamba_worker.errors import ConfigurationError, UsageError


class HybridStrategy(CompactionStrategy):
    """Run strategies one after another on the shrinking history, stopping once it is under target.

    The default sequence is `CompactionConfig.hybrid_strategies` (``selective_pruning`` then
    ``sliding_window``): cheap, lossless-ish pruning first, dropping turns only if that was not
    enough. Each message is counted once for the whole sequence.

    Args:
        strategies: Strategies (or their names) to run instead of the config's sequence.
    """

    name: ClassVar[str] = "hybrid"

    def __init__(self, strategies: Sequence[CompactionStrategy | str] | None = None) -> None:
        self.strategies = None if strategies is None else [_resolve(item) for item in strategies]

    async def compact(
        self,
        messages: Sequence[ModelMessage],
        *,
        config: CompactionConfig,
        counter: TokenCounterLike,
        model: Model | None = None,
    ) -> CompactionOutcome:
        """Run each strategy in turn until the history is at or under ``config.target_tokens``.

        Raises:
            CompactionError: A model-backed strategy in the sequence failed.
        """
        count = _Memo(message_counter(counter))
        counts = [count(message) for message in messages]
        if sum(counts) <= config.target_tokens:
            return unchanged(messages, counts=counts, strategy=self.name)
        sequence = self.strategies or [_resolve(name) for name in config.hybrid_strategies]
        current: Sequence[ModelMessage] = messages
        steps: list[CompactionResult] = []
        summary: str | None = None
        for strategy in sequence:
            outcome = await strategy.compact(current, config=config, counter=count, model=model)
            steps.append(outcome.result)
            summary = outcome.summary or summary
            current = outcome.messages
            if outcome.tokens_after <= config.target_tokens:
                break
        done = finish(messages, list(current), counts=counts, count=count, strategy=self.name, summary=summary)
        return CompactionOutcome(
            messages=done.messages,
            strategy=self.name,
            removed_count=done.removed_count,
            tokens_before=done.tokens_before,
            tokens_after=done.tokens_after,
            summary=done.summary,
            steps=tuple(steps),
        )


SEQUENCEABLE: dict[str, type[CompactionStrategy]] = {
    strategy.name: strategy
    for strategy in (
        SelectivePruningStrategy,
        SlidingWindowStrategy,
        SummarizeOlderStrategy,
        ImportanceScoringStrategy,
    )
}
"""The strategies a hybrid sequence may hold, by name: every one but ``hybrid`` itself."""


def _resolve(item: CompactionStrategy | str) -> CompactionStrategy:
    if isinstance(item, HybridStrategy) or item == HybridStrategy.name:
        raise UsageError("a hybrid strategy cannot contain another hybrid strategy; list the strategies directly")
    if isinstance(item, CompactionStrategy):
        return item
    if item not in SEQUENCEABLE:
        raise ConfigurationError(
            f"unknown compaction strategy {item!r} in a hybrid sequence; choose from {', '.join(sorted(SEQUENCEABLE))}"
        )
    return SEQUENCEABLE[item]()


class _Memo:
    """Counts each message object once, however many strategies in the sequence look at it."""

    def __init__(self, count: Callable[[ModelMessage], int]) -> None:
        self._count = count
        # Keyed by id(), holding the message too so the id cannot be reused while the memo lives.
        self._known: dict[int, tuple[ModelMessage, int]] = {}

    def __call__(self, message: ModelMessage) -> int:
        known = self._known.get(id(message))
        if known is None:
            known = (message, self._count(message))
            self._known[id(message)] = known
        return known[1]
