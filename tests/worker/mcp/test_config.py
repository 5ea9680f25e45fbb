"""`MCPServerConfig` and `MCPAuthConfig`: transport detection, cross-field rules, secrets kept hidden."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from mamba_worker.mcp import MCPAuthConfig, MCPServerConfig


@pytest.mark.parametrize(
    ("settings", "transport"),
    [
        ({"command": "npx"}, "stdio"),
        ({"url": "http://localhost:8080/sse"}, "sse"),
        ({"url": "http://localhost:8080/sse/"}, "sse"),
        ({"url": "https://api.example.com/mcp/sse?session=1"}, "sse"),
        ({"url": "https://api.example.com/mcp"}, "streamable_http"),
        ({"url": "https://api.example.com/ssething"}, "streamable_http"),
        ({"url": "https://api.example.com/sse", "transport": "streamable_http"}, "streamable_http"),
        ({"url": "https://api.example.com/mcp", "transport": "http"}, "streamable_http"),
        ({"url": "https://api.example.com/mcp", "transport": "streamable-http"}, "streamable_http"),
    ],
)
def test_transport_is_detected_or_taken_as_given(settings: dict[str, str], transport: str) -> None:
    assert MCPServerConfig.model_validate({"name": "s", **settings}).transport == transport


def test_spec_example_config_keeps_its_settings() -> None:
    config = MCPServerConfig(
        name="api-server",
        transport="sse",
        url="https://api.example.com/mcp/sse",
        auth=MCPAuthConfig(key_env="MCP_API_KEY"),
        timeout=60,
        read_timeout=300,
    )

    assert (config.timeout, config.read_timeout, config.auth) == (60, 300, MCPAuthConfig(key_env="MCP_API_KEY"))


def test_defaults_for_timeouts() -> None:
    config = MCPServerConfig(name="s", command="npx")

    assert (config.timeout, config.read_timeout) == (30.0, 300.0)


def test_unknown_transport_is_rejected_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"unknown transport 'websocket'; use one of 'stdio', 'sse'"):
        MCPServerConfig.model_validate({"name": "s", "url": "http://h/mcp", "transport": "websocket"})


def test_neither_command_nor_url_is_rejected() -> None:
    with pytest.raises(ValidationError, match="neither `command`.*nor `url`"):
        MCPServerConfig(name="s")


def test_stdio_without_command_is_rejected() -> None:
    with pytest.raises(ValidationError, match="transport 'stdio' needs `command`"):
        MCPServerConfig(name="s", transport="stdio", url="http://h/mcp")


def test_http_transport_without_url_is_rejected() -> None:
    with pytest.raises(ValidationError, match="transport 'sse' needs `url`"):
        MCPServerConfig(name="s", transport="sse", command="npx")


@pytest.mark.parametrize(
    "settings",
    [
        {"command": "npx", "url": "http://h/mcp"},
        {"command": "npx", "headers": {"X": "y"}},
        {"command": "npx", "auth": {"key_env": "K"}},
        {"url": "http://h/mcp", "args": ["-y"]},
        {"url": "http://h/mcp", "env": {"A": "b"}},
        {"url": "http://h/mcp", "cwd": "/tmp"},
    ],
)
def test_fields_of_the_other_transport_are_rejected(settings: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="does not apply to transport"):
        MCPServerConfig.model_validate({"name": "s", **settings})


def test_non_http_url_is_rejected() -> None:
    with pytest.raises(ValidationError, match="http:// or https://"):
        MCPServerConfig(name="s", url="ws://h/mcp")


@pytest.mark.parametrize("prefix", ["has space", "dot.ted", ""])
def test_tool_prefix_must_be_a_name_fragment(prefix: str) -> None:
    with pytest.raises(ValidationError, match="tool_prefix"):
        MCPServerConfig(name="s", command="npx", tool_prefix=prefix)


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="comand"):
        MCPServerConfig.model_validate({"name": "s", "comand": "npx", "url": "http://h/mcp"})


def test_home_is_expanded_in_cwd_and_command() -> None:
    config = MCPServerConfig(name="s", command="~/bin/server", cwd=Path("~/work"))

    assert config.command == str(Path.home() / "bin" / "server")
    assert config.cwd == Path.home() / "work"


def test_env_and_header_values_are_secret_in_repr_and_errors() -> None:
    config = MCPServerConfig(name="s", command="npx", env={"TOKEN": "env-secret-123"})
    assert "env-secret-123" not in repr(config)
    assert config.env["TOKEN"] == SecretStr("env-secret-123")

    with pytest.raises(ValidationError) as caught:
        MCPServerConfig.model_validate(
            {"name": "s", "url": "http://h/mcp", "headers": {"Authorization": "Bearer hdr-secret-456"}, "args": [1]}
        )
    assert "hdr-secret-456" not in str(caught.value)


def test_auth_needs_exactly_one_key_source() -> None:
    with pytest.raises(ValidationError, match="exactly one of `key_env`"):
        MCPAuthConfig()
    with pytest.raises(ValidationError, match="exactly one of `key_env`"):
        MCPAuthConfig(key_env="K", key=SecretStr("k"))


def test_auth_key_is_secret_in_repr() -> None:
    assert "auth-secret-789" not in repr(MCPAuthConfig(key=SecretStr("auth-secret-789")))


def test_auth_header_name_must_be_a_valid_header() -> None:
    with pytest.raises(ValidationError, match="header"):
        MCPAuthConfig(key_env="K", header="Bad Header:")
