"""`MCPServerConfig` and `MCPAuthConfig`: how to reach one MCP server, as validated data."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

Transport = Literal["stdio", "sse", "streamable_http"]
"""How a server is reached: a subprocess over stdio, Server-Sent Events, or Streamable HTTP."""

TRANSPORTS: tuple[Transport, ...] = get_args(Transport)

# Spellings other MCP clients use in their config files (Claude Code writes "http").
_TRANSPORT_ALIASES: dict[str, Transport] = {"http": "streamable_http", "streamable-http": "streamable_http"}

_HTTP_ONLY_FIELDS = ("url", "headers", "auth")
_STDIO_ONLY_FIELDS = ("command", "args", "env", "cwd")


class InvalidFieldError(ValueError):
    """A cross-field rule failed; carries the field to blame, so the loader can name it.

    Pydantic locates errors raised by a model validator at the model itself; this keeps the field.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def detect_transport(*, command: object, url: object) -> Transport:
    """Pick a transport the way `.mcp.json` files expect: command → stdio, ``…/sse`` → SSE, else HTTP."""
    if command is not None or url is None:
        return "stdio"
    if str(url).split("?", 1)[0].rstrip("/").endswith("/sse"):
        return "sse"
    return "streamable_http"


class MCPAuthConfig(BaseModel):
    """An API key sent to an HTTP MCP server in a header.

    The key comes either from an environment variable (``key_env``, read when the toolset is
    built, so a missing variable fails there with `MCPAuthError`) or from ``key`` itself. Either
    way the header is ``"<header>: <scheme> <key>"``, or just ``"<header>: <key>"`` when
    ``scheme`` is empty (for ``X-API-Key``-style headers). The key is never logged or shown.

    Example:
        >>> MCPAuthConfig(key_env="MCP_API_KEY")  # Authorization: Bearer $MCP_API_KEY
        MCPAuthConfig(key_env='MCP_API_KEY', key=None, header='Authorization', scheme='Bearer')
        >>> MCPAuthConfig(key_env="SEARCH_KEY", header="X-API-Key", scheme="")
        MCPAuthConfig(key_env='SEARCH_KEY', key=None, header='X-API-Key', scheme='')
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    key_env: str | None = Field(default=None, min_length=1)
    """Name of the environment variable that holds the key."""
    key: SecretStr | None = None
    """The key itself, when it does not come from the environment."""
    header: str = Field(default="Authorization", pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    """The HTTP header that carries the key."""
    scheme: str = Field(default="Bearer", pattern=r"^[^\s]*$")
    """Written before the key, separated by a space; empty to send the bare key."""

    @model_validator(mode="after")
    def _one_key_source(self) -> MCPAuthConfig:
        if (self.key_env is None) == (self.key is None):
            raise InvalidFieldError("auth", "auth needs exactly one of `key_env` (a variable name) or `key`")
        return self


class MCPServerConfig(BaseModel):
    """How to reach one MCP server, and how its tools appear to the agent.

    A stdio server is a command Mamba starts (``command``, ``args``, ``env``, ``cwd``); an SSE or
    Streamable HTTP server is a ``url`` (with ``headers`` and ``auth``). Without ``transport`` it
    is detected: a ``command`` means stdio, a ``url`` whose path ends in ``/sse`` means SSE, and
    any other ``url`` Streamable HTTP. Values of ``env`` and ``headers`` are `SecretStr` (they
    routinely hold tokens), so a config's repr never shows them.

    Example:
        >>> config = MCPServerConfig(
        ...     name="filesystem",
        ...     command="npx",
        ...     args=["-y", "@modelcontextprotocol/server-filesystem", "/project"],
        ...     tool_prefix="fs",  # the agent sees fs_read_file, fs_write_file, ...
        ... )
        >>> config.transport
        'stdio'
        >>> MCPServerConfig(name="web", url="http://localhost:8080/sse").transport
        'sse'

    Invalid values raise pydantic's `ValidationError` (its message never echoes the input, so no
    secret leaks); `load_mcp_json` turns it into `MCPConfigError` naming the file and server.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    name: str = Field(min_length=1)
    """Unique name of the server within a `MCPClientManager`."""
    transport: Transport = "stdio"
    """``stdio``, ``sse`` or ``streamable_http``; detected from ``command``/``url`` when omitted."""
    command: str | None = Field(default=None, min_length=1)
    """Executable to start (stdio); looked up on ``PATH`` unless it contains a path separator."""
    args: list[str] = Field(default_factory=list)
    """Arguments for ``command`` (stdio)."""
    env: dict[str, SecretStr] = Field(default_factory=dict)
    """Variables for the server process (stdio), added to a small safe default environment (PATH,
    HOME, ...) rather than to this process's whole environment, as the MCP SDK does."""
    cwd: Path | None = None
    """Working directory of the server process (stdio); ``~`` is expanded."""
    url: str | None = None
    """Endpoint of an SSE or Streamable HTTP server."""
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    """Extra HTTP headers (SSE, Streamable HTTP)."""
    auth: MCPAuthConfig | None = None
    """API key sent in a header (SSE, Streamable HTTP)."""
    tool_prefix: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$")
    """When set, tool ``x`` is shown to the model as ``<tool_prefix>_x``."""
    timeout: float = Field(default=30.0, gt=0)
    """Seconds allowed to connect and complete the MCP handshake (and for `test_connection`)."""
    read_timeout: float = Field(default=300.0, gt=0)
    """Seconds to wait for any one answer from the server, e.g. a long tool call."""

    @model_validator(mode="before")
    @classmethod
    def _detect_transport(cls, data: Any) -> Any:
        # Never raise here: a "before" error would carry the raw input, headers included.
        if isinstance(data, dict) and data.get("transport") is None:
            return {**data, "transport": detect_transport(command=data.get("command"), url=data.get("url"))}
        return data

    @field_validator("transport", mode="before")
    @classmethod
    def _known_transport(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _TRANSPORT_ALIASES.get(value, value)
            if value not in TRANSPORTS:
                choices = ", ".join(repr(t) for t in TRANSPORTS)
                raise ValueError(f"unknown transport {value!r}; use one of {choices} (or leave it out to detect it)")
        return value

    @field_validator("command")
    @classmethod
    def _expand_user_in_command(cls, value: str | None) -> str | None:
        return str(Path(value).expanduser()) if value is not None and value.startswith("~") else value

    @field_validator("cwd")
    @classmethod
    def _expand_user_in_cwd(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            # The URL itself is not repeated: it may carry a key in its query string.
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _fields_match_transport(self) -> MCPServerConfig:
        if self.command is None and self.url is None:
            raise InvalidFieldError(
                "command",
                "has neither `command` (a stdio server to start) nor `url` (an SSE or Streamable HTTP server); "
                "set one of them",
            )
        if self.transport == "stdio":
            if self.command is None:
                raise InvalidFieldError("command", "transport 'stdio' needs `command`")
            misplaced = [f for f in _HTTP_ONLY_FIELDS if f in self.model_fields_set and getattr(self, f)]
        else:
            if self.url is None:
                raise InvalidFieldError("url", f"transport {self.transport!r} needs `url`")
            misplaced = [f for f in _STDIO_ONLY_FIELDS if f in self.model_fields_set and getattr(self, f)]
        if misplaced:
            raise InvalidFieldError(
                misplaced[0],
                f"`{misplaced[0]}` does not apply to transport {self.transport!r}; remove it",
            )
        return self
