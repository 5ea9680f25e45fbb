from __future__ import annotations

from typing import get_args

import pytest
from pydantic_ai.messages import ModelMessage

from mamba_worker.config import CompactionStrategyName
from mamba_worker.context import (
    CompactionConfig,
    HybridStrategy,
    ImportanceScoringStrategy,
    SelectivePruningStrategy,
    SlidingWindowStrategy,
    SummarizeOlderStrategy,
    get_strategy,
)
from mamba_worker.errors import ConfigurationError, UsageError
from tests.worker.context.histories import chat, count_tokens, text_model, tool_turn


def total(messages: list[ModelMessage]) -> int:
    return sum(count_tokens(message) for message in messages)


def config_for(messages: list[ModelMessage], target: int, **overrides: object) -> CompactionConfig:
    return CompactionConfig.model_validate(
        {
            "target_tokens": target,
            "trigger_threshold_tokens": max(target, total(messages)),
            "preserve_recent_turns": 1,
            **overrides,
        }
    )


async def test_it_stops_after_the_first_strategy_that_reaches_the_target() -> None:
    history = [*tool_turn(0, steps=3), *tool_turn(1, steps=1)]
    outcome = await HybridStrategy().compact(
        history, config=config_for(history, total(history) - total(history[1:3])), counter=count_tokens
    )
    assert [step.strategy for step in outcome.steps] == ["selective_pruning"]
    assert outcome.messages == [history[0], *history[3:]]
    assert (outcome.strategy, outcome.removed_count) == ("hybrid", 2)


async def test_it_goes_on_to_the_next_strategy_when_the_first_is_not_enough() -> None:
    history = [*tool_turn(0, steps=2), *chat(3, system=None), *tool_turn(9, steps=1)]
    outcome = await HybridStrategy().compact(history, config=config_for(history, 1), counter=count_tokens)
    assert [step.strategy for step in outcome.steps] == ["selective_pruning", "sliding_window"]
    assert outcome.messages == history[-4:]
    assert outcome.removed_count == len(history) - 4
    assert outcome.tokens_before == outcome.steps[0].tokens_before
    assert outcome.tokens_after == outcome.steps[-1].tokens_after


async def test_the_sequence_comes_from_the_config_and_carries_the_summary() -> None:
    history = chat(5)
    config = config_for(history, 1, hybrid_strategies=["summarize_older"])
    outcome = await HybridStrategy().compact(history, config=config, counter=count_tokens, model=text_model("gist"))
    assert outcome.summary == "gist"
    assert [step.strategy for step in outcome.steps] == ["summarize_older"]


async def test_an_explicit_sequence_accepts_names_and_instances() -> None:
    history = chat(5)
    hybrid = HybridStrategy(["sliding_window", SummarizeOlderStrategy(model=text_model("unused"))])
    outcome = await hybrid.compact(history, config=config_for(history, total(history) - 5), counter=count_tokens)
    assert [step.strategy for step in outcome.steps] == ["sliding_window"]


async def test_each_message_is_counted_once_across_the_sequence() -> None:
    counted: list[int] = []

    def counter(message: ModelMessage) -> int:
        counted.append(id(message))
        return count_tokens(message)

    history = [*tool_turn(0, steps=2), *chat(3, system=None), *tool_turn(9, steps=1)]
    await HybridStrategy().compact(history, config=config_for(history, 1), counter=counter)
    assert len(counted) == len(set(counted))


def test_a_hybrid_inside_a_hybrid_is_refused() -> None:
    with pytest.raises(UsageError, match="cannot contain another hybrid"):
        HybridStrategy(["hybrid"])
    with pytest.raises(UsageError, match="cannot contain another hybrid"):
        HybridStrategy([HybridStrategy()])


def test_an_unknown_name_in_a_sequence_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown compaction strategy 'magic'"):
        HybridStrategy(["magic"])


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("sliding_window", SlidingWindowStrategy),
        ("summarize_older", SummarizeOlderStrategy),
        ("selective_pruning", SelectivePruningStrategy),
        ("importance_scoring", ImportanceScoringStrategy),
        ("hybrid", HybridStrategy),
    ],
)
def test_get_strategy_builds_each_strategy_by_its_name(name: str, cls: type) -> None:
    strategy = get_strategy(name)
    assert type(strategy) is cls and strategy.name == name


def test_every_configurable_name_has_a_strategy() -> None:
    for name in get_args(CompactionStrategyName):
        assert get_strategy(name).name == name


def test_get_strategy_names_the_choices_for_an_unknown_name() -> None:
    with pytest.raises(ConfigurationError, match="choose one of hybrid, importance_scoring"):
        get_strategy("fifo")
