from __future__ import annotations

import logging

import pytest
from pydantic_ai.messages import (
    CompactionPart,
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.context import (
    CompactionConfig,
    CompactionResult,
    ContextManager,
    ContextState,
    MessageFormatError,
    SlidingWindowStrategy,
)
from mamba_worker.tokens import TokenCounter
from tests.worker.context.histories import chat, count_tokens, text_model


class CountingCounter:
    """Counts with the stand-in counter and remembers how many messages it was asked about."""

    def __init__(self) -> None:
        self.calls = 0

    def count_message(self, message: ModelMessage) -> int:
        self.calls += 1
        return count_tokens(message)


def manager_with(history: list[ModelMessage], **config: object) -> ContextManager:
    manager = ContextManager(CompactionConfig.model_validate(config), token_counter=count_tokens)
    manager.add_messages(history)
    return manager


def test_dicts_and_messages_are_added_and_counted_with_the_default_token_counter() -> None:
    manager = ContextManager()
    manager.add_messages([{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there!"}])
    manager.add_messages([ModelRequest(parts=[UserPromptPart("How are you?")])])

    messages = manager.get_messages()
    assert [message.kind for message in messages] == ["request", "response", "request"]
    assert manager.get_token_count() == TokenCounter().count_messages(messages)
    assert manager.get_token_count() > 0


def test_appending_counts_only_the_new_messages() -> None:
    counter = CountingCounter()
    manager = ContextManager(token_counter=counter)
    manager.add_messages(chat(50))
    before = counter.calls

    manager.add_messages([{"role": "user", "content": "one more"}])

    assert counter.calls - before == 1
    assert manager.get_token_count() == sum(count_tokens(message) for message in manager.get_messages())


def test_should_compact_turns_true_when_the_threshold_is_reached() -> None:
    history = chat(3)
    tokens = sum(count_tokens(message) for message in history)
    assert manager_with(history, trigger_threshold_tokens=tokens, target_tokens=1).should_compact()
    assert not manager_with(history, trigger_threshold_tokens=tokens + 1, target_tokens=1).should_compact()


async def test_compact_runs_the_configured_strategy_and_records_it() -> None:
    manager = manager_with(chat(6), trigger_threshold_tokens=100, target_tokens=100, preserve_recent_turns=1)
    before = manager.get_token_count()

    result = await manager.compact()

    assert isinstance(result, CompactionResult)
    assert (result.strategy, result.removed_count, result.tokens_before) == ("sliding_window", 10, before)
    assert result.tokens_after == manager.get_token_count() <= 100
    assert len(manager.get_messages()) == 3  # the system prompt's own request, then the last turn
    assert manager.compaction_history == [result]
    state = manager.get_context_state()
    assert state == ContextState(
        message_count=3,
        token_count=result.tokens_after,
        system_prompt="Be brief.",
        compaction_count=1,
        last_compaction=result,
    )


async def test_compact_can_use_another_strategy_and_the_managers_model() -> None:
    manager = ContextManager(
        CompactionConfig(trigger_threshold_tokens=100, target_tokens=100, preserve_recent_turns=1),
        token_counter=count_tokens,
        model=text_model("what happened so far"),
    )
    manager.add_messages(chat(6))

    result = await manager.compact(strategy="summarize_older")

    assert result.summary == "what happened so far"
    head = manager.get_messages()[0]
    assert isinstance(head, ModelRequest) and isinstance(head.parts[-1], CompactionPart)
    restored = ModelMessagesTypeAdapter.validate_json(ModelMessagesTypeAdapter.dump_json(manager.get_messages()))
    assert restored == manager.get_messages()


async def test_compact_accepts_a_strategy_instance() -> None:
    manager = manager_with(chat(6), trigger_threshold_tokens=100, target_tokens=100)
    result = await manager.compact(strategy=SlidingWindowStrategy())
    assert result.strategy == "sliding_window"


async def test_messages_added_while_the_model_summarises_are_kept_after_the_compacted_history() -> None:
    manager: ContextManager

    def summarise(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        manager.add_messages([{"role": "user", "content": "arrived meanwhile"}])
        return ModelResponse(parts=[TextPart("summary")])

    manager = ContextManager(
        CompactionConfig(strategy="summarize_older", trigger_threshold_tokens=50, target_tokens=50),
        token_counter=count_tokens,
        model=FunctionModel(summarise),
    )
    manager.add_messages(chat(8))

    await manager.compact()

    last = manager.get_messages()[-1]
    assert isinstance(last, ModelRequest) and last.parts[0].content == "arrived meanwhile"  # type: ignore[union-attr]
    assert manager.get_token_count() == sum(count_tokens(message) for message in manager.get_messages())


async def test_a_compaction_overtaken_by_clear_is_discarded(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    manager: ContextManager

    def summarise(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        manager.clear()
        return ModelResponse(parts=[TextPart("summary")])

    manager = ContextManager(
        CompactionConfig(strategy="summarize_older", trigger_threshold_tokens=50, target_tokens=50),
        token_counter=count_tokens,
        model=FunctionModel(summarise),
    )
    manager.add_messages(chat(8))

    await manager.compact()

    assert manager.get_messages() == [] and manager.compaction_history == []
    assert "compaction is discarded" in caplog.text


def test_set_system_prompt_puts_one_first_when_there_is_none() -> None:
    manager = manager_with(chat(2, system=None))
    manager.set_system_prompt("You are terse.")
    first = manager.get_messages()[0]
    assert isinstance(first, ModelRequest) and first.parts == [
        SystemPromptPart("You are terse.", timestamp=first.parts[0].timestamp)
    ]  # type: ignore[union-attr]
    assert manager.get_context_state().message_count == 5
    assert manager.get_token_count() == sum(count_tokens(message) for message in manager.get_messages())


def test_set_system_prompt_replaces_the_current_one_in_place() -> None:
    manager = manager_with(chat(2, system="old"))
    manager.set_system_prompt("new")
    first = manager.get_messages()[0]
    assert [type(part) for part in first.parts] == [SystemPromptPart, UserPromptPart]
    assert manager.system_prompt == "new"
    assert manager.get_token_count() == sum(count_tokens(message) for message in manager.get_messages())


def test_set_system_prompt_drops_requests_left_empty() -> None:
    manager = manager_with([ModelRequest(parts=[SystemPromptPart("a")]), ModelRequest(parts=[SystemPromptPart("b")])])
    manager.set_system_prompt("c")
    assert manager.system_prompt == "c" and len(manager.get_messages()) == 1


def test_clear_forgets_everything() -> None:
    manager = manager_with(chat(3))
    manager.clear()
    assert manager.get_context_state() == ContextState(
        message_count=0, token_count=0, system_prompt=None, compaction_count=0, last_compaction=None
    )


def test_get_messages_returns_a_copy() -> None:
    manager = manager_with(chat(1))
    manager.get_messages().clear()
    assert len(manager.get_messages()) == 2


def test_an_unreadable_item_adds_nothing() -> None:
    manager = manager_with(chat(1))
    with pytest.raises(MessageFormatError):
        manager.add_messages([{"role": "user", "content": "fine"}, {"role": "nobody", "content": "x"}])
    assert len(manager.get_messages()) == 2
