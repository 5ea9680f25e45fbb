"""`load_mcp_json`: the Claude Desktop file format, expansion, and errors that point at the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import SecretStr

from mamba_worker.mcp import MCPAuthConfig, MCPConfigError, MCPServerConfig, load_mcp_json


def write(path: Path, servers: object) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path


def test_spec_example_file_loads_with_detected_transports(tmp_path: Path) -> None:
    file = write(
        tmp_path / ".mcp.json",
        {
            "filesystem": {
                "command": "npx",
                "args": ["-y", "@modelcontextprotocol/server-filesystem", "/project"],
                "tool_prefix": "fs",
            },
            "web": {"url": "http://localhost:8080/sse"},
            "api": {"url": "https://api.example.com/mcp"},
        },
    )

    configs = load_mcp_json(file)

    assert configs == [
        MCPServerConfig(
            name="filesystem",
            transport="stdio",
            command="npx",
            args=["-y", "@modelcontextprotocol/server-filesystem", "/project"],
            tool_prefix="fs",
        ),
        MCPServerConfig(name="web", transport="sse", url="http://localhost:8080/sse"),
        MCPServerConfig(name="api", transport="streamable_http", url="https://api.example.com/mcp"),
    ]


def test_all_settings_are_read(tmp_path: Path) -> None:
    file = write(
        tmp_path / ".mcp.json",
        {
            "api": {
                "url": "https://api.example.com/mcp/sse",
                "transport": "streamable_http",
                "headers": {"X-Team": "core"},
                "auth": {"key_env": "API_KEY", "header": "X-API-Key", "scheme": ""},
                "tool_prefix": "api",
                "timeout": 5,
                "read_timeout": 60,
            }
        },
    )

    [config] = load_mcp_json(file)

    assert config.transport == "streamable_http"
    assert config.headers == {"X-Team": SecretStr("core")}
    assert config.auth == MCPAuthConfig(key_env="API_KEY", header="X-API-Key", scheme="")
    assert (config.tool_prefix, config.timeout, config.read_timeout) == ("api", 5, 60)


def test_type_is_read_as_transport(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"api": {"type": "http", "url": "https://h/sse"}})

    assert load_mcp_json(file)[0].transport == "streamable_http"


def test_variables_are_expanded_in_every_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_HOST", "mcp.internal")
    monkeypatch.setenv("MCP_TEST_TOKEN", "tok-123456")
    monkeypatch.delenv("MCP_TEST_UNSET", raising=False)
    file = write(
        tmp_path / ".mcp.json",
        {
            "local": {
                "command": "npx",
                "args": ["--host", "${MCP_TEST_HOST}", "--mode=${MCP_TEST_UNSET:-dev}", "${MCP_TEST_UNSET:-}"],
                "env": {"TOKEN": "${MCP_TEST_TOKEN}"},
            },
            "remote": {"url": "https://${MCP_TEST_HOST}:${MCP_TEST_PORT:-8443}/mcp"},
        },
    )

    local, remote = load_mcp_json(file)

    assert local.args == ["--host", "mcp.internal", "--mode=dev", ""]
    assert local.env == {"TOKEN": SecretStr("tok-123456")}
    assert remote.url == "https://mcp.internal:8443/mcp"


def test_unset_variable_without_default_names_variable_file_server_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MCP_TEST_MISSING", raising=False)
    file = write(
        tmp_path / ".mcp.json", {"ok": {"command": "a"}, "gh": {"command": "b", "env": {"T": "${MCP_TEST_MISSING}"}}}
    )

    with pytest.raises(MCPConfigError) as caught:
        load_mcp_json(file)

    error = caught.value
    assert "${MCP_TEST_MISSING} is not set" in error.message
    assert str(file) in error.message and "'gh'" in error.message
    assert (error.path, error.server, error.field) == (str(file), "gh", "env.T")


def test_invalid_json_reports_file_line_and_column(tmp_path: Path) -> None:
    file = tmp_path / ".mcp.json"
    file.write_text('{\n  "mcpServers": {\n    "a": {"command": "npx",}\n  }\n}\n')

    with pytest.raises(MCPConfigError) as caught:
        load_mcp_json(file)

    assert (caught.value.line, caught.value.column) == (3, 28)
    assert caught.value.message.startswith(f"{file}:3:28: invalid JSON: ")


def test_invalid_server_names_file_line_server_and_field(tmp_path: Path) -> None:
    file = tmp_path / ".mcp.json"
    file.write_text(
        '{\n  "mcpServers": {\n    "good": {"command": "npx"},\n    "bad": {\n      "url": "https://h/mcp",\n'
        '      "timeout": -1\n    }\n  }\n}\n'
    )

    with pytest.raises(MCPConfigError) as caught:
        load_mcp_json(file)

    error = caught.value
    assert (error.server, error.field, error.line) == ("bad", "timeout", 4)
    assert error.message == f"{file}:4: MCP server 'bad' field `timeout`: Input should be greater than 0"


def test_server_with_neither_command_nor_url_gets_its_own_error(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"empty": {"args": ["x"]}})

    with pytest.raises(MCPConfigError, match="'empty' field `command`: has neither `command`.*nor `url`"):
        load_mcp_json(file)


def test_unknown_transport_gets_its_own_error(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"ws": {"url": "https://h/mcp", "transport": "websocket"}})

    with pytest.raises(MCPConfigError, match="'ws' field `transport`: unknown transport 'websocket'"):
        load_mcp_json(file)


def test_misspelt_setting_is_named(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"s": {"command": "npx", "tool_prefx": "p"}})

    with pytest.raises(MCPConfigError, match="field `tool_prefx`: is not a known setting"):
        load_mcp_json(file)


def test_several_problems_of_one_server_are_all_reported(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"s": {"command": "npx", "timeout": 0, "read_timeout": "x"}})

    with pytest.raises(MCPConfigError, match=r"`timeout`: .* also `read_timeout`: "):
        load_mcp_json(file)


def test_validation_errors_never_echo_secret_values(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"s": {"url": "https://h/mcp", "headers": {"Authorization": 123456789}}})

    with pytest.raises(MCPConfigError) as caught:
        load_mcp_json(file)

    assert "123456789" not in caught.value.message
    assert caught.value.field == "headers.Authorization"


def test_server_entry_must_be_an_object(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"s": ["npx"]})

    with pytest.raises(MCPConfigError, match="'s': expected an object"):
        load_mcp_json(file)


def test_name_key_inside_an_entry_is_rejected(tmp_path: Path) -> None:
    file = write(tmp_path / ".mcp.json", {"s": {"name": "other", "command": "npx"}})

    with pytest.raises(MCPConfigError, match="the key of the entry is the server's name"):
        load_mcp_json(file)


def test_duplicate_server_name_is_rejected(tmp_path: Path) -> None:
    file = tmp_path / ".mcp.json"
    file.write_text('{"mcpServers": {"s": {"command": "a"}, "s": {"command": "b"}}}')

    with pytest.raises(MCPConfigError, match="the key 's' appears twice"):
        load_mcp_json(file)


@pytest.mark.parametrize("content", ["[]", '{"servers": {}}', '{"mcpServers": []}'])
def test_file_without_an_mcp_servers_object_is_rejected(tmp_path: Path, content: str) -> None:
    file = tmp_path / ".mcp.json"
    file.write_text(content)

    with pytest.raises(MCPConfigError, match='an "mcpServers" object'):
        load_mcp_json(file)


def test_empty_server_map_loads_as_no_servers(tmp_path: Path) -> None:
    assert load_mcp_json(write(tmp_path / ".mcp.json", {})) == []


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MCPConfigError, match=r"MCP config file .*nope\.json does not exist") as caught:
        load_mcp_json(tmp_path / "nope.json")

    assert caught.value.path == str(tmp_path / "nope.json")


def test_home_is_expanded_in_the_path(tmp_path: Path) -> None:
    write(Path.home() / ".mcp.json", {"s": {"command": "npx"}})  # HOME is a per-test folder (conftest)

    assert [config.name for config in load_mcp_json("~/.mcp.json")] == ["s"]


def test_relative_cwd_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    file = write(tmp_path / "project" / ".mcp.json", {"s": {"command": "npx", "cwd": "tools"}})

    assert load_mcp_json(file)[0].cwd == tmp_path / "project" / "tools"
