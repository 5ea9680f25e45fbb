"""Spec README, "Agent Patterns": every way of building an Agent, each then run once.

Substitutions: ``"gpt-4o"`` is served by the fake OpenAI server (see ``conftest.py``);
``OpenAIModel`` (removed in pydantic-ai 2) becomes its successor ``OpenAIChatModel``; the
``.mcp.json`` server is the ``calc`` test server over stdio.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mamba_worker import Agent, AgentSettings
from mamba_worker.errors import ConfigurationError
from tests._support.openai_server import OpenAIServer, Text, ToolCall, ToolCalls
from tests.spec.conftest import calc_stdio_entry, write_mcp_json


def test_agent_from_settings_uses_model_key_and_url_of_model_backend(
    settings_env: OpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "gpt-4o")
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__API_KEY", "sk-from-mamba-settings")
    monkeypatch.delenv("OPENAI_API_KEY")
    settings_env.api_key = "sk-from-mamba-settings"  # the server refuses any other key

    # Load from env vars, .env, ~/mamba.env, config.toml
    settings = AgentSettings()
    # Uses model, api_key, and base_url from settings.model_backend
    agent = Agent(settings=settings)

    assert agent.run_sync("What is 2 + 2?").output == "4"
    assert settings_env.last_body["model"] == "gpt-4o"


def test_model_argument_overrides_settings_model(settings_env: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MODEL", "gpt-4o")
    settings = AgentSettings()

    # Override model but use api_key/base_url from settings
    agent = Agent("gpt-4o-mini", settings=settings)

    assert agent.run_sync("What is 3 + 4?").output == "7"
    assert settings_env.last_body["model"] == "gpt-4o-mini"


def test_bare_gpt_4o_reads_openai_api_key(
    spec_server: OpenAIServer, in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenAI itself, not a Mamba base URL: the OpenAI client's own OPENAI_BASE_URL reaches the fake server.
    monkeypatch.delenv("MAMBA_MODEL_BACKEND__BASE_URL")
    monkeypatch.setenv("OPENAI_BASE_URL", spec_server.url)
    spec_server.api_key = "sk-spec-dummy-key-0000"

    # Requires OPENAI_API_KEY environment variable
    agent = Agent("gpt-4o")

    assert agent.run_sync("What is 1 + 1?").output == "2"
    assert spec_server.requests[-1].headers["authorization"] == "Bearer sk-spec-dummy-key-0000"


def test_bare_gpt_4o_without_a_key_says_which_variable_to_set(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        Agent("gpt-4o")


def test_pydantic_ai_model_instance(
    spec_server: OpenAIServer, in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", spec_server.url)
    # The spec's `from pydantic_ai.models.openai import OpenAIModel` is gone in pydantic-ai 2;
    # OpenAIChatModel is the same Chat Completions model under its new name.
    from pydantic_ai.models.openai import OpenAIChatModel

    model = OpenAIChatModel("gpt-4o")
    agent = Agent(model)

    assert agent.run_sync("What is 5 + 5?").output == "10"
    assert spec_server.last_body["model"] == "gpt-4o"


def test_openai_model_name_is_gone_from_pydantic_ai() -> None:
    # Why the spec's OpenAIModel line needs its substitution (pydantic-ai 2 removed the alias).
    with pytest.raises(ImportError, match="OpenAIChatModel"):
        from pydantic_ai.models.openai import OpenAIModel  # noqa: F401


def test_agent_with_builtin_tools(settings_env: OpenAIServer, in_tmp_cwd: Path) -> None:
    (in_tmp_cwd / "notes.txt").write_text("the answer is 42")
    settings_env.queue(ToolCalls([ToolCall("read_file", {"path": "notes.txt"})]), Text("It says 42."))
    settings = AgentSettings()

    from mamba_worker.tools import grep_search, read_file, run_bash

    agent = Agent("gpt-4o", tools=[read_file, run_bash, grep_search], settings=settings)

    assert agent.run_sync("What do my notes say?").output == "It says 42."
    offered = {tool["function"]["name"] for tool in settings_env.chat_bodies[0]["tools"]}
    assert offered == {"read_file", "run_bash", "grep_search"}
    tool_message = settings_env.chat_bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "the answer is 42"


def test_agent_with_mcp_toolsets_from_mcp_json(settings_env: OpenAIServer, in_tmp_cwd: Path) -> None:
    write_mcp_json(in_tmp_cwd / ".mcp.json", {"calc": calc_stdio_entry()})
    settings_env.queue(ToolCalls([ToolCall("add", {"a": 20, "b": 22})]), Text("20 + 22 = 42"))
    settings = AgentSettings()

    from mamba_worker.mcp import MCPClientManager

    # Load MCP servers from .mcp.json file
    manager = MCPClientManager.from_mcp_json(".mcp.json")
    # Pass toolsets to Agent (pydantic-ai manages server lifecycle)
    agent = Agent("gpt-4o", toolsets=manager.as_toolsets(), settings=settings)

    assert agent.run_sync("Add 20 and 22 with your tool").output == "20 + 22 = 42"
    tool_message = settings_env.chat_bodies[1]["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["content"] == "42"
