"""`SummarizeOlderStrategy`: replace everything before the recent turns with a model's summary."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import ClassVar

from pydantic_ai.messages import ModelMessage, ModelRequest, ModelRequestPart
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
from mamba_worker.context.compaction._llm import ask, choose_model, render
from mamba_worker.context.errors import CompactionError

logger = logging.getLogger(__name__)

SUMMARY_INSTRUCTIONS = """\
You condense the earlier part of a conversation between a user and an AI assistant that uses tools, \
so the assistant can continue without it. Write a concise summary that keeps: the user's goals and \
constraints, decisions made, facts learned (file names, values, identifiers, tool results that matter), \
what has been done and what is still open. Leave out pleasantries and repeated content. Write plain \
prose or short bullet points, in the conversation's language, and nothing else."""


class SummarizeOlderStrategy(CompactionStrategy):
    """Summarise every message before the protected recent turns with a model, in one request.

    The summary replaces those messages as a request-side `CompactionPart` (which pydantic-ai sends
    as a summary in the user voice), after the system prompt. An earlier summary is part of what gets
    summarised, so summaries fold into each other. A summary longer than what it replaces is cut to
    fit, so the history never grows.

    The model is, in order: the one given here, `CompactionConfig.summarization_model` (resolved
    with pydantic-ai's ``infer_model``), the ``model`` passed to `compact`.

    Args:
        model: The model to summarise with, overriding the config and the caller's.
        instructions: The system prompt of the summarisation request.
    """

    name: ClassVar[str] = "summarize_older"

    def __init__(self, *, model: Model | None = None, instructions: str = SUMMARY_INSTRUCTIONS) -> None:
        self.model = model
        self.instructions = instructions

    async def compact(
        self,
        messages: Sequence[ModelMessage],
        *,
        config: CompactionConfig,
        counter: TokenCounterLike,
        model: Model | None = None,
    ) -> CompactionOutcome:
        """Summarise the older messages (see the class docstring).

        Raises:
            CompactionError: The model call failed or the model wrote no summary.
            UsageError: No model was given anywhere.
        """
        count = message_counter(counter)
        counts = [count(message) for message in messages]
        if sum(counts) <= config.target_tokens:
            return unchanged(messages, counts=counts, strategy=self.name)
        layout = HistoryLayout.of(
            messages,
            preserve_recent_turns=config.preserve_recent_turns,
            keep_system_prompt=config.preserve_system_prompt,
        )
        start, stop = layout.prefix_end, layout.tail_start
        if start == stop:
            return unchanged(messages, counts=counts, strategy=self.name)
        chosen = choose_model(self.model, config.summarization_model, model, strategy=self.name)
        summary = (
            await ask(chosen, instructions=self.instructions, prompt=render(messages[start:stop]), strategy=self.name)
        ).strip()
        if not summary:
            raise CompactionError(
                f"{chosen.model_name!r} answered the summary request with no text; the history is unchanged",
                strategy=self.name,
            )
        parts = layout.system_parts(start, stop)
        budget = sum(counts[start:stop])
        summary, head = _fit(summary, parts, budget=budget, count=count, strategy=self.name)
        out = [*messages[:start], *([head] if head is not None else []), *messages[stop:]]
        return finish(messages, out, counts=counts, count=count, strategy=self.name, summary=summary or None)


def _fit(
    summary: str,
    parts: Sequence[ModelRequestPart],
    *,
    budget: int,
    count: Callable[[ModelMessage], int],
    strategy: str,
) -> tuple[str, ModelRequest | None]:
    """The summary head, its summary cut (at a word) so the head costs no more than ``budget``."""
    head = summary_head(parts, summary, strategy=strategy)
    if head is None or count(head) <= budget:
        return summary, head
    logger.warning("the %s summary is longer than the messages it replaces; cutting it to fit", strategy)
    low, high = 0, len(summary)  # binary search on the longest prefix that fits: O(log n) counts
    while low < high:
        middle = (low + high + 1) // 2
        candidate = summary_head(parts, summary[:middle], strategy=strategy)
        if candidate is None or count(candidate) <= budget:
            low = middle
        else:
            high = middle - 1
    cut = summary[:low]
    if low < len(summary) and " " in cut:
        cut = cut.rsplit(" ", 1)[0]
    cut = cut.strip()
    return cut, summary_head(parts, cut, strategy=strategy)
