"""Mamba anchor: the stock ``react`` workflow on the durable runtime, same workload as the others.

A run is K x (think, act, observe) = 30 steps of ReAct with a zero-latency scripted model
(pydantic-ai FunctionModel: ~1 KB response with one tool call; ``final_answer`` on the last think)
and a trivial idempotent tool returning 1,024 characters (``bench/durable_workload.py``). Each step
is one Celery task: claim (lease) -> step -> commit_step (state, next step, outbox, events) -> send
the successor. Runs are submitted with ``RunService.submit``; a run has ended when its
``run.succeeded`` event arrives (Redis pub/sub, its settle channel) or, on SQLite, when polling (2 ms)
sees it settled.

  --backend postgres  state in PostgreSQL (the ``bench`` database, schema created here), Redis
                      broker on a dedicated database number (ANCHORS_MAMBA_REDIS_URL, default db 10;
                      must be empty; flushed at the end).
  --backend sqlite    Mamba's default: SQLite state store + the embedded (SQLite) broker, in
                      ANCHORS_DATA_DIR.
  --inline            ``runtime.inline_steps=["*"]``: a successor is claimed in its predecessor's
                      commit and run in the same task (each step still committed on its own);
                      reported as ``mamba-inline/<backend>``.
Workers: ``celery -A bench.durable_app worker -P solo`` x ANCHORS_MAMBA_WORKERS (default 2), children
of this process (their CPU and RSS are counted, as for celery_bench.py).
Needs ``pip install -e <repo>`` in the anchors venv (run_all.sh's requirements do not include it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import common as C

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.durable import PollingWatcher, RedisWatcher, Workers  # noqa: E402

WORKERS = int(os.environ.get("ANCHORS_MAMBA_WORKERS", "2"))
MAMBA_REDIS_URL = os.environ.get("ANCHORS_MAMBA_REDIS_URL", C.REDIS_URL.rsplit("/", 1)[0] + "/10")


def main() -> None:
    def options(ap):  # type: ignore[no-untyped-def]
        ap.add_argument("--backend", choices=["postgres", "sqlite"], required=True)
        ap.add_argument("--inline", action="store_true", help='runtime.inline_steps=["*"]')

    args = C.parse_args(options)
    if args.backend == "postgres":
        import redis

        client = redis.Redis.from_url(MAMBA_REDIS_URL)
        if client.dbsize():
            raise SystemExit(f"{MAMBA_REDIS_URL} is not empty; set ANCHORS_MAMBA_REDIS_URL to an unused database")
        env = {
            "MAMBA_RUNTIME__DATABASE_URL": C.PG_URL.replace("postgresql://", "postgresql+psycopg://", 1),
            "MAMBA_RUNTIME__BROKER_URL": MAMBA_REDIS_URL,
        }
    else:
        client = None
        env = {
            "MAMBA_RUNTIME__DATABASE_URL": f"sqlite:///{C.DATA_DIR}/mamba.db",
            "MAMBA_RUNTIME__BROKER_URL": f"mamba+sqlite:///{C.DATA_DIR}/mamba-broker.db",
        }
    env |= {
        "MAMBA_RUNTIME__WORKFLOW_MODULES": '["bench.durable_workload"]',
        "MAMBA_MODEL_BACKEND__MODEL": "bench:scripted",
        "MAMBA_BENCH_K": str(C.K),
        "MAMBA_RUNTIME__INLINE_STEPS": '["*"]' if args.inline else "[]",
    }
    os.environ.update(env)
    system = f"mamba{'-inline' if args.inline else ''}/{args.backend}"

    from bench.durable_workload import SCRIPTED_MODEL, TOOL, BenchRuntime
    from mamba_client.schemas import RunStatus, StepStatus, SubmitRun
    from mamba_worker.config import AgentSettings
    from mamba_worker.durable import RunService

    runtime = BenchRuntime(AgentSettings())  # migrates the schema before any worker starts
    service = RunService(runtime)
    request = SubmitRun(input="Look things up, then answer.", model=SCRIPTED_MODEL, tools=[TOOL])
    ids: dict[str, str] = {}  # harness run id -> Mamba run id
    log_dir = Path(C.DATA_DIR) / f"{system.replace('/', '-')}-logs"
    worker_env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        with Workers(WORKERS, worker_env, log_dir=log_dir):
            watcher = RedisWatcher(MAMBA_REDIS_URL) if client is not None else PollingWatcher(service)
            try:

                def run_one(rid: str) -> None:
                    ids[rid] = service.submit(request).id
                    watcher.wait(ids[rid])

                def run_many(rids: list[str]) -> None:
                    for rid in rids:
                        ids[rid] = service.submit(request).id
                    for rid in rids:
                        watcher.wait(ids[rid])

                def verify(rid: str) -> int:
                    run = service.get(ids[rid])
                    assert run.status == RunStatus.SUCCEEDED, (run.status, run.error)
                    return sum(1 for s in service.steps(ids[rid]) if s.status == StepStatus.COMMITTED)

                backend = "PostgreSQL + Redis broker" if client is not None else "SQLite + embedded SQLite broker"
                C.measure(
                    system,
                    run_one,
                    run_many,
                    verify,
                    round_no=args.round,
                    results_path=args.results,
                    notes=f"{backend}; stock react workflow, "
                    + ("successors run inline (claimed in the commit)" if args.inline else "1 Celery task per step")
                    + ", ids-only messages, commit_step + outbox per step, model/tool ledgers",
                    concurrency=f"{WORKERS} x celery worker -P solo (+ driver process submitting)",
                )
            finally:
                watcher.close()
    finally:
        runtime.dispose()
        if client is not None:
            client.flushdb()
            client.close()


if __name__ == "__main__":
    main()
