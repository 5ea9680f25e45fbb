"""`MCPClientManager.test_connection` and friends against real servers, reachable or not."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mamba_worker.mcp import (
    MCPAuthConfig,
    MCPClientManager,
    MCPConnectionResult,
    MCPServerConfig,
    MCPServerNotFoundError,
    MCPToolInfo,
)
from tests._support.mcp_servers.process import RunningServer
from tests.worker.mcp.conftest import CALC_TOKEN, CALC_TOOLS, stdio_config


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections (into the backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_stdio_server_lists_its_tools_with_descriptions() -> None:
    manager = MCPClientManager([stdio_config()])

    result = await manager.test_connection("calc")

    assert result.success, result.error
    assert result.error is None
    assert result.tool_count == 3
    assert MCPToolInfo(name="add", description="Add two integers.") in result.tools


@pytest.mark.parametrize("endpoint", ["sse_url", "http_url"])
async def test_http_server_lists_its_tools_with_the_prefix(calc_server: RunningServer, endpoint: str) -> None:
    config = MCPServerConfig(name="calc", url=getattr(calc_server, endpoint), tool_prefix="c")

    result = await MCPClientManager([config]).test_connection("calc")

    assert result.success, result.error
    assert [tool.name for tool in result.tools] == [f"c_{name}" for name in CALC_TOOLS]


async def test_protected_server_accepts_the_configured_key(calc_server: RunningServer) -> None:
    config = MCPServerConfig(name="secure", url=calc_server.secure_http_url, auth=MCPAuthConfig(key=CALC_TOKEN))

    result = await MCPClientManager([config]).test_connection("secure")

    assert result.success, result.error


async def test_protected_server_refusing_a_wrong_key_is_a_failed_result_without_the_key(
    calc_server: RunningServer,
) -> None:
    wrong_key = "wrong-key-0d41c7"
    config = MCPServerConfig(
        name="secure",
        url=calc_server.secure_http_url,
        auth=MCPAuthConfig(key=wrong_key),
        headers={"X-Trace": wrong_key},
    )

    result = await MCPClientManager([config]).test_connection("secure")

    assert not result.success
    assert result.error is not None and "HTTP 401 Unauthorized" in result.error
    assert wrong_key not in result.error
    assert result.tools == []


async def test_missing_auth_variable_is_a_failed_result_naming_it(calc_server: RunningServer) -> None:
    config = MCPServerConfig(name="secure", url=calc_server.secure_http_url, auth=MCPAuthConfig(key_env="NO_SUCH_KEY"))

    result = await MCPClientManager([config]).test_connection("secure")

    assert not result.success
    assert result.error is not None and "NO_SUCH_KEY" in result.error


async def test_unreachable_server_is_a_failed_result(closed_port: int) -> None:
    config = MCPServerConfig(name="gone", url=f"http://127.0.0.1:{closed_port}/mcp", timeout=10)

    result = await MCPClientManager([config]).test_connection("gone")

    assert result == MCPConnectionResult(server_name="gone", success=False, error=result.error)
    assert result.error


async def test_silent_server_fails_after_the_configured_timeout(silent_port: int) -> None:
    config = MCPServerConfig(name="silent", url=f"http://127.0.0.1:{silent_port}/mcp", timeout=0.5)

    result = await MCPClientManager([config]).test_connection("silent")

    assert not result.success
    assert result.error is not None and "timeout" in result.error.lower()


async def test_missing_command_is_a_failed_result_naming_it() -> None:
    config = MCPServerConfig(name="ghost", command="mamba-no-such-mcp-server")

    result = await MCPClientManager([config]).test_connection("ghost")

    assert not result.success
    assert result.error is not None and "mamba-no-such-mcp-server" in result.error


async def test_server_that_exits_at_once_is_a_failed_result() -> None:
    config = MCPServerConfig(name="quits", command=sys.executable, args=["-c", "pass"], timeout=10)

    result = await MCPClientManager([config]).test_connection("quits")

    assert not result.success
    assert result.error


async def test_unknown_name_raises_naming_the_known_servers() -> None:
    manager = MCPClientManager([MCPServerConfig(name="calc", url="http://127.0.0.1:1/mcp")])

    with pytest.raises(MCPServerNotFoundError, match=r"'nope'.*'calc'") as caught:
        await manager.test_connection("nope")

    assert caught.value.known == ["calc"]


async def test_all_connections_reports_every_server_in_config_order(
    calc_server: RunningServer, closed_port: int
) -> None:
    manager = MCPClientManager(
        [
            MCPServerConfig(name="sse", url=calc_server.sse_url),
            MCPServerConfig(name="gone", url=f"http://127.0.0.1:{closed_port}/mcp", timeout=10),
            MCPServerConfig(name="http", url=calc_server.http_url),
        ]
    )

    results = await manager.test_all_connections()

    assert list(results) == ["sse", "gone", "http"]
    assert {name: result.success for name, result in results.items()} == {"sse": True, "gone": False, "http": True}


def test_connection_sync_works_from_sync_code(calc_server: RunningServer) -> None:
    manager = MCPClientManager([MCPServerConfig(name="calc", url=calc_server.http_url)])

    result = manager.test_connection_sync("calc")

    assert result.tool_count == len(CALC_TOOLS)


async def test_connection_sync_works_inside_a_running_loop(calc_server: RunningServer) -> None:
    manager = MCPClientManager([MCPServerConfig(name="calc", url=calc_server.sse_url)])

    result = manager.test_connection_sync("calc")

    assert result.success, result.error


def test_all_connections_sync_returns_a_result_per_server(calc_server: RunningServer, closed_port: int) -> None:
    manager = MCPClientManager(
        [
            MCPServerConfig(name="http", url=calc_server.http_url),
            MCPServerConfig(name="gone", url=f"http://127.0.0.1:{closed_port}/sse", timeout=10),
        ]
    )

    results = manager.test_all_connections_sync()

    assert {name: result.success for name, result in results.items()} == {"http": True, "gone": False}


def test_connection_sync_raises_for_an_unknown_name() -> None:
    with pytest.raises(MCPServerNotFoundError):
        MCPClientManager().test_connection_sync("nope")


def test_result_reports_its_tool_count_when_dumped() -> None:
    result = MCPConnectionResult(server_name="s", success=True, tools=[MCPToolInfo(name="a"), MCPToolInfo(name="b")])

    assert result.model_dump()["tool_count"] == 2


async def test_missing_cwd_is_a_failed_result(tmp_path: Path) -> None:
    config = stdio_config(cwd=tmp_path / "missing")

    result = await MCPClientManager([config]).test_connection("calc")

    assert not result.success
    assert result.error is not None and "cwd" in result.error
