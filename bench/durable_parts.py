"""Where a durable step's time goes: the bench workload run in this process, its parts timed.

No Celery and no second process: `StepExecutor.execute` is called directly (with
``inline_steps=['*']`` one call runs a whole run; with ``hop`` one call per step, as each Celery
task would), so what is left is the runtime's own cost per step. The parts are timed by wrapping
the methods that do them; the same workflow run in-process without durability
(`ReActWorkflow.run`, no SQL, no broker) is the baseline a durable step adds to.

Usage:
    .venv/bin/python bench/durable_parts.py                      # PostgreSQL + Redis, both modes
    .venv/bin/python bench/durable_parts.py --backend sqlite --runs 10

Needs PostgreSQL and Redis on 127.0.0.1 for the default backend (a database ``mamba_parts_<pid>``
is created and dropped; Redis database 13 must be empty and is flushed).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import inspect
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("MAMBA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("MAMBA_BENCH_PARTS_REDIS_URL", "redis://127.0.0.1:6379/13")

TIMINGS: dict[str, list[float]] = collections.defaultdict(list)
CPU_TIMINGS: dict[str, list[float]] = collections.defaultdict(list)
"""The calling thread's CPU in each timed call (`time.thread_time`: what is not waiting)."""


@contextlib.contextmanager
def _timing(label: str) -> Iterator[None]:
    """Add the block's wall time and its thread's CPU to ``label``'s timings."""
    start, cpu = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        TIMINGS[label].append((time.perf_counter() - start) * 1000)
        CPU_TIMINGS[label].append((time.thread_time() - cpu) * 1000)


def _timed(owner: Any, name: str, label: str) -> None:
    """Time every call of ``owner.name`` under ``label``; a coroutine function from its start to its return."""
    original: Callable[..., Any] = getattr(owner, name)
    wrapper: Callable[..., Any]
    if inspect.iscoroutinefunction(original):

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _timing(label):
                return await original(*args, **kwargs)

    else:

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _timing(label):
                return original(*args, **kwargs)

    setattr(owner, name, functools.wraps(original)(wrapper))


def _instrument() -> None:
    from mamba_worker.durable import _claim, _commit, _context, _dispatch, _events, _executor, _journal
    from mamba_worker.durable.store import _pg_connections, _writer
    from mamba_worker.workflows import _stepwise

    _timed(_claim.StepClaimer, "claim", "claim (transaction + its live event)")
    _timed(_executor, "send_commit", "send_commit (the commit's Python, and its send or its write)")
    _timed(_commit.CommitInFlight, "confirm", "the commit's outcome read (CommitInFlight.confirm; the wait left)")
    _timed(_context.DurableStepContext, "__init__", "DurableStepContext (a step's recording context)")
    _timed(_stepwise.StepWorkflow, "run_step", "the workflow's step (model or tool, recorded)")
    _timed(_writer.StepWriter, "send_step", "commit sent (RunStore.send_step; a run's last step: written and awaited)")
    _timed(_writer.StepWriter, "record_model_call", "model-call ledger row (think)")
    _timed(_pg_connections.ThreadConnections, "settle", "a write's replies awaited (model-call row, commit)")
    _timed(_writer.StepWriter, "record_tool_call_finished", "tool-call ledger row (act)")
    _timed(_events.EventPublisher, "publish", "live events to Redis")
    _timed(_dispatch.Dispatcher, "publish", "successor's Celery message (send_task)")
    _timed(_journal.StateJournal, "split", "state to JSON (head + the lists' new items)")
    _timed(_journal.StateJournal, "load", "state from JSON (head joined with its chunks)")
    _timed(_journal.StateJournal, "load_after", "state from JSON, reusing what the worker holds (new items only)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--mode", choices=["both", "inline", "hop"], default="both")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--k", type=int, default=10, help="think/act/observe iterations per run")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ["MAMBA_BENCH_K"] = str(args.k)
    os.environ["MAMBA_RUNTIME__WORKFLOW_MODULES"] = '["bench.durable_workload"]'
    os.environ["MAMBA_MODEL_BACKEND__MODEL"] = "bench:scripted"
    database = f"mamba_parts_{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="mamba-parts-"))
    if args.backend == "postgres":
        if redis.Redis.from_url(REDIS_URL).dbsize():
            raise SystemExit(f"{REDIS_URL} is not empty")
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        os.environ["MAMBA_RUNTIME__DATABASE_URL"] = f"{base}/{database}"
        os.environ["MAMBA_RUNTIME__BROKER_URL"] = REDIS_URL
    else:
        os.environ["MAMBA_RUNTIME__DATABASE_URL"] = f"sqlite:///{work / 'state.db'}"
        os.environ["MAMBA_RUNTIME__BROKER_URL"] = f"mamba+sqlite:///{work / 'broker.db'}"
    try:
        _run(args)
    finally:
        if args.backend == "postgres":
            redis.Redis.from_url(REDIS_URL).flushdb()
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _run(args: argparse.Namespace) -> None:
    steps = 3 * args.k
    from bench.durable_workload import workflow_alone_ms_per_step

    baseline = workflow_alone_ms_per_step(runs=args.runs)
    _instrument()
    modes = ["inline", "hop"] if args.mode == "both" else [args.mode]
    print(f"backend {args.backend}; the same workflow in-process without durability: {baseline:.2f} ms/step\n")
    for mode in modes:
        _measure_mode(mode, runs=args.runs, steps=steps)


def _measure_mode(mode: str, *, runs: int, steps: int) -> None:
    from bench.durable_workload import SCRIPTED_MODEL, TOOL, BenchRuntime
    from mamba_client.schemas import RunStatus, SubmitRun
    from mamba_worker.agent import run_blocking
    from mamba_worker.config import AgentSettings
    from mamba_worker.durable import RunService, StepExecutor

    os.environ["MAMBA_RUNTIME__INLINE_STEPS"] = '["*"]' if mode == "inline" else "[]"
    runtime = BenchRuntime(AgentSettings())
    service = RunService(runtime)
    executor = StepExecutor(runtime)
    request = SubmitRun(input="Look things up, then answer.", model=SCRIPTED_MODEL, tools=[TOOL])

    def one() -> tuple[float, float]:
        run = service.submit(request)
        start, cpu = time.perf_counter(), time.process_time()
        for seq in [1] if mode == "inline" else range(1, steps + 1):
            run_blocking(executor.execute(run.id, seq))
        elapsed = (time.perf_counter() - start) * 1000 / steps
        cpu_ms = (time.process_time() - cpu) * 1000 / steps
        if service.get(run.id).status != RunStatus.SUCCEEDED:
            raise SystemExit(f"run {run.id} did not succeed")
        return elapsed, cpu_ms

    for _ in range(3):
        one()
    TIMINGS.clear()
    CPU_TIMINGS.clear()
    measured = [one() for _ in range(runs)]
    per_step = statistics.median(wall for wall, _ in measured)
    cpu_per_step = statistics.median(cpu for _, cpu in measured)
    # This process's CPU (the server's is not in it) moves far less with the machine's load than
    # the wall clock: compare it when timing a change to the runtime's own Python.
    print(
        f"mode {mode}: {per_step:.2f} ms/step, this process's CPU {cpu_per_step:.2f} ms/step "
        f"(medians of {runs} runs of {steps} steps)"
    )
    print("| part | calls per step | median ms per call | ms per step | its thread's CPU, ms per step |")
    print("| --- | --- | --- | --- | --- |")
    total = runs * steps
    for label, times in sorted(TIMINGS.items(), key=lambda item: -sum(item[1])):
        print(
            f"| {label} | {len(times) / total:.2f} | {statistics.median(times):.3f} | {sum(times) / total:.3f} "
            f"| {sum(CPU_TIMINGS[label]) / total:.3f} |"
        )
    print()
    runtime.dispose()


if __name__ == "__main__":
    main()
