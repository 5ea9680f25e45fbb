from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.test import TestModel

from mamba_worker.agent import Agent, AgentConfig
from mamba_worker.config import AgentSettings, CompactionConfig, TemplateConfig
from mamba_worker.errors import ConfigurationError


def _settings() -> AgentSettings:
    return AgentSettings()


def _remembering_model() -> FunctionModel:
    """Answers "What's my name?" from the conversation: proves the history reaches the model."""

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        text = " ".join(
            str(part.content) for message in messages for part in message.parts if part.part_kind == "user-prompt"
        )
        if "What's my name?" in text:
            answer = "Alice" if "my name is Alice" in text else "I don't know"
            return ModelResponse(parts=[TextPart(answer)])
        return ModelResponse(parts=[TextPart("ok")])

    return FunctionModel(reply)


def test_run_sync_returns_output(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(custom_output_text="4"), settings=_settings())
    assert agent.run_sync("What is 2 + 2?").output == "4"


def test_multi_turn_history_is_kept(in_tmp_cwd: Path) -> None:
    agent = Agent(_remembering_model(), settings=_settings())
    agent.run_sync("Remember my name is Alice")
    assert agent.run_sync("What's my name?").output == "Alice"
    assert len(agent.get_messages()) == 4


def test_track_context_off_forgets(in_tmp_cwd: Path) -> None:
    agent = Agent(_remembering_model(), settings=_settings(), config=AgentConfig(track_context=False))
    agent.run_sync("Remember my name is Alice")
    assert agent.run_sync("What's my name?").output == "I don't know"


def test_clear_context_forgets(in_tmp_cwd: Path) -> None:
    agent = Agent(_remembering_model(), settings=_settings())
    agent.run_sync("Remember my name is Alice")
    agent.clear_context()
    assert agent.get_messages() == []
    assert agent.run_sync("What's my name?").output == "I don't know"


async def test_async_run_and_context_state(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(), settings=_settings())
    await agent.run("hello")
    await agent.run("again")
    state = agent.get_context_state()
    assert state.message_count == 4
    assert state.token_count > 0


async def test_run_stream_records_history(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(custom_output_text="streamed answer"), settings=_settings())
    async with agent.run_stream("hi") as stream:
        text = await stream.get_output()
    assert text == "streamed answer"
    assert len(agent.get_messages()) == 2
    assert agent.get_usage().request_count == 1


def test_usage_cost_and_history(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(), settings=_settings())
    agent.run_sync("Hello!")
    agent.run_sync("Tell me about Python")
    usage = agent.get_usage()
    assert usage.request_count == 2
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens > 0
    assert len(agent.get_usage_history()) == 2
    assert agent.get_cost() == 0.0  # the test model is free
    breakdown = agent.get_cost_breakdown()
    assert breakdown.prompt_cost + breakdown.completion_cost == breakdown.total_cost
    agent.reset_tracking()
    assert agent.get_usage().request_count == 0


def test_token_count_of_text(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(), settings=_settings())
    assert agent.get_token_count("Hello, world!") == 4


def test_system_prompt_reaches_model_and_can_be_switched(in_tmp_cwd: Path) -> None:
    seen: list[str] = []

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        seen.append(info.instructions or "")
        return ModelResponse(parts=[TextPart("ok")])

    agent = Agent(FunctionModel(reply), settings=_settings(), system_prompt="You are terse.")
    agent.run_sync("hi")
    agent.set_system_prompt("You are verbose.")
    agent.run_sync("hi again")
    assert seen == ["You are terse.", "You are verbose."]
    assert agent.get_system_prompt() == "You are verbose."


def test_system_prompt_from_template(in_tmp_cwd: Path) -> None:
    agent = Agent(
        TestModel(),
        settings=_settings(),
        system_prompt=TemplateConfig(name="system/coder", variables={"language": "Rust"}),
    )
    assert "Rust" in agent.get_system_prompt()


def test_tools_are_called(in_tmp_cwd: Path) -> None:
    calls: list[int] = []

    def double(x: int) -> int:
        """Double a number."""
        calls.append(x)
        return 2 * x

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("double", {"x": 21})])
        return ModelResponse(parts=[TextPart("done")])

    agent = Agent(FunctionModel(reply), settings=_settings(), tools=[double])
    assert agent.run_sync("double 21").output == "done"
    assert calls == [21]


def test_model_from_settings(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "offline")
    agent = Agent(settings=AgentSettings())
    assert agent.run_sync("What is 2 + 2?").output.strip().endswith("4")


def test_no_model_configured_is_a_clear_error(in_tmp_cwd: Path) -> None:
    with pytest.raises(ConfigurationError, match="MAMBA_MODEL_BACKEND__MODEL"):
        Agent(settings=AgentSettings())


async def test_auto_compaction_keeps_history_bounded(in_tmp_cwd: Path) -> None:
    config = AgentConfig(
        context=CompactionConfig(
            strategy="sliding_window", trigger_threshold_tokens=200, target_tokens=120, preserve_recent_turns=1
        )
    )
    agent = Agent(TestModel(custom_output_text="word " * 20), settings=_settings(), config=config)
    for turn in range(10):
        await agent.run(f"turn {turn}: " + "lorem ipsum " * 10)
    assert agent.get_context_state().token_count <= 200
    assert not agent.should_compact()


async def test_manual_compact_reports_removed(in_tmp_cwd: Path) -> None:
    config = AgentConfig(
        auto_compact=False,
        context=CompactionConfig(
            strategy="sliding_window", trigger_threshold_tokens=100, target_tokens=60, preserve_recent_turns=1
        ),
    )
    agent = Agent(TestModel(custom_output_text="word " * 20), settings=_settings(), config=config)
    for turn in range(4):
        await agent.run(f"turn {turn}: " + "lorem ipsum " * 10)
    assert agent.should_compact()
    result = await agent.compact()
    assert result.removed_count > 0
    assert agent.get_context_state().token_count <= 60


async def test_async_context_manager_opens_and_closes(in_tmp_cwd: Path) -> None:
    agent = Agent(TestModel(custom_output_text="ok"), settings=_settings())
    async with agent as entered:
        assert entered is agent
        assert (await agent.run("hi")).output == "ok"
    assert len(agent.get_messages()) == 2
