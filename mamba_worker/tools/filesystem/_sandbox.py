"""`FilesystemSecurity`: the one place where a path is judged.

Every filesystem tool, glob, grep and the working directory of ``run_bash`` go through
`FilesystemSecurity.resolve_path` before touching the disk, and through `verify_fd` after opening,
so the decision is made on what the operating system actually opened, not on a string.

How a path is judged, in order:

1. Lexical refusals that need no disk access: NUL bytes, over-long paths or components, and (in
   sandbox mode) components that only *look* like ``..`` or a separator (fullwidth dots,
   backslashes), because a later normalising step elsewhere could turn them into real ones.
2. Resolution: ``~`` is expanded, a relative path is joined to ``base_directory`` (not to the
   process's working directory), and ``os.path.realpath`` resolves every symbolic link and ``..``.
3. Containment, in sandbox mode: the resolved path must be ``base_directory`` or below it, compared
   component by component on real paths (``/safe`` does not contain ``/safe-evil``).
4. After opening: the file descriptor's real path (``/proc/self/fd``) must still be inside, which
   closes the window in which a directory is swapped for a symbolic link between check and use.

Hard links cannot be told apart from the original by path, so in sandbox mode a regular file with
more than one link is refused for content access (read, write, append, copy, grep) and for
metadata (``file_info``): it may be the same inode as a file outside. Removing or renaming such a
name is allowed, since that changes only the directory entry inside the sandbox.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mamba_worker.tools.errors import SandboxRule, SandboxViolation

__all__ = ["FilesystemSecurity", "StrPath"]

StrPath = str | os.PathLike[str]

# Linux limits (PATH_MAX includes the terminating NUL). Other systems have the same or smaller
# limits in practice; refusing early gives a clear message instead of ENAMETOOLONG later.
PATH_MAX = 4096
NAME_MAX = 255

_DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


class FilesystemSecurity(BaseModel):
    """Rules that every built-in filesystem tool applies before touching the disk.

    Example:
        ```python
        security = FilesystemSecurity(
            sandbox_mode=True,
            base_directory="/safe/path",
            allowed_extensions=[".txt", ".json", ".py"],
        )
        content = read_file("data.txt", security=security)  # reads /safe/path/data.txt
        ```

    Relative paths are taken relative to ``base_directory`` (or the current working directory when
    there is none). Any refusal raises `SandboxViolation` naming the path and the rule.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sandbox_mode: bool = False
    """Confine every path to ``base_directory`` (after resolving symbolic links, ``..`` and ``~``)."""
    base_directory: Path | None = None
    """Root for relative paths, and the sandbox in sandbox mode. Stored as its real path; it must
    exist. Default in sandbox mode: the working directory at construction time."""
    allowed_extensions: frozenset[str] | None = None
    """Extensions (``".txt"``; case-insensitive) of files whose content may be read or written;
    ``None`` allows every extension, and ``""`` in the set allows files without one."""
    read_only: bool = False
    """Refuse every change: writes, appends, deletes, moves, copies and (unless the bash policy has
    an allow-list) shell commands."""
    max_file_size: int | None = Field(default=_DEFAULT_MAX_FILE_SIZE, ge=0)
    """Largest file, in bytes, that may be read or written (10 MiB by default); ``None``: no limit."""
    allow_hard_links: bool = False
    """In sandbox mode, allow content access to files with more than one hard link."""

    @model_validator(mode="before")
    @classmethod
    def _default_base_directory(cls, data: Any) -> Any:
        # Fix the sandbox at construction: a later os.chdir must not move it.
        if isinstance(data, dict) and data.get("sandbox_mode") and data.get("base_directory") is None:
            return {**data, "base_directory": os.getcwd()}
        return data

    @field_validator("base_directory")
    @classmethod
    def _real_base_directory(cls, value: Path | None) -> Path | None:
        if value is None:
            return None
        real = Path(os.path.realpath(os.path.expanduser(os.fspath(value))))
        if not real.is_dir():
            raise ValueError(f"base_directory {str(value)!r} is not an existing directory; create it first")
        return real

    @field_validator("allowed_extensions")
    @classmethod
    def _normalise_extensions(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        if value is None:
            return None
        return frozenset(ext.lower() if ext == "" or ext.startswith(".") else f".{ext.lower()}" for ext in value)

    # -- resolution ---------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """The directory relative paths are resolved against (``base_directory`` or the cwd)."""
        return self.base_directory if self.base_directory is not None else Path(os.getcwd())

    def contains(self, path: Path) -> bool:
        """Whether an already resolved, absolute path is allowed (always true outside sandbox mode)."""
        if not self.sandbox_mode:
            return True
        base = self.root
        return path == base or path.is_relative_to(base)

    def resolve_path(self, path: StrPath, *, follow_symlinks: bool = True) -> Path:
        """Resolve ``path`` to an absolute real path and check it against the rules.

        Args:
            path: The path as the caller or the model gave it.
            follow_symlinks: Resolve a symbolic link in the last component too. ``False`` resolves
                only the parent, for operations on the link itself (delete, rename).

        Returns:
            The resolved path.

        Raises:
            SandboxViolation: The path is malformed or (in sandbox mode) resolves outside.
        """
        given = os.fspath(path)
        if not isinstance(given, str):
            raise TypeError(f"paths must be str or os.PathLike[str], not {type(given).__name__}")
        self._check_lexical(given)
        joined = os.path.join(self.root, os.path.expanduser(given))
        _check_length(joined, given)
        head, name = os.path.split(joined.rstrip("/") or "/")
        if follow_symlinks or name in ("", ".", ".."):
            resolved = Path(os.path.realpath(joined))
        else:
            resolved = Path(os.path.realpath(head or "/")) / name
        if not self.contains(resolved):
            raise SandboxViolation(
                f"{given!r} resolves to {str(resolved)!r}, outside the sandbox {str(self.root)!r}; "
                "use a path inside the base directory",
                path=given,
                rule=SandboxRule.OUTSIDE_SANDBOX,
            )
        return resolved

    def _check_lexical(self, given: str) -> None:
        if "\x00" in given:
            raise SandboxViolation(f"{given!r} contains a NUL byte; remove it", path=given, rule=SandboxRule.NUL_BYTE)
        _check_length(given, given)
        if not self.sandbox_mode:
            return
        for part in given.split("/"):
            if _is_confusable(part):
                raise SandboxViolation(
                    f"{given!r} has a component {part!r} that imitates '..' or a path separator; use plain names",
                    path=given,
                    rule=SandboxRule.UNSAFE_NAME,
                )

    # -- checks after resolution ----------------------------------------------------------------

    def check_writable(self, path: Path, *, given: StrPath, size: int | None = None) -> None:
        """Refuse a change to ``path``: read-only mode, extension, and the resulting size.

        Args:
            path: The resolved path that would change.
            given: The path as the caller gave it (for the message).
            size: The file's size after the write, when it is a write.

        Raises:
            SandboxViolation: The change breaks a rule.
        """
        self.check_mutable(given=given)
        self.check_extension(path, given=given)
        if size is not None:
            self.check_size(size, given=given)

    def check_mutable(self, *, given: StrPath) -> None:
        """Refuse any change in read-only mode.

        Raises:
            SandboxViolation: The security context is read-only.
        """
        if self.read_only:
            shown = os.fspath(given)
            raise SandboxViolation(
                f"{shown!r} cannot be changed: the security context is read-only",
                path=shown,
                rule=SandboxRule.READ_ONLY,
            )

    def check_extension(self, path: Path, *, given: StrPath) -> None:
        """Refuse a file whose (resolved) extension is not in ``allowed_extensions``.

        Raises:
            SandboxViolation: The extension is not allowed.
        """
        if self.allowed_extensions is None or path.suffix.lower() in self.allowed_extensions:
            return
        shown = os.fspath(given)
        allowed = ", ".join(sorted(repr(ext) for ext in self.allowed_extensions))
        raise SandboxViolation(
            f"{shown!r} has extension {path.suffix.lower()!r}, which is not allowed; allowed: {allowed}",
            path=shown,
            rule=SandboxRule.EXTENSION_NOT_ALLOWED,
        )

    def check_open_file(self, fd: int, *, path: Path, given: StrPath, content: bool = True) -> os.stat_result:
        """Check a just-opened descriptor: where it really is, what it is, how big, how linked.

        Args:
            fd: The open file descriptor.
            path: The resolved path that was opened.
            given: The path as the caller gave it (for the message).
            content: Whether the caller will read or write content (extension, size and regular
                file checks); ``False`` for metadata only.

        Returns:
            The descriptor's ``fstat``.

        Raises:
            SandboxViolation: The descriptor breaks a rule; the caller must close it.
        """
        shown = os.fspath(given)
        self.verify_fd(fd, path=path, given=shown)
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            return st
        self.check_links(st, given=shown)
        if content:
            if not stat.S_ISREG(st.st_mode):
                raise SandboxViolation(
                    f"{shown!r} is not a regular file (a FIFO, socket or device)",
                    path=shown,
                    rule=SandboxRule.NOT_A_REGULAR_FILE,
                )
            self.check_extension(path, given=shown)
        return st

    def check_links(self, st: os.stat_result, *, given: StrPath) -> None:
        """In sandbox mode, refuse a regular file with more than one hard link.

        Raises:
            SandboxViolation: The file may share its inode with a file outside the sandbox.
        """
        if self.sandbox_mode and not self.allow_hard_links and st.st_nlink > 1 and stat.S_ISREG(st.st_mode):
            shown = os.fspath(given)
            raise SandboxViolation(
                f"{shown!r} has {st.st_nlink} hard links and may share its content with a file outside "
                "the sandbox; copy the content into a new file instead",
                path=shown,
                rule=SandboxRule.HARD_LINK,
            )

    def check_size(self, size: int, *, given: StrPath) -> None:
        """Refuse a file of ``size`` bytes when it is over ``max_file_size``.

        Raises:
            SandboxViolation: The size is over the limit.
        """
        if self.max_file_size is not None and size > self.max_file_size:
            shown = os.fspath(given)
            raise SandboxViolation(
                f"{shown!r} is (or would become) {size} bytes, over the limit of {self.max_file_size} bytes; "
                "work on a smaller file or raise max_file_size",
                path=shown,
                rule=SandboxRule.FILE_TOO_LARGE,
            )

    def verify_fd(self, fd: int, *, path: Path, given: StrPath) -> None:
        """Check that an open descriptor really is inside the sandbox.

        On Linux the descriptor's real path comes from ``/proc/self/fd``; elsewhere the descriptor
        must be the same inode as ``path``, which was checked before opening.

        Raises:
            SandboxViolation: The descriptor is outside (the path changed under us).
        """
        if not self.sandbox_mode:
            return
        shown = os.fspath(given)
        try:
            actual = Path(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            actual = None
        if actual is not None:
            inside = self.contains(actual)
        else:
            st, expected = os.fstat(fd), os.stat(path, follow_symlinks=False)
            inside = (st.st_dev, st.st_ino) == (expected.st_dev, expected.st_ino)
        if not inside:
            raise SandboxViolation(
                f"{shown!r} changed while it was being opened and now leads outside the sandbox",
                path=shown,
                rule=SandboxRule.OUTSIDE_SANDBOX,
            )


def _check_length(path: str, given: str) -> None:
    encoded = os.fsencode(path)
    too_long = len(encoded) >= PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/"))
    if too_long:
        shown = given if len(given) <= 80 else f"{given[:77]}..."
        raise SandboxViolation(
            f"{shown!r} is too long (paths up to {PATH_MAX - 1} bytes, names up to {NAME_MAX} bytes)",
            path=given,
            rule=SandboxRule.PATH_TOO_LONG,
        )


def _is_confusable(part: str) -> bool:
    """Whether a path component imitates ``..``, ``.`` or a separator without being one."""
    if "\\" in part and any(piece in (".", "..") for piece in part.split("\\")):
        return True
    normalised = unicodedata.normalize("NFKC", part)
    if normalised == part:
        return False
    return normalised in (".", "..") or "/" in normalised or "\\" in normalised
