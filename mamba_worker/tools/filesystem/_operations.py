"""`delete_file`, `move_file` and `copy_file`: changes to whole files.

Source and destination are both checked. Delete and rename act on the directory entry (a symbolic
link is removed or renamed, never its target), through a descriptor of the checked parent
directory; a copy reads the source through a checked descriptor and writes like `write_file`.
"""

from __future__ import annotations

import errno
import os
import stat

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.filesystem._io import effective, open_for_read, open_for_write, open_parent, with_filename
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["copy_file", "delete_file", "move_file"]


@builtin_tool(idempotent=True, mutates=True)
def delete_file(path: StrPath, *, security: FilesystemSecurity | None = None) -> str:
    """Delete a file (a symbolic link is removed, not its target). Directories are not deleted.

    Args:
        path: Path of the file, absolute or relative to the working directory.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        A confirmation naming the deleted file.

    Raises:
        SandboxViolation: The security context refused the path or the change.
        FileNotFoundError: The file does not exist.
        IsADirectoryError: The path is a directory.
    """
    sec = effective(security)
    with open_parent(sec, path, follow_symlinks=False) as (dir_fd, name, resolved):
        st = _lstat(name, dir_fd, path)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory (delete_file removes files only)", os.fspath(path))
        sec.check_writable(resolved, given=path)
        try:
            os.unlink(name, dir_fd=dir_fd)
        except OSError as error:
            raise with_filename(error, path) from None
    return f"deleted {path}"


@builtin_tool(idempotent=False, mutates=True)
def move_file(
    source: StrPath,
    destination: StrPath,
    *,
    overwrite: bool = True,
    security: FilesystemSecurity | None = None,
) -> str:
    """Move or rename a file or directory. If the destination is a directory, the source goes inside it.

    Args:
        source: The file or directory to move.
        destination: The new path, or an existing directory to move into.
        overwrite: Replace an existing destination file.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        A confirmation naming both paths.

    Raises:
        SandboxViolation: The security context refused either path or the change.
        FileNotFoundError: The source does not exist.
        FileExistsError: The destination exists and ``overwrite`` is false.
    """
    sec = effective(security)
    with open_parent(sec, source, follow_symlinks=False) as (src_fd, src_name, src_path):
        st = _lstat(src_name, src_fd, source)
        is_dir = stat.S_ISDIR(st.st_mode)
        sec.check_mutable(given=source)
        if not is_dir:
            sec.check_extension(src_path, given=source)
        target = _into_directory(sec, destination, src_name)
        with open_parent(sec, target, follow_symlinks=False) as (dst_fd, dst_name, dst_path):
            if not is_dir:
                sec.check_writable(dst_path, given=target)
            if not overwrite and _exists(dst_name, dst_fd):
                raise FileExistsError(errno.EEXIST, "already exists", os.fspath(target))
            try:
                os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except OSError as error:
                if error.errno != errno.EXDEV or is_dir:
                    raise type(error)(error.errno, error.strerror, os.fspath(source), None, os.fspath(target)) from None
                # Another file system: copy through checked descriptors, then remove the source.
                _copy(sec, source, target, overwrite=overwrite)
                os.unlink(src_name, dir_fd=src_fd)
    return f"moved {source} to {target}"


@builtin_tool(idempotent=True, mutates=True)
def copy_file(
    source: StrPath,
    destination: StrPath,
    *,
    overwrite: bool = True,
    security: FilesystemSecurity | None = None,
) -> str:
    """Copy a file's content and permissions. If the destination is a directory, the copy goes inside it.

    Args:
        source: The file to copy.
        destination: The new file's path, or an existing directory to copy into.
        overwrite: Replace an existing destination file.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        A confirmation naming both paths.

    Raises:
        SandboxViolation: The security context refused either path, the file or its size.
        FileNotFoundError: The source does not exist.
        FileExistsError: The destination exists and ``overwrite`` is false.
        IsADirectoryError: The source is a directory.
    """
    sec = effective(security)
    target = _into_directory(sec, destination, sec.resolve_path(source, follow_symlinks=False).name)
    _copy(sec, source, target, overwrite=overwrite)
    return f"copied {source} to {target}"


def _copy(sec: FilesystemSecurity, source: StrPath, target: StrPath, *, overwrite: bool) -> None:
    with open_for_read(sec, source) as (src_fd, _, st):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory (copy_file copies files only)", os.fspath(source))
        sec.check_size(st.st_size, given=source)
        with open_for_write(sec, target, exclusive=not overwrite, mode=st.st_mode & 0o777) as (dst_fd, _, dst_st):
            if (dst_st.st_dev, dst_st.st_ino) == (st.st_dev, st.st_ino):
                raise ValueError(f"{os.fspath(source)!r} and {os.fspath(target)!r} are the same file")
            os.ftruncate(dst_fd, 0)
            copied = 0
            while chunk := os.read(src_fd, 1 << 20):
                copied += len(chunk)
                # The source may have grown since fstat; the size limit still holds.
                sec.check_size(copied, given=source)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(dst_fd, view) :]
            os.fchmod(dst_fd, st.st_mode & 0o777)


def _into_directory(sec: FilesystemSecurity, destination: StrPath, name: str) -> StrPath:
    """The destination path, or ``destination/name`` when it names an existing directory."""
    if os.path.isdir(sec.resolve_path(destination)):
        return os.path.join(os.fspath(destination), name)
    return destination


def _lstat(name: str, dir_fd: int, given: StrPath) -> os.stat_result:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError as error:
        raise with_filename(error, given) from None


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
