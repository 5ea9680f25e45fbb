"""File-based gates shared by a test and its worker subprocesses (one directory per test).

A gate is a named point (``think-1``, ``act-lookup``). Whenever a worker reaches it, it appends its
pid to ``entered.<point>``; while ``hold.<point>`` exists it then waits. The test holds a gate before
the worker gets there, waits for the entry, kills the worker, and removes the hold so the next
attempt passes. The directory is handed to workers in the ``CRASHTEST_DIR`` environment variable
(not a ``MAMBA_`` one: it is not a setting).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from tests._support.wait import wait_until

ENV_VAR = "CRASHTEST_DIR"
POLL_SECONDS = 0.02


def gate_dir() -> Path:
    """The directory of this process's gates (from ``CRASHTEST_DIR``)."""
    value = os.environ.get(ENV_VAR)
    if not value:
        raise RuntimeError(f"{ENV_VAR} is not set: crash-test tools and models need a gate directory")
    return Path(value)


def append_line(path: Path, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor (atomic between processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def pass_gate(point: str) -> None:
    """Record that this process reached ``point``, then wait while it is held."""
    directory = gate_dir()
    append_line(directory / f"entered.{point}", str(os.getpid()))
    hold = directory / f"hold.{point}"
    while hold.exists():
        await asyncio.sleep(POLL_SECONDS)


class Gates:
    """The test's side of a gate directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def hold(self, point: str) -> None:
        """Make workers that reach ``point`` wait there."""
        (self.directory / f"hold.{point}").touch()

    def release(self, point: str) -> None:
        """Let waiting and later workers pass ``point``."""
        (self.directory / f"hold.{point}").unlink(missing_ok=True)

    def entries(self, point: str) -> list[int]:
        """Pids of the processes that reached ``point``, in order (one per passage)."""
        path = self.directory / f"entered.{point}"
        if not path.exists():
            return []
        # Only whole lines: the file exists a moment before its first line is in it.
        return [int(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]

    def wait_entered(self, point: str, *, count: int = 1, timeout: float = 60.0) -> list[int]:
        """Wait until ``point`` was reached ``count`` times; returns the pids of the entries."""

        def reached() -> list[int] | None:
            pids = self.entries(point)
            return pids if len(pids) >= count else None

        return wait_until(reached, timeout=timeout, what=f"{count} entries at gate {point}")

    def wait_done(self, task_id: str, *, timeout: float = 60.0) -> str:
        """Wait until a worker has run the task ``task_id``; returns the step's outcome (``not_claimable``...)."""
        path = self.directory / f"done.{task_id}"

        def written() -> str | None:
            # The file exists a moment before its line is in it (open, then write).
            text = path.read_text() if path.exists() else ""
            return text.strip() if text.endswith("\n") else None

        return wait_until(written, timeout=timeout, what=f"task {task_id} to run")

    def lines(self, name: str) -> list[str]:
        """Lines of the log file ``name`` in the gate directory (what a tool appended)."""
        path = self.directory / name
        text = path.read_text() if path.exists() else ""
        return [line.rstrip("\n") for line in text.splitlines(keepends=True) if line.endswith("\n")]
