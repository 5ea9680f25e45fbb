"""Real ``celery -A mamba_worker worker`` processes for crash tests, forked warm and killed with SIGKILL.

`Zygote` (one per test session, see `tests._support.crash.boot`) forks each worker with Mamba
already imported; the worker then runs Celery's own command line. Each worker leads its own
process group, so `WorkerProcess.kill` SIGKILLs the worker and every pool child at once, as a
machine loss or the OOM killer would. `Workers.kill_all` is what fixtures call at teardown,
whatever happened in the test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests._support.crash.gates import ENV_VAR
from tests._support.wait import wait_until

REPO_ROOT = Path(__file__).resolve().parents[3]
WORKFLOW_MODULE = "tests._support.crash.workflow"
BOOT_TIMEOUT = 120.0
"""Seconds the zygote may take to import Mamba on two busy cores."""
START_TIMEOUT = 60.0
"""Seconds a forked worker may take to consume."""


@dataclass(frozen=True, kw_only=True)
class Stack:
    """Where a test's runs live: its database, its broker and its own queue."""

    database_url: str
    broker_url: str
    queue: str
    lease_seconds: float = 3.0
    reconciler_interval_seconds: float = 0.3
    dispatch_grace_seconds: float = 0.5
    retry_backoff_seconds: float = 0.2

    def env(self) -> dict[str, str]:
        """The ``MAMBA_*`` variables that point a worker at this stack."""
        return {
            "MAMBA_RUNTIME__DATABASE_URL": self.database_url,
            "MAMBA_RUNTIME__BROKER_URL": self.broker_url,
            "MAMBA_RUNTIME__DEFAULT_QUEUE": self.queue,
            "MAMBA_RUNTIME__LEASE_SECONDS": str(self.lease_seconds),
            "MAMBA_RUNTIME__RECONCILER_INTERVAL_SECONDS": str(self.reconciler_interval_seconds),
            "MAMBA_RUNTIME__DISPATCH_GRACE_SECONDS": str(self.dispatch_grace_seconds),
            "MAMBA_RUNTIME__RETRY_BACKOFF_SECONDS": str(self.retry_backoff_seconds),
            "MAMBA_RUNTIME__EMBEDDED_POLLING_SECONDS": "0.02",
            "MAMBA_RUNTIME__WORKFLOW_MODULES": f'["{WORKFLOW_MODULE}"]',
        }


class Zygote:
    """The session's worker factory process (see `tests._support.crash.boot`).

    Args:
        directory: Where requests go.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        env = {key: value for key, value in os.environ.items() if not key.startswith("MAMBA_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._log = directory / "zygote.log"
        with self._log.open("wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests._support.crash.boot", str(directory)],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_booted(self) -> None:
        """Block until the zygote has imported everything; fail if it died."""
        booted = self._directory / "booted"
        wait_until(lambda: booted.exists() or self._process.poll() is not None, timeout=BOOT_TIMEOUT, what="the zygote")
        if self._process.poll() is not None:
            raise AssertionError(f"the crash-test zygote died:\n{self._log.read_text(errors='replace')[-4000:]}")

    def fork(self, ticket: Path, config: Mapping[str, object]) -> int:
        """Fork a worker for ``config``; returns its pid."""
        self.wait_booted()
        assert self._process.stdin is not None
        self._process.stdin.write((json.dumps({**config, "ticket": str(ticket)}) + "\n").encode())
        self._process.stdin.flush()
        pid_file = ticket / "pid"
        wait_until(pid_file.exists, timeout=30, what="the zygote to fork a worker")
        return int(pid_file.read_text())

    def close(self) -> None:
        """Stop the zygote (its workers die with it; tests have killed theirs already)."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        if self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait(timeout=30)


@dataclass
class WorkerProcess:
    """One worker process (forked by the zygote once `start`ed)."""

    name: str
    ticket: Path
    gate_dir: Path
    config: dict[str, object]
    zygote: Zygote
    _pid: int | None = None

    @property
    def pid(self) -> int:
        """The worker's main pid (with ``-P solo`` also the pid that runs the steps)."""
        assert self._pid is not None, f"worker {self.name} was not started"
        return self._pid

    @property
    def started(self) -> bool:
        """Whether the process exists (or existed)."""
        return self._pid is not None

    @property
    def log(self) -> Path:
        """The worker's output."""
        return self.ticket / "output.log"

    def exit_status(self) -> int | None:
        """The exit status once the process ended (negative: killed by that signal), else ``None``."""
        exit_file = self.ticket / "exit"
        return int(exit_file.read_text()) if exit_file.exists() else None

    def alive(self) -> bool:
        """Whether the main process still runs."""
        if self._pid is None or self.exit_status() is not None:
            return False
        try:
            os.kill(self._pid, 0)
        except ProcessLookupError:
            return False
        return True

    def start(self) -> WorkerProcess:
        """Fork the worker (it connects and starts consuming in about a second)."""
        if self._pid is None:
            self._pid = self.zygote.fork(self.ticket, self.config)
        return self

    def let_in(self, *, timeout: float = START_TIMEOUT) -> WorkerProcess:
        """`start` the worker and wait until it consumes."""
        return self.start().wait_ready(timeout=timeout)

    def wait_ready(self, *, timeout: float = START_TIMEOUT) -> WorkerProcess:
        """Block until the worker consumes (it touches ``ready.<pid>``); fail if it died."""
        marker = self.gate_dir / f"ready.{self.pid}"
        wait_until(lambda: marker.exists() or not self.alive(), timeout=timeout, what=f"worker {self.name} to start")
        if not marker.exists():
            raise AssertionError(f"worker {self.name} exited with {self.exit_status()}:\n{self.tail()}")
        return self

    def wait_exit(self, *, timeout: float = 60.0) -> int:
        """Wait until the worker's main process has exited (a fault point killed it, say); returns its status."""
        return wait_until(self.exit_status, timeout=timeout, what=f"worker {self.name} to exit")

    def kill(self) -> None:
        """SIGKILL the worker's whole process group and wait until it is gone."""
        if self._pid is None:
            return
        try:
            os.killpg(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_until(lambda: not self.alive(), timeout=30, what=f"worker {self.name} to die")

    def tail(self, lines: int = 60) -> str:
        """The end of the worker's output (for failure messages)."""
        if not self.log.exists():
            return "(no output)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Workers:
    """Starts workers for one test, and kills every one of them at the end."""

    stack: Stack
    directory: Path
    zygote: Zygote
    created: list[WorkerProcess] = field(default_factory=list)

    def start(
        self,
        name: str,
        *,
        pool: str = "solo",
        concurrency: int = 1,
        faults: str | None = None,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
        held: bool = False,
    ) -> WorkerProcess:
        """Start ``celery -A mamba_worker worker -P <pool>`` on the stack; ``faults`` arms ``MAMBA_FAULTS``.

        ``wait=False`` returns once the process exists (call `WorkerProcess.wait_ready`);
        ``held=True`` only prepares it (call `WorkerProcess.let_in` when the scenario needs it).
        """
        env = {**self.stack.env(), ENV_VAR: str(self.directory), "HOME": str(self.directory / "home")}
        if faults:
            env["MAMBA_FAULTS"] = faults
        env.update(extra_env or {})
        (self.directory / "home").mkdir(exist_ok=True)
        ticket = self.directory / f"worker-{name}"
        ticket.mkdir()
        (ticket / "cwd").mkdir()
        argv = [
            "-A",
            "mamba_worker",
            "worker",
            "-P",
            pool,
            "-c",
            str(concurrency),
            "-Q",
            self.stack.queue,
            "-n",
            f"{name}-{os.getpid()}-{len(self.created)}@%h",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
            "-l",
            "WARNING",
        ]
        config: dict[str, object] = {
            "env": env,
            "unset": [key for key in os.environ if key.startswith("MAMBA_") and key not in env],
            "cwd": str(ticket / "cwd"),
            "argv": argv,
        }
        worker = WorkerProcess(name=name, ticket=ticket, gate_dir=self.directory, config=config, zygote=self.zygote)
        self.created.append(worker)
        if held:
            return worker
        worker.start()
        return worker.wait_ready() if wait else worker

    def owner_of(self, pid: int) -> WorkerProcess:
        """The worker whose process ``pid`` is (its main process, or a pool child in its group)."""
        for worker in self.created:
            if worker.started and worker.pid == pid:
                return worker
        for worker in self.created:
            try:
                if worker.started and os.getpgid(pid) == worker.pid:
                    return worker
            except ProcessLookupError:
                continue
        raise AssertionError(f"no started worker owns pid {pid}")

    def kill_all(self) -> None:
        """SIGKILL every worker this test started."""
        for worker in self.created:
            worker.kill()

    def logs(self) -> str:
        """Every worker's output tail, for failure reports."""
        return "\n".join(
            f"--- worker {w.name} (pid {w.pid if w.started else '-'}) ---\n{w.tail()}" for w in self.created
        )
