"""`grep_search` and `GrepMatch`: lines of files that match a regular expression.

Directories are walked through descriptors without following symbolic links (`filesystem._walk`);
each file is opened through its checked directory and checked again by descriptor. Binary files
(a NUL byte in the first 8 KiB), files over the size limit and files the sandbox refuses are
skipped silently when searching a directory; naming such a file directly raises.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
from collections.abc import Callable
from contextlib import ExitStack, closing
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools._glob import compile_glob
from mamba_worker.tools.errors import SandboxViolation
from mamba_worker.tools.filesystem._io import effective, open_for_read
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath
from mamba_worker.tools.filesystem._walk import display_path, open_entry, walk

__all__ = ["GrepMatch", "grep_search"]

_BINARY_SNIFF = 8192
_MAX_LINE_CHARS = 1000
# Without a security context there is no max_file_size; grep still skips giant files.
_DEFAULT_MAX_FILE_SIZE = 10 * 1024 * 1024


class GrepMatch(BaseModel):
    """One matching line, with the lines around it."""

    model_config = ConfigDict(frozen=True)

    path: str
    """The file, under the searched path as it was given."""
    line_number: int
    """1-based number of the matching line."""
    line: str
    """The matching line (cut after 1000 characters)."""
    context_before: list[str]
    """Up to ``context_lines`` lines before it."""
    context_after: list[str]
    """Up to ``context_lines`` lines after it."""


@builtin_tool(idempotent=True, mutates=False)
def grep_search(
    pattern: str,
    path: StrPath = ".",
    *,
    file_pattern: str = "*",
    context_lines: Annotated[int, Field(ge=0, le=50)] = 0,
    ignore_case: bool = False,
    include_hidden: bool = False,
    max_results: Annotated[int, Field(ge=1, le=10_000)] = 100,
    security: FilesystemSecurity | None = None,
) -> list[GrepMatch]:
    """Search file contents for a regular expression, like ``grep -rn``.

    Binary files are skipped, and so are hidden files and directories unless ``include_hidden``.

    Args:
        pattern: Python regular expression searched for in each line.
        path: A file, or a directory searched recursively.
        file_pattern: Only search files whose name matches this glob (e.g. ``*.py``); a pattern with
            ``/`` is matched against the path below ``path`` (e.g. ``src/**/*.py``).
        context_lines: Lines of context to return before and after each match.
        ignore_case: Match without regard to case.
        include_hidden: Also search names that start with a dot.
        max_results: Stop after this many matching lines.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        The matching lines in file order.

    Raises:
        SandboxViolation: The security context refused the path.
        FileNotFoundError: The path does not exist.
        re.error: The pattern is not a valid regular expression.
    """
    sec = effective(security)
    regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    limit = sec.max_file_size if sec.max_file_size is not None else _DEFAULT_MAX_FILE_SIZE
    search = _Search(regex=regex, context_lines=context_lines, max_results=max_results)
    with ExitStack() as stack:
        fd, resolved, st = stack.enter_context(open_for_read(sec, path, content=False))
        if not stat.S_ISDIR(st.st_mode):
            # A file named directly: every refusal is reported, not skipped.
            sec.check_open_file(fd, path=resolved, given=path)
            sec.check_size(st.st_size, given=path)
            search.file(fd, os.fspath(path), limit=limit)
            return search.matches
        wanted = _file_matcher(file_pattern, include_hidden=include_hidden)
        tree = stack.enter_context(closing(walk(sec, fd, resolved, recursive=True, include_hidden=include_hidden)))
        for entry in tree:
            if search.full:
                break
            if not stat.S_ISREG(entry.st.st_mode) or entry.st.st_size > limit or not wanted(entry.rel, entry.name):
                continue
            shown = display_path(path, entry.rel)
            try:
                file_fd = open_entry(sec, entry, given=shown)
            except (OSError, SandboxViolation):
                continue  # unreadable, a hard link, a disallowed extension: not searchable here
            try:
                search.file(file_fd, shown, limit=limit)
            finally:
                os.close(file_fd)
    return search.matches


class _Search:
    """Collects matches across files until ``max_results``."""

    def __init__(self, *, regex: re.Pattern[str], context_lines: int, max_results: int) -> None:
        self.regex = regex
        self.context_lines = context_lines
        self.max_results = max_results
        self.matches: list[GrepMatch] = []

    @property
    def full(self) -> bool:
        return len(self.matches) >= self.max_results

    def file(self, fd: int, shown: str, *, limit: int) -> None:
        data = _read_limited(fd, limit)
        if data is None or b"\x00" in data[:_BINARY_SNIFF]:
            return
        lines = data.decode("utf-8", errors="replace").splitlines()
        n = self.context_lines
        for index, line in enumerate(lines):
            if self.full:
                return
            if self.regex.search(line):
                self.matches.append(
                    GrepMatch(
                        path=shown,
                        line_number=index + 1,
                        line=_cut(line),
                        context_before=[_cut(text) for text in lines[max(0, index - n) : index]],
                        context_after=[_cut(text) for text in lines[index + 1 : index + 1 + n]],
                    )
                )


def _file_matcher(file_pattern: str, *, include_hidden: bool) -> Callable[[str, str], bool]:
    if "/" in file_pattern:
        segments = [segment for segment in file_pattern.split("/") if segment not in ("", ".")]
        regex = compile_glob(segments, include_hidden=include_hidden)
        return lambda rel, name: regex.fullmatch(rel) is not None
    return lambda rel, name: fnmatch.fnmatchcase(name, file_pattern)


def _read_limited(fd: int, limit: int) -> bytes | None:
    """The whole file, or ``None`` if it turns out bigger than ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := os.read(fd, 1 << 20):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _cut(line: str) -> str:
    if len(line) <= _MAX_LINE_CHARS:
        return line
    return f"{line[:_MAX_LINE_CHARS]}... [{len(line) - _MAX_LINE_CHARS} more characters]"
