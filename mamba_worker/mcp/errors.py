"""Errors raised by `mamba_worker.mcp`.

The tree::

    MambaError
    └── MCPError                        anything MCP-related
        ├── MCPConfigError              a server config or ``.mcp.json`` is wrong (also a ConfigurationError)
        │   ├── MCPAuthError            an auth key variable is unset or empty
        │   └── MCPCommandNotFoundError a stdio server's command cannot be found
        └── MCPServerNotFoundError      no server of that name is configured (also a UsageError)

A server that cannot be reached is not an error of `MCPClientManager.test_connection`: it answers
with a failed `MCPConnectionResult` instead. No message here ever holds a secret: auth errors name
the variable, never its value.
"""

from __future__ import annotations

from collections.abc import Sequence

from mamba_worker.errors import ConfigurationError, MambaError, UsageError


class MCPError(MambaError):
    """Base of every MCP error."""

    code = "mcp_error"


class MCPConfigError(MCPError, ConfigurationError):
    """An MCP server configuration, or the ``.mcp.json`` file it came from, is wrong.

    Attributes:
        path: The file the configuration came from, when it came from one.
        line: 1-based line in ``path`` where the problem is, when known.
        column: 1-based column in ``path``, when known.
        server: The server entry at fault, when the problem belongs to one.
        field: The field of that entry at fault (``"url"``, ``"auth.key_env"``), when known.
    """

    code = "mcp_config_error"

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        server: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, path=path, line=line, column=column, server=server, field=field)
        self.path = path
        self.line = line
        self.column = column
        self.server = server
        self.field = field


class MCPAuthError(MCPConfigError):
    """A server's auth key is configured through an environment variable that is unset or empty.

    Attributes:
        variable: The name of the environment variable (never its value).
    """

    code = "mcp_auth_error"

    def __init__(self, message: str, *, server: str, variable: str) -> None:
        super().__init__(message, server=server, field="auth.key_env")
        self.variable = variable
        self.details["variable"] = variable


class MCPCommandNotFoundError(MCPConfigError):
    """A stdio server's command is not on ``PATH`` or is not an executable file.

    Attributes:
        command: The command as configured.
    """

    code = "mcp_command_not_found"

    def __init__(self, message: str, *, server: str, command: str) -> None:
        super().__init__(message, server=server, field="command")
        self.command = command
        self.details["command"] = command


class MCPServerNotFoundError(MCPError, UsageError):
    """No server of that name is configured in the `MCPClientManager`.

    Attributes:
        server: The name asked for.
        known: The names that are configured.
    """

    code = "mcp_server_not_found"

    def __init__(self, message: str, *, server: str, known: Sequence[str] = ()) -> None:
        super().__init__(message, server=server, known=list(known))
        self.server = server
        self.known = list(known)


__all__ = [
    "MCPAuthError",
    "MCPCommandNotFoundError",
    "MCPConfigError",
    "MCPError",
    "MCPServerNotFoundError",
]
