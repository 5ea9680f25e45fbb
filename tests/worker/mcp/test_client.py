"""`MCPClientManager`: holding configs, merging files, and building toolsets (without connecting)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.toolsets import PrefixedToolset

from mamba_worker.mcp import (
    MCPAuthConfig,
    MCPAuthError,
    MCPClientManager,
    MCPCommandNotFoundError,
    MCPConfigError,
    MCPServerConfig,
    MCPServerNotFoundError,
)


def write(path: Path, servers: dict[str, object]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def test_configs_keep_their_order() -> None:
    configs = [MCPServerConfig(name="b", command="npx"), MCPServerConfig(name="a", url="http://h/mcp")]

    assert MCPClientManager(configs).configs == configs


def test_adding_a_known_name_replaces_it_in_place() -> None:
    manager = MCPClientManager([MCPServerConfig(name="a", command="one"), MCPServerConfig(name="b", command="x")])

    manager.add(MCPServerConfig(name="a", command="two"))

    assert [(c.name, c.command) for c in manager.configs] == [("a", "two"), ("b", "x")]


def test_from_mcp_json_holds_the_file_servers(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"fs": {"command": "npx"}, "web": {"url": "http://h/sse"}})

    manager = MCPClientManager.from_mcp_json(file)

    assert [(c.name, c.transport) for c in manager.configs] == [("fs", "stdio"), ("web", "sse")]


def test_a_later_file_overrides_a_server_of_the_same_name(tmp_path: Path) -> None:
    project = write(tmp_path / "project.json", {"shared": {"command": "project-cmd"}, "only-project": {"command": "p"}})
    user = write(tmp_path / "user.json", {"shared": {"url": "http://user/mcp"}, "only-user": {"command": "u"}})
    manager = MCPClientManager()

    manager.add_from_file(project)
    manager.add_from_file(user)

    assert [c.name for c in manager.configs] == ["shared", "only-project", "only-user"]
    assert manager.get("shared").url == "http://user/mcp"


def test_a_failed_file_leaves_the_manager_unchanged(tmp_path: Path) -> None:
    manager = MCPClientManager([MCPServerConfig(name="keep", command="npx")])
    bad = write(tmp_path / "bad.json", {"keep": {"command": "replaced"}, "new": {"command": "n"}, "broken": {}})

    with pytest.raises(MCPConfigError, match="'broken'"):
        manager.add_from_file(bad)

    assert [(c.name, c.command) for c in manager.configs] == [("keep", "npx")]


def test_get_unknown_name_raises() -> None:
    with pytest.raises(MCPServerNotFoundError, match=r"no MCP server named 'x' is configured \(configured: none\)"):
        MCPClientManager().get("x")


def test_as_toolsets_builds_one_toolset_per_server_with_prefixes() -> None:
    manager = MCPClientManager(
        [
            MCPServerConfig(name="plain", command=sys.executable),
            MCPServerConfig(name="web", url="http://h/sse", tool_prefix="web", timeout=7, read_timeout=70),
        ]
    )

    plain, web = manager.as_toolsets()

    assert isinstance(plain, MCPToolset) and plain.id == "plain"
    assert isinstance(web, PrefixedToolset) and web.prefix == "web"
    assert isinstance(web.wrapped, MCPToolset) and web.wrapped.id == "web"


def test_as_toolsets_with_no_servers_is_empty() -> None:
    assert MCPClientManager().as_toolsets() == []


def api_config() -> MCPServerConfig:
    return MCPServerConfig(name="api", url="http://h/mcp", auth=MCPAuthConfig(key_env="MCP_TEST_API_KEY"))


def test_missing_auth_variable_names_the_variable_not_a_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_TEST_API_KEY", raising=False)
    manager = MCPClientManager([api_config()])

    with pytest.raises(MCPAuthError, match="'api'.*MCP_TEST_API_KEY.*is not set") as caught:
        manager.as_toolsets()

    assert (caught.value.server, caught.value.variable) == ("api", "MCP_TEST_API_KEY")


def test_empty_auth_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_API_KEY", "")
    manager = MCPClientManager([api_config()])

    with pytest.raises(MCPAuthError, match="MCP_TEST_API_KEY.*is empty"):
        manager.as_toolsets()


def test_missing_command_gets_its_own_error() -> None:
    manager = MCPClientManager([MCPServerConfig(name="ghost", command="mamba-no-such-mcp-server")])

    with pytest.raises(MCPCommandNotFoundError, match="'ghost'.*'mamba-no-such-mcp-server' was not found on PATH") as e:
        manager.as_toolsets()

    assert e.value.command == "mamba-no-such-mcp-server"


def test_command_is_looked_up_on_the_configured_path(tmp_path: Path) -> None:
    tool = tmp_path / "my-mcp-server"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    config = MCPServerConfig(name="s", command="my-mcp-server", env={"PATH": f"{tmp_path}{os.pathsep}/usr/bin"})

    assert len(MCPClientManager([config]).as_toolsets()) == 1


def test_relative_command_path_is_resolved_from_cwd(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "server").write_text("not executable\n")
    config = MCPServerConfig(name="s", command="bin/server", cwd=tmp_path)

    with pytest.raises(MCPCommandNotFoundError, match="'bin/server' is not an executable file"):
        MCPClientManager([config]).as_toolsets()


def test_missing_cwd_is_refused(tmp_path: Path) -> None:
    config = MCPServerConfig(name="s", command=sys.executable, cwd=tmp_path / "gone")

    with pytest.raises(MCPConfigError, match="cwd .* is not an existing directory") as caught:
        MCPClientManager([config]).as_toolsets()

    assert caught.value.field == "cwd"


def test_repr_lists_names_only() -> None:
    manager = MCPClientManager([MCPServerConfig(name="s", command="npx", env={"TOKEN": "repr-secret-1"})])

    assert repr(manager) == "MCPClientManager(servers=['s'])"
    assert "s" in manager and len(manager) == 1
