"""Walking a directory tree through descriptors, for `list_directory`, `glob_search` and `grep_search`.

Each directory is opened with ``O_NOFOLLOW`` relative to its already checked parent descriptor, so
the walk never leaves the tree it started in: symbolic links are reported, never followed, and in
sandbox mode a link whose target is outside the sandbox is left out altogether.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["WalkEntry", "display_path", "open_entry", "walk"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True, kw_only=True)
class WalkEntry:
    """One entry met by `walk`. ``dir_fd`` is valid only until the walk moves on."""

    rel: str
    """Path relative to the walk's root, ``/``-separated."""
    name: str
    """The entry's name."""
    depth: int
    """1 for the root's children, 2 for their children, ..."""
    st: os.stat_result
    """The entry's own ``lstat``."""
    real: Path
    """The entry's real path (its parent's real path and its name)."""
    dir_fd: int
    """Descriptor of the directory holding the entry."""


def walk(
    security: FilesystemSecurity,
    root_fd: int,
    root: Path,
    *,
    recursive: bool,
    max_depth: int | None = None,
    include_hidden: bool = True,
) -> Generator[WalkEntry, None, None]:
    """Yield the entries under an open directory, depth first, sorted by name.

    Args:
        security: The rules (for leaving out links that point outside the sandbox).
        root_fd: Descriptor of the (checked) directory to walk.
        root: Its real path.
        recursive: Descend into subdirectories.
        max_depth: Deepest level to yield (1: the root's children only); ``None``: no limit.
        include_hidden: Include names starting with a dot (and descend into such directories).
    """
    # An explicit stack, not recursion: a deep tree must not hit Python's recursion limit.
    stack: list[tuple[int, Path, str, int, Iterator[str]]] = []
    try:
        fd = os.dup(root_fd)
        stack.append((fd, root, "", 1, iter(_names(fd))))
        while stack:
            fd, real, rel, depth, names = stack[-1]
            name = next(names, None)
            if name is None:
                os.close(fd)
                stack.pop()
                continue
            if not include_hidden and name.startswith("."):
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError:
                continue  # removed while we walked, or unreadable: not an entry any more
            child = real / name
            if stat.S_ISLNK(st.st_mode) and not security.contains(Path(os.path.realpath(child))):
                continue
            child_rel = f"{rel}/{name}" if rel else name
            yield WalkEntry(rel=child_rel, name=name, depth=depth, st=st, real=child, dir_fd=fd)
            if recursive and stat.S_ISDIR(st.st_mode) and (max_depth is None or depth < max_depth):
                try:
                    child_fd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    continue
                try:
                    child_names = _names(child_fd)
                except OSError:
                    os.close(child_fd)
                    continue
                stack.append((child_fd, child, child_rel, depth + 1, iter(child_names)))
    finally:
        for fd, *_ in stack:
            os.close(fd)


def open_entry(security: FilesystemSecurity, entry: WalkEntry, *, given: str) -> int:
    """Open a regular-file entry for reading, through its directory, and check it; return the fd.

    Raises:
        SandboxViolation: The file breaks a rule.
        OSError: The operating system refused.
    """
    fd = os.open(entry.name, _FILE_FLAGS, dir_fd=entry.dir_fd)
    try:
        security.check_open_file(fd, path=entry.real, given=given)
    except BaseException:
        os.close(fd)
        raise
    return fd


def display_path(base: StrPath, rel: str) -> str:
    """A result path in the caller's frame: ``rel`` under ``base`` as the caller wrote it."""
    shown = os.fspath(base)
    if shown in ("", "."):
        return rel
    return os.path.join(shown, rel) if rel else shown


def _names(fd: int) -> list[str]:
    return sorted(os.listdir(fd))
