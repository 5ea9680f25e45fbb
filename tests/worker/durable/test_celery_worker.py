"""``celery -A mamba_worker worker``, as an operator starts it: a real process configured by environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mamba_client.schemas import Run, RunStatus, SubmitRun
from mamba_worker.durable import RunService, default_registry
from tests._support.durable import RuntimeFactory
from tests._support.wait import wait_until

ROOT = Path(__file__).resolve().parents[3]

StartWorker = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def celery_worker(factory: RuntimeFactory, tmp_path: Path) -> Iterator[StartWorker]:
    """Start ``celery -A mamba_worker worker`` over the test's database, broker and queue; killed at the end."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(*pool: str, env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "MAMBA_RUNTIME__DATABASE_URL": factory.database_url,
            "MAMBA_RUNTIME__BROKER_URL": factory.broker_url,
            "MAMBA_RUNTIME__DEFAULT_QUEUE": factory.queue,
            "MAMBA_RUNTIME__WORKFLOW_MODULES": json.dumps(["tests._support.durable_workflows"]),
            "MAMBA_RUNTIME__LEASE_SECONDS": "5",
            "MAMBA_RUNTIME__RECONCILER_INTERVAL_SECONDS": "0.5",
            "MAMBA_RUNTIME__EMBEDDED_POLLING_SECONDS": "0.02",
            **(env_extra or {}),
        }
        log = tmp_path / f"worker-{len(started)}.log"
        command = [sys.executable, "-m", "celery", "-A", "mamba_worker", "worker", "-l", "INFO"]
        command += ["-n", f"test-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", *pool]
        with log.open("wb") as output:
            # Its own working directory: no .env or config.toml of the repository is read.
            process = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append((process, log))
        return process

    yield start
    for process, _ in started:
        # The whole process group: prefork children too.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def _settled(service: RunService, run_id: str, log: Path) -> Run:
    def done() -> Run | None:
        run = service.get(run_id)
        return run if run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None

    try:
        run = wait_until(done, timeout=90, interval=0.1, what=f"run {run_id} on the celery worker")
    except AssertionError:
        print(log.read_text(errors="replace")[-5000:])
        raise
    assert run is not None
    return run


@pytest.mark.slow
@pytest.mark.parametrize(
    ("db", "broker", "pool"),
    [
        ("sqlite", "embedded", ("-c", "2")),  # Celery's default pool: prefork children
        ("postgresql", "redis", ("-P", "solo")),
    ],
    indirect=["db", "broker"],
)
def test_celery_worker_runs_submitted_runs_to_completion(
    factory: RuntimeFactory, celery_worker: StartWorker, tmp_path: Path, pool: tuple[str, ...]
) -> None:
    service = RunService(factory.runtime(registry=default_registry))
    react = service.submit(SubmitRun(input="What is 2 + 2?", model="dt_answer_four"))
    counting = service.submit(SubmitRun(workflow="dt_count", input="3", model="offline"))

    worker = celery_worker(*pool)

    log = tmp_path / "worker-0.log"
    assert _settled(service, react.id, log).output == "4"
    assert _settled(service, counting.id, log).output == 3
    assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
    steps = service.steps(counting.id)
    assert [s.name for s in steps] == ["start", "count", "count", "count", "done"]
    assert all(s.attempt == 1 for s in steps)


@pytest.mark.slow
@pytest.mark.parametrize("broker", ["embedded", "redis"], indirect=True)
def test_celery_worker_with_q_consumes_a_routed_workflows_queue(
    factory: RuntimeFactory, celery_worker: StartWorker, tmp_path: Path
) -> None:
    routed = f"{factory.queue}-routed"
    routes = {"dt_count": {"queue": routed, "priority": 6}}
    service = RunService(factory.runtime(registry=default_registry, routes=routes))
    run = service.submit(SubmitRun(workflow="dt_count", input="2", model="offline"))
    assert (run.queue, run.priority) == (routed, 6)

    # Only the routed queue: the run's steps must all arrive there.
    celery_worker("-P", "solo", "-Q", routed, env_extra={"MAMBA_RUNTIME__ROUTES": json.dumps(routes)})

    assert _settled(service, run.id, tmp_path / "worker-0.log").output == 2
