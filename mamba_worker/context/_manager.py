"""`ContextManager`: a conversation's messages, their running token count, and compaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelRequestPart, ModelResponse, SystemPromptPart
from pydantic_ai.models import Model

from mamba_worker.config import CompactionConfig
from mamba_worker.context._convert import to_model_messages
from mamba_worker.context.compaction import (
    CompactionResult,
    CompactionStrategy,
    TokenCounterLike,
    get_strategy,
    message_counter,
)
from mamba_worker.tokens import TokenCounter

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ContextState:
    """A snapshot of a conversation's context."""

    message_count: int
    """Messages in the history."""
    token_count: int
    """Tokens of those messages (the running total; see `ContextManager.get_token_count`)."""
    system_prompt: str | None
    """The system prompt (the leading system prompt parts, joined), if there is one."""
    compaction_count: int
    """Compactions run since the conversation began (or was cleared)."""
    last_compaction: CompactionResult | None
    """The latest compaction, if any."""


class ContextManager:
    """Holds a conversation as pydantic-ai messages, with a running token total, and compacts it.

    Token accounting is incremental: each message is counted once, when it is added, and kept in
    a list parallel to the messages, so `should_compact` is O(1) however long the history grows.

    Example:
        ```python
        manager = ContextManager(config=CompactionConfig(strategy="hybrid", target_tokens=40_000))
        manager.add_messages([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi!"}])
        if manager.should_compact():
            result = await manager.compact()
            print(f"Removed {result.removed_count} messages")
        ```

    Args:
        config: Thresholds, protected turns and strategy; the defaults when omitted.
        token_counter: Counts each message; a `mamba_worker.tokens.TokenCounter` when omitted.
        model: The model LLM strategies use when the config names none (usually the agent's).
    """

    def __init__(
        self,
        config: CompactionConfig | None = None,
        *,
        token_counter: TokenCounterLike | None = None,
        model: Model | None = None,
    ) -> None:
        self.config = config if config is not None else CompactionConfig()
        self.model = model
        self._count = message_counter(token_counter if token_counter is not None else TokenCounter())
        self._messages: list[ModelMessage] = []
        self._counts: list[int] = []
        self._total = 0
        self._history: list[CompactionResult] = []
        # Bumped by every change other than an append, so a compaction that awaited a model can
        # tell whether the history it compacted is still the start of the current one.
        self._generation = 0

    def add_messages(self, messages: Iterable[ModelMessage | Mapping[str, Any]]) -> None:
        """Append messages: pydantic-ai messages, or role/content dicts (see `to_model_messages`).

        Only the new messages are counted.

        Raises:
            MessageFormatError: An item is not a message this manager can read; nothing is added.
        """
        new = to_model_messages(messages, history=self._messages)
        counts = [self._count(message) for message in new]
        self._messages.extend(new)
        self._counts.extend(counts)
        self._total += sum(counts)

    def get_messages(self) -> list[ModelMessage]:
        """The history, oldest first (a new list; the messages themselves are shared)."""
        return list(self._messages)

    def get_token_count(self) -> int:
        """Tokens of the history, as the token counter counts each message.

        Instructions a request carries are not included: an agent sends its current ones with
        every request, so they are not part of the history that compaction can shrink.
        """
        return self._total

    def should_compact(self) -> bool:
        """Whether the history has reached `CompactionConfig.trigger_threshold_tokens`. O(1)."""
        return self._total >= self.config.trigger_threshold_tokens

    async def compact(self, *, strategy: CompactionStrategy | str | None = None) -> CompactionResult:
        """Compact the history towards `CompactionConfig.target_tokens`.

        Messages added while a model-backed strategy was waiting on its model are kept, after the
        compacted history.

        Args:
            strategy: A strategy or its name, instead of `CompactionConfig.strategy`.

        Returns:
            What was removed, the tokens before and after, and the strategy used.

        Raises:
            CompactionError: The strategy's model call failed; the history is unchanged.
            ConfigurationError: ``strategy`` names no strategy.
        """
        if not isinstance(strategy, CompactionStrategy):
            strategy = get_strategy(strategy or self.config.strategy)
        snapshot = list(self._messages)
        generation = self._generation
        known = {id(message): tokens for message, tokens in zip(snapshot, self._counts, strict=True)}

        def count(message: ModelMessage) -> int:
            tokens = known.get(id(message))
            return self._count(message) if tokens is None else tokens

        outcome = await strategy.compact(snapshot, config=self.config, counter=count, model=self.model)
        if generation != self._generation:
            logger.warning("the context was cleared or changed while compacting; the compaction is discarded")
            return outcome.result
        added = self._messages[len(snapshot) :]
        added_counts = self._counts[len(snapshot) :]
        self._messages = [*outcome.messages, *added]
        self._counts = [*(count(message) for message in outcome.messages), *added_counts]
        self._total = sum(self._counts)
        self._history.append(outcome.result)
        return outcome.result

    @property
    def compaction_history(self) -> list[CompactionResult]:
        """Every compaction run on this conversation, oldest first."""
        return list(self._history)

    @property
    def system_prompt(self) -> str | None:
        """The system prompt: the system prompt parts before the first response, joined."""
        parts = [part.content for part in self._leading_system_parts()]
        return "\n\n".join(parts) if parts else None

    def set_system_prompt(self, text: str) -> None:
        """Set the system prompt, replacing the current one or putting it first.

        The first system prompt part before the first response becomes ``text`` and any other
        system prompt parts there are removed (with their request, if nothing else was in it);
        with none, a request holding only the system prompt is inserted at the start.
        """
        messages: list[ModelMessage] = []
        counts: list[int] = []
        placed = False
        leading = True
        for message, tokens in zip(self._messages, self._counts, strict=True):
            leading = leading and isinstance(message, ModelRequest)
            if leading and isinstance(message, ModelRequest) and _has_system_prompt(message):
                parts: list[ModelRequestPart] = []
                for part in message.parts:
                    if not isinstance(part, SystemPromptPart):
                        parts.append(part)
                    elif not placed:
                        parts.append(SystemPromptPart(text))
                        placed = True
                if not parts:
                    continue
                message = replace(message, parts=parts)
                tokens = self._count(message)
            messages.append(message)
            counts.append(tokens)
        if not placed:
            messages.insert(0, ModelRequest(parts=[SystemPromptPart(text)]))
            counts.insert(0, self._count(messages[0]))
        self._messages, self._counts, self._total = messages, counts, sum(counts)
        self._generation += 1

    def clear(self) -> None:
        """Forget the conversation: messages, token total and compaction history."""
        self._messages = []
        self._counts = []
        self._total = 0
        self._history = []
        self._generation += 1

    def get_context_state(self) -> ContextState:
        """A snapshot of the message count, token count, system prompt and compactions."""
        return ContextState(
            message_count=len(self._messages),
            token_count=self._total,
            system_prompt=self.system_prompt,
            compaction_count=len(self._history),
            last_compaction=self._history[-1] if self._history else None,
        )

    def _leading_system_parts(self) -> list[SystemPromptPart]:
        parts: list[SystemPromptPart] = []
        for message in self._messages:
            if isinstance(message, ModelResponse):
                break
            parts.extend(part for part in message.parts if isinstance(part, SystemPromptPart))
        return parts


def _has_system_prompt(message: ModelRequest) -> bool:
    return any(isinstance(part, SystemPromptPart) for part in message.parts)
