"""`file_info` and `FileInfo`: metadata of one file or directory."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.filesystem._io import effective, with_filename
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["EntryKind", "FileInfo", "entry_kind", "file_info", "timestamp"]

EntryKind = Literal["file", "directory", "symlink", "other"]


class FileInfo(BaseModel):
    """Metadata of a file or directory, as `file_info` returns it."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The path as it was asked for."""
    name: str
    """The last component of the resolved path."""
    kind: EntryKind
    """What the path is (symbolic links are followed, so never ``"symlink"``)."""
    size: int
    """Size in bytes."""
    modified: datetime
    """Last content change (UTC)."""
    created: datetime
    """Creation time (UTC) where the system records it; elsewhere (Linux) the last metadata change."""
    accessed: datetime
    """Last access (UTC), as far as the file system keeps it."""
    permissions: str
    """Permission bits in ``ls`` notation, e.g. ``"rw-r--r--"``."""
    is_symlink: bool
    """Whether the path itself is a symbolic link (its target is what is described)."""


def entry_kind(mode: int) -> EntryKind:
    """The kind of a file from its ``st_mode``."""
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISREG(mode):
        return "file"
    return "other"


def timestamp(seconds: float) -> datetime:
    """A ``stat`` time as an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, tz=UTC)


@builtin_tool(idempotent=True, mutates=False)
def file_info(path: StrPath, *, security: FilesystemSecurity | None = None) -> FileInfo:
    """Get the metadata of a file or directory: kind, size, modification and creation times, permissions.

    Args:
        path: Path of the file or directory, absolute or relative to the working directory.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        The metadata.

    Raises:
        SandboxViolation: The security context refused the path.
        FileNotFoundError: Nothing exists at the path.
    """
    sec = effective(security)
    resolved = sec.resolve_path(path)
    link = sec.resolve_path(path, follow_symlinks=False)
    try:
        st = os.stat(resolved)
        is_symlink = os.path.islink(link)
    except OSError as error:
        raise with_filename(error, path) from None
    sec.check_links(st, given=path)
    created = getattr(st, "st_birthtime", st.st_ctime)
    return FileInfo(
        path=os.fspath(path),
        name=resolved.name,
        kind=entry_kind(st.st_mode),
        size=st.st_size,
        modified=timestamp(st.st_mtime),
        created=timestamp(created),
        accessed=timestamp(st.st_atime),
        permissions=stat.filemode(st.st_mode)[1:],
        is_symlink=is_symlink,
    )
