"""`read_file`: the content of a text file."""

from __future__ import annotations

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.filesystem._io import effective, read_bytes
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["read_file"]


@builtin_tool(idempotent=True, mutates=False)
def read_file(path: StrPath, *, encoding: str = "utf-8", security: FilesystemSecurity | None = None) -> str:
    """Read the whole content of a text file.

    Args:
        path: Path of the file, absolute or relative to the working directory.
        encoding: Text encoding of the file.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        The file's content.

    Raises:
        SandboxViolation: The security context refused the path or the file.
        FileNotFoundError: The file does not exist.
        IsADirectoryError: The path is a directory.
        UnicodeDecodeError: The content is not text in ``encoding``.
    """
    data, _ = read_bytes(effective(security), path)
    return data.decode(encoding)
