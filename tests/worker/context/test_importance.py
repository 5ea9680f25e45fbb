from __future__ import annotations

import logging

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.context import CompactionConfig, ImportanceScoringStrategy
from mamba_worker.context.compaction import CompactionOutcome, parse_scores
from tests.worker.context.histories import chat, count_tokens, text_model


def total(messages: list[ModelMessage]) -> int:
    return sum(count_tokens(message) for message in messages)


async def score(
    messages: list[ModelMessage], answer: str, *, drop_turns: int, preserve: int = 1
) -> tuple[CompactionOutcome, list[str]]:
    """Compact ``messages`` (two-message turns) by exactly ``drop_turns`` turns' worth of tokens."""
    prompts: list[str] = []

    def respond(history: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompts.extend(
            part.content
            for part in history[-1].parts
            if isinstance(part, UserPromptPart) and isinstance(part.content, str)
        )
        return ModelResponse(parts=[TextPart(answer)])

    per_turn = total(messages[2:4])
    config = CompactionConfig(
        target_tokens=total(messages) - drop_turns * per_turn,
        trigger_threshold_tokens=total(messages),
        preserve_recent_turns=preserve,
    )
    outcome = await ImportanceScoringStrategy().compact(
        messages, config=config, counter=count_tokens, model=FunctionModel(respond)
    )
    return outcome, prompts


async def test_the_lowest_scored_blocks_go_first() -> None:
    history = chat(5, system=None)
    outcome, _ = await score(history, '{"1": 9, "2": 1, "3": 5, "4": 0}', drop_turns=2)
    assert outcome.messages == [*history[0:2], *history[4:6], *history[8:]]
    assert outcome.removed_count == 4


async def test_the_model_sees_each_older_block_by_number_and_not_the_protected_turns() -> None:
    _, [prompt] = await score(chat(4, system=None), "{}", drop_turns=1)
    assert "### Part 1\nUser: question 0" in prompt
    assert "### Part 3\nUser: question 2" in prompt
    assert "question 3" not in prompt


async def test_garbage_scores_fall_back_to_recency_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    history = chat(5, system=None)
    outcome, _ = await score(history, "I think they all matter!", drop_turns=2)
    assert outcome.messages == history[4:]
    assert "fall back to recency" in caplog.text


async def test_blocks_without_a_score_go_first_oldest_first(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    history = chat(5, system=None)
    outcome, _ = await score(history, '{"1": 8, "3": 0}', drop_turns=2)
    assert outcome.messages == [*history[0:2], *history[4:6], *history[8:]]
    assert "2 of 4 blocks" in caplog.text


async def test_a_removed_first_block_leaves_its_system_prompt() -> None:
    history = chat(4)
    head_tokens = 3 + 2 + len("Be brief.") // 4
    target = total(history) - total(history[:2]) + head_tokens
    config = CompactionConfig(target_tokens=target, trigger_threshold_tokens=total(history), preserve_recent_turns=1)
    model = text_model('{"1": 0, "2": 9, "3": 9}')
    outcome = await ImportanceScoringStrategy().compact(history, config=config, counter=count_tokens, model=model)
    assert outcome.tokens_after == target
    assert [part.content for part in outcome.messages[0].parts] == ["Be brief."]  # type: ignore[union-attr]
    assert outcome.messages[1:] == history[2:]


async def test_a_single_block_is_removed_without_asking_a_model() -> None:
    def never(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise AssertionError("the model was asked")

    history = chat(2, system=None)
    config = CompactionConfig(target_tokens=1, trigger_threshold_tokens=total(history), preserve_recent_turns=1)
    outcome = await ImportanceScoringStrategy().compact(
        history, config=config, counter=count_tokens, model=FunctionModel(never)
    )
    assert outcome.messages == history[2:]


@pytest.mark.parametrize(
    ("answer", "scores"),
    [
        ('{"1": 3, "2": 9.5, "3": 0}', [3.0, 9.5, 0.0]),
        ('Sure! ```json\n[{"id": 2, "score": 4}, {"id": "1", "score": 6}, {"id": 3, "score": 1}]\n```', [6, 4, 1]),
        ("[5, 6, 7]", [5.0, 6.0, 7.0]),
        ('{"1": "high", "2": true, "3": 2, "9": 10}', [1.0, 1.0, 2.0]),
        ('{"1": NaN, "2": 4, "3": 5}', [3.0, 4.0, 5.0]),
        ("no idea", [0.0, 0.0, 0.0]),
    ],
)
def test_scores_are_read_from_several_shapes_and_gaps_rank_below_the_rest(answer: str, scores: list[float]) -> None:
    assert parse_scores(answer, 3) == scores
