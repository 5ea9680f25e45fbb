"""MCP integration: connect agents to Model Context Protocol servers.

Owns `MCPServerConfig`/`MCPAuthConfig`, ``.mcp.json`` loading (`load_mcp_json`, Claude Desktop
format, ``${VAR}`` expansion, transport detection), and `MCPClientManager`, which turns configs
into pydantic-ai `MCPToolset`s (stdio, SSE, Streamable HTTP) and tests connections. Errors are in
`mamba_worker.mcp.errors`.

Layer 2: imports only `mamba_worker.errors` and `mamba_worker.config`, never its siblings
(tools, prompts, tokens, backends, observability) nor anything above.

Example:
    >>> from mamba_worker.mcp import MCPClientManager
    >>> manager = MCPClientManager.from_mcp_json(".mcp.json")  # doctest: +SKIP
    >>> agent = Agent("gpt-4o", toolsets=manager.as_toolsets())  # doctest: +SKIP
"""

from mamba_worker.mcp._client import MCPClientManager
from mamba_worker.mcp._config import MCPAuthConfig, MCPServerConfig, Transport
from mamba_worker.mcp._connection import MCPConnectionResult, MCPToolInfo
from mamba_worker.mcp._loader import load_mcp_json
from mamba_worker.mcp.errors import (
    MCPAuthError,
    MCPCommandNotFoundError,
    MCPConfigError,
    MCPError,
    MCPServerNotFoundError,
)

__all__ = [
    "MCPAuthConfig",
    "MCPAuthError",
    "MCPClientManager",
    "MCPCommandNotFoundError",
    "MCPConfigError",
    "MCPConnectionResult",
    "MCPError",
    "MCPServerConfig",
    "MCPServerNotFoundError",
    "MCPToolInfo",
    "Transport",
    "load_mcp_json",
]
