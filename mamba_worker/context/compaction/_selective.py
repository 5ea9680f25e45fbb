"""`SelectivePruningStrategy`: drop completed tool call/result exchanges, oldest first."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolCallPart
from pydantic_ai.models import Model

from mamba_worker.config import CompactionConfig
from mamba_worker.context._history import HistoryLayout, result_call_id
from mamba_worker.context.compaction._base import (
    CompactionOutcome,
    CompactionStrategy,
    TokenCounterLike,
    finish,
    message_counter,
    unchanged,
)


class SelectivePruningStrategy(CompactionStrategy):
    """Remove completed tool exchanges, oldest first, until the history is under the target.

    An exchange is a `ModelResponse` that calls tools and the requests right after it that hold
    nothing but those calls' results. It is *completed* when the model has answered again after
    it (the next message is a response), so the final response of a turn, which may be its
    answer, always stays. Both sides go whole: any text the calling response carried goes with it.
    User prompts, the system prompt and plain conversation are never touched.
    """

    name: ClassVar[str] = "selective_pruning"

    async def compact(
        self,
        messages: Sequence[ModelMessage],
        *,
        config: CompactionConfig,
        counter: TokenCounterLike,
        model: Model | None = None,
    ) -> CompactionOutcome:
        """Drop completed tool exchanges down to ``config.target_tokens`` (see the class docstring)."""
        count = message_counter(counter)
        counts = [count(message) for message in messages]
        tokens = sum(counts)
        if tokens <= config.target_tokens:
            return unchanged(messages, counts=counts, strategy=self.name)
        layout = HistoryLayout.of(
            messages,
            preserve_recent_turns=config.preserve_recent_turns,
            keep_system_prompt=config.preserve_system_prompt,
        )
        removed = [False] * len(messages)
        for start, stop in _exchanges(messages, layout.prefix_end, layout.tail_start):
            if tokens <= config.target_tokens:
                break
            tokens -= sum(counts[start:stop])
            for index in range(start, stop):
                removed[index] = True
        if not any(removed):
            return unchanged(messages, counts=counts, strategy=self.name)
        out = [message for message, gone in zip(messages, removed, strict=True) if not gone]
        return finish(messages, out, counts=counts, count=count, strategy=self.name)


def _exchanges(messages: Sequence[ModelMessage], start: int, stop: int) -> Iterator[tuple[int, int]]:
    """Yield ``(first, end)`` of each completed exchange inside ``messages[start:stop]``, oldest first.

    Each message is looked at a bounded number of times: O(n) over the region.
    """
    index = start
    while index < stop:
        message = messages[index]
        if not isinstance(message, ModelResponse):
            index += 1
            continue
        calls = {part.tool_call_id for part in message.parts if isinstance(part, ToolCallPart)}
        end = index + 1
        answered: set[str] = set()
        while end < stop and answered != calls and _only_results_for(messages[end], calls):
            answered.update(_result_ids(messages[end]))
            end += 1
        # Completed: every call answered by pure result requests, and the model spoke again after them.
        if calls and answered == calls and end < len(messages) and isinstance(messages[end], ModelResponse):
            yield index, end
        index = max(end, index + 1)


def _only_results_for(message: ModelMessage, calls: set[str]) -> bool:
    if not isinstance(message, ModelRequest) or not message.parts:
        return False
    return all(result_call_id(part) in calls for part in message.parts)


def _result_ids(message: ModelMessage) -> Iterator[str]:
    for part in message.parts:
        call_id = result_call_id(part)
        if call_id is not None:
            yield call_id
