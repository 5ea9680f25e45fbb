from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelRequest

from mamba_worker.context import CompactionConfig, SelectivePruningStrategy
from mamba_worker.context.compaction import CompactionOutcome
from tests.worker.context.histories import call, count_tokens, reply, results, tool_turn, user


def total(messages: list[ModelMessage]) -> int:
    return sum(count_tokens(message) for message in messages)


async def prune(messages: list[ModelMessage], *, target: int, preserve: int = 1) -> CompactionOutcome:
    config = CompactionConfig(
        target_tokens=target, trigger_threshold_tokens=max(target, total(messages)), preserve_recent_turns=preserve
    )
    return await SelectivePruningStrategy().compact(messages, config=config, counter=count_tokens)


async def test_completed_exchanges_go_oldest_first_until_under_target() -> None:
    history = [*tool_turn(0, steps=4), *tool_turn(1, steps=1)]
    exchange = total(history[1:3])
    outcome = await prune(history, target=total(history) - 2 * exchange)
    assert outcome.messages == [history[0], *history[5:]]
    assert outcome.removed_count == 4


async def test_user_prompts_and_answers_are_never_pruned() -> None:
    history = [*tool_turn(0, steps=3), *tool_turn(1, steps=1)]
    outcome = await prune(history, target=1)
    # Every step of turn 0 was followed by a response; turn 1 is protected.
    assert outcome.messages == [history[0], history[7], *history[8:]]
    assert outcome.tokens_after > 1


async def test_the_last_exchange_of_a_turn_stays() -> None:
    history: list[ModelMessage] = [user("q"), call("a"), results("a"), user("next"), reply("ok")]
    outcome = await prune(history, target=1)
    assert outcome.messages == history and outcome.removed_count == 0


async def test_results_sharing_a_request_with_a_user_prompt_stay() -> None:
    history: list[ModelMessage] = [
        user("q"),
        call("a"),
        ModelRequest(parts=[*results("a").parts, *user("and now?").parts]),
        reply("ok"),
        user("last"),
        reply("bye"),
    ]
    outcome = await prune(history, target=1)
    assert outcome.messages == history


async def test_an_exchange_answered_in_several_requests_goes_whole() -> None:
    history: list[ModelMessage] = [
        user("q"),
        call("a", "b", text="Checking both."),
        results("a"),
        results("b"),
        reply("done"),
        user("last"),
        reply("bye"),
    ]
    outcome = await prune(history, target=1)
    assert outcome.messages == [history[0], *history[4:]]


async def test_protected_turns_keep_their_exchanges() -> None:
    history = [*tool_turn(0, steps=2), *tool_turn(1, steps=3)]
    outcome = await prune(history, target=1, preserve=2)
    assert outcome.messages == history
