"""Agent runs that call tools of real MCP servers through `MCPClientManager.as_toolsets()`."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.mcp import MCPAuthConfig, MCPClientManager, MCPServerConfig
from tests._support.mcp_servers.process import RunningServer
from tests.worker.mcp.conftest import CALC_TOKEN, stdio_config


class CallOnce:
    """A model that calls one tool, then answers with what the tool returned."""

    def __init__(self, tool: str, args: dict[str, Any]) -> None:
        self.tool = tool
        self.args = args
        self.offered: list[str] = []

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.offered = sorted(tool.name for tool in info.function_tools)
        returns = [part for message in messages for part in message.parts if isinstance(part, ToolReturnPart)]
        if not returns:
            return ModelResponse(parts=[ToolCallPart(self.tool, self.args)])
        return ModelResponse(parts=[TextPart(f"{returns[-1].tool_name} returned {returns[-1].content}")])


async def run_agent(manager: MCPClientManager, model: CallOnce) -> str:
    agent = Agent(FunctionModel(model), toolsets=manager.as_toolsets())
    result = await agent.run("go")
    return result.output


async def test_stdio_tool_is_called_through_an_agent_run_with_the_configured_env() -> None:
    manager = MCPClientManager([stdio_config(tool_prefix="calc", env={"CALC_GREETING": "hello-from-config"})])
    model = CallOnce("calc_read_env", {"name": "CALC_GREETING"})

    output = await run_agent(manager, model)

    assert output == "calc_read_env returned hello-from-config"
    assert model.offered == ["calc_add", "calc_echo", "calc_read_env"]


@pytest.mark.parametrize("endpoint", ["sse_url", "http_url"])
async def test_http_tool_is_called_through_an_agent_run(calc_server: RunningServer, endpoint: str) -> None:
    url = getattr(calc_server, endpoint)
    manager = MCPClientManager([MCPServerConfig(name="calc", url=url, tool_prefix="math")])
    model = CallOnce("math_add", {"a": 2, "b": 40})

    output = await run_agent(manager, model)

    assert output == "math_add returned 42"
    assert model.offered == ["math_add", "math_echo", "math_read_env"]


async def test_tools_keep_their_names_without_a_prefix(calc_server: RunningServer) -> None:
    manager = MCPClientManager([MCPServerConfig(name="calc", url=calc_server.http_url)])
    model = CallOnce("echo", {"text": "plain"})

    assert await run_agent(manager, model) == "echo returned plain"
    assert model.offered == ["add", "echo", "read_env"]


async def test_auth_key_from_the_environment_reaches_a_protected_server(
    calc_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALC_API_KEY", CALC_TOKEN)
    config = MCPServerConfig(
        name="secure",
        transport="streamable_http",
        url=calc_server.secure_http_url,
        auth=MCPAuthConfig(key_env="CALC_API_KEY"),
        tool_prefix="sec",
    )
    model = CallOnce("sec_echo", {"text": "authorised"})

    assert await run_agent(MCPClientManager([config]), model) == "sec_echo returned authorised"


async def test_tools_of_several_servers_are_offered_side_by_side(calc_server: RunningServer) -> None:
    manager = MCPClientManager(
        [
            MCPServerConfig(name="one", url=calc_server.sse_url, tool_prefix="one"),
            MCPServerConfig(name="two", url=calc_server.http_url, tool_prefix="two"),
        ]
    )
    model = CallOnce("two_add", {"a": 1, "b": 1})

    assert await run_agent(manager, model) == "two_add returned 2"
    assert model.offered == ["one_add", "one_echo", "one_read_env", "two_add", "two_echo", "two_read_env"]


def test_stdio_server_starts_when_sys_stderr_has_no_file_descriptor(monkeypatch: pytest.MonkeyPatch) -> None:
    # Jupyter, pytest's capsys and logging hosts replace sys.stderr with an object without fileno();
    # the server process must still get a real stderr to inherit.
    import io
    import sys

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    result = MCPClientManager([stdio_config()]).test_connection_sync("calc")
    assert result.success, result.error
