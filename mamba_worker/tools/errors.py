"""Errors raised by the built-in tools.

One exception type covers every refusal by the sandbox or the command policy, so callers catch one
thing: `SandboxViolation`, a leaf of `mamba_worker.errors.MambaError`::

    MambaError
    └── SandboxViolation      a path or command broke a `FilesystemSecurity` or `BashPolicy` rule

Ordinary failures (a missing file, a permission the operating system refused, a bad regular
expression) stay the built-in Python exceptions (`FileNotFoundError`, `PermissionError`,
`re.error`, ...), so direct callers handle them the way they always have. When a tool runs inside an
agent, every one of these reaches the model as a failed tool result instead of ending the run.
"""

from __future__ import annotations

from enum import StrEnum

from mamba_worker.errors import MambaError

__all__ = ["SandboxRule", "SandboxViolation"]


class SandboxRule(StrEnum):
    """The rule a refused path or command broke. The values are stable (they appear in logs)."""

    OUTSIDE_SANDBOX = "outside_sandbox"
    """The path resolves (after ``~``, ``..`` and symbolic links) to a place outside ``base_directory``."""
    NUL_BYTE = "nul_byte"
    """The path contains a NUL byte, which the operating system would cut the path at."""
    PATH_TOO_LONG = "path_too_long"
    """The path, or one of its components, is longer than the operating system allows."""
    UNSAFE_NAME = "unsafe_name"
    """A path component looks like ``..`` or a separator to a human or a normalising tool
    (fullwidth dots, ``\\`` separators) without being one to the operating system."""
    UNSAFE_PATTERN = "unsafe_pattern"
    """A glob pattern is absolute, starts with ``~`` or climbs with ``..``."""
    EXTENSION_NOT_ALLOWED = "extension_not_allowed"
    """The file's extension is not in ``allowed_extensions``."""
    READ_ONLY = "read_only"
    """The security context is read-only and the operation would change something."""
    FILE_TOO_LARGE = "file_too_large"
    """The file, or the file after the write, is larger than ``max_file_size``."""
    HARD_LINK = "hard_link"
    """The file has more than one hard link, so its content may be shared with a file outside."""
    NOT_A_REGULAR_FILE = "not_a_regular_file"
    """The path names a FIFO, socket or device, whose reads could block or never end."""
    COMMAND_NOT_ALLOWED = "command_not_allowed"
    """A command of the shell line is not in the policy's allow-list."""
    COMMAND_DENIED = "command_denied"
    """A command of the shell line is in the policy's deny-list."""
    UNPARSABLE_COMMAND = "unparsable_command"
    """The shell line could not be split into commands, or hides commands the policy cannot see."""


class SandboxViolation(MambaError):
    """A path or a shell command was refused by the sandbox or the command policy.

    Nothing was read, written, listed or run when this is raised.

    Attributes:
        path: The offending path as the caller gave it, or the offending command word for a shell
            policy refusal; ``None`` when there is no single offender.
        rule: The rule that was broken.
    """

    code = "sandbox_violation"

    def __init__(self, message: str, *, path: str | None, rule: SandboxRule) -> None:
        super().__init__(message, path=path, rule=rule)
        self.path = path
        self.rule = rule
