from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from mamba_worker.mcp import MCPServerConfig
from tests._support.mcp_servers.process import REPO_ROOT, STDIO_ARGS, RunningServer, run_calc_http

CALC_TOKEN = "calc-test-token-5f2b9e"
"""The bearer token the shared calc server's /secure/mcp endpoint requires."""

CALC_TOOLS = ["add", "echo", "read_env"]


@pytest.fixture(scope="session")
def calc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One calc server for the session, serving SSE, Streamable HTTP and a token-protected endpoint."""
    with run_calc_http(tmp_path_factory.mktemp("calc"), token=CALC_TOKEN) as server:
        yield server


def stdio_config(name: str = "calc", **overrides: object) -> MCPServerConfig:
    """A config that starts calc over stdio with this interpreter."""
    settings: dict[str, object] = {
        "name": name,
        "command": sys.executable,
        "args": STDIO_ARGS,
        "cwd": REPO_ROOT,
        "timeout": 30,
    }
    return MCPServerConfig.model_validate(settings | overrides)
