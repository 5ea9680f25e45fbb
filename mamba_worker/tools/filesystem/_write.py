"""`write_file` and `append_file`: the two ways the tools put text into a file."""

from __future__ import annotations

from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.filesystem._io import effective, write_bytes
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["append_file", "write_file"]


@builtin_tool(idempotent=True, mutates=True)
def write_file(
    path: StrPath,
    content: str,
    *,
    encoding: str = "utf-8",
    create_parents: bool = True,
    security: FilesystemSecurity | None = None,
) -> str:
    """Write text to a file, replacing what it held; the file is created if missing.

    Args:
        path: Path of the file, absolute or relative to the working directory.
        content: The complete new content.
        encoding: Text encoding to write.
        create_parents: Create missing parent directories.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        A confirmation naming the file and the number of bytes written.

    Raises:
        SandboxViolation: The security context refused the path or the write.
        IsADirectoryError: The path is a directory.
    """
    data = content.encode(encoding)
    write_bytes(effective(security), path, data, create_parents=create_parents)
    return f"wrote {len(data)} bytes to {path}"


@builtin_tool(idempotent=False, mutates=True)
def append_file(
    path: StrPath,
    content: str,
    *,
    encoding: str = "utf-8",
    create_parents: bool = True,
    security: FilesystemSecurity | None = None,
) -> str:
    """Append text to the end of a file; the file is created if missing.

    Args:
        path: Path of the file, absolute or relative to the working directory.
        content: The text to add at the end (add a newline yourself if you want one).
        encoding: Text encoding to write.
        create_parents: Create missing parent directories.
        security: Rules every path goes through; ``None`` applies none.

    Returns:
        A confirmation naming the file and the number of bytes appended.

    Raises:
        SandboxViolation: The security context refused the path or the write.
        IsADirectoryError: The path is a directory.
    """
    data = content.encode(encoding)
    write_bytes(effective(security), path, data, append=True, create_parents=create_parents)
    return f"appended {len(data)} bytes to {path}"
