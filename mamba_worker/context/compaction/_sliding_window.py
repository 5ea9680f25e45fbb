"""`SlidingWindowStrategy`: drop the oldest messages until the history fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic_ai.messages import ModelMessage
from pydantic_ai.models import Model

from mamba_worker.config import CompactionConfig
from mamba_worker.context._history import HistoryLayout
from mamba_worker.context.compaction._base import (
    CompactionOutcome,
    CompactionStrategy,
    TokenCounterLike,
    finish,
    message_counter,
    summary_head,
    unchanged,
)


class SlidingWindowStrategy(CompactionStrategy):
    """Remove the oldest messages, as few as possible, until the history is under the target.

    The history is only cut where a request follows and no tool call is left open, so calls and
    their results go together. System prompts stay, in a request of their own if the message that
    held them went. The protected recent turns are never cut into: when they alone exceed the
    target, everything older goes and the result stays above the target.
    """

    name: ClassVar[str] = "sliding_window"

    async def compact(
        self,
        messages: Sequence[ModelMessage],
        *,
        config: CompactionConfig,
        counter: TokenCounterLike,
        model: Model | None = None,
    ) -> CompactionOutcome:
        """Drop the oldest messages down to ``config.target_tokens`` (see the class docstring)."""
        count = message_counter(counter)
        counts = [count(message) for message in messages]
        if sum(counts) <= config.target_tokens:
            return unchanged(messages, counts=counts, strategy=self.name)
        layout = HistoryLayout.of(
            messages,
            preserve_recent_turns=config.preserve_recent_turns,
            keep_system_prompt=config.preserve_system_prompt,
        )
        suffix = [0] * (len(messages) + 1)
        for index in range(len(messages) - 1, -1, -1):
            suffix[index] = suffix[index + 1] + counts[index]
        prefix_tokens = suffix[0] - suffix[layout.prefix_end]
        head_tokens: dict[int, int] = {}  # by how many system parts the head carries

        def after_cut(cut: int) -> tuple[int, list[ModelMessage]]:
            parts = layout.system_parts(layout.prefix_end, cut)
            head = summary_head(parts, None, strategy=self.name)
            if head is None:
                return prefix_tokens + suffix[cut], []
            if len(parts) not in head_tokens:
                head_tokens[len(parts)] = count(head)
            return prefix_tokens + head_tokens[len(parts)] + suffix[cut], [head]

        chosen, head = layout.cuts[-1], after_cut(layout.cuts[-1])[1]
        for cut in layout.cuts[1:]:
            tokens, candidate_head = after_cut(cut)
            if tokens <= config.target_tokens:
                chosen, head = cut, candidate_head
                break
        if chosen == layout.prefix_end:
            return unchanged(messages, counts=counts, strategy=self.name)
        out = [*messages[: layout.prefix_end], *head, *messages[chosen:]]
        return finish(messages, out, counts=counts, count=count, strategy=self.name)
