"""The built-in tools: files, glob, grep and bash, with a sandbox and idempotency declarations.

Every tool is a `BuiltinTool`: a plain function for Python callers (errors are raised) and a
pydantic-ai `Tool` for agents (``Agent(..., tools=[read_file, run_bash])``), where failures come
back to the model as readable tool results and operator parameters (``security``, ``policy``) are
hidden from it. Bind a sandbox for an agent with `builtin_tools` or `BuiltinTool.bind`.

``tools.filesystem`` holds `FilesystemSecurity` and the filesystem tools; ``tools.errors`` holds
`SandboxViolation`, the one exception every refusal raises.

Must not import other capabilities (mcp, prompts, tokens, backends, observability) or anything above
them: only ``config`` and ``errors``.
"""

from mamba_worker.tools._bash import BashResult, run_bash
from mamba_worker.tools._bash_policy import SAFE_ENVIRONMENT, BashPolicy
from mamba_worker.tools._builtin import IDEMPOTENT_METADATA_KEY, BuiltinTool
from mamba_worker.tools._glob import glob_search
from mamba_worker.tools._grep import GrepMatch, grep_search
from mamba_worker.tools._registry import BUILTIN_TOOLS, builtin_tools, builtin_toolset, is_idempotent
from mamba_worker.tools.errors import SandboxRule, SandboxViolation
from mamba_worker.tools.filesystem import (
    DirectoryEntry,
    EntryKind,
    FileInfo,
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

__all__ = [
    "BUILTIN_TOOLS",
    "BashPolicy",
    "BashResult",
    "BuiltinTool",
    "DirectoryEntry",
    "EntryKind",
    "FileInfo",
    "FilesystemSecurity",
    "GrepMatch",
    "IDEMPOTENT_METADATA_KEY",
    "SAFE_ENVIRONMENT",
    "SandboxRule",
    "SandboxViolation",
    "append_file",
    "builtin_tools",
    "builtin_toolset",
    "copy_file",
    "delete_file",
    "file_info",
    "glob_search",
    "grep_search",
    "is_idempotent",
    "list_directory",
    "move_file",
    "read_file",
    "run_bash",
    "write_file",
]
