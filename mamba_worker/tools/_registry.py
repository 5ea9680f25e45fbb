"""The eleven built-in tools by name, their idempotency, and factories that bind a sandbox for an agent."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pydantic_ai import Tool
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import FunctionToolset

from mamba_worker.errors import UsageError
from mamba_worker.tools._bash import run_bash
from mamba_worker.tools._bash_policy import BashPolicy
from mamba_worker.tools._builtin import IDEMPOTENT_METADATA_KEY, BuiltinTool
from mamba_worker.tools._glob import glob_search
from mamba_worker.tools._grep import grep_search
from mamba_worker.tools.filesystem import (
    FilesystemSecurity,
    append_file,
    copy_file,
    delete_file,
    file_info,
    list_directory,
    move_file,
    read_file,
    write_file,
)

__all__ = ["BUILTIN_TOOLS", "builtin_tools", "builtin_toolset", "is_idempotent"]

BUILTIN_TOOLS: Mapping[str, BuiltinTool[..., Any]] = MappingProxyType(
    {
        tool.name: tool
        for tool in (
            read_file,
            write_file,
            append_file,
            list_directory,
            file_info,
            delete_file,
            move_file,
            copy_file,
            glob_search,
            grep_search,
            run_bash,
        )
    }
)
"""Every built-in tool by name, unbound (no security context, no bash policy)."""


def builtin_tools(
    security: FilesystemSecurity | None = None,
    *,
    include: Iterable[str] | None = None,
    bash_policy: BashPolicy | None = None,
) -> list[BuiltinTool[..., Any]]:
    """Fresh built-in tools with a security context and bash policy bound, for an agent.

    Example:
        ```python
        security = FilesystemSecurity(sandbox_mode=True, base_directory="/work/repo")
        agent = Agent(model, tools=builtin_tools(security, include=["read_file", "grep_search"]))
        ```

    Args:
        security: Applied to every path the model gives (and to ``run_bash``'s directory).
        include: Names of the tools to return; default: all of them, except, when ``security`` is
            read-only, those that could only fail (the changing tools, and ``run_bash`` unless
            ``bash_policy`` has an allow-list).
        bash_policy: Applied to every ``run_bash`` call.

    Returns:
        New `BuiltinTool` objects, in the order of `BUILTIN_TOOLS` (or of ``include``).

    Raises:
        UsageError: ``include`` names a tool that does not exist.
    """
    if include is None:
        names = [name for name, tool in BUILTIN_TOOLS.items() if _useful(tool, security, bash_policy)]
    else:
        names = list(include)
        unknown = sorted(set(names) - BUILTIN_TOOLS.keys())
        if unknown:
            raise UsageError(f"unknown built-in tools {unknown}; choose from {sorted(BUILTIN_TOOLS)}")
    return [BUILTIN_TOOLS[name].bind(security=security, policy=bash_policy) for name in names]


def builtin_toolset(
    security: FilesystemSecurity | None = None,
    *,
    include: Iterable[str] | None = None,
    bash_policy: BashPolicy | None = None,
    id: str | None = None,
) -> FunctionToolset[Any]:
    """`builtin_tools` as a pydantic-ai `FunctionToolset` (for ``Agent(..., toolsets=[...])``).

    Args:
        security: See `builtin_tools`.
        include: See `builtin_tools`.
        bash_policy: See `builtin_tools`.
        id: The toolset's id (durable execution needs one that is stable across runs).
    """
    return FunctionToolset(builtin_tools(security, include=include, bash_policy=bash_policy), id=id)


def is_idempotent(tool: str | Tool[Any] | ToolDefinition | Callable[..., Any]) -> bool | None:
    """Whether running a tool twice is harmless, as the tool declares it; ``None`` if it does not say.

    The durable runtime re-runs an idempotent tool call after a crash and treats any other one as a
    side effect that may have happened. Tools declare it with
    ``metadata={"idempotent": True}`` (pydantic-ai `Tool` metadata, which reaches the tool
    definition); built-in tools are also known by name.

    Args:
        tool: A tool name, a pydantic-ai `Tool`, a `ToolDefinition`, or a tool function.
    """
    if isinstance(tool, str):
        builtin = BUILTIN_TOOLS.get(tool)
        return builtin.idempotent if builtin is not None else None
    if isinstance(tool, BuiltinTool):
        return tool.idempotent
    if isinstance(tool, Tool | ToolDefinition):
        value = (tool.metadata or {}).get(IDEMPOTENT_METADATA_KEY)
        return value if isinstance(value, bool) else None
    # A plain function: only a built-in one is known (by identity, not by a name it may share).
    return next((b.idempotent for b in BUILTIN_TOOLS.values() if b.python_function is tool), None)


def _useful(tool: BuiltinTool[..., Any], security: FilesystemSecurity | None, policy: BashPolicy | None) -> bool:
    if security is None or not security.read_only or not tool.mutates:
        return True
    return tool is run_bash and policy is not None and policy.allowed_commands is not None
