"""Opening files and directories the safe way, for every filesystem tool.

Files are opened with ``O_NOFOLLOW`` on the resolved path and checked through the descriptor
(`FilesystemSecurity.check_open_file`) before a byte is read. Files are created or changed through a
descriptor of their parent directory (``openat``), which is itself checked, so a directory swapped
for a symbolic link after the path check cannot redirect the write outside the sandbox.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = [
    "effective",
    "open_directory",
    "open_for_read",
    "open_for_write",
    "open_parent",
    "read_bytes",
    "with_filename",
    "write_all",
    "write_bytes",
]

# No sandbox, no size limit: what a tool does when it is called without a security context.
_UNRESTRICTED = FilesystemSecurity(max_file_size=None)

_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def effective(security: FilesystemSecurity | None) -> FilesystemSecurity:
    """The security context a tool applies: the given one, or no restrictions at all."""
    return _UNRESTRICTED if security is None else security


@contextmanager
def open_for_read(
    security: FilesystemSecurity, given: StrPath, *, content: bool = True
) -> Iterator[tuple[int, Path, os.stat_result]]:
    """Open a file (or directory) for reading after every check; yield ``(fd, resolved, fstat)``.

    Raises:
        SandboxViolation: A rule refused the path or the opened file.
        OSError: The operating system refused (not found, permission, ...).
    """
    resolved = security.resolve_path(given)
    try:
        fd = os.open(resolved, _READ_FLAGS)
    except OSError as error:
        raise with_filename(error, given) from None
    try:
        st = security.check_open_file(fd, path=resolved, given=given, content=content)
        yield fd, resolved, st
    finally:
        os.close(fd)


@contextmanager
def open_directory(security: FilesystemSecurity, given: StrPath) -> Iterator[tuple[int, Path]]:
    """Open a directory after every check; yield ``(fd, resolved)``.

    Raises:
        SandboxViolation: A rule refused the path.
        NotADirectoryError: The path is not a directory.
    """
    resolved = security.resolve_path(given)
    try:
        fd = os.open(resolved, _DIR_FLAGS)
    except OSError as error:
        raise with_filename(error, given) from None
    try:
        security.verify_fd(fd, path=resolved, given=given)
        yield fd, resolved
    finally:
        os.close(fd)


@contextmanager
def open_parent(
    security: FilesystemSecurity, given: StrPath, *, create: bool = False, follow_symlinks: bool = True
) -> Iterator[tuple[int, str, Path]]:
    """Open the directory that holds ``given``; yield ``(dir_fd, name, resolved)``.

    Operations then use ``dir_fd`` with the single component ``name``, so they stay in the checked
    directory whatever happens to the path afterwards.

    Args:
        security: The rules.
        given: The path as the caller gave it.
        create: Create missing parent directories (each checked, after creation, by the descriptor).
        follow_symlinks: Whether a symbolic link in the last component is followed (writes) or is
            the object itself (delete, rename).

    Raises:
        SandboxViolation: A rule refused the path.
        OSError: The operating system refused.
    """
    resolved = security.resolve_path(given, follow_symlinks=follow_symlinks)
    if resolved == security.root and security.sandbox_mode:
        raise IsADirectoryError(errno.EISDIR, "is the sandbox's base directory", os.fspath(given))
    if create and not resolved.parent.exists():
        try:
            os.makedirs(resolved.parent, exist_ok=True)
        except OSError as error:
            raise with_filename(error, given) from None
        # The directories now exist: resolve again, so a link planted meanwhile is caught.
        resolved = security.resolve_path(given, follow_symlinks=follow_symlinks)
    try:
        dir_fd = os.open(resolved.parent, _DIR_FLAGS)
    except OSError as error:
        raise with_filename(error, given) from None
    try:
        security.verify_fd(dir_fd, path=resolved.parent, given=given)
        yield dir_fd, resolved.name, resolved
    finally:
        os.close(dir_fd)


def read_bytes(security: FilesystemSecurity, given: StrPath) -> tuple[bytes, Path]:
    """Read a whole regular file, within ``max_file_size``; return ``(data, resolved)``.

    Raises:
        SandboxViolation: A rule refused the path, the file, or its size.
        IsADirectoryError: The path is a directory.
        OSError: The operating system refused.
    """
    with open_for_read(security, given) as (fd, resolved, st):
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(given))
        security.check_size(st.st_size, given=given)
        limit = security.max_file_size
        chunks: list[bytes] = []
        total = 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if limit is not None and total > limit:
                # The file grew after fstat; the limit still holds.
                security.check_size(total, given=given)
        return b"".join(chunks), resolved


@contextmanager
def open_for_write(
    security: FilesystemSecurity,
    given: StrPath,
    *,
    append: bool = False,
    exclusive: bool = False,
    create_parents: bool = True,
    mode: int = 0o666,
) -> Iterator[tuple[int, Path, os.stat_result]]:
    """Open a regular file for writing (created if missing) after every check; yield ``(fd, resolved, fstat)``.

    The file is not truncated: the caller truncates once it has decided to write.

    Args:
        security: The rules.
        given: The path as the caller gave it.
        append: Open in append mode.
        exclusive: Fail with `FileExistsError` if the file exists.
        create_parents: Create missing parent directories.
        mode: Permission bits for a new file (the umask applies).

    Raises:
        SandboxViolation: A rule refused the path or the file.
        OSError: The operating system refused.
    """
    security.check_writable(security.resolve_path(given), given=given)
    with open_parent(security, given, create=create_parents) as (dir_fd, name, resolved):
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        flags |= (os.O_APPEND if append else 0) | (os.O_EXCL if exclusive else 0)
        try:
            fd = os.open(name, flags, mode, dir_fd=dir_fd)
        except OSError as error:
            raise with_filename(error, given) from None
        try:
            yield fd, resolved, security.check_open_file(fd, path=resolved, given=given)
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_bytes(
    security: FilesystemSecurity, given: StrPath, data: bytes, *, append: bool = False, create_parents: bool = True
) -> Path:
    """Write (or append) ``data`` to a regular file, creating it if needed; return the resolved path.

    Raises:
        SandboxViolation: A rule refused the path, the file, or the resulting size.
        IsADirectoryError: The path is a directory.
        OSError: The operating system refused.
    """
    with open_for_write(security, given, append=append, create_parents=create_parents) as (fd, resolved, st):
        security.check_size(st.st_size + len(data) if append else len(data), given=given)
        if not append:
            # Truncate only now: O_TRUNC at open would have emptied a file that was then refused.
            os.ftruncate(fd, 0)
        write_all(fd, data)
    return resolved


def with_filename(error: OSError, given: StrPath) -> OSError:
    """The same error, naming the path as the caller gave it (the model knows that one)."""
    if error.errno is None:
        return error
    return type(error)(error.errno, error.strerror, os.fspath(given))
