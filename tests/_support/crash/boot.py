"""``python -m tests._support.crash.boot DIR``: a zygote that forks crash-test workers ready-imported.

Importing Mamba costs several CPU-seconds, and a crash test needs two or three workers; on two
shared cores, cold starts would dominate the suite. So one process per test session imports
Mamba, Celery, the broker transports and the crash workflow module, loads the tokenizer tables,
and then forks a worker for each request a test writes to its stdin (one JSON line: ``ticket``
folder, ``env``, ``unset``, ``cwd``, ``argv``). The child starts its own session
(process group), sends its output to ``<ticket>/output.log``, applies the environment and runs
Celery's own command line, ``celery -A mamba_worker worker ...``: a real worker process, as the
``celery`` script would start it. Nothing in Mamba reads the environment at import time, and the
zygote runs no thread (forking is safe), so a forked worker behaves like a cold one.

The zygote writes ``<ticket>/pid`` after each fork, reaps its children and writes
``<ticket>/exit`` with the exit status (negative: the signal that killed it). It exits at the end
of its stdin (the test session closed it, or is gone), and its workers die with it
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    partial.rename(path)  # atomic: readers never see half a file


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the zygote dies, so a killed test session leaves no worker behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: teardown still kills every worker it started


def _run_worker(request: dict[str, Any]) -> None:
    """In the forked child: become the worker; never returns."""
    code = 1
    try:
        os.setsid()
        _die_with_parent()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # the zygote's request pipe is not the worker's
        os.close(devnull)
        ticket = Path(request["ticket"])
        log = os.open(ticket / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        for name in request["unset"]:
            os.environ.pop(name, None)
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["celery", *request["argv"]]
        import celery.__main__

        celery.__main__.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)  # not the zygote's atexit handlers: they belong to the parent


def _reap(children: dict[int, Path]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        ticket = children.pop(pid, None)
        if ticket is not None:
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            _write(ticket / "exit", str(code))


def main() -> None:
    directory = Path(sys.argv[1])
    # The slow part, done once: imports, and the tokenizer's tables (cached per process; every
    # Runtime builds a TokenCounter).
    import kombu.transport.pyamqp
    import kombu.transport.redis  # noqa: F401

    import mamba_worker.durable  # noqa: F401
    import tests._support.crash.workflow  # noqa: F401
    from mamba_worker.tokens import TokenCounter

    TokenCounter()
    children: dict[int, Path] = {}
    # Children are reaped as they exit (the handler runs between two reads of stdin).
    signal.signal(signal.SIGCHLD, lambda _signum, _frame: _reap(children))
    _write(directory / "booted", str(os.getpid()))
    # One request per line; end of file: the test session is gone (or done), and so is the zygote.
    while line := sys.stdin.readline():
        request = json.loads(line)
        ticket = Path(request["ticket"])
        # Blocked until the child is in `children`, so an instant exit is not reaped unrecorded.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        try:
            pid = os.fork()
            if pid == 0:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _run_worker(request)
            children[pid] = ticket
            _write(ticket / "pid", str(pid))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})


if __name__ == "__main__":
    main()
