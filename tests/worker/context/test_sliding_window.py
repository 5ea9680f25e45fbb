from __future__ import annotations

from pydantic_ai.messages import ModelMessage, ModelRequest, SystemPromptPart

from mamba_worker.context import CompactionConfig, SlidingWindowStrategy
from mamba_worker.context.compaction import CompactionOutcome
from tests.worker.context.histories import call, chat, count_tokens, reply, results, tool_turn, user


def total(messages: list[ModelMessage]) -> int:
    return sum(count_tokens(message) for message in messages)


async def slide(
    messages: list[ModelMessage], *, target: int, preserve: int = 1, keep_system: bool = True
) -> CompactionOutcome:
    config = CompactionConfig(
        target_tokens=target,
        trigger_threshold_tokens=max(target, total(messages)),
        preserve_recent_turns=preserve,
        preserve_system_prompt=keep_system,
    )
    return await SlidingWindowStrategy().compact(messages, config=config, counter=count_tokens)


async def test_a_history_under_the_target_is_returned_unchanged() -> None:
    history = chat(3)
    outcome = await slide(history, target=total(history))
    assert outcome.messages == history and all(a is b for a, b in zip(outcome.messages, history, strict=True))
    assert (outcome.removed_count, outcome.tokens_before, outcome.tokens_after) == (0, total(history), total(history))


async def test_the_oldest_turns_go_first_and_no_more_than_needed() -> None:
    history = chat(10, system=None)
    per_turn = total(history[:2])
    outcome = await slide(history, target=total(history) - 3 * per_turn)
    assert outcome.messages == history[6:]
    assert outcome.removed_count == 6
    assert outcome.tokens_after == total(history) - 3 * per_turn


async def test_the_system_prompt_stays_when_its_request_goes() -> None:
    history = chat(6)
    outcome = await slide(history, target=total(history) // 2)
    head = outcome.messages[0]
    assert isinstance(head, ModelRequest)
    assert [(type(part), part.content) for part in head.parts] == [(SystemPromptPart, "Be brief.")]
    assert outcome.messages[1:] == history[len(history) - len(outcome.messages) + 1 :]


async def test_a_system_only_request_is_kept_as_the_same_object() -> None:
    system = ModelRequest(parts=[SystemPromptPart("sys")])
    history = [system, *chat(6, system=None)]
    outcome = await slide(history, target=10)
    assert outcome.messages[0] is system
    assert outcome.messages[1:] == history[-2:]


async def test_the_protected_turns_stay_even_above_the_target() -> None:
    history = [*chat(2, system=None), *tool_turn(2, steps=5)]
    outcome = await slide(history, target=1, preserve=1)
    assert outcome.messages == history[4:]
    assert outcome.tokens_after > 1


async def test_a_cut_never_separates_a_call_from_its_result() -> None:
    # The results for "a" arrive with the next user prompt: that turn and the call stay together.
    history: list[ModelMessage] = [
        user("one"),
        reply("ok"),
        user("two"),
        call("a"),
        ModelRequest(parts=[*results("a").parts, *user("three").parts]),
        reply("done"),
    ]
    outcome = await slide(history, target=1, preserve=1)
    assert outcome.messages == history[2:]


async def test_the_system_prompt_can_go_when_the_config_says_so() -> None:
    history = [ModelRequest(parts=[SystemPromptPart("sys")]), *chat(4, system="also system")]
    outcome = await slide(history, target=1, keep_system=False)
    assert outcome.messages == history[-2:]
