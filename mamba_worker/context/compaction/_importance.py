"""`ImportanceScoringStrategy`: a model scores older blocks of the history; the lowest go first."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
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
from mamba_worker.context.compaction._llm import ask, choose_model, extract_json, render

logger = logging.getLogger(__name__)

SCORING_INSTRUCTIONS = """\
You judge which parts of an earlier conversation between a user and an AI assistant still matter \
for continuing it. Each part is headed "### Part <id>". Score every part from 0 (safe to forget) to \
10 (essential: goals, constraints, decisions, facts still needed). Answer with only a JSON object \
mapping each part id to its score, for example {"1": 7, "2": 0, "3": 4}."""

PREVIEW_CHARS = 600
"""Characters of each block the scoring model sees: enough to judge it, and small enough that a long
history still fits in one scoring request."""


class ImportanceScoringStrategy(CompactionStrategy):
    """Ask a model to score each older block of the history, then drop the lowest-scored first.

    A block runs from one safe cut point (a request, with no tool call open) to the next, so it
    holds whole tool exchanges and usually one user turn. Blocks are removed lowest score first
    (older first among equals) until the history is under the target. An answer the strategy
    cannot use, whether not JSON, with scores that are not numbers or with ids missing, is not an
    error: the blocks without a usable score fall back to recency (the oldest go first), and a
    warning is logged.

    The model is, in order: the one given here, `CompactionConfig.scoring_model` (resolved with
    pydantic-ai's ``infer_model``), the ``model`` passed to `compact`.

    Args:
        model: The model to score with, overriding the config and the caller's.
        instructions: The system prompt of the scoring request.
    """

    name: ClassVar[str] = "importance_scoring"

    def __init__(self, *, model: Model | None = None, instructions: str = SCORING_INSTRUCTIONS) -> None:
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
        """Score older blocks and drop the least important (see the class docstring).

        Raises:
            CompactionError: The model call failed.
            UsageError: No model was given anywhere.
        """
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
        blocks = list(zip(layout.cuts, layout.cuts[1:], strict=False))
        if not blocks:
            return unchanged(messages, counts=counts, strategy=self.name)
        scores = await self._scores(messages, blocks, config=config, model=model) if len(blocks) > 1 else [0.0]
        # A removed block that held system prompt parts leaves them behind in a request of their own.
        heads = [summary_head(layout.system_parts(start, stop), None, strategy=self.name) for start, stop in blocks]
        removed: set[int] = set()
        for block in sorted(range(len(blocks)), key=lambda block: (scores[block], block)):
            if tokens <= config.target_tokens:
                break
            start, stop = blocks[block]
            head = heads[block]
            tokens += (count(head) if head is not None else 0) - sum(counts[start:stop])
            removed.add(block)
        out = list(messages[: layout.prefix_end])
        for block, (start, stop) in enumerate(blocks):
            head = heads[block]
            if block not in removed:
                out.extend(messages[start:stop])
            elif head is not None:
                out.append(head)
        out.extend(messages[blocks[-1][1] :])
        return finish(messages, out, counts=counts, count=count, strategy=self.name)

    async def _scores(
        self,
        messages: Sequence[ModelMessage],
        blocks: Sequence[tuple[int, int]],
        *,
        config: CompactionConfig,
        model: Model | None,
    ) -> list[float]:
        chosen = choose_model(self.model, config.scoring_model, model, strategy=self.name)
        prompt = "\n\n".join(
            f"### Part {number}\n{render(messages[start:stop], max_part_chars=PREVIEW_CHARS)[:PREVIEW_CHARS]}"
            for number, (start, stop) in enumerate(blocks, start=1)
        )
        answer = await ask(chosen, instructions=self.instructions, prompt=prompt, strategy=self.name)
        return parse_scores(answer, len(blocks))


def parse_scores(answer: str, count: int) -> list[float]:
    """Read ``count`` scores (ids 1..count) from a model's answer, filling gaps from recency.

    Accepted shapes: ``{"1": 7, ...}``, ``[{"id": 1, "score": 7}, ...]`` or ``[7, 2, ...]``. A block
    without a usable score ranks below every scored one (nothing vouched for it), and among those
    the oldest goes first: not knowing what matters, recency decides.
    """
    found = _read_scores(extract_json(answer), count)
    missing = [number for number in range(1, count + 1) if number not in found]
    if missing:
        logger.warning(
            "the importance scores were unusable for %d of %d blocks (ids %s...); those fall back to recency",
            len(missing),
            count,
            missing[:5],
        )
    floor = min(found.values(), default=1.0) - 1.0
    return [found.get(number, floor) for number in range(1, count + 1)]


def _read_scores(value: object, count: int) -> dict[int, float]:
    pairs: list[tuple[object, object]] = []
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, list):
        for position, item in enumerate(value, start=1):
            if isinstance(item, Mapping):
                pairs.append((item.get("id"), item.get("score")))
            else:
                pairs.append((position, item))
    scores: dict[int, float] = {}
    for key, score in pairs:
        number = _as_id(key)
        if number is None or not 1 <= number <= count:
            continue
        if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
            scores[number] = float(score)
    return scores


def _as_id(key: object) -> int | None:
    if isinstance(key, int) and not isinstance(key, bool):
        return key
    if isinstance(key, str) and key.strip().isdigit():
        return int(key.strip())
    return None
