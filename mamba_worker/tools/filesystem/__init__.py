"""Filesystem tools and `FilesystemSecurity`, the sandbox every path goes through.

Each tool is a `mamba_worker.tools.BuiltinTool`: call it like a function, or give it to an agent.
Pass ``security=FilesystemSecurity(...)`` on a direct call, or bind it for an agent with
``read_file.bind(security=...)`` / `mamba_worker.tools.builtin_tools`. The sandbox check lives in
``_sandbox.py`` and nowhere else.

Must not import other Mamba capabilities (mcp, prompts, tokens, ...): only ``config`` and ``errors``.
"""

from mamba_worker.tools.filesystem._directory import DirectoryEntry, list_directory
from mamba_worker.tools.filesystem._info import EntryKind, FileInfo, file_info
from mamba_worker.tools.filesystem._operations import copy_file, delete_file, move_file
from mamba_worker.tools.filesystem._read import read_file
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity
from mamba_worker.tools.filesystem._write import append_file, write_file

__all__ = [
    "DirectoryEntry",
    "EntryKind",
    "FileInfo",
    "FilesystemSecurity",
    "append_file",
    "copy_file",
    "delete_file",
    "file_info",
    "list_directory",
    "move_file",
    "read_file",
    "write_file",
]
