"""Benchmark the durable runtime: per-step overhead and throughput, as ratios to the floor.

The workload (``bench/durable_workload.py``) is the anchors' (``bench/anchors/common.py``): one run
is ``K`` iterations of think → act → observe with a zero-latency scripted model (a pydantic-ai
`FunctionModel` that calls a tool on each think and ``final_answer`` on the last) and a trivial
tool, so ``3 * K`` = 30 steps. Runs use the stock ``react`` workflow through `RunService.submit`;
the steps run in ``celery -A bench.durable_app worker -P solo`` processes (the production app
with a runtime that knows the scripted model's name).

Measures, per backend:
  * sequential: ``--runs`` runs one after another (after warm-up); ms/step of a run = wall time
    from submit to its ``run.succeeded`` / 30; the figure is the median over the runs;
  * throughput: ``--batch`` runs submitted at once on ``--workers`` worker processes;
    steps/s = batch * 30 / wall time from the first submit to the last run's end;
  * the floor, in this process, just before and just after Mamba, the same way
    ``bench/anchors/floor.py`` measures it: per step one Redis LPUSH+BRPOP round trip and one
    PostgreSQL INSERT (~1 KB) + COMMIT (psycopg 3, server defaults), 30 steps per run, median of
    ``--runs`` runs; the batch runs ``--batch`` such runs in as many threads. For SQLite the
    floor is one INSERT + COMMIT in WAL mode with ``synchronous=FULL`` (the anchors' SQLite floor).

Backends:
  * ``redis+postgres``: a fresh PostgreSQL database (created and dropped here) and a dedicated
    Redis database number (must be empty; flushed at the end). Run ends are seen live on the
    runtime's Redis settle channels (one message per run end).
  * ``sqlite``: the default: SQLite state store and the embedded (SQLite) broker, in a temporary
    directory. Run ends are seen by polling the run every 10 ms (MAMBA_BENCH_POLL_SECONDS; the
    embedded broker publishes no events).

Usage:
    .venv/bin/python bench/durable.py                       # both backends, print the figures
    .venv/bin/python bench/durable.py --backend redis+postgres --runs 20 --batch 50
    .venv/bin/python bench/durable.py --write               # also replace "## Durable runtime" in RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import redis

from bench._results import write_section

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Durable runtime"
PG_ADMIN_URL = os.environ.get("MAMBA_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST_URL = os.environ.get("MAMBA_BENCH_REDIS_URL", "redis://127.0.0.1:6379")
POLL_SECONDS = float(os.environ.get("MAMBA_BENCH_POLL_SECONDS", "0.01"))
"""How often run ends are polled on the embedded broker (each poll costs the driver CPU on 2 cores)."""
SETTLED_TYPES = ("run.succeeded", "run.failed", "run.cancelled", "run.waiting")

MODES = {"hop": "[]", "inline": '["*"]'}
"""Runtime modes measured: ``MAMBA_RUNTIME__INLINE_STEPS`` for each."""
MODE_LABELS = {"hop": "every step a Celery task (default)", "inline": "inline_steps=['*']"}

_FILLER = ("The quick brown fox jumps over the lazy dog while the agent considers its next tool call. ") * 40


def floor_payload() -> str:
    """The anchors' floor payload: ``json.dumps(common.fake_model_response("floor", 1))`` (~1 KB)."""
    i = 1
    return json.dumps(
        {
            "id": "chatcmpl-floor-1",
            "object": "chat.completion",
            "model": "fake-model",
            "role": "assistant",
            "content": _FILLER[:560],
            "tool_calls": [
                {
                    "id": f"call-{i}",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": json.dumps({"query": f"q{i}", "page": i})},
                }
            ],
            "usage": {"prompt_tokens": 1000 + 200 * i, "completion_tokens": 150, "total_tokens": 1150 + 200 * i},
            "finish_reason": "tool_calls",
            "meta": {"iteration": i, "latency_ms": 0, "provider": "none", "cache": False},
        }
    )


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, kw_only=True)
class Config:
    runs: int
    batch: int
    k: int
    workers: int
    warmup: int
    modes: tuple[str, ...] = ("hop", "inline")

    @property
    def steps(self) -> int:
        return 3 * self.k


@dataclass(kw_only=True)
class Figures:
    """What one measurement (the floor or Mamba) produced."""

    seq_ms: list[float] = field(default_factory=list)
    paired: list[tuple[float, float]] = field(default_factory=list)
    """Per sequential run: the floor and the workflow alone, measured in this process just before it (ms/step)."""
    thr_steps_per_s: float = 0.0
    thr_wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seq_median(self) -> float:
        return statistics.median(self.seq_ms)

    @property
    def paired_ratio(self) -> float | None:
        """Median over the sequential runs of (run − the workflow alone) ÷ the floor, each measured next to it."""
        if not self.paired:
            return None
        return statistics.median(
            (ms - alone) / floor for ms, (floor, alone) in zip(self.seq_ms, self.paired, strict=True)
        )


# --------------------------------------------------------------------------- the floor


def _timed_runs(run_one: Callable[[str], None], config: Config, prefix: str) -> Figures:
    """The anchors' harness order: warm-up runs, a warm-up batch, ``runs`` timed runs, one timed batch."""

    def run_many(ids: list[str]) -> None:
        with ThreadPoolExecutor(max_workers=len(ids)) as pool:
            list(pool.map(run_one, ids))

    for i in range(config.warmup):
        run_one(f"{prefix}-warm-{i}")
    run_many([f"{prefix}-warmb-{i}" for i in range(min(10, config.batch))])
    figures = Figures()
    for i in range(config.runs):
        t0 = time.perf_counter()
        run_one(f"{prefix}-seq-{i}")
        figures.seq_ms.append((time.perf_counter() - t0) * 1000 / config.steps)
    t0 = time.perf_counter()
    run_many([f"{prefix}-thr-{i}" for i in range(config.batch)])
    figures.thr_wall_s = time.perf_counter() - t0
    figures.thr_steps_per_s = config.batch * config.steps / figures.thr_wall_s
    return figures


@contextmanager
def pg_redis_floor(pg_url: str, redis_url: str, *, steps: int, size: int, tag: str) -> Iterator[Callable[[str], None]]:
    """``floor.py --mode pg+redis``'s run: per step LPUSH+BRPOP, then INSERT (~1 KB) + COMMIT.

    Yields the function that runs one (by run id); ``size`` runs may run at once, each on a
    connection of its own opened up front (floor.py uses a pool of BATCH_RUNS).
    """
    payload = floor_payload()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS floor_steps (id bigserial primary key, run_id text, step int, payload text)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS floor_steps_run ON floor_steps(run_id)")
    conns = [psycopg.connect(pg_url) for _ in range(size)]
    free = list(conns)
    lock = threading.Lock()
    rpool = redis.ConnectionPool.from_url(redis_url, max_connections=size + 5)

    def run_one(rid: str) -> None:
        with lock:
            conn = free.pop()
        try:
            client = redis.Redis(connection_pool=rpool)
            key = f"floor:{tag}:{rid}"
            for s in range(steps):
                client.lpush(key, payload)
                assert client.brpop([key], timeout=5) is not None
                conn.execute("INSERT INTO floor_steps(run_id, step, payload) VALUES (%s,%s,%s)", (rid, s, payload))
                conn.commit()
        finally:
            with lock:
                free.append(conn)

    try:
        yield run_one
    finally:
        for conn in conns:
            conn.close()
        rpool.disconnect()


def floor_pg_redis(pg_url: str, redis_url: str, config: Config, *, tag: str) -> Figures:
    """The floor's figures as the anchors take them (`pg_redis_floor`, `_timed_runs`)."""
    with pg_redis_floor(pg_url, redis_url, steps=config.steps, size=max(config.batch, 10), tag=tag) as run_one:
        figures = _timed_runs(run_one, config, f"{tag}")
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("select count(*) from floor_steps where run_id = %s", (f"{tag}-thr-0",)).fetchone()
    figures.extra["rows_last_batch_run"] = row[0] if row else 0
    return figures


def floor_sqlite(path: Path, config: Config, *, synchronous: str, tag: str) -> Figures:
    """``floor.py --mode sqlite-wal-<sync>``: per step one INSERT + COMMIT; threads share one connection."""
    payload = floor_payload()
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("CREATE TABLE IF NOT EXISTS floor_steps (id integer primary key, run_id text, step int, payload text)")
    conn.commit()
    lock = threading.Lock()

    def run_one(rid: str) -> None:
        for s in range(config.steps):
            with lock:
                conn.execute("INSERT INTO floor_steps(run_id, step, payload) VALUES (?,?,?)", (rid, s, payload))
                conn.commit()

    try:
        return _timed_runs(run_one, config, tag)
    finally:
        conn.close()


def workflow_alone(config: Config) -> float:
    """ms/step of the same workflow in this process without durability (`workflow_alone_ms_per_step`)."""
    from bench.durable_workload import workflow_alone_ms_per_step

    return workflow_alone_ms_per_step(runs=config.runs)


# --------------------------------------------------------------------------- services


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for this process; dropped afterwards. Yields its base URL."""
    name = f"mamba_bench_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def dedicated_redis_db(number: int) -> Iterator[str]:
    """Redis database ``number``, which must be empty; flushed afterwards. Yields its URL."""
    url = f"{REDIS_HOST_URL}/{number}"
    client = redis.Redis.from_url(url)
    keys = client.dbsize()
    if keys:
        raise SystemExit(f"redis db {number} holds {keys} keys; pick an unused one with --redis-db")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def _proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Workers:
    """``--workers`` Celery worker processes (``-P solo``), started and stopped by PID."""

    def __init__(self, count: int, env: dict[str, str], *, log_dir: Path) -> None:
        self._count = count
        self._env = env
        self._log_dir = log_dir
        self._ready_dir = log_dir / "ready"
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Workers:
        self._ready_dir.mkdir(parents=True, exist_ok=True)
        celery = str(Path(sys.executable).with_name("celery"))
        for i in range(self._count):
            log = (self._log_dir / f"worker-{i}.log").open("wb")
            argv = [celery, "-A", "bench.durable_app", "worker", "-P", "solo", "-Q", "mamba", "-l", "WARNING"]
            argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", "-n", f"bench{i}-{os.getpid()}@%h"]
            env = {**self._env, "MAMBA_BENCH_READY_DIR": str(self._ready_dir)}
            self.procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        while len(list(self._ready_dir.glob("*.ready"))) < self._count:
            if any(proc.poll() is not None for proc in self.procs) or time.monotonic() > deadline:
                self.__exit__(None, None, None)
                logs = "\n".join((self._log_dir / f"worker-{i}.log").read_text()[-2000:] for i in range(self._count))
                raise SystemExit(f"workers did not come up:\n{logs}")
            time.sleep(0.1)
        return self

    def cpu_seconds(self) -> float:
        return sum(_proc_cpu_seconds(proc.pid) for proc in self.procs)

    def __exit__(self, *_: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------- run ends


class RedisWatcher:
    """Sees run ends live on the runtime's Redis settle channels (``mamba:settled:*``: one message per run end).

    (It listened to every event of every run before, ``mamba:events:*``: about half a millisecond
    of this process's CPU per step, on the 2 cores the workers use.)
    """

    def __init__(self, redis_url: str) -> None:
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe("mamba:settled:*")
        self._done: dict[str, float] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="bench-watcher", daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if message is None:
                continue
            data = message["data"]
            if b'"type":"run.' not in data:
                continue
            event = json.loads(data)
            if event["type"] in SETTLED_TYPES:
                with self._cond:
                    self._done[event["run_id"]] = time.perf_counter()
                    self._cond.notify_all()

    def wait(self, run_id: str, *, timeout: float = 300) -> float:
        """When run ``run_id`` ended (``perf_counter`` time)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while run_id not in self._done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"run {run_id} did not end within {timeout}s")
                self._cond.wait(left)
            return self._done[run_id]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pubsub.close()
        self._client.close()


class PollingWatcher:
    """Sees run ends by reading the run every ``interval`` seconds (for the embedded broker)."""

    def __init__(self, service: Any, *, interval: float = 0.01) -> None:
        self._service = service
        self._interval = interval

    def wait(self, run_id: str, *, timeout: float = 300) -> float:
        from mamba_client.schemas import RunStatus

        settled = {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.WAITING}
        deadline = time.monotonic() + timeout
        while self._service.get(run_id).status not in settled:
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not end within {timeout}s")
            time.sleep(self._interval)
        return time.perf_counter()

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- Mamba


def _pg_next_xid(pg_url: str) -> int:
    """The next transaction id the server will assign: a count of write transactions that never lags.

    (``pg_stat_database`` counts reads too but lags: an idle backend reports its counters only
    after up to 10 s.) Cluster-wide, so nothing else may write meanwhile; reading it assigns none.
    """
    with psycopg.connect(pg_url, autocommit=True) as conn:
        row = conn.execute("select pg_snapshot_xmax(pg_current_snapshot())::text::bigint").fetchone()
    return int(row[0]) if row else 0


Paired = Callable[[int], tuple[float, float]]
"""Measures, in the driver, the floor and the workflow alone for sequential run ``i`` (ms/step each)."""


def measure_mamba(
    env: dict[str, str],
    config: Config,
    *,
    log_dir: Path,
    redis_url: str | None,
    pg_url: str | None,
    paired: Paired | None = None,
) -> Figures:
    """Mamba on the backend ``env`` configures: warm-up, sequential runs, one batch; verified in SQL.

    With ``paired``, each sequential run comes right after a floor run and a run of the workflow
    alone, so that its overhead is set against the floor of the same minute (`Figures.paired_ratio`).
    """
    os.environ.update(env)
    from bench.durable_workload import SCRIPTED_MODEL, TOOL, BenchRuntime
    from mamba_client.schemas import RunStatus, StepStatus, SubmitRun
    from mamba_worker.config import AgentSettings
    from mamba_worker.durable import RunService

    # Migrate once, here, before any worker starts (workers then find the schema current).
    runtime = BenchRuntime(AgentSettings())
    service = RunService(runtime)
    request = SubmitRun(input="Look things up, then answer.", model=SCRIPTED_MODEL, tools=[TOOL])
    figures = Figures()
    with Workers(config.workers, {**os.environ, **env, "PYTHONPATH": str(ROOT)}, log_dir=log_dir) as workers:
        watcher: RedisWatcher | PollingWatcher = (
            RedisWatcher(redis_url) if redis_url else PollingWatcher(service, interval=POLL_SECONDS)
        )
        try:

            def run_one() -> str:
                run = service.submit(request)
                watcher.wait(run.id)
                return run.id

            def run_many(count: int) -> tuple[list[str], float]:
                t0 = time.perf_counter()
                ids = [service.submit(request).id for _ in range(count)]
                end = max(watcher.wait(run_id) for run_id in ids)
                return ids, end - t0

            for _ in range(config.warmup):
                run_one()
            run_many(min(10, config.batch))

            xid0 = _pg_next_xid(pg_url) if pg_url else 0
            cpu0, self0 = workers.cpu_seconds(), _self_cpu()
            seq_ids = []
            paired_cpu = 0.0  # the driver's CPU in the paired runs, which are not Mamba's
            for i in range(config.runs):
                if paired is not None:
                    cpu_before = _self_cpu()
                    figures.paired.append(paired(i))
                    paired_cpu += _self_cpu() - cpu_before
                t0 = time.perf_counter()
                seq_ids.append(run_one())
                figures.seq_ms.append((time.perf_counter() - t0) * 1000 / config.steps)
            seq_steps = config.runs * config.steps
            figures.extra["seq_worker_cpu_ms_per_step"] = (workers.cpu_seconds() - cpu0) * 1000 / seq_steps
            figures.extra["seq_driver_cpu_ms_per_step"] = (_self_cpu() - self0 - paired_cpu) * 1000 / seq_steps
            if pg_url:
                # A paired floor run is one write transaction per step; the workflow alone writes nothing.
                floor_xacts = len(figures.paired) * config.steps
                figures.extra["seq_pg_xacts_per_step"] = (_pg_next_xid(pg_url) - xid0 - floor_xacts) / seq_steps

            cpu0, self0 = workers.cpu_seconds(), _self_cpu()
            batch_ids, wall = run_many(config.batch)
            figures.thr_wall_s = wall
            figures.thr_steps_per_s = config.batch * config.steps / wall
            thr_steps = config.batch * config.steps
            figures.extra["thr_worker_cpu_ms_per_step"] = (workers.cpu_seconds() - cpu0) * 1000 / thr_steps
            figures.extra["thr_driver_cpu_ms_per_step"] = (_self_cpu() - self0) * 1000 / thr_steps
        finally:
            watcher.close()

    # Every measured run succeeded with exactly 30 committed steps.
    for run_id in [*seq_ids, *batch_ids]:
        run = service.get(run_id)
        steps = service.steps(run_id)
        committed = sum(1 for s in steps if s.status == StepStatus.COMMITTED)
        if run.status != RunStatus.SUCCEEDED or committed != config.steps or len(steps) != config.steps:
            raise SystemExit(f"run {run_id}: {run.status}, {committed}/{len(steps)} steps committed; error {run.error}")
    figures.extra["verified_runs"] = len(seq_ids) + len(batch_ids)
    figures.extra["committed_steps_last_batch_run"] = config.steps
    runtime.dispose()
    return figures


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- backends


def measure_modes(
    config: Config,
    *,
    database_url: str,
    broker_url: str,
    log_dir: Path,
    pg_url: str | None = None,
    paired: Paired | None = None,
) -> dict[str, Figures]:
    """`measure_mamba` in each of ``config.modes`` on one store and broker."""
    env = {
        "MAMBA_RUNTIME__DATABASE_URL": database_url,
        "MAMBA_RUNTIME__BROKER_URL": broker_url,
        "MAMBA_RUNTIME__WORKFLOW_MODULES": '["bench.durable_workload"]',
        "MAMBA_MODEL_BACKEND__MODEL": "bench:scripted",
        "MAMBA_BENCH_K": str(config.k),
    }
    redis_url = broker_url if broker_url.startswith("redis://") else None
    return {
        mode: measure_mamba(
            {**env, "MAMBA_RUNTIME__INLINE_STEPS": MODES[mode]},
            config,
            log_dir=log_dir.with_name(f"{log_dir.name}-{mode}"),
            redis_url=redis_url,
            pg_url=pg_url,
            paired=paired,
        )
        for mode in config.modes
    }


def bench_redis_postgres(config: Config, *, redis_db: int, log_dir: Path) -> dict[str, Any]:
    with fresh_pg_database() as pg_url, dedicated_redis_db(redis_db) as redis_url:
        floor_before = floor_pg_redis(pg_url, redis_url, config, tag="before")
        alone_before = workflow_alone(config)
        database_url = pg_url.replace("postgresql://", "postgresql+psycopg://", 1)
        from bench.durable_workload import workflow_alone_runner

        alone_run = workflow_alone_runner()
        with pg_redis_floor(pg_url, redis_url, steps=config.steps, size=1, tag="paired") as floor_run:

            def paired(i: int) -> tuple[float, float]:
                t0 = time.perf_counter()
                floor_run(f"paired-{i}-{t0}")
                return (time.perf_counter() - t0) * 1000 / config.steps, alone_run()

            mamba = measure_modes(
                config,
                database_url=database_url,
                broker_url=redis_url,
                log_dir=log_dir / "redis-pg",
                pg_url=pg_url,
                paired=paired,
            )
        alone_after = workflow_alone(config)
        floor_after = floor_pg_redis(pg_url, redis_url, config, tag="after")
    return {
        "backend": "redis+postgres",
        "floor": (floor_before, floor_after),
        "alone": (alone_before, alone_after),
        "mamba": mamba,
    }


def bench_sqlite(config: Config, *, log_dir: Path) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="mamba-bench-"))
    try:
        floor_before = floor_sqlite(work / "floor.sqlite", config, synchronous="FULL", tag="before")
        alone_before = workflow_alone(config)
        mamba = measure_modes(
            config,
            database_url=f"sqlite:///{work}/mamba.db",
            broker_url=f"mamba+sqlite:///{work}/broker.db",
            log_dir=log_dir / "sqlite",
        )
        alone_after = workflow_alone(config)
        floor_after = floor_sqlite(work / "floor.sqlite", config, synchronous="FULL", tag="after")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    alone = (alone_before, alone_after)
    return {"backend": "sqlite", "floor": (floor_before, floor_after), "alone": alone, "mamba": mamba}


# --------------------------------------------------------------------------- report


def machine() -> str:
    model, cores = platform.processor() or "unknown CPU", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    load = os.getloadavg()[0]
    shared = f"load average {load:.1f} at the end, shared with other work"
    return f"{model}, {cores} logical CPUs ({shared}), Linux {platform.release()}"


def versions() -> str:
    from importlib.metadata import version

    try:
        redis_server = redis.Redis.from_url(REDIS_HOST_URL).info("server")["redis_version"]
    except redis.RedisError:
        redis_server = "?"
    with psycopg.connect(PG_ADMIN_URL) as conn:
        row = conn.execute("show server_version").fetchone()
    pg_server = row[0].split()[0] if row else "?"
    return (
        f"Python {platform.python_version()}, celery {version('celery')}, kombu {version('kombu')}, "
        f"SQLAlchemy {version('sqlalchemy')}, psycopg {version('psycopg')}, redis-py {version('redis')}, "
        f"Redis server {redis_server}, PostgreSQL server {pg_server}, SQLite {sqlite3.sqlite_version}"
    )


PROFILE_NOTES = Path(__file__).with_name("durable_profile.md")
"""Where a step's time goes (py-spy and cProfile findings); included in the section as written."""


def render(results: list[dict[str, Any]], config: Config, command: str) -> str:
    rows = []
    for r, mode in [(result, mode) for result in results for mode in result["mamba"]]:
        before, after = r["floor"]
        mamba: Figures = r["mamba"][mode]
        floor_seq = (before.seq_median + after.seq_median) / 2
        alone = sum(r["alone"]) / 2
        overhead = mamba.seq_median - alone
        floor_thr = (before.thr_steps_per_s + after.thr_steps_per_s) / 2
        label = "Redis + PostgreSQL" if r["backend"] == "redis+postgres" else "SQLite + embedded broker (default)"
        label += f", {MODE_LABELS[mode]}"
        floor_label = (
            "LPUSH+BRPOP + PG INSERT+COMMIT" if r["backend"] == "redis+postgres" else "SQLite WAL FULL INSERT+COMMIT"
        )
        x = mamba.extra
        xacts = f"{x['seq_pg_xacts_per_step']:.1f}" if "seq_pg_xacts_per_step" in x else "—"
        paired = f"**{mamba.paired_ratio:.1f}×**" if mamba.paired_ratio is not None else "—"
        rows.append(
            f"| {label} | {mamba.seq_median:.2f} (min {min(mamba.seq_ms):.2f}) | "
            f"{floor_label}: {before.seq_median:.2f} / {after.seq_median:.2f} | "
            f"{mamba.seq_median / floor_seq:.1f}× | {r['alone'][0]:.2f} / {r['alone'][1]:.2f} | "
            f"{overhead:.2f} | {overhead / floor_seq:.1f}× | {paired} | "
            f"{mamba.thr_steps_per_s:.0f} | {before.thr_steps_per_s:.0f} / {after.thr_steps_per_s:.0f} | "
            f"**{floor_thr / mamba.thr_steps_per_s:.1f}×** | {x['seq_worker_cpu_ms_per_step']:.2f} / "
            f"{x['thr_worker_cpu_ms_per_step']:.2f} | {x['seq_driver_cpu_ms_per_step']:.2f} | {xacts} |"
        )
    columns = [
        "backend",
        "Mamba ms/step (median)",
        "floor ms/step (before / after)",
        "Mamba ÷ floor",
        "workflow alone ms/step (before / after)",
        "overhead ms/step (Mamba − workflow alone)",
        "overhead ÷ floor",
        "overhead ÷ floor, paired (median of runs)",
        f"Mamba steps/s ({config.batch} runs)",
        "floor steps/s (before / after)",
        "floor thr ÷ Mamba thr",
        f"worker CPU ms/step (seq / batch, {config.workers} workers)",
        "driver CPU ms/step (seq)",
        "PG write transactions/step (seq)",
    ]
    header = "| " + " | ".join(columns) + " |"
    pg = next((r for r in results if r["backend"] == "redis+postgres"), None)
    verdicts = []
    for mode, mamba in (pg["mamba"] if pg is not None else {}).items():
        before, after = pg["floor"] if pg is not None else (None, None)
        floor_seq = (before.seq_median + after.seq_median) / 2
        overhead = mamba.seq_median - sum(pg["alone"]) / 2
        # Judged on the paired ratio when there is one: each run's overhead against the floor of
        # its own minute, not against floors taken minutes before and after.
        ratio = mamba.paired_ratio if mamba.paired_ratio is not None else overhead / floor_seq
        verdicts.append(
            f"Goal (per-step overhead at most 2× the floor on Redis + PostgreSQL), {MODE_LABELS[mode]}: "
            f"**{'met' if ratio <= 2 else 'not met'}** (overhead {ratio:.1f}× the floor, paired run by run; "
            f"{overhead / floor_seq:.1f}× against the floors before and after; the whole step, the workflow's "
            f"own work included, {mamba.seq_median / floor_seq:.1f}×)."
        )
    verdict = "\n".join(verdicts)
    return f"""{SECTION}

A run of the stock `react` workflow: {config.k} × think → act → observe = {config.steps} steps, a zero-latency
scripted model (pydantic-ai `FunctionModel`: ~1 KB response with one tool call; `final_answer` on the
last think) and a trivial idempotent tool (1,024-character result); the same workload as the anchors
(`bench/anchors/common.py`). Submitted with `RunService.submit`; steps run in {config.workers} ×
`celery -A bench.durable_app worker -P solo -l WARNING` (the production app; the runtime only adds the
scripted model's name). Sequential: median over {config.runs} runs of (submit → `run.succeeded`) ÷ {config.steps},
after {config.warmup} warm-up runs and a 10-run warm-up batch. Throughput: {config.batch} runs submitted at once.
The floor is measured in the same process just before and just after (before / after shown; ratios
use their mean), exactly as `bench/anchors/floor.py` does it: per step one Redis LPUSH+BRPOP and one
~1 KB PostgreSQL INSERT+COMMIT (the batch: {config.batch} threads, one connection each); for SQLite one
WAL `synchronous=FULL` INSERT+COMMIT (Mamba's store uses `synchronous=NORMAL`, so that floor is
stricter than what Mamba pays). Every measured run was checked in SQL: succeeded, {config.steps} committed steps.
"Workflow alone" is the same workflow, model and tool run in the driver process without durability
(`ReActWorkflow.run`: no SQL, no broker, no Celery), measured just after the floor before and just
before the floor after; the overhead is what a durable step adds to it, which is what the goal
compares with the floor. On Redis + PostgreSQL each sequential run also comes right after one
floor run and one run of the workflow alone, in the driver: "paired" is the median over the runs
of (run − workflow alone) ÷ floor, each from the same minute, which the goal's verdict uses (on
this shared machine the floors before and after are minutes away from most runs).

{header}
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{chr(10).join(rows)}

{verdict}

"PG write transactions/step" counts the transaction ids the server assigned during the sequential
runs (`pg_current_snapshot()`: every transaction that wrote, workers' reconcilers included, less
the paired floor runs' own, one per step; reads assign none). On Redis + PostgreSQL the driver
wakes once per run, on the run's settle notice (`mamba:settled:<run_id>`, what `RunService.wait`
listens to). On SQLite the driver sees run ends
by polling the run every {POLL_SECONDS * 1000:.0f} ms; that polling is the driver CPU in that row,
and it competes with the workers for the 2 cores.

{PROFILE_NOTES.read_text().strip() if PROFILE_NOTES.exists() else ""}
The machine has 2 cores shared with other engineers' builds and tests: the client, the workers,
PostgreSQL and Redis all share them, figures move by up to 2× between runs, and each run here is
kept to a few minutes. Compare ratios, not milliseconds; `## Durable runtime vs anchors` has the
same workload measured against LangGraph, DBOS and plain Celery in one run.

- Machine: {machine()}.
- Versions: {versions()}.
- Run: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}, at commit {_commit()}.
- Command: `{command}`
"""


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return "?"
    dirty = subprocess.run(["git", "diff", "--quiet", "--", "mamba_worker"], cwd=ROOT).returncode != 0
    return out.stdout.strip() + (" (mamba_worker/ with uncommitted changes)" if dirty else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["all", "redis+postgres", "sqlite"], default="all")
    parser.add_argument("--runs", type=int, default=20, help="sequential runs (median over them)")
    parser.add_argument("--batch", type=int, default=50, help="runs submitted at once for throughput")
    parser.add_argument("--k", type=int, default=10, help="think/act/observe iterations per run (3k steps)")
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up runs before measuring")
    parser.add_argument("--redis-db", type=int, default=13, help="dedicated, empty Redis database number")
    parser.add_argument("--write", action="store_true", help="write the figures to bench/RESULTS.md")
    parser.add_argument(
        "--mode",
        choices=["both", *MODES],
        default="both",
        help="hop: every step its own Celery task (the default runtime); inline: runtime.inline_steps=['*']",
    )
    args = parser.parse_args()
    if args.k < 2:
        parser.error("--k must be at least 2")
    os.environ["MAMBA_BENCH_K"] = str(args.k)  # before bench.durable_workload is imported (here and in workers)
    modes = tuple(MODES) if args.mode == "both" else (args.mode,)
    config = Config(runs=args.runs, batch=args.batch, k=args.k, workers=args.workers, warmup=args.warmup, modes=modes)
    log_dir = Path(tempfile.mkdtemp(prefix="mamba-bench-logs-"))
    results = []
    if args.backend in ("all", "redis+postgres"):
        results.append(bench_redis_postgres(config, redis_db=args.redis_db, log_dir=log_dir))
        print_figures(results[-1])
    if args.backend in ("all", "sqlite"):
        results.append(bench_sqlite(config, log_dir=log_dir))
        print_figures(results[-1])
    command = ".venv/bin/python bench/durable.py " + " ".join(sys.argv[1:])
    section = render(results, config, command.strip())
    print(section)
    if args.write:
        write_section(SECTION, section, results=RESULTS)
        print(f"written to {RESULTS}")
    shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def print_figures(result: dict[str, Any]) -> None:
    before, after = result["floor"]
    for mode, mamba in result["mamba"].items():
        paired = "—" if mamba.paired_ratio is None else f"{mamba.paired_ratio:.2f}"
        print(
            f"[{result['backend']}, {mode}] mamba {mamba.seq_median:.2f} ms/step, {mamba.thr_steps_per_s:.0f} "
            f"steps/s | overhead ÷ floor, paired: {paired} | "
            f"floor {before.seq_median:.2f}/{after.seq_median:.2f} ms/step, "
            f"{before.thr_steps_per_s:.0f}/{after.thr_steps_per_s:.0f} steps/s | workflow alone "
            f"{result['alone'][0]:.2f}/{result['alone'][1]:.2f} ms/step | {mamba.extra}",
            flush=True,
        )


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
