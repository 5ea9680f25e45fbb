"""Start the `calc` MCP server in a subprocess on 127.0.0.1 and stop it again."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests._support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
"""The repository root: the working directory a ``python -m tests._support...`` server needs."""

STDIO_ARGS = ["-m", "tests._support.mcp_servers.calc", "stdio"]
"""Arguments for `sys.executable` that run `calc` over stdio (with ``cwd=REPO_ROOT``)."""


@dataclass(frozen=True)
class RunningServer:
    """A `calc` HTTP server that is up, and its endpoint URLs."""

    base_url: str

    @property
    def sse_url(self) -> str:
        return f"{self.base_url}/sse"

    @property
    def http_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def secure_http_url(self) -> str:
        return f"{self.base_url}/secure/mcp"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def run_calc_http(tmp_dir: Path, *, token: str | None = None) -> Iterator[RunningServer]:
    """Run `calc` over HTTP until the block ends; with ``token``, ``/secure/mcp`` requires it."""
    port_file = tmp_dir / "calc.port"
    env = dict(os.environ)
    command = [sys.executable, "-m", "tests._support.mcp_servers.calc", "http", "--port-file", str(port_file)]
    if token is not None:
        env["CALC_TEST_TOKEN"] = token
        command += ["--token-env", "CALC_TEST_TOKEN"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    try:

        def port_written() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"calc server exited early with status {process.returncode}")
            return port_file.exists()

        wait_until(port_written, timeout=30, what="the calc server to write its port")
        base_url = f"http://127.0.0.1:{port_file.read_text()}"
        wait_until(lambda: _healthy(f"{base_url}/health"), timeout=30, what="the calc server to serve")
        yield RunningServer(base_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
