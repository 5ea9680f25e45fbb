"""Fixtures for the spec README tests: a fake OpenAI server the spec's ``"gpt-4o"`` agents talk to.

The spec's examples name real models (``Agent("gpt-4o", settings=settings)``). Here those
constructions run unchanged through Mamba's real model path: ``OPENAI_API_KEY`` is a dummy and
``MAMBA_MODEL_BACKEND__BASE_URL`` points at the fake OpenAI-compatible server from
`tests._support.openai_server`, which answers like a small, deterministic assistant.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_ai.models import override_allow_model_requests

from tests._support.mcp_servers.process import REPO_ROOT, STDIO_ARGS
from tests._support.openai_server import OpenAIServer, RecordedRequest, Text

__all__ = ["assistant", "calc_stdio_entry", "settings_env", "spec_server", "write_mcp_json"]

DUMMY_OPENAI_KEY = "sk-spec-dummy-key-0000"


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    return json.dumps(content)


def assistant(request: RecordedRequest) -> Text:
    """A deterministic assistant: remembers names, adds numbers, otherwise acknowledges."""
    users = [_text(m.get("content")) for m in request.messages if m.get("role") == "user"]
    last = users[-1] if users else ""
    if "What's my name?" in last:
        for earlier in users[:-1]:
            if match := re.search(r"my name is (\w+)", earlier):
                return Text(match.group(1))
        return Text("I don't know your name.")
    if match := re.search(r"(\d+)\s*\+\s*(\d+)", last):
        return Text(str(int(match.group(1)) + int(match.group(2))))
    return Text(f"Noted: {last}")


class _ClosingServer(OpenAIServer):
    """The fake server, answering every request with ``Connection: close``.

    The spec's examples create agents and never close them (``asyncio.run(main())``, a script that
    ends). A pooled keep-alive connection of such an agent would outlive its event loop and show up
    as a ResourceWarning, which this test suite turns into an error. Closing each connection after
    its response keeps the examples verbatim and the suite warning-free.
    """

    def _app(self) -> Any:
        app = super()._app()

        async def closing(scope: Any, receive: Any, send: Any) -> None:
            async def send_closing(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
                await send(message)

            await app(scope, receive, send_closing)

        return closing


@pytest.fixture(scope="session")
def _spec_openai_server() -> Iterator[OpenAIServer]:
    with _ClosingServer() as server:
        yield server


@pytest.fixture
def spec_server(_spec_openai_server: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIServer]:
    """The fake server as the spec's OpenAI: a dummy key, and the server's URL as the base URL.

    Model requests are allowed for the test: they all go to this server on 127.0.0.1.
    """
    server = _spec_openai_server.reset()
    monkeypatch.setenv("OPENAI_API_KEY", DUMMY_OPENAI_KEY)
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__BASE_URL", server.url)
    server.default = assistant
    with override_allow_model_requests(True):
        yield server


@pytest.fixture
def settings_env(spec_server: OpenAIServer, in_tmp_cwd: Path) -> OpenAIServer:
    """`spec_server` inside an empty working directory (so no stray .env or config.toml is read)."""
    return spec_server


def calc_stdio_entry(**extra: Any) -> dict[str, Any]:
    """A ``.mcp.json`` server entry that starts the `calc` test server over stdio.

    It stands in for the spec's ``npx -y @modelcontextprotocol/server-filesystem`` (no Node here).
    """
    return {"command": sys.executable, "args": list(STDIO_ARGS), "cwd": str(REPO_ROOT), **extra}


def write_mcp_json(path: Path, servers: dict[str, dict[str, Any]]) -> Path:
    """Write a Claude Desktop style ``.mcp.json`` with ``servers`` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mcpServers": servers}, indent=2))
    return path
