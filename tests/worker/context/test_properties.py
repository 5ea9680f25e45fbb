"""Every strategy, on random valid histories, returns a history a model accepts."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter

from mamba_worker.context import CompactionConfig, get_strategy, validate_history
from mamba_worker.context.compaction import CompactionStrategy, HybridStrategy
from tests.worker.context.histories import (
    count_tokens,
    histories,
    leading_system_prompt,
    protected_tail,
    text_model,
)

STRATEGIES = ["sliding_window", "summarize_older", "selective_pruning", "importance_scoring", "hybrid"]

SCORE_ANSWERS = st.sampled_from(
    [
        '{"1": 3, "2": 9, "3": 1, "4": 5}',
        "[2, 8, 0, 4, 7, 1]",
        "not json at all",
        '{"1": "high", "7": 2}',
        '```json\n[{"id": 2, "score": 4}]\n```',
    ]
)


def dumped(messages: list[ModelMessage]) -> bytes:
    return ModelMessagesTypeAdapter.dump_json(messages)


@pytest.fixture(autouse=True)
def _quiet_fallback_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="mamba_worker.context")


@pytest.mark.parametrize("name", STRATEGIES)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    messages=histories(),
    preserve=st.integers(min_value=0, max_value=3),
    fraction=st.floats(min_value=0.0, max_value=1.2),
    summary_words=st.integers(min_value=0, max_value=400),
    scores=SCORE_ANSWERS,
    keep_system=st.booleans(),
)
def test_compaction_keeps_history_valid(
    name: str,
    messages: list[ModelMessage],
    preserve: int,
    fraction: float,
    summary_words: int,
    scores: str,
    keep_system: bool,
) -> None:
    total = sum(count_tokens(message) for message in messages)
    target = max(1, int(total * fraction))
    config = CompactionConfig(
        target_tokens=target,
        trigger_threshold_tokens=max(target, total),
        preserve_recent_turns=preserve,
        preserve_system_prompt=keep_system,
        hybrid_strategies=["selective_pruning", "importance_scoring", "summarize_older", "sliding_window"],
    )
    model = text_model(lambda prompt: scores if "### Part" in prompt else "summary " + "word " * summary_words)
    strategy: CompactionStrategy = get_strategy(name)
    before = dumped(messages)

    outcome = asyncio.run(strategy.compact(messages, config=config, counter=count_tokens, model=model))
    out = outcome.messages

    assert dumped(messages) == before, "the input was changed"
    had_pending = bool(validate_history(messages, allow_pending_calls=False))
    assert validate_history(out, allow_pending_calls=had_pending) == []
    assert outcome.tokens_before == total
    assert outcome.tokens_after == sum(count_tokens(message) for message in out)
    assert outcome.tokens_after <= outcome.tokens_before
    if keep_system:
        assert leading_system_prompt(out) == leading_system_prompt(messages)
    tail = protected_tail(messages, preserve)
    assert all(kept is original for kept, original in zip(out[len(out) - len(tail) :], tail, strict=True))
    assert outcome.removed_count == len(messages) - sum(1 for message in out if any(message is m for m in messages))
    assert ModelMessagesTypeAdapter.validate_json(dumped(out)) == ModelMessagesTypeAdapter.validate_json(
        json.dumps(json.loads(dumped(out)))
    )
    if total <= target:
        assert out == messages and outcome.removed_count == 0
    assert outcome.strategy == name
    if isinstance(strategy, HybridStrategy) and total > target:
        assert outcome.steps
