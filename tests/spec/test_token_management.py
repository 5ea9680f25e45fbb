"""Spec README, "Token Management": the Agent's usage and cost methods and the token utilities,
as written.

Substitution: ``"gpt-4o"`` is served by the fake OpenAI server (see ``conftest.py``), which
reports usage in each response the way OpenAI does.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from tests._support.openai_server import OpenAIServer


def test_agent_usage_and_cost(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent, AgentSettings

    settings = AgentSettings()

    agent = Agent("gpt-4o", settings=settings)
    # Run some queries
    agent.run_sync("Hello!")
    agent.run_sync("Tell me about Python")
    agent.run_sync("What are decorators?")
    # Get aggregate usage
    usage = agent.get_usage()
    print(f"Total tokens: {usage.total_tokens}")
    print(f"Requests: {usage.request_count}")
    # Get cost estimate
    cost = agent.get_cost()
    print(f"Estimated cost: ${cost:.4f}")
    # Get detailed breakdown
    breakdown = agent.get_cost_breakdown()
    print(f"Prompt cost: ${breakdown.prompt_cost:.4f}")
    print(f"Completion cost: ${breakdown.completion_cost:.4f}")
    # Get per-request history
    history = agent.get_usage_history()
    for record in history:
        print(f"{record.timestamp}: {record.total_tokens} tokens")

    out = capsys.readouterr().out.splitlines()
    # What the agent tracked is what the server reported (prompt tokens: characters of the messages // 4).
    reported_input = sum(max(1, len(json.dumps(body["messages"])) // 4) for body in settings_env.chat_bodies)
    assert usage.input_tokens == reported_input
    assert out[0] == f"Total tokens: {usage.total_tokens}" and usage.total_tokens > 0
    assert out[1] == "Requests: 3"
    assert cost > 0 and cost == pytest.approx(breakdown.prompt_cost + breakdown.completion_cost)
    assert breakdown.prompt_cost > 0 and breakdown.completion_cost > 0
    assert len(history) == 3 and len(out) == 5 + 3
    assert all(isinstance(record.timestamp, datetime) for record in history)
    assert sum(record.total_tokens for record in history) == usage.total_tokens

    # Reset tracking for new session
    agent.reset_tracking()
    assert agent.get_usage().total_tokens == 0 and agent.get_usage_history() == [] and agent.get_cost() == 0
    # Count tokens for arbitrary text
    count = agent.get_token_count("Hello, world!")
    assert count == 4  # cl100k_base: "Hello", ",", " world", "!"


def test_token_utilities() -> None:
    from mamba_worker.tokens import CostEstimator, TokenCounter, UsageTracker

    # Count tokens
    counter = TokenCounter(encoding="cl100k_base")
    count = counter.count("Hello, world!")
    msg_count = counter.count_messages([{"role": "user", "content": "Hi"}])
    # Track usage across requests
    tracker = UsageTracker()
    tracker.record_usage(input_tokens=100, output_tokens=50, model="gpt-4o")
    summary = tracker.get_summary()
    # Estimate costs
    estimator = CostEstimator()
    cost = estimator.estimate(input_tokens=1000, output_tokens=500, model="gpt-4o")

    assert count == 4
    assert msg_count > counter.count("Hi")  # the message's framing tokens count too
    assert (summary.total_tokens, summary.request_count) == (150, 1)
    # gpt-4o: $2.50 per million input tokens, $10 per million output tokens (genai-prices).
    assert cost == pytest.approx(1000 * 2.5e-6 + 500 * 10e-6)
