"""Spec README, "Quick Start": the sync and async examples, as written.

Substitution: ``"gpt-4o"`` is served by the fake OpenAI server (dummy ``OPENAI_API_KEY``,
``MAMBA_MODEL_BACKEND__BASE_URL`` set to the server); see ``conftest.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from tests._support.openai_server import OpenAIServer


def test_quick_start_sync(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings

    # Load settings from env vars, .env, ~/mamba.env, config.toml
    settings = AgentSettings()
    # Create agent
    agent = Agent("gpt-4o", settings=settings)
    # Run a query
    result = agent.run_sync("What is 2 + 2?")
    print(result.output)
    # Multi-turn conversation (context maintained automatically)
    agent.run_sync("Remember my name is Alice")
    result = agent.run_sync("What's my name?")
    print(result.output)  # "Alice"
    # Check usage and cost
    print(f"Tokens used: {agent.get_usage().total_tokens}")
    print(f"Estimated cost: ${agent.get_cost():.4f}")

    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "4"
    assert lines[1] == "Alice"
    assert lines[2].startswith("Tokens used: ") and int(lines[2].removeprefix("Tokens used: ")) > 0
    # gpt-4o is a paid model: genai-prices knows its price, so the estimate is not zero.
    assert lines[3].startswith("Estimated cost: $") and agent.get_cost() > 0
    assert [body["model"] for body in settings_env.chat_bodies] == ["gpt-4o"] * 3


def test_quick_start_async(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings

    async def main():
        settings = AgentSettings()
        agent = Agent("gpt-4o", settings=settings)
        # Run async queries
        result = await agent.run("What files are in the current directory?")
        print(result.output)
        # Multi-turn conversation
        result2 = await agent.run("Can you list only the Python files?")
        print(result2.output)
        # Access context state
        state = agent.get_context_state()
        print(f"Messages: {state.message_count}, Tokens: {state.token_count}")

    asyncio.run(main())

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Noted: What files are in the current directory?"
    assert out[1] == "Noted: Can you list only the Python files?"
    assert out[2].startswith("Messages: 4, Tokens: ")
    assert int(out[2].rsplit(" ", 1)[1]) > 0
    # The second request carried the first exchange: the conversation is kept.
    assert len(settings_env.chat_bodies[1]["messages"]) == 3
