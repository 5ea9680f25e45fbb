"""`list_directory` and `DirectoryEntry`: what a directory holds, with metadata."""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.filesystem._info import EntryKind, entry_kind, timestamp
from mamba_worker.tools.filesystem._io import effective, open_directory
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath
from mamba_worker.tools.filesystem._walk import display_path, walk

__all__ = ["DirectoryEntry", "list_directory"]


class DirectoryEntry(BaseModel):
    """One entry of a directory listing."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The entry's path, under the listed path as it was given."""
    name: str
    """The entry's name."""
    kind: EntryKind
    """``"file"``, ``"directory"``, ``"symlink"`` (never followed) or ``"other"``."""
    size: int
    """Size in bytes (of the link itself for a symbolic link)."""
    modified: datetime
    """Last modification (UTC)."""
    depth: int
    """1 for the listed directory's children, 2 for their children, and so on."""


@builtin_tool(idempotent=True, mutates=False)
def list_directory(
    path: StrPath = ".",
    *,
    recursive: bool = False,
    max_depth: Annotated[int | None, Field(ge=1)] = None,
    include_hidden: bool = True,
    max_entries: Annotated[int, Field(ge=1, le=10_000)] = 1000,
    security: FilesystemSecurity | None = None,
) -> list[DirectoryEntry]:
    """List the entries of a directory with their kind, size and modification time.

    Symbolic links are listed as links and never followed.

    Args:
        path: The directory, absolute or relative to the working directory.
        recursive: Also list the contents of subdirectories.
        max_depth: With ``recursive``, how many levels to go down (1: only the directory's own entries).
        include_hidden: Include names that start with a dot.
        max_entries: Stop after this many entries.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        The entries, depth first and sorted by name within each directory.

    Raises:
        SandboxViolation: The security context refused the path.
        FileNotFoundError: The directory does not exist.
        NotADirectoryError: The path is not a directory.
    """
    sec = effective(security)
    entries: list[DirectoryEntry] = []
    with open_directory(sec, path) as (fd, resolved):
        tree = walk(sec, fd, resolved, recursive=recursive, max_depth=max_depth, include_hidden=include_hidden)
        with closing(tree):
            for entry in tree:
                if len(entries) >= max_entries:
                    break
                entries.append(
                    DirectoryEntry(
                        path=display_path(path, entry.rel),
                        name=entry.name,
                        kind=entry_kind(entry.st.st_mode),
                        size=entry.st.st_size,
                        modified=timestamp(entry.st.st_mtime),
                        depth=entry.depth,
                    )
                )
    return entries
