"""Spec README, "Context Management": the Agent's context methods and `ContextManager`, as written.

Substitutions: ``"gpt-4o"`` is served by the fake OpenAI server (see ``conftest.py``). The
spec's block mixes ``agent.run_sync(...)`` with ``await agent.compact()``, which no single
Python context can run; here the sync lines run as written and each ``await x`` line runs as
``asyncio.run(x)``, what a script would write.
"""

from __future__ import annotations

import asyncio

import pytest

from tests._support.openai_server import OpenAIServer


def test_agent_context_methods(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentConfig, AgentSettings, CompactionConfig

    settings = AgentSettings()

    # Context tracking is enabled by default
    agent = Agent("gpt-4o", settings=settings)
    # Run multiple turns - context is maintained automatically
    agent.run_sync("Hello, I'm working on a Python project")
    agent.run_sync("Can you help me refactor the main function?")
    # Access context via Agent methods
    messages = agent.get_messages()  # Get all tracked messages
    state = agent.get_context_state()  # Get token count, message count
    should_compact = agent.should_compact()  # Check if threshold reached
    # Manual compaction
    result = asyncio.run(agent.compact())
    print(f"Removed {result.removed_count} messages")
    # Clear context for new conversation
    agent.clear_context()

    assert len(messages) == 4 and state.message_count == 4 and state.token_count > 0
    assert should_compact is False
    # Two short turns are well within preserve_recent_turns: nothing to remove.
    assert capsys.readouterr().out == "Removed 0 messages\n"
    assert agent.get_messages() == [] and agent.get_context_state().message_count == 0
    # The second request carried the first turn; after clear_context the next one starts afresh.
    assert len(settings_env.chat_bodies[1]["messages"]) == 3
    agent.run_sync("Fresh start")
    assert len(settings_env.last_body["messages"]) == 1

    # Customize compaction settings
    config = AgentConfig(
        context=CompactionConfig(
            strategy="hybrid",
            trigger_threshold_tokens=50000,
            target_tokens=40000,
        ),
        auto_compact=True,  # Auto-compact when threshold reached (default)
    )
    agent = Agent("gpt-4o", settings=settings, config=config)
    assert agent.context_manager.config.strategy == "hybrid"
    assert agent.context_manager.config.trigger_threshold_tokens == 50000

    # Disable context tracking if not needed
    config = AgentConfig(track_context=False)
    agent = Agent("gpt-4o", settings=settings, config=config)
    agent.run_sync("Remember my name is Alice")
    assert agent.run_sync("What's my name?").output == "I don't know your name."
    assert agent.get_messages() == []


def test_auto_compaction_when_threshold_reached(settings_env: OpenAIServer) -> None:
    from mamba_worker import Agent, AgentConfig, AgentSettings, CompactionConfig

    config = AgentConfig(
        context=CompactionConfig(
            strategy="hybrid", trigger_threshold_tokens=120, target_tokens=60, preserve_recent_turns=1
        ),
        auto_compact=True,
    )
    agent = Agent("gpt-4o", settings=AgentSettings(), config=config)
    for turn in range(6):
        agent.run_sync(f"Turn {turn}: " + "some words about the project " * 5)

    state = agent.get_context_state()
    assert state.compaction_count >= 1
    assert state.message_count < 12
    assert state.token_count < 120


async def test_context_manager_directly(capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker.context import (
        CompactionConfig,
        ContextManager,
        HybridStrategy,
        SlidingWindowStrategy,
        SummarizeOlderStrategy,
    )

    # Configure compaction
    config = CompactionConfig(
        strategy="hybrid",  # or sliding_window, summarize_older, etc.
        trigger_threshold_tokens=100000,
        target_tokens=80000,
        preserve_recent_turns=5,
    )
    manager = ContextManager(config=config)
    # Add messages
    manager.add_messages(
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there!"},
        ]
    )
    # Check if compaction is needed
    if manager.should_compact():
        result = await manager.compact()
        print(f"Removed {result.removed_count} messages")

    assert manager.get_context_state().message_count == 2
    assert capsys.readouterr().out == ""  # 2 messages are far below 100,000 tokens
    assert {HybridStrategy, SlidingWindowStrategy, SummarizeOlderStrategy}  # importable, as the spec imports them


async def test_context_manager_compacts_past_the_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker.context import CompactionConfig, ContextManager

    config = CompactionConfig(
        strategy="hybrid", trigger_threshold_tokens=100, target_tokens=50, preserve_recent_turns=1
    )
    manager = ContextManager(config=config)
    for turn in range(8):
        manager.add_messages(
            [
                {"role": "user", "content": f"Question {turn}: " + "tell me more " * 4},
                {"role": "assistant", "content": f"Answer {turn}: " + "here is more " * 4},
            ]
        )
    if manager.should_compact():
        result = await manager.compact()
        print(f"Removed {result.removed_count} messages")

    assert capsys.readouterr().out.startswith("Removed ")
    assert result.removed_count > 0 and result.tokens_after <= 50 < result.tokens_before
    assert manager.get_context_state().message_count == 16 - result.removed_count


@pytest.mark.parametrize(
    "name", ["sliding_window", "summarize_older", "selective_pruning", "importance_scoring", "hybrid"]
)
def test_the_five_strategies_of_the_table(name: str) -> None:
    from mamba_worker.context import CompactionConfig, get_strategy

    assert CompactionConfig(strategy=name).strategy == name
    assert get_strategy(name).name == name
