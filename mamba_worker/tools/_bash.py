"""`run_bash` and `BashResult`: a shell command with a timeout, an output cap and a clean environment.

The command runs in its own session (``start_new_session``), so its process group holds every
process it starts. When the timeout passes, the whole group gets ``SIGKILL``; when the shell exits,
whatever it left running in the background gets ``SIGKILL`` too, so no call leaves processes
behind (a program that calls ``setsid`` itself escapes this; the drain of its output is bounded).

With a `FilesystemSecurity`, the command starts in ``base_directory`` (or a ``cwd`` inside it) and
``HOME`` points there. This is not a filesystem jail: the shell can still name any path the
operating system lets it. Confine what it may run with a `BashPolicy` allow-list, and run the worker
as an unprivileged user or in a container when commands come from a model.
"""

from __future__ import annotations

import errno
import os
import selectors
import shutil
import signal
import subprocess
import time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.tools._bash_policy import BashPolicy, scrubbed_environment
from mamba_worker.tools._builtin import builtin_tool
from mamba_worker.tools.errors import SandboxRule, SandboxViolation
from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity, StrPath

__all__ = ["BashResult", "run_bash"]

_DRAIN_SECONDS = 2.0  # how long to wait for output after the processes were killed
_POLL_SECONDS = 0.05  # only where pidfd_open is missing: how often to check for the shell's exit


class BashResult(BaseModel):
    """What a shell command produced."""

    model_config = ConfigDict(frozen=True)

    stdout: str
    """Standard output (with a truncation marker in the middle if it was cut)."""
    stderr: str
    """Standard error (with a truncation marker in the middle if it was cut)."""
    exit_code: int
    """The shell's exit status; negative for a signal (``-9`` after a timeout)."""
    timed_out: bool
    """Whether the timeout killed the command."""
    truncated: bool
    """Whether stdout or stderr was cut to the output limit."""

    @property
    def return_code(self) -> int:
        """Alias of `exit_code`, the name mamba-agents used."""
        return self.exit_code


@builtin_tool(idempotent=False, mutates=True)
def run_bash(
    command: str,
    *,
    timeout: Annotated[float, Field(gt=0, le=600)] = 30,
    cwd: StrPath | None = None,
    security: FilesystemSecurity | None = None,
    policy: BashPolicy | None = None,
    max_output_chars: int = 30_000,
) -> BashResult:
    """Run a bash command and return its output, exit code and whether it timed out.

    The command gets no input; processes it leaves running in the background are stopped when it
    ends. A non-zero exit code is a normal result, not an error.

    Args:
        command: The bash command line.
        timeout: Seconds before the command and everything it started are killed.
        cwd: Working directory; default: the sandbox or current directory.
        security: Sets the working directory and ``HOME`` to the sandbox, and refuses any command in
            read-only mode unless ``policy`` has an allow-list.
        policy: Allowed or denied commands, a timeout cap and extra environment variables.
        max_output_chars: Characters kept of each of stdout and stderr (the start and the end).

    Returns:
        The result; ``timed_out`` is set when the timeout killed the command.

    Raises:
        SandboxViolation: The policy or the security context refused the command or ``cwd``.
        FileNotFoundError: ``cwd`` does not exist.
    """
    if not command.strip():
        raise ValueError("the command is empty; give a bash command line")
    if policy is not None:
        policy.check(command)
        if policy.max_timeout is not None:
            timeout = min(timeout, policy.max_timeout)
    workdir, home = _working_directory(cwd, security, policy)
    env = scrubbed_environment(os.environ, policy=policy, home=home)
    shell = shutil.which("bash", path=env.get("PATH")) or "/bin/sh"
    process = subprocess.Popen(
        [shell, "-c", command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    stdout, stderr = _Capture(max_output_chars), _Capture(max_output_chars)
    try:
        timed_out = _collect(process, stdout, stderr, timeout=timeout)
    finally:
        if process.returncode is None:
            # Also on KeyboardInterrupt or any error in the loop: never leave the group running.
            _kill_group(process)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
        exit_code = process.wait()
    out, out_cut = stdout.text()
    err, err_cut = stderr.text()
    return BashResult(stdout=out, stderr=err, exit_code=exit_code, timed_out=timed_out, truncated=out_cut or err_cut)


def _working_directory(
    cwd: StrPath | None, security: FilesystemSecurity | None, policy: BashPolicy | None
) -> tuple[str | None, str | None]:
    """The directory to start in and the ``HOME`` to set (``None``: inherit / leave as is)."""
    if security is None:
        return (os.fspath(cwd) if cwd is not None else None), None
    if security.read_only and (policy is None or policy.allowed_commands is None):
        raise SandboxViolation(
            "run_bash cannot run in a read-only security context without a command allow-list; "
            "give a BashPolicy with allowed_commands",
            path=None,
            rule=SandboxRule.READ_ONLY,
        )
    given = os.fspath(cwd) if cwd is not None else "."
    resolved = security.resolve_path(given)
    if not resolved.exists():
        raise FileNotFoundError(errno.ENOENT, "working directory does not exist", given)
    if not resolved.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "working directory is not a directory", given)
    return str(resolved), (str(security.root) if security.sandbox_mode else None)


def _collect(process: subprocess.Popen[bytes], stdout: _Capture, stderr: _Capture, *, timeout: float) -> bool:
    """Read both pipes until the shell is done and they close; return whether the timeout hit."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + timeout
    timed_out = finished = False
    open_pipes = 2
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ, stdout)
        selector.register(process.stderr, selectors.EVENT_READ, stderr)
        pidfd = _pidfd(process.pid)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, None)
        try:
            while open_pipes or not finished:
                now = time.monotonic()
                if not finished:
                    exited = _has_exited(process)
                    if exited or now >= deadline:
                        # The shell is done, or out of time: end everything left in its group, then
                        # drain what was written, for a bounded time.
                        timed_out = not exited
                        _kill_group(process)
                        finished, deadline = True, now + _DRAIN_SECONDS
                        if pidfd is not None:
                            selector.unregister(pidfd)
                        continue
                elif now >= deadline:
                    break
                wait = deadline - now if finished or pidfd is not None else min(deadline - now, _POLL_SECONDS)
                for key, _ in selector.select(wait):
                    if key.data is None:
                        continue  # the pidfd: the shell exited; the top of the loop handles it
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        key.data.add(chunk)
                    else:
                        selector.unregister(key.fileobj)
                        open_pipes -= 1
        finally:
            if pidfd is not None:
                os.close(pidfd)
    return timed_out


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _has_exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the shell exited, without reaping it: while it is a zombie its group id stays ours."""
    if not hasattr(os, "waitid"):  # macOS: poll() reaps, leaving a tiny window for group id reuse
        return process.poll() is not None
    try:
        return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


class _Capture:
    """Keeps the first and the last ``limit`` bytes of a stream, and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.limit:
                del self.tail[: len(self.tail) - self.limit]

    def text(self) -> tuple[str, bool]:
        """The decoded output, cut in the middle with a visible marker if over the limit."""
        if self.total == len(self.head) + len(self.tail):
            first = last = (self.head + self.tail).decode("utf-8", errors="replace")
            if len(first) <= self.limit:
                return first, False
        else:
            first = self.head.decode("utf-8", errors="replace")
            last = self.tail.decode("utf-8", errors="replace")
        half = self.limit // 2
        rest = self.limit - half
        start = first[:half]
        end = last[len(last) - rest :] if rest else ""
        omitted = self.total - len(start.encode()) - len(end.encode())
        return f"{start}\n[... {omitted} bytes of output truncated ...]\n{end}", True
