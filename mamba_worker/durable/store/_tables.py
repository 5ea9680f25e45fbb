"""The SQL tables of the durable runtime, as SQLModel classes (see the package docstring for the schema).

All tables share one private `MetaData` (not SQLModel's global one), so the migrations compare
against exactly these tables. Constraint names follow a naming convention so migrations can
refer to them on both databases.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from pydantic import JsonValue
from sqlalchemy import Column, ForeignKeyConstraint, Index, MetaData, Table, Text
from sqlalchemy.orm import configure_mappers, registry
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlmodel import Field, SQLModel

from mamba_client.schemas import (
    ErrorBody,
    RunOptions,
    RunStatus,
    StepStatus,
    ToolCallStatus,
    Usage,
    Waiting,
)
from mamba_worker.durable.store._types import EnumText, JSONText, UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)
"""The store's tables, and nothing else."""


class _StoreModel(SQLModel, registry=registry(metadata=metadata)):
    pass


class _HasUsage(Protocol):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    requests: int
    cost_usd: float


def usage_of(row: _HasUsage) -> Usage:
    """The usage columns of a row (ORM or Core) as a `Usage`."""
    return Usage(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_read_tokens=row.cache_read_tokens,
        cache_write_tokens=row.cache_write_tokens,
        requests=row.requests,
        cost_usd=row.cost_usd,
    )


class RunRow(_StoreModel, table=True):
    """``runs``: one row per run; holds the workflow's current state."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "status", "created_at"),
        Index(None, "created_at", "id"),
    )

    id: str = Field(primary_key=True)
    workflow: str
    status: RunStatus = Field(sa_type=EnumText(RunStatus))
    input: str = Field(sa_type=Text)
    model: str | None = None
    tools: list[str] = Field(default_factory=list, sa_type=JSONText(list[str]))
    options: RunOptions = Field(default_factory=RunOptions, sa_type=JSONText(RunOptions))
    run_metadata: dict[str, str] = Field(default_factory=dict, sa_type=JSONText(dict[str, str]))
    queue: str
    priority: int | None = None
    """Priority of the run's step messages (Mamba's 0-9 scale), resolved at submit; ``None``: none."""
    idempotency_key: str | None = Field(default=None, unique=True)
    state: str | None = Field(default=None, sa_type=Text)
    """The workflow's state document (JSON text, serialised by the caller), as of the last commit;
    without the lists it keeps in ``state_chunks`` (the workflow's journal fields)."""
    output: JsonValue = Field(default=None, sa_type=JSONText(JsonValue), nullable=True)
    error: ErrorBody | None = Field(default=None, sa_type=JSONText(ErrorBody))
    waiting: Waiting | None = Field(default=None, sa_type=JSONText(Waiting))
    # Totals of the run's model_calls rows, maintained by record_model_call_txn.
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    cost_usd: float = 0.0
    last_seq: int = 0
    """The newest step's seq (0 before the first); maintained by `insert_step_txn`."""
    next_event_seq: int = 1
    """The seq the next appended event gets; incremented atomically by `append_events_txn`."""
    cancel_requested: bool = False
    parent_run_id: str | None = None
    parent_seq: int | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def usage(self) -> Usage:
        """The usage columns as a `Usage`."""
        return usage_of(self)


class StepRow(_StoreModel, table=True):
    """``steps``: one row per step, unique ``(run_id, seq)``; the lease lives here."""

    __tablename__ = "steps"
    __table_args__ = (Index(None, "status", "lease_expires_at"),)

    run_id: str = Field(primary_key=True, foreign_key="runs.id", ondelete="CASCADE")
    seq: int = Field(primary_key=True)
    name: str
    status: StepStatus = Field(sa_type=EnumText(StepStatus))
    attempt: int = 0
    """Claims so far; the running attempt's number."""
    lease_owner: str | None = None
    lease_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checkpoint: str | None = Field(default=None, sa_type=Text)
    """The state this step starts from (JSON text), when the caller keeps it: fork copies it."""
    error: ErrorBody | None = Field(default=None, sa_type=JSONText(ErrorBody))
    traceback: str | None = Field(default=None, sa_type=Text)
    # Totals of the step's model_calls rows (all attempts), maintained by record_model_call_txn.
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0
    cost_usd: float = 0.0
    created_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def usage(self) -> Usage:
        """The usage columns as a `Usage`."""
        return usage_of(self)


class OutboxRow(_StoreModel, table=True):
    """``outbox``: the doorbell of each step: which task to send where, and whether it was sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        ForeignKeyConstraint(["run_id", "seq"], ["steps.run_id", "steps.seq"], ondelete="CASCADE"),
        Index(
            "ix_outbox_pending",
            "queued_at",
            sqlite_where=Column("dispatched_at").is_(None),
            postgresql_where=Column("dispatched_at").is_(None),
        ),
    )

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    task_name: str
    queue: str
    priority: int | None = None
    """Priority of the message (Mamba's 0-9 scale; the run's), so every re-send keeps it."""
    attempt: int = 0
    """How many times the message was sent."""
    task_id: str | None = None
    """The Celery task id of the latest send (to revoke it on cancel)."""
    created_at: datetime = Field(sa_type=UTCDateTime)
    queued_at: datetime = Field(sa_type=UTCDateTime)
    """When it (last) became due to be sent."""
    not_before: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """Do not send before this time (retry backoff)."""
    dispatched_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ToolCallRow(_StoreModel, table=True):
    """``tool_calls``: the ledger of tool calls, unique ``(run_id, seq, tool_call_id)``."""

    __tablename__ = "tool_calls"
    __table_args__ = (ForeignKeyConstraint(["run_id", "seq"], ["steps.run_id", "steps.seq"], ondelete="CASCADE"),)

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    tool_call_id: str = Field(primary_key=True)
    tool_name: str
    idempotent: bool
    status: ToolCallStatus = Field(sa_type=EnumText(ToolCallStatus))
    attempt: int
    """The step attempt that (last) started it."""
    args: str | None = Field(default=None, sa_type=Text)
    """Arguments (JSON text)."""
    result: str | None = Field(default=None, sa_type=Text)
    """Result (JSON text), once finished."""
    error: ErrorBody | None = Field(default=None, sa_type=JSONText(ErrorBody))
    started_at: datetime = Field(sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ModelCallRow(_StoreModel, table=True):
    """``model_calls``: the ledger of model requests and their usage, retried attempts included."""

    __tablename__ = "model_calls"
    __table_args__ = (ForeignKeyConstraint(["run_id", "seq"], ["steps.run_id", "steps.seq"], ondelete="CASCADE"),)

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    attempt: int = Field(primary_key=True)
    call_index: int = Field(primary_key=True)
    """Position of the request within the step attempt, from 0."""
    model_name: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 1
    cost_usd: float = 0.0
    response: str | None = Field(default=None, sa_type=Text)
    """The raw model response (JSON text): reused on a re-run, kept for diagnosing bad responses."""
    superseded: bool = False
    """The response was not used (garbage, or its attempt was retried); its usage still counts."""
    created_at: datetime = Field(sa_type=UTCDateTime)

    @property
    def usage(self) -> Usage:
        """This request's usage."""
        return usage_of(self)


class EventRow(_StoreModel, table=True):
    """``events``: the run's event log, unique gap-free ``(run_id, seq)``.

    No foreign key to ``runs``: every writer has updated the run's row first (migration 0004).
    """

    __tablename__ = "events"

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    type: str
    payload: str = Field(sa_type=Text)
    """The whole event as JSON text (`mamba_client.schemas.EventAdapter` parses it)."""
    created_at: datetime = Field(sa_type=UTCDateTime)


class StateChunkRow(_StoreModel, table=True):
    """``state_chunks``: the items one commit appended to one of a run's journal lists.

    A run's state is ``runs.state`` plus, for each journal field, the items of its chunks in
    ``seq`` order. ``data`` is the items' JSON without the enclosing brackets (``a,b``), so the
    chunks join into the list's JSON without being parsed; it is empty for a list rewritten empty.
    No foreign key to ``runs``, as for ``events``.
    """

    __tablename__ = "state_chunks"

    run_id: str = Field(primary_key=True)
    field: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    """The step whose commit wrote it (0: the run's submit)."""
    data: str = Field(sa_type=Text)


RUNS: Table = metadata.tables["runs"]
STEPS: Table = metadata.tables["steps"]
OUTBOX: Table = metadata.tables["outbox"]
TOOL_CALLS: Table = metadata.tables["tool_calls"]
MODEL_CALLS: Table = metadata.tables["model_calls"]
EVENTS: Table = metadata.tables["events"]
STATE_CHUNKS: Table = metadata.tables["state_chunks"]


_RUN_ROWS = manager_of_class(RunRow)


def loaded_run_row(values: Mapping[str, Any]) -> RunRow:
    """A `RunRow` from decoded column values (every column), built as the ORM builds a loaded row.

    ``RunRow(**values)`` sets each attribute through SQLModel and SQLAlchemy's instrumentation
    (~85 µs); the ORM's loader puts a row's values straight into the instance's ``__dict__`` (~4
    µs). A claim builds one per step, so it does what the loader does. The row is transient, as
    one built by ``RunRow(...)`` is.
    """
    # Mappers are configured lazily, by the first query or constructor call; this path is neither.
    configure_mappers()
    run: RunRow = _RUN_ROWS.new_instance()
    run.__dict__.update(values)
    return run
