from __future__ import annotations

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

from mamba_worker.context import CompactionConfig, CompactionError, SummarizeOlderStrategy
from mamba_worker.context.compaction import SUMMARY_METADATA_KEY, CompactionOutcome
from mamba_worker.errors import UsageError
from tests.worker.context.histories import chat, count_tokens, tool_turn


def total(messages: list[ModelMessage]) -> int:
    return sum(count_tokens(message) for message in messages)


def config_for(messages: list[ModelMessage], **overrides: object) -> CompactionConfig:
    values: dict[str, object] = {"target_tokens": 1, "trigger_threshold_tokens": total(messages)}
    values.update(overrides)
    return CompactionConfig.model_validate({"preserve_recent_turns": 1, **values})


class RecordingModel(FunctionModel):
    """Answers with a fixed summary and keeps every prompt it was sent."""

    def __init__(self, answer: str = "The user asked six questions; all were answered.") -> None:
        self.prompts: list[str] = []
        self.answer = answer
        super().__init__(self._respond, model_name="recording")

    def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.prompts += [
            part.content
            for message in messages
            for part in message.parts
            if isinstance(part, UserPromptPart) and isinstance(part.content, str)
        ]
        return ModelResponse(parts=[TextPart(self.answer)])


async def summarize(
    messages: list[ModelMessage], model: RecordingModel | None = None, **overrides: object
) -> CompactionOutcome:
    return await SummarizeOlderStrategy().compact(
        messages, config=config_for(messages, **overrides), counter=count_tokens, model=model
    )


async def test_older_turns_become_one_summary_after_the_system_prompt() -> None:
    history = chat(6)
    model = RecordingModel()
    outcome = await summarize(history, model)

    head, *rest = outcome.messages
    assert rest == history[-2:]
    assert isinstance(head, ModelRequest)
    system, summary = head.parts
    assert isinstance(system, SystemPromptPart) and system.content == "Be brief."
    assert isinstance(summary, CompactionPart)
    assert summary.content == outcome.summary == "The user asked six questions; all were answered."
    assert summary.metadata == {SUMMARY_METADATA_KEY: "summarize_older"}
    assert outcome.removed_count == 10


async def test_the_model_reads_the_older_turns_but_not_the_protected_ones() -> None:
    model = RecordingModel()
    await summarize(chat(3), model)
    [prompt] = model.prompts
    assert "User: question 0" in prompt and "Assistant: answer 1" in prompt
    assert "System: Be brief." in prompt
    assert "question 2" not in prompt


async def test_an_earlier_summary_is_folded_into_the_next() -> None:
    history = chat(4)
    first = await summarize(history, RecordingModel("first summary"))
    model = RecordingModel("second summary")
    second = await summarize([*first.messages, *chat(2, system=None)], model)

    assert "Summary of the conversation before this point: first summary" in model.prompts[0]
    head = second.messages[0]
    assert [getattr(part, "content", None) for part in head.parts] == ["Be brief.", "second summary"]


async def test_the_summary_survives_a_json_round_trip() -> None:
    outcome = await summarize(chat(4), RecordingModel())
    restored = ModelMessagesTypeAdapter.validate_json(ModelMessagesTypeAdapter.dump_json(outcome.messages))
    assert restored == outcome.messages


async def test_a_summary_longer_than_what_it_replaces_is_cut_to_fit(caplog: pytest.LogCaptureFixture) -> None:
    history = chat(3, size=2)
    outcome = await summarize(history, RecordingModel("verbose " * 500))
    assert outcome.tokens_after <= outcome.tokens_before
    assert outcome.summary is not None and outcome.summary.startswith("verbose verbose")
    assert not outcome.summary.endswith(" ") and len(outcome.summary) < 4000
    assert "longer than the messages it replaces" in caplog.text


async def test_nothing_to_summarise_asks_no_model() -> None:
    history = chat(2)
    outcome = await summarize(history, None, preserve_recent_turns=5)
    assert outcome.messages == history and outcome.removed_count == 0


async def test_the_configured_summarization_model_wins_over_the_callers() -> None:
    caller = RecordingModel()
    outcome = await summarize(chat(3), caller, summarization_model="test")
    assert caller.prompts == []
    assert outcome.summary == "success (no tool calls)"  # pydantic-ai's TestModel answer


async def test_the_strategys_own_model_wins_over_the_config() -> None:
    own, caller = RecordingModel("own"), RecordingModel("caller")
    history = chat(3)
    outcome = await SummarizeOlderStrategy(model=own).compact(
        history, config=config_for(history, summarization_model="test"), counter=count_tokens, model=caller
    )
    assert outcome.summary == "own"


async def test_without_any_model_it_says_how_to_give_one() -> None:
    with pytest.raises(UsageError, match="set CompactionConfig.summarization_model"):
        await summarize(chat(3), None)


async def test_a_failing_model_raises_a_compaction_error_with_the_cause() -> None:
    def broken(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        raise ConnectionError("server gone")

    history = chat(3)
    with pytest.raises(CompactionError, match="ConnectionError") as caught:
        await SummarizeOlderStrategy().compact(
            history, config=config_for(history), counter=count_tokens, model=FunctionModel(broken)
        )
    assert isinstance(caught.value.__cause__, ConnectionError)
    assert caught.value.strategy == "summarize_older"


async def test_an_empty_summary_is_an_error() -> None:
    with pytest.raises(CompactionError, match="no text"):
        await summarize(chat(3), RecordingModel("   "))


async def test_long_tool_results_are_clipped_in_the_transcript() -> None:
    model = RecordingModel()
    await summarize([*tool_turn(0, steps=1, size=5000), *chat(1, system=None)], model)
    assert "more characters]" in model.prompts[0]
