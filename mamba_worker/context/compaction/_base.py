"""The strategy contract: `CompactionStrategy`, its `CompactionOutcome`, and token counting."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, TypeAlias, runtime_checkable

from pydantic_ai.messages import CompactionPart, ModelMessage, ModelRequest, ModelRequestPart
from pydantic_ai.models import Model

from mamba_worker.config import CompactionConfig
from mamba_worker.errors import UsageError

logger = logging.getLogger(__name__)

SUMMARY_METADATA_KEY = "mamba_summary"
"""Key in a summary `CompactionPart`'s ``metadata`` naming the strategy that wrote it."""


@runtime_checkable
class MessageTokenCounter(Protocol):
    """Anything that counts the tokens of one message, like `mamba_worker.tokens.TokenCounter`."""

    def count_message(self, message: ModelMessage, /) -> int:
        """Return the tokens ``message`` costs in a model's context."""
        ...


TokenCounterLike: TypeAlias = MessageTokenCounter | Callable[[ModelMessage], int]
"""A `MessageTokenCounter`, or a plain function from a message to its token count."""


def message_counter(counter: TokenCounterLike) -> Callable[[ModelMessage], int]:
    """Return a function counting one message's tokens with ``counter``."""
    if isinstance(counter, MessageTokenCounter):
        return counter.count_message
    if callable(counter):
        return counter
    raise UsageError(
        f"counter must have a count_message(message) method or be a function of a message, got {counter!r}"
    )


@dataclass(frozen=True, kw_only=True)
class CompactionResult:
    """What one compaction did (no messages: small enough to log, store or send as an event)."""

    strategy: str
    """The strategy that ran (``"hybrid"`` for a combination; its parts are in `steps`)."""
    removed_count: int
    """Messages of the original history no longer in it (dropped, summarised or folded away)."""
    tokens_before: int
    """Tokens of the history before compaction."""
    tokens_after: int
    """Tokens of the history after compaction."""
    summary: str | None = None
    """The summary written in place of older messages, when the strategy wrote one."""
    steps: tuple[CompactionResult, ...] = ()
    """For ``hybrid``: the result of each strategy it ran, in order."""

    @property
    def tokens_saved(self) -> int:
        """How many tokens the compaction removed."""
        return self.tokens_before - self.tokens_after


@dataclass(frozen=True, kw_only=True)
class CompactionOutcome:
    """A strategy's answer: the new history, and what it took to get there.

    The history is valid for a model (see `mamba_worker.context.validate_history`), keeps the system
    prompt (unless `CompactionConfig.preserve_system_prompt` is off), keeps the last
    ``preserve_recent_turns`` turns unchanged, and is never larger than the input. Messages the
    strategy kept are the very objects it was given.
    """

    messages: list[ModelMessage]
    """The compacted history, oldest first."""
    strategy: str
    """The strategy that produced it."""
    removed_count: int
    """Messages of the original history no longer in it."""
    tokens_before: int
    """Tokens of the history the strategy was given."""
    tokens_after: int
    """Tokens of `messages`."""
    summary: str | None = None
    """The summary the strategy wrote, if any."""
    steps: tuple[CompactionResult, ...] = field(default=())
    """For ``hybrid``: the result of each strategy it ran."""

    @property
    def result(self) -> CompactionResult:
        """The outcome without the messages."""
        return CompactionResult(
            strategy=self.strategy,
            removed_count=self.removed_count,
            tokens_before=self.tokens_before,
            tokens_after=self.tokens_after,
            summary=self.summary,
            steps=self.steps,
        )


class CompactionStrategy(ABC):
    """A way to shrink a message history, as a pure function of the messages.

    Strategies never change the messages they are given and keep no state between calls, so the
    durable runtime can run one on a history loaded from SQL, and retry it. Every strategy is O(n)
    in the number of messages, plus its model call if it makes one.
    """

    name: ClassVar[str]
    """The strategy's name in `CompactionConfig.strategy`."""

    @abstractmethod
    async def compact(
        self,
        messages: Sequence[ModelMessage],
        *,
        config: CompactionConfig,
        counter: TokenCounterLike,
        model: Model | None = None,
    ) -> CompactionOutcome:
        """Compact ``messages`` towards ``config.target_tokens``.

        A history already at or under the target comes back unchanged (and no model is asked).

        Args:
            messages: The history, oldest first.
            config: Target, protected turns and per-strategy models.
            counter: Counts one message's tokens.
            model: The model LLM strategies use when neither the strategy nor ``config`` names one.

        Returns:
            The compacted history and what was done.
        """


def summary_head(parts: Sequence[ModelRequestPart], summary: str | None, *, strategy: str) -> ModelRequest | None:
    """The request standing in for removed leading messages: their system prompt, then the summary.

    The summary is a request-side `CompactionPart`, which pydantic-ai sends in the user voice as a
    summary another model wrote; it survives `ModelMessagesTypeAdapter` round trips.
    """
    head_parts = list(parts)
    if summary:
        head_parts.append(CompactionPart(content=summary, metadata={SUMMARY_METADATA_KEY: strategy}))
    return ModelRequest(parts=head_parts) if head_parts else None


def finish(
    messages: Sequence[ModelMessage],
    out: list[ModelMessage],
    *,
    counts: Sequence[int],
    count: Callable[[ModelMessage], int],
    strategy: str,
    summary: str | None = None,
) -> CompactionOutcome:
    """Build the outcome for ``out``, counting only the messages the strategy made.

    If ``out`` came out larger than ``messages`` (a strategy's own message outweighing what it
    replaced), the input is returned unchanged instead: compaction never grows a history.
    """
    known = {id(message): tokens for message, tokens in zip(messages, counts, strict=True)}
    tokens_before = sum(counts)
    tokens_after = sum(known[id(message)] if id(message) in known else count(message) for message in out)
    if tokens_after > tokens_before:
        logger.warning(
            "%s compaction would grow the history from %d to %d tokens; leaving it unchanged",
            strategy,
            tokens_before,
            tokens_after,
        )
        return unchanged(messages, counts=counts, strategy=strategy)
    kept = sum(1 for message in out if id(message) in known)
    return CompactionOutcome(
        messages=out,
        strategy=strategy,
        removed_count=len(messages) - kept,
        tokens_before=tokens_before,
        tokens_after=tokens_after,
        summary=summary,
    )


def unchanged(messages: Sequence[ModelMessage], *, counts: Sequence[int], strategy: str) -> CompactionOutcome:
    """The outcome of a compaction that had nothing to do."""
    tokens = sum(counts)
    return CompactionOutcome(
        messages=list(messages), strategy=strategy, removed_count=0, tokens_before=tokens, tokens_after=tokens
    )
