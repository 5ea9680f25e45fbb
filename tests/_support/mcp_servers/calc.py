"""A small MCP server with three tools, runnable over stdio or HTTP.

Run it as ``python -m tests._support.mcp_servers.calc stdio`` (a client spawns it), or as
``python -m tests._support.mcp_servers.calc http --port-file PATH [--token-env NAME]``: it then
serves, on one 127.0.0.1 port it picks itself,

- ``/sse`` (and ``/messages/``): the SSE transport;
- ``/mcp``: the Streamable HTTP transport;
- ``/secure/mcp``: the Streamable HTTP transport behind ``Authorization: Bearer <token>``, the token
  read from the variable ``--token-env`` names (requests without it get 401);
- ``/health``: 200 once the app is serving, for readiness polling.

The port is written to ``--port-file`` after the socket is bound and listening, so there is no
race between picking a free port and using it.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from typing import Any

from mcp.server import MCPServer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

server: MCPServer[Any] = MCPServer("calc", log_level="WARNING")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(text: str) -> str:
    """Return the text unchanged."""
    return text


@server.tool()
def read_env(name: str) -> str:
    """Return the value of an environment variable of the server process, or '<unset>'."""
    return os.environ.get(name, "<unset>")


async def _health(request: Request) -> Response:
    return PlainTextResponse("ok")


class _BearerGate:
    """Require ``Authorization: Bearer <token>`` under ``/secure``, then serve the path without it."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/secure/"):
            headers = dict(scope["headers"])
            expected = f"Bearer {self.token}".encode()
            if self.token is None or headers.get(b"authorization") != expected:
                await PlainTextResponse("missing or wrong bearer token", status_code=401)(scope, receive, send)
                return
            scope = dict(scope, path=scope["path"].removeprefix("/secure"))
        await self.app(scope, receive, send)


def build_http_app(*, token: str | None) -> Any:
    """Build one ASGI app serving the SSE, Streamable HTTP and secured Streamable HTTP endpoints."""
    sse_app = server.sse_app()
    http_app = server.streamable_http_app()
    app = Starlette(
        routes=[Route("/health", _health), *sse_app.routes, *http_app.routes],
        # The Streamable HTTP session manager runs inside the app's lifespan.
        lifespan=http_app.router.lifespan_context,
    )
    return _BearerGate(app, token)


def _serve_http(port_file: Path, token_env: str | None) -> None:
    import uvicorn

    token = os.environ.get(token_env) if token_env else None
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    # Written atomically, so a reader never sees a half-written port.
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(sock.getsockname()[1]))
    tmp.replace(port_file)
    config = uvicorn.Config(build_http_app(token=token), log_level="warning", lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    parser = argparse.ArgumentParser(prog="calc")
    sub = parser.add_subparsers(dest="mode", required=True)
    sub.add_parser("stdio")
    http = sub.add_parser("http")
    http.add_argument("--port-file", type=Path, required=True)
    http.add_argument("--token-env", default=None)
    args = parser.parse_args()
    if args.mode == "stdio":
        server.run("stdio")
    else:
        _serve_http(args.port_file, args.token_env)


if __name__ == "__main__":
    main()
