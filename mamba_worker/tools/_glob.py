"""`glob_search`: paths that match a glob pattern, ``**`` included, without leaving the root.

The pattern is matched by walking the tree through descriptors (`filesystem._walk`), never by
handing it to the operating system: symbolic links are not followed, and in sandbox mode a pattern
that is absolute, starts with ``~`` or contains ``..`` is refused before anything is read.
"""

from __future__ import annotations

import os
import re
import stat
from contextlib import ExitStack, closing
from typing import Annotated

from pydantic import Field

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.errors import SandboxRule, SandboxViolation
from mamba_worker.tools.filesystem._io import effective, open_directory
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath
from mamba_worker.tools.filesystem._walk import display_path, walk

__all__ = ["compile_glob", "glob_search", "has_magic"]

_MAGIC = re.compile(r"[*?\[]")


@builtin_tool(idempotent=True, mutates=False)
def glob_search(
    pattern: str,
    root_dir: StrPath = ".",
    *,
    include_hidden: bool = False,
    max_results: Annotated[int, Field(ge=1, le=10_000)] = 1000,
    security: FilesystemSecurity | None = None,
) -> list[str]:
    """Find files and directories whose path matches a glob pattern, e.g. ``**/*.py``.

    ``*`` matches within one name, ``?`` one character, ``[abc]`` one of a set, and ``**`` any
    number of directories. A pattern ending in ``/`` matches directories only. Symbolic links are
    not followed.

    Args:
        pattern: The glob pattern, relative to ``root_dir``.
        root_dir: Directory the pattern starts from.
        include_hidden: Let wildcards match names that start with a dot.
        max_results: Stop after this many paths.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        Matching paths under ``root_dir`` as it was given, depth first and sorted by name.

    Raises:
        SandboxViolation: The security context refused the pattern or the root directory.
        FileNotFoundError: ``root_dir`` does not exist.
    """
    sec = effective(security)
    segments, dirs_only, root_dir = _split_pattern(pattern, root_dir, sec)
    literal = 0
    while literal < len(segments) and not has_magic(segments[literal]):
        literal += 1
    prefix, rest = segments[:literal], segments[literal:]
    # Fail on a missing or refused root, but a missing literal prefix simply matches nothing.
    with open_directory(sec, root_dir):
        pass
    base = _join(root_dir, prefix)
    if not rest:
        resolved = sec.resolve_path(base)
        found = os.path.isdir(resolved) if dirs_only else os.path.lexists(resolved)
        return [os.fspath(base)] if prefix and found else []
    results: list[str] = []
    with ExitStack() as stack:
        try:
            fd, real = stack.enter_context(open_directory(sec, base))
        except (FileNotFoundError, NotADirectoryError):
            return []
        matcher = compile_glob(rest, include_hidden=include_hidden)
        deep = "**" in rest
        tree = walk(
            sec,
            fd,
            real,
            recursive=deep or len(rest) > 1,
            max_depth=None if deep else len(rest),
            # A hidden name can only match where a segment spells the dot out.
            include_hidden=include_hidden or any(segment.startswith(".") for segment in rest),
        )
        for entry in stack.enter_context(closing(tree)):
            if matcher.fullmatch(entry.rel) and (not dirs_only or stat.S_ISDIR(entry.st.st_mode)):
                results.append(display_path(base, entry.rel))
                if len(results) >= max_results:
                    break
    return results


def has_magic(segment: str) -> bool:
    """Whether a pattern segment has wildcards."""
    return _MAGIC.search(segment) is not None


def compile_glob(segments: list[str], *, include_hidden: bool) -> re.Pattern[str]:
    """A regular expression matching the ``/``-separated relative paths the pattern segments match."""
    guard = "" if include_hidden else r"(?!\.)"
    parts: list[str] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            parts.append(rf"{guard}[^/]+(?:/{guard}[^/]+)*" if last else rf"(?:{guard}[^/]+/)*")
        else:
            hidden = "" if segment.startswith(".") else guard
            parts.append(hidden + _translate(segment) + ("" if last else "/"))
    try:
        return re.compile("".join(parts), re.DOTALL)
    except re.error as error:
        raise ValueError(f"invalid glob pattern {'/'.join(segments)!r}: {error.msg}") from None


def _split_pattern(pattern: str, root_dir: StrPath, sec: FilesystemSecurity) -> tuple[list[str], bool, StrPath]:
    if not pattern:
        raise ValueError("the glob pattern is empty; give one such as '**/*.py'")
    if "\x00" in pattern:
        raise SandboxViolation(f"{pattern!r} contains a NUL byte", path=pattern, rule=SandboxRule.NUL_BYTE)
    raw_segments = pattern.split("/")
    if sec.sandbox_mode and (pattern.startswith(("/", "~")) or ".." in raw_segments):
        raise SandboxViolation(
            f"glob pattern {pattern!r} is absolute, starts with '~' or climbs with '..'; "
            "give a pattern relative to root_dir that stays below it",
            path=pattern,
            rule=SandboxRule.UNSAFE_PATTERN,
        )
    expanded = os.path.expanduser(pattern)
    if os.path.isabs(expanded):
        root_dir, expanded = "/", expanded.lstrip("/")
    segments = [segment for segment in expanded.split("/") if segment not in ("", ".")]
    return segments, pattern.endswith("/"), root_dir


def _join(root_dir: StrPath, prefix: list[str]) -> StrPath:
    if not prefix:
        return root_dir
    shown = os.fspath(root_dir)
    return "/".join(prefix) if shown in ("", ".") else os.path.join(shown, *prefix)


def _translate(segment: str) -> str:
    """One pattern segment as a regular expression that never crosses a ``/``."""
    out: list[str] = []
    i, n = 0, len(segment)
    while i < n:
        char = segment[i]
        i += 1
        if char == "*":
            if not out or out[-1] != "[^/]*":
                out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = i + 1 if i < n and segment[i] in "!^" else i
            end = end + 1 if end < n and segment[end] == "]" else end
            end = segment.find("]", end)
            if end < 0:
                out.append(re.escape(char))
                continue
            body = segment[i:end]
            i = end + 1
            negate = body[:1] in ("!", "^")
            if negate:
                body = body[1:]
            escaped = _set_body(body)
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _set_body(body: str) -> str:
    """A ``[...]`` body with every character escaped except the dash of an ``x-y`` range."""
    out: list[str] = []
    k = 0
    while k < len(body):
        if k + 2 < len(body) and body[k + 1] == "-":
            out.append(f"{re.escape(body[k])}-{re.escape(body[k + 2])}")
            k += 3
        else:
            out.append(re.escape(body[k]))
            k += 1
    return "".join(out)
