"""Build the pydantic-ai `MCPToolset` (and its transport) for one `MCPServerConfig`."""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO, assert_never

import httpx2
from fastmcp.client.transports import ClientTransport, SSETransport, StdioTransport, StreamableHttpTransport
from pydantic_ai.mcp import MCPToolset
from pydantic_ai.toolsets import AbstractToolset

from mamba_worker.mcp._auth import http_headers
from mamba_worker.mcp._config import MCPServerConfig
from mamba_worker.mcp.errors import MCPCommandNotFoundError, MCPConfigError

logger = logging.getLogger(__name__)


def build_toolset(config: MCPServerConfig) -> AbstractToolset[Any]:
    """The toolset an agent uses for ``config``: an `MCPToolset`, prefixed when ``tool_prefix`` is set.

    Raises:
        MCPAuthError: The auth key variable is unset or empty.
        MCPCommandNotFoundError: The stdio command cannot be found.
        MCPConfigError: The stdio ``cwd`` is not a directory.
    """
    toolset = build_mcp_toolset(config)
    return toolset.prefixed(config.tool_prefix) if config.tool_prefix else toolset


def build_mcp_toolset(
    config: MCPServerConfig, *, on_http_error: Callable[[str], None] | None = None
) -> MCPToolset[Any]:
    """The unprefixed `MCPToolset` for ``config`` (same errors as `build_toolset`).

    Args:
        config: The server.
        on_http_error: Called with ``"HTTP 401 Unauthorized"`` and the like whenever a Streamable
            HTTP server answers with an error status, which the MCP SDK otherwise reduces to
            "Server returned an error response".
    """
    logger.debug("building the %s MCP toolset for server %r", config.transport, config.name)
    return MCPToolset(
        _transport(config, on_http_error=on_http_error),
        id=config.name,
        init_timeout=config.timeout,
        read_timeout=config.read_timeout,
    )


def _transport(config: MCPServerConfig, *, on_http_error: Callable[[str], None] | None) -> ClientTransport:
    match config.transport:
        case "stdio":
            command = _checked_command(config)
            return StdioTransport(
                command,
                list(config.args),
                env={name: value.get_secret_value() for name, value in config.env.items()},
                cwd=str(config.cwd) if config.cwd is not None else None,
                # The server process lives exactly as long as the agent run (or connection test)
                # that entered the toolset; a kept-alive process would outlive its event loop.
                keep_alive=False,
                log_file=_server_stderr(),
            )
        case "sse":
            assert config.url is not None  # MCPServerConfig guarantees a url for HTTP transports
            return SSETransport(config.url, headers=http_headers(config), sse_read_timeout=config.read_timeout)
        case "streamable_http":
            assert config.url is not None
            factory = _status_reporting_client_factory(on_http_error) if on_http_error is not None else None
            return StreamableHttpTransport(config.url, headers=http_headers(config), httpx_client_factory=factory)
        case _:
            assert_never(config.transport)


def _server_stderr() -> TextIO | None:
    """Where a stdio server's stderr goes: ``None`` (the client's default, ``sys.stderr``) when that is a real file.

    The server process inherits a file descriptor, and ``sys.stderr`` has none in Jupyter, under
    pytest's ``capsys``, or where a host replaced it with a logger object: starting the server
    would fail with ``UnsupportedOperation: fileno`` (MCP python-sdk issues #156 and #855). There
    the interpreter's original stderr takes its place.
    """
    try:
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both OSError and ValueError
        return sys.__stderr__
    return None


def _status_reporting_client_factory(report: Callable[[str], None]) -> Any:
    """An HTTP client factory for `StreamableHttpTransport` whose clients report error statuses."""

    async def on_response(response: httpx2.Response) -> None:
        if response.status_code >= 400:
            report(f"HTTP {response.status_code} {response.reason_phrase}")

    def factory(
        headers: dict[str, str] | None = None,
        timeout: httpx2.Timeout | None = None,
        auth: httpx2.Auth | None = None,
        **_: Any,  # `follow_redirects`: the MCP transport follows same-origin redirects itself
    ) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            headers=headers,
            # The MCP SDK's defaults: a server may hold a response stream open for minutes.
            timeout=timeout or httpx2.Timeout(30.0, read=300.0),
            auth=auth,
            event_hooks={"response": [on_response]},
        )

    return factory


def _checked_command(config: MCPServerConfig) -> str:
    """Check, before anything is spawned, that the stdio command and its working directory exist."""
    command = config.command
    assert command is not None  # MCPServerConfig guarantees a command for stdio
    if config.cwd is not None and not config.cwd.is_dir():
        raise MCPConfigError(
            f"MCP server {config.name!r}: its cwd {str(config.cwd)!r} is not an existing directory",
            server=config.name,
            field="cwd",
        )
    if os.sep in command or (os.altsep is not None and os.altsep in command):
        # A path is resolved from the server's working directory, as the child process will.
        candidate = Path(command)
        if not candidate.is_absolute() and config.cwd is not None:
            candidate = config.cwd / candidate
        found = candidate.is_file() and os.access(candidate, os.X_OK)
        where = "is not an executable file"
    else:
        path = config.env["PATH"].get_secret_value() if "PATH" in config.env else os.environ.get("PATH", os.defpath)
        found = shutil.which(command, path=path) is not None
        where = "was not found on PATH"
    if not found:
        raise MCPCommandNotFoundError(
            f"MCP server {config.name!r}: the command {command!r} {where}; install it or give its full path",
            server=config.name,
            command=command,
        )
    return command
