"""The durable runtime's SQL store: tables, engine, migrations, `RunStore` reads and ``*_txn`` writers.

SQL is the truth of every run; the broker is only a doorbell. The same code runs on SQLite (the
embedded default) and PostgreSQL. Imports SQLModel/SQLAlchemy/alembic, `mamba_client.schemas` (the
status enums and wire models) and ``mamba_worker.config``/``errors``; never Celery or pydantic-ai.

Schema (JSON documents are TEXT, serialised by pydantic; statuses are the `mamba_client.schemas`
enums stored as their values; times are UTC)::

    runs         id PK, workflow, status, input, model, tools, options, run_metadata, queue,
                 priority NULL (resolved at submit, see durable._routing),
                 idempotency_key UNIQUE NULL, state (the workflow's state document, JSON text),
                 output, error, waiting, usage totals (input/output/cache tokens, requests,
                 cost_usd), last_seq (newest step), next_event_seq, cancel_requested,
                 parent_run_id, parent_seq (forks), created_at, updated_at, finished_at
                 INDEX (status, created_at), (created_at, id)
    steps        (run_id → runs, seq) PK, name, status, attempt, lease_owner, lease_expires_at,
                 checkpoint (state the step starts from, optional), error, traceback,
                 usage totals, created_at, started_at, finished_at
                 INDEX (status, lease_expires_at): running steps with expired leases
    outbox       (run_id, seq) PK → steps, task_name, queue, priority NULL, attempt (sends), task_id,
                 created_at, queued_at, not_before, dispatched_at
                 INDEX ix_outbox_pending (queued_at) WHERE dispatched_at IS NULL
    tool_calls   (run_id, seq, tool_call_id) PK → steps, tool_name, idempotent, status, attempt,
                 args, result, error, started_at, finished_at
    model_calls  (run_id, seq, attempt, call_index) PK → steps, model_name, usage columns,
                 response (raw, JSON text), superseded, created_at
    events       (run_id, seq) PK, type, payload (the whole event, JSON text), created_at
    state_chunks (run_id, field, seq) PK, data: the items one commit (seq; 0 the submit)
                 appended to one journal list of the run's state (durable._journal), JSON
                 without brackets; runs.state holds the rest of the state

Rules the writers keep (STYLE rules 6 and 7):

- A ``*_txn`` function takes the caller's `Session`, runs Core statements on its connection and
  never commits; the caller (``send_commit``) owns the one transaction. ORM objects loaded earlier
  in that session are not refreshed by these statements.
- Every ownership or idempotency decision is one SQL predicate: a conditional ``UPDATE`` whose
  row count says who won, or ``INSERT ... ON CONFLICT DO NOTHING``. Each docstring says why a
  duplicate call is harmless.
- Usage totals on ``runs`` and ``steps`` always equal the sum of their ``model_calls`` rows.
- Event ``seq`` numbers per run are gap-free (`append_events_txn`).
"""

from mamba_worker.durable.store._chunks import (
    ChunkRead,
    StateChunk,
    StoredChunks,
    joined_state,
    load_state_chunks_txn,
    read_state_chunks_txn,
    write_state_chunks_txn,
)
from mamba_worker.durable.store._engine import create_engine, is_postgresql, read_only
from mamba_worker.durable.store._events import append_events_txn, insert_events_txn
from mamba_worker.durable.store._ledger import (
    mark_tool_call_in_doubt_txn,
    record_model_call_txn,
    record_tool_call_finished_txn,
    record_tool_call_started_txn,
    restart_tool_call_txn,
    supersede_model_calls_txn,
)
from mamba_worker.durable.store._migrate import (
    VERSION_TABLE,
    alembic_config,
    current_revision,
    upgrade_database,
)
from mamba_worker.durable.store._outbox import insert_outbox_txn, mark_dispatched_txn, requeue_outbox_txn
from mamba_worker.durable.store._runs import (
    UNSET,
    RunAdvance,
    Unset,
    advance_run_txn,
    insert_run_txn,
    load_run_by_idempotency_key_txn,
    load_run_txn,
    load_run_view_txn,
    new_run_id,
    reserve_events_txn,
    update_run_txn,
)
from mamba_worker.durable.store._step_write import (
    ModelCallRecord,
    PendingStepWrite,
    RunningClaim,
    SettledStepWrite,
    StepWrite,
    StepWritten,
    SuccessorWrite,
    ToolCallRecord,
    ToolCallResult,
    ToolCallStart,
    WriteRefused,
    write_step_txn,
)
from mamba_worker.durable.store._steps import (
    StepClaim,
    abort_step_txn,
    claim_running_step_txn,
    claim_step_txn,
    expire_lease_txn,
    heartbeat_txn,
    insert_step_txn,
    load_step_txn,
    mark_step_committed_txn,
    mark_step_failed_txn,
    reset_step_txn,
)
from mamba_worker.durable.store._store import RunStore
from mamba_worker.durable.store._submit import FirstStep, NewRun, SubmittedRun, insert_submitted_run_txn
from mamba_worker.durable.store._tables import (
    EventRow,
    ModelCallRow,
    OutboxRow,
    RunRow,
    StateChunkRow,
    StepRow,
    ToolCallRow,
    metadata,
)
from mamba_worker.durable.store._types import utcnow

__all__ = [
    "ChunkRead",
    "EventRow",
    "FirstStep",
    "ModelCallRecord",
    "ModelCallRow",
    "NewRun",
    "OutboxRow",
    "PendingStepWrite",
    "RunAdvance",
    "RunRow",
    "RunStore",
    "RunningClaim",
    "SettledStepWrite",
    "StateChunk",
    "StateChunkRow",
    "StepClaim",
    "StepRow",
    "StepWrite",
    "StepWritten",
    "StoredChunks",
    "SubmittedRun",
    "SuccessorWrite",
    "ToolCallRecord",
    "ToolCallResult",
    "ToolCallRow",
    "ToolCallStart",
    "UNSET",
    "Unset",
    "VERSION_TABLE",
    "WriteRefused",
    "abort_step_txn",
    "advance_run_txn",
    "alembic_config",
    "append_events_txn",
    "claim_running_step_txn",
    "claim_step_txn",
    "create_engine",
    "current_revision",
    "expire_lease_txn",
    "heartbeat_txn",
    "insert_events_txn",
    "insert_outbox_txn",
    "insert_run_txn",
    "insert_step_txn",
    "insert_submitted_run_txn",
    "is_postgresql",
    "joined_state",
    "load_run_by_idempotency_key_txn",
    "load_run_txn",
    "load_run_view_txn",
    "load_state_chunks_txn",
    "load_step_txn",
    "mark_dispatched_txn",
    "mark_step_committed_txn",
    "mark_step_failed_txn",
    "mark_tool_call_in_doubt_txn",
    "metadata",
    "new_run_id",
    "read_only",
    "read_state_chunks_txn",
    "record_model_call_txn",
    "record_tool_call_finished_txn",
    "record_tool_call_started_txn",
    "requeue_outbox_txn",
    "reserve_events_txn",
    "reset_step_txn",
    "restart_tool_call_txn",
    "supersede_model_calls_txn",
    "update_run_txn",
    "upgrade_database",
    "utcnow",
    "write_state_chunks_txn",
    "write_step_txn",
]
