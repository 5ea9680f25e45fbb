"""A submit's rows on PostgreSQL in one statement: `insert_submitted_run_txn`'s five, as CTEs.

Why: a submit is on the path of every run (the benchmark's sequential figure is submit to
``run.succeeded``), and through SQLAlchemy its five inserts are five round trips plus ``BEGIN`` and
``COMMIT``, each with its client work: about 3 ms of the driver's time, a tenth of a 30-step run.
Here they are one autocommitted, server-prepared statement (`PgPipeline.execute_once`).

Only for a submit without an idempotency key: with one, the run's insert may lose to another
submit's (``ON CONFLICT DO NOTHING``) and the winner must be read in the same transaction, which
the portable path does. The rows, their values and their encoding are `insert_submitted_run_txn`'s
(``tests/worker/durable/store/test_submit.py`` runs both paths and compares the rows).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Dialect

from mamba_client.schemas import Event, RunStatus, RunSubmitted, StepStatus, SubmitRun
from mamba_worker.durable.store._submit import NewRun
from mamba_worker.durable.store._tables import RUNS
from mamba_worker.durable.store._types import JSONText

RUN_VALUES = {
    # Every column of ``runs`` (``test_pg_sql.py`` keeps it so): what a new run holds.
    "id": "%(run_id)s",
    "workflow": "%(workflow)s",
    "status": f"'{RunStatus.PENDING.value}'",
    "input": "%(input)s",
    "model": "%(model)s",
    "tools": "%(tools)s",
    "options": "%(options)s",
    "run_metadata": "%(run_metadata)s",
    "queue": "%(queue)s",
    "priority": "%(priority)s",
    "idempotency_key": "NULL",
    "state": "%(state)s",
    "output": "NULL",
    "error": "NULL",
    "waiting": "NULL",
    "input_tokens": "0",
    "output_tokens": "0",
    "cache_read_tokens": "0",
    "cache_write_tokens": "0",
    "requests": "0",
    "cost_usd": "0",
    # The first step is inserted here (no second UPDATE for it), and event 1 is taken.
    "last_seq": "1",
    "next_event_seq": "2",
    "cancel_requested": "false",
    "parent_run_id": "NULL",
    "parent_seq": "NULL",
    "created_at": "%(now)s",
    "updated_at": "%(now)s",
    "finished_at": "NULL",
}

# The run first: the step's and the outbox row's foreign keys are checked at the statement's end,
# when every CTE has run. A new run has no chunks to replace (no delete), and the outbox row is
# stamped dispatched under the first message's task id (the caller sends it after the commit).
SUBMIT_RUN = (
    f"WITH r AS (INSERT INTO runs ({', '.join(RUN_VALUES)}) VALUES ({', '.join(RUN_VALUES.values())})), "
    "ch AS (INSERT INTO state_chunks (run_id, field, seq, data) SELECT %(run_id)s, c.field, 0, c.data "
    "FROM unnest(%(chunk_fields)b::text[], %(chunk_data)b::text[]) AS c(field, data)), "
    "st AS (INSERT INTO steps (run_id, seq, name, status, attempt, lease_owner, lease_expires_at, started_at, "
    "checkpoint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, requests, cost_usd, created_at) "
    f"VALUES (%(run_id)s, 1, %(first_step)s, '{StepStatus.PENDING.value}', 0, NULL, NULL, NULL, NULL, "
    "0, 0, 0, 0, 0, 0, %(now)s)), "
    "ob AS (INSERT INTO outbox (run_id, seq, task_name, queue, priority, attempt, task_id, created_at, queued_at, "
    "not_before, dispatched_at) VALUES (%(run_id)s, 1, %(task_name)s, %(queue)s, %(priority)s, 1, %(task_id)s, "
    "%(now)s, %(now)s, NULL, %(now)s)) "
    "INSERT INTO events (run_id, seq, type, payload, created_at) VALUES (%(run_id)s, 1, %(event_type)s, "
    "%(event_payload)s, %(event_time)s)"
)


def submit_params(
    submit: SubmitRun, new: NewRun, *, dialect: Dialect, now: datetime
) -> tuple[dict[str, Any], list[Event]]:
    """`SUBMIT_RUN`'s parameters, the JSON columns encoded as the ORM encodes them; and the event written."""
    submitted = RunSubmitted(
        run_id=new.run_id,
        seq=1,
        workflow=submit.workflow,
        input=submit.input,
        model=submit.model,
        queue=new.queue,
        priority=new.priority,
    )
    params: dict[str, Any] = {
        "run_id": new.run_id,
        "workflow": submit.workflow,
        "input": submit.input,
        "model": submit.model,
        "queue": new.queue,
        "priority": new.priority,
        "state": new.state,
        "now": now,
        "chunk_fields": [chunk.field for chunk in new.chunks],
        "chunk_data": [chunk.data for chunk in new.chunks],
        "first_step": new.first.name,
        "task_name": new.first.task_name,
        "task_id": new.first.task_id,
        "event_type": submitted.type,
        "event_payload": submitted.model_dump_json(),
        "event_time": submitted.ts,
    }
    for name, value in (("tools", submit.tools), ("options", submit.options), ("run_metadata", submit.metadata)):
        params[name] = cast("JSONText[Any]", RUNS.c[name].type).process_bind_param(value, dialect)
    return params, [submitted]
