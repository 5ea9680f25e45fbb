"""``celery -A bench.durable_app worker``: `mamba_worker.celery` with the benchmark's runtime.

Identical to ``celery -A mamba_worker worker`` (same app, same tasks, same reconciler thread),
except that the process's runtime is a `BenchRuntime`, so runs may name the scripted model.
It must be installed before `mamba_worker.celery` is imported, which builds the runtime.

With ``MAMBA_BENCH_READY_DIR`` set, a ready worker writes ``<pid>.ready`` there: the embedded
broker has no remote control to ping, so the driver waits for these files instead.
"""

import os
from pathlib import Path

from celery.signals import worker_ready

from bench.durable_workload import BenchRuntime
from mamba_worker.config import AgentSettings
from mamba_worker.durable import set_runtime

set_runtime(BenchRuntime(AgentSettings()))

from mamba_worker.celery import app  # noqa: E402  (after set_runtime, on purpose)


def _announce_ready(**_: object) -> None:
    ready_dir = os.environ.get("MAMBA_BENCH_READY_DIR")
    if ready_dir:
        Path(ready_dir, f"{os.getpid()}.ready").touch()


worker_ready.connect(_announce_ready, weak=False)

__all__ = ["app"]
