"""HTTP headers for a server, auth included, and the secret values to keep out of messages."""

from __future__ import annotations

import os

from pydantic import SecretStr

from mamba_worker.mcp._config import MCPAuthConfig, MCPServerConfig
from mamba_worker.mcp.errors import MCPAuthError


def auth_header(server: str, auth: MCPAuthConfig) -> tuple[str, SecretStr]:
    """Build the ``(header name, header value)`` that carries ``auth``'s key.

    Raises:
        MCPAuthError: ``auth.key_env`` names a variable that is unset or empty.
    """
    if auth.key is not None:
        key = auth.key.get_secret_value()
    else:
        variable = auth.key_env
        assert variable is not None  # MCPAuthConfig guarantees key or key_env
        key = os.environ.get(variable, "")
        if not key:
            state = "empty" if variable in os.environ else "not set"
            raise MCPAuthError(
                f"MCP server {server!r}: the environment variable {variable} (auth.key_env) is {state}; "
                f"export it with the server's API key",
                server=server,
                variable=variable,
            )
    return auth.header, SecretStr(f"{auth.scheme} {key}" if auth.scheme else key)


def http_headers(config: MCPServerConfig) -> dict[str, str]:
    """All headers to send to an HTTP server: ``config.headers`` plus the auth header, which wins.

    Raises:
        MCPAuthError: The auth key variable is unset or empty.
    """
    headers = {name: value.get_secret_value() for name, value in config.headers.items()}
    if config.auth is not None:
        name, value = auth_header(config.name, config.auth)
        # Header names are case-insensitive: drop any spelling of the one auth sets.
        headers = {key: item for key, item in headers.items() if key.lower() != name.lower()}
        headers[name] = value.get_secret_value()
    return headers


def secret_values(config: MCPServerConfig) -> list[str]:
    """Every secret a message about ``config`` could accidentally contain, longest first.

    Values shorter than six characters are left out: they are flags such as ``"1"`` rather than
    keys, and masking them would garble the message instead of protecting anything.
    """
    values = [value.get_secret_value() for value in (*config.env.values(), *config.headers.values())]
    auth = config.auth
    if auth is not None:
        values.append(auth.key.get_secret_value() if auth.key is not None else os.environ.get(auth.key_env or "", ""))
    return sorted({value for value in values if len(value) >= 6}, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """Replace each of ``secrets`` in ``text`` with a mask."""
    for secret in secrets:
        text = text.replace(secret, "**********")
    return text
