"""`MCPConnectionResult` and `probe`: connect to one server, list its tools, report what happened."""

from __future__ import annotations

import logging

import anyio
from pydantic import BaseModel, ConfigDict, Field, computed_field

from mamba_worker.mcp._auth import redact, secret_values
from mamba_worker.mcp._config import MCPServerConfig
from mamba_worker.mcp._toolset import build_mcp_toolset
from mamba_worker.mcp.errors import MCPConfigError

logger = logging.getLogger(__name__)


class MCPToolInfo(BaseModel):
    """One tool a server offers, named as the agent sees it (with the server's ``tool_prefix``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    """The tool's name, ``<tool_prefix>_<name>`` when the server has a prefix."""
    description: str | None = None
    """The server's description of the tool, if it gave one."""


class MCPConnectionResult(BaseModel):
    """The outcome of `MCPClientManager.test_connection` for one server.

    Example:
        >>> result = MCPConnectionResult(server_name="calc", success=False, error="TimeoutError: ...")
        >>> (result.success, result.tool_count)
        (False, 0)
    """

    model_config = ConfigDict(frozen=True)

    server_name: str
    """The server's name."""
    success: bool
    """Whether the server was reached and listed its tools."""
    tools: list[MCPToolInfo] = Field(default_factory=list)
    """The tools it offers (empty when the test failed)."""
    error: str | None = None
    """What went wrong, when ``success`` is false; it never contains a configured secret."""

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented pattern
    @property
    def tool_count(self) -> int:
        """How many tools the server offers."""
        return len(self.tools)


def _describe(error: BaseException) -> str:
    # anyio task groups wrap the real failure; show the innermost single cause.
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


async def probe(config: MCPServerConfig) -> MCPConnectionResult:
    """Connect to ``config``'s server within ``config.timeout`` seconds and list its tools.

    Never raises for a server that is misconfigured, missing, unreachable, slow or failing: each
    of those is a result with ``success=False`` and an ``error`` that says why.
    """
    http_errors: list[str] = []
    try:
        toolset = build_mcp_toolset(config, on_http_error=http_errors.append)
    except MCPConfigError as error:
        return MCPConnectionResult(server_name=config.name, success=False, error=str(error))
    prefix = f"{config.tool_prefix}_" if config.tool_prefix else ""
    try:
        with anyio.fail_after(config.timeout):
            async with toolset:
                tools = await toolset.list_tools()
    except TimeoutError:
        error_text = f"no answer within the {config.timeout:g}s timeout"
    except Exception as error:  # any failure to connect or list is the result, not an exception
        error_text = redact(_describe(error), secret_values(config))
        if http_errors and http_errors[-1] not in error_text:
            error_text += f" (the server answered {http_errors[-1]})"
    else:
        logger.debug("MCP server %r answered with %d tools", config.name, len(tools))
        return MCPConnectionResult(
            server_name=config.name,
            success=True,
            tools=[MCPToolInfo(name=prefix + tool.name, description=tool.description) for tool in tools],
        )
    logger.info("MCP server %r failed its connection test: %s", config.name, error_text)
    return MCPConnectionResult(server_name=config.name, success=False, error=error_text)
