"""`MCPClientManager`: the configured MCP servers, as agent toolsets and as connection tests."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar

from pydantic_ai.toolsets import AbstractToolset

from mamba_worker.mcp._config import MCPServerConfig
from mamba_worker.mcp._connection import MCPConnectionResult, probe
from mamba_worker.mcp._loader import load_mcp_json
from mamba_worker.mcp._toolset import build_toolset
from mamba_worker.mcp.errors import MCPServerNotFoundError

T = TypeVar("T")


def _run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion from sync code, even when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    # A running loop cannot be re-entered, and blocking it on itself would deadlock: run the
    # coroutine on a fresh loop in a helper thread. The calling loop is blocked meanwhile.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mamba-mcp-sync") as pool:
        return pool.submit(asyncio.run, coroutine).result()


class MCPClientManager:
    """The MCP servers an agent may use, keyed by name.

    Build it from configs, from ``.mcp.json`` files, or both. Servers are keyed by name: adding
    a server whose name is already known replaces the earlier one in place, so with
    `add_from_file` a later file overrides a server of the same name from an earlier file.

    `as_toolsets` gives pydantic-ai toolsets for ``Agent(toolsets=...)``; the agent connects to
    each server (starting stdio servers) when a run starts and disconnects when it ends.

    Example:
        >>> manager = MCPClientManager([MCPServerConfig(name="fs", command="npx", args=["-y", "server-fs", "."])])
        >>> manager.add_from_file("~/.mcp.json")  # doctest: +SKIP
        >>> agent = Agent("gpt-4o", toolsets=manager.as_toolsets())  # doctest: +SKIP
        >>> manager.test_connection_sync("fs").success  # doctest: +SKIP
        True
    """

    def __init__(self, configs: Sequence[MCPServerConfig] | None = None) -> None:
        """Create a manager holding ``configs`` (a later config replaces an earlier one of the same name)."""
        self._configs: dict[str, MCPServerConfig] = {}
        for config in configs or ():
            self.add(config)

    @classmethod
    def from_mcp_json(cls, path: str | os.PathLike[str]) -> Self:
        """Create a manager holding the servers of one ``.mcp.json`` file (see `load_mcp_json`).

        Raises:
            MCPConfigError: The file is missing, malformed or has an invalid server.
        """
        return cls(load_mcp_json(path))

    def add(self, config: MCPServerConfig) -> None:
        """Add a server, replacing any server of the same name (it keeps its place in the order)."""
        self._configs[config.name] = config

    def add_from_file(self, path: str | os.PathLike[str]) -> None:
        """Add every server of a ``.mcp.json`` file; a server of a known name replaces the old one.

        The file is read and validated in full first: when it fails, the manager is unchanged.

        Raises:
            MCPConfigError: The file is missing, malformed or has an invalid server.
        """
        for config in load_mcp_json(path):
            self.add(config)

    @property
    def configs(self) -> list[MCPServerConfig]:
        """The server configs, in the order they were first added (a copy)."""
        return list(self._configs.values())

    def get(self, name: str) -> MCPServerConfig:
        """The config of server ``name``.

        Raises:
            MCPServerNotFoundError: No server has that name.
        """
        try:
            return self._configs[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._configs) or "none"
            raise MCPServerNotFoundError(
                f"no MCP server named {name!r} is configured (configured: {known})",
                server=name,
                known=list(self._configs),
            ) from None

    def as_toolsets(self) -> list[AbstractToolset[Any]]:
        """One pydantic-ai toolset per server, for ``Agent(toolsets=...)``.

        Each is an `MCPToolset` (wrapped to add ``tool_prefix`` when set) with the server's
        ``timeout`` for connecting and ``read_timeout`` for answers. Nothing connects here.

        Raises:
            MCPAuthError: A server's auth key variable is unset or empty.
            MCPCommandNotFoundError: A stdio server's command cannot be found.
            MCPConfigError: A stdio server's ``cwd`` is not a directory.
        """
        return [build_toolset(config) for config in self._configs.values()]

    async def test_connection(self, name: str) -> MCPConnectionResult:
        """Connect to server ``name`` within its ``timeout``, list its tools and disconnect.

        A server that cannot be started or reached, answers wrongly, or is too slow gives a
        result with ``success=False`` and the reason in ``error``; it never raises for that.

        Raises:
            MCPServerNotFoundError: No server has that name.
        """
        return await probe(self.get(name))

    async def test_all_connections(self) -> dict[str, MCPConnectionResult]:
        """Test every server concurrently; the results are keyed by name, in config order."""
        configs = self.configs
        results = await asyncio.gather(*(probe(config) for config in configs))
        return {config.name: result for config, result in zip(configs, results, strict=True)}

    def test_connection_sync(self, name: str) -> MCPConnectionResult:
        """Sync twin of `test_connection`.

        Works from plain sync code and also from inside a running event loop (it then runs on
        a helper thread and blocks the calling loop until done; prefer the async method there).
        """
        config = self.get(name)  # raise for an unknown name here, not in the helper thread
        return _run_sync(probe(config))

    def test_all_connections_sync(self) -> dict[str, MCPConnectionResult]:
        """Sync twin of `test_all_connections` (usable inside a running loop, as `test_connection_sync`)."""
        return _run_sync(self.test_all_connections())

    def __len__(self) -> int:
        return len(self._configs)

    def __contains__(self, name: object) -> bool:
        return name in self._configs

    def __repr__(self) -> str:
        return f"{type(self).__name__}(servers={list(self._configs)!r})"
