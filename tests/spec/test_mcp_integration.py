"""Spec README, "MCP Integration": configs, ``.mcp.json`` files, auth, transports, connection tests.

Substitutions: the ``npx @modelcontextprotocol/server-filesystem`` server is the ``calc`` test
server over stdio (``sys.executable -m tests._support.mcp_servers.calc stdio``); the
``https://api.example.com`` URLs are the same server over SSE and Streamable HTTP on 127.0.0.1;
``"gpt-4o"`` is served by the fake OpenAI server; ``/project`` and ``~`` are temporary directories.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamba_worker import Agent, AgentSettings
from tests._support.mcp_servers.process import REPO_ROOT, STDIO_ARGS, RunningServer, run_calc_http
from tests._support.openai_server import OpenAIServer, Text, ToolCall, ToolCalls
from tests.spec.conftest import write_mcp_json

CALC_TOKEN = "spec-calc-token-71c4"

SPEC_MCP_JSON = {
    "filesystem": {
        "command": "npx",
        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/project"],
        "tool_prefix": "fs",
    },
    "web": {"url": "http://localhost:8080/sse"},
}


@pytest.fixture(scope="module")
def calc_http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with run_calc_http(tmp_path_factory.mktemp("calc"), token=CALC_TOKEN) as server:
        yield server


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/sse"


def test_stdio_server_with_tool_prefix(settings_env: OpenAIServer) -> None:
    settings_env.queue(ToolCalls([ToolCall("fs_echo", {"text": "a.txt b.txt"})]), Text("a.txt and b.txt"))
    settings = AgentSettings()

    from mamba_worker.mcp import MCPClientManager, MCPServerConfig

    # Configure MCP servers
    configs = [
        MCPServerConfig(
            name="filesystem",
            transport="stdio",
            command=sys.executable,
            args=STDIO_ARGS,
            cwd=REPO_ROOT,
            tool_prefix="fs",  # Tools become fs_read, fs_write, etc.
        ),
    ]
    # Create manager and pass to Agent via toolsets parameter
    manager = MCPClientManager(configs)
    agent = Agent("gpt-4o", toolsets=manager.as_toolsets(), settings=settings)
    # pydantic-ai handles server lifecycle automatically
    result = agent.run_sync("List the files in /project")

    assert result.output == "a.txt and b.txt"
    offered = {tool["function"]["name"] for tool in settings_env.chat_bodies[0]["tools"]}
    assert offered == {"fs_add", "fs_echo", "fs_read_env"}
    assert settings_env.chat_bodies[1]["messages"][-1]["content"] == "a.txt b.txt"


def test_spec_npx_config_is_valid_as_written() -> None:
    from mamba_worker.mcp import MCPServerConfig

    config = MCPServerConfig(
        name="filesystem",
        transport="stdio",
        command="npx",
        args=["-y", "@modelcontextprotocol/server-filesystem", "/project"],
        tool_prefix="fs",  # Tools become fs_read, fs_write, etc.
    )
    assert (config.transport, config.command, config.tool_prefix) == ("stdio", "npx", "fs")


def test_spec_mcp_json_file_as_written(in_tmp_cwd: Path) -> None:
    from mamba_worker.mcp import MCPClientManager, load_mcp_json

    write_mcp_json(in_tmp_cwd / ".mcp.json", SPEC_MCP_JSON)
    configs = {config.name: config for config in load_mcp_json(".mcp.json")}
    assert configs["filesystem"].transport == "stdio" and configs["filesystem"].tool_prefix == "fs"
    assert configs["filesystem"].args == ["-y", "@modelcontextprotocol/server-filesystem", "/project"]
    # Transport is auto-detected from the URL: /sse means SSE.
    assert configs["web"].transport == "sse" and configs["web"].url == "http://localhost:8080/sse"
    assert [config.name for config in MCPClientManager.from_mcp_json(".mcp.json").configs] == ["filesystem", "web"]


def test_transport_auto_detection_from_url(in_tmp_cwd: Path) -> None:
    from mamba_worker.mcp import load_mcp_json

    write_mcp_json(
        in_tmp_cwd / ".mcp.json",
        {"a": {"url": "https://api.example.com/mcp/sse"}, "b": {"url": "https://api.example.com/mcp"}},
    )
    assert [config.transport for config in load_mcp_json(".mcp.json")] == ["sse", "streamable_http"]


def test_mcp_json_files_merged_and_given_to_an_agent(settings_env: OpenAIServer, calc_http: RunningServer) -> None:
    # project/.mcp.json: the server over Streamable HTTP (prefix fs); ~/.mcp.json (user defaults):
    # the same server over SSE. (A stdio server from a .mcp.json file: test_agent_patterns.py.)
    write_mcp_json(Path("project/.mcp.json"), {"filesystem": {"url": calc_http.http_url, "tool_prefix": "fs"}})
    write_mcp_json(Path.home() / ".mcp.json", {"web": {"url": calc_http.sse_url}})
    settings_env.queue(
        ToolCalls([ToolCall("fs_add", {"a": 1, "b": 2}), ToolCall("echo", {"text": "over SSE"})]), Text("done")
    )

    from mamba_worker.mcp import MCPClientManager

    # Create manager directly from file
    manager = MCPClientManager.from_mcp_json("project/.mcp.json")
    assert [config.name for config in manager.configs] == ["filesystem"]
    # Or load and merge multiple files
    manager = MCPClientManager()
    manager.add_from_file("project/.mcp.json")
    manager.add_from_file("~/.mcp.json")  # User defaults
    agent = Agent("gpt-4o", toolsets=manager.as_toolsets())

    assert agent.run_sync("Use both servers").output == "done"
    returns = [m["content"] for m in settings_env.chat_bodies[1]["messages"] if m["role"] == "tool"]
    assert returns == ["3", "over SSE"]


def test_sse_server_with_auth_and_timeouts(
    calc_http: RunningServer, in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MCP_API_KEY", CALC_TOKEN)
    from mamba_worker.mcp import MCPAuthConfig, MCPClientManager, MCPServerConfig

    config = MCPServerConfig(
        name="api-server",
        transport="sse",
        url=calc_http.sse_url,
        auth=MCPAuthConfig(key_env="MCP_API_KEY"),  # Read from environment
        timeout=60,  # Connection timeout (seconds)
        read_timeout=300,  # Read timeout for long operations
    )

    result = MCPClientManager([config]).test_connection_sync("api-server")
    assert result.success, result.error
    assert (config.timeout, config.read_timeout) == (60, 300)


def test_streamable_http_server_with_auth(
    calc_http: RunningServer, in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mamba_worker.mcp import MCPAuthConfig, MCPClientManager, MCPServerConfig

    config = MCPServerConfig(
        name="api-server",
        transport="streamable_http",
        url=calc_http.secure_http_url,
        auth=MCPAuthConfig(key_env="MCP_API_KEY"),
        timeout=60,
        read_timeout=300,
    )
    manager = MCPClientManager([config])

    # The endpoint refuses requests without the bearer token: success proves the key was sent.
    monkeypatch.setenv("MCP_API_KEY", CALC_TOKEN)
    assert manager.test_connection_sync("api-server").success
    monkeypatch.setenv("MCP_API_KEY", "wrong-token-value")
    refused = manager.test_connection_sync("api-server")
    assert not refused.success and "401" in (refused.error or "")
    assert "wrong-token-value" not in (refused.error or "")


def test_testing_connections(calc_http: RunningServer, in_tmp_cwd: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # "filesystem" is the calc server over Streamable HTTP here (stdio is covered above, and each
    # stdio start costs seconds); "web" is a port nobody listens on.
    write_mcp_json(
        in_tmp_cwd / ".mcp.json",
        {
            "filesystem": {"url": calc_http.http_url, "tool_prefix": "fs"},
            "web": {"url": _closed_port_url(), "timeout": 10},
        },
    )

    from mamba_worker.mcp import MCPClientManager

    manager = MCPClientManager.from_mcp_json(".mcp.json")
    # Test a single server
    result = manager.test_connection_sync("filesystem")
    if result.success:
        print(f"Connected! {result.tool_count} tools available")
        for tool in result.tools:
            print(f"  - {tool.name}: {tool.description}")
    else:
        print(f"Failed: {result.error}")
    # Test all servers
    results = manager.test_all_connections_sync()
    for name, result in results.items():
        status = "OK" if result.success else f"FAILED: {result.error}"
        print(f"{name}: {status}")

    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        "Connected! 3 tools available",
        "  - fs_add: Add two integers.",
        "  - fs_echo: Return the text unchanged.",
        "  - fs_read_env: Return the value of an environment variable of the server process, or '<unset>'.",
    ]
    assert lines[4] == "filesystem: OK"
    assert lines[5].startswith("web: FAILED: ")
