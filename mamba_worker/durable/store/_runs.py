"""Writers and loaders for ``runs``: insert a run, update it under a status guard, load it."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Final, Literal

from pydantic import JsonValue
from sqlalchemy import ColumnElement, bindparam, exists, insert, update
from sqlmodel import Session, select

from mamba_client.schemas import ErrorBody, Run, RunStatus, SubmitRun, Usage, Waiting
from mamba_worker.durable.errors import RunNotFoundError
from mamba_worker.durable.store._convert import run_select, to_run
from mamba_worker.durable.store._sql import connection, insert_ignore
from mamba_worker.durable.store._tables import RUNS, RunRow, loaded_run_row, usage_of
from mamba_worker.durable.store._types import utcnow


class _Unset(Enum):
    UNSET = "unset"


UNSET: Final = _Unset.UNSET
"""Marks an `update_run_txn` field that is left as it is (``None`` is a value: it clears the column)."""

Unset = Literal[_Unset.UNSET]
"""The type of `UNSET`."""


def new_run_id() -> str:
    """A fresh run id (a random UUID, as text)."""
    return str(uuid.uuid4())


def insert_run_txn(
    session: Session,
    submit: SubmitRun,
    *,
    run_id: str,
    queue: str,
    priority: int | None = None,
    status: RunStatus = RunStatus.PENDING,
    state: str | None = None,
    parent_run_id: str | None = None,
    parent_seq: int | None = None,
    last_seq: int = 0,
    reserved_events: int = 0,
    now: datetime | None = None,
) -> bool:
    """Insert a run; ``False`` when another run already holds ``submit.idempotency_key``.

    With a key this is ``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING``, so a duplicate
    submission is harmless: two concurrent submits with one key create one run, and the loser
    reads the winner's with `load_run_by_idempotency_key_txn` (on PostgreSQL the conflict check
    waits for the winner's commit, so the read in the same transaction finds it).

    Args:
        session: The caller's session; not committed here.
        submit: What was submitted.
        run_id: The new run's id (`new_run_id`).
        queue: The queue its steps go to (resolved at submit: `mamba_worker.durable._routing`).
        priority: Its step messages' priority (Mamba's 0-9 scale), resolved likewise; ``None``: none.
        status: Initial status.
        state: The workflow's initial state document (JSON text).
        parent_run_id: For a fork, the run it was forked from.
        parent_seq: For a fork, the parent's step it starts from.
        last_seq: Its newest step, when the caller inserts it in this transaction (a submit's
            first step, inserted with ``bump_last_seq=False``): one ``UPDATE`` less.
        reserved_events: Event numbers taken at insert (``1`` to ``reserved_events``), for the
            caller's `insert_events_txn` (``first_seq=1``) in this transaction: one ``UPDATE`` less
            than `append_events_txn`, and as gap-free (a rollback takes the row with it).
        now: The time to record (default: now).
    """
    now = now or utcnow()
    values: dict[str, Any] = {
        "id": run_id,
        "workflow": submit.workflow,
        "status": status,
        "input": submit.input,
        "model": submit.model,
        "tools": submit.tools,
        "options": submit.options,
        "run_metadata": submit.metadata,
        "queue": queue,
        "priority": priority,
        "idempotency_key": submit.idempotency_key,
        "state": state,
        "output": None,
        "error": None,
        "waiting": None,
        "input_tokens": 0,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "requests": 0,
        "cost_usd": 0.0,
        "last_seq": last_seq,
        "next_event_seq": 1 + reserved_events,
        "cancel_requested": False,
        "parent_run_id": parent_run_id,
        "parent_seq": parent_seq,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }
    if submit.idempotency_key is None:
        connection(session).execute(insert(RUNS).values(**values))
        return True
    return insert_ignore(session, RUNS, values, conflict=["idempotency_key"]).rowcount == 1


def update_run_txn(
    session: Session,
    run_id: str,
    *,
    only_if_status: Collection[RunStatus] | None = None,
    only_if_not_cancel_requested: bool = False,
    status: RunStatus | Unset = UNSET,
    state: str | None | Unset = UNSET,
    output: JsonValue | Unset = UNSET,
    error: ErrorBody | None | Unset = UNSET,
    waiting: Waiting | None | Unset = UNSET,
    cancel_requested: bool | Unset = UNSET,
    now: datetime | None = None,
) -> bool:
    """Change a run, guarded by its current status; ``True`` when the guard held and the row changed.

    One conditional ``UPDATE runs SET ... WHERE id = :run_id [AND status IN (...)]
    [AND NOT cancel_requested]``. The guard is how a step "checks the run's status before it
    commits": a run cancelled meanwhile fails the guard, the caller rolls back, and nothing of the
    step is written. Fields left `UNSET` keep their value. Setting a terminal ``status`` stamps
    ``finished_at``; setting a non-terminal one clears it (a resumed run is not finished).

    A duplicate (the same update applied twice) is harmless: it writes the same values, and a
    guard on the old status makes the second one a no-op that returns ``False``.
    """
    now = now or utcnow()
    values: dict[str, Any] = {"updated_at": now}
    if status is not UNSET:
        values["status"] = status
        values["finished_at"] = now if status.is_terminal else None
    for name, value in (
        ("state", state),
        ("output", output),
        ("error", error),
        ("waiting", waiting),
        ("cancel_requested", cancel_requested),
    ):
        if value is not UNSET:
            values[name] = value
    statement = update(RUNS).where(RUNS.c.id == run_id).values(**values)
    guards: list[ColumnElement[bool]] = []
    if only_if_status is not None:
        guards.append(_LOCKED_RUN.c.status.in_([RunStatus(s) for s in only_if_status]))
    if only_if_not_cancel_requested:
        guards.append(_LOCKED_RUN.c.cancel_requested.is_(False))
    if not guards:
        return connection(session).execute(statement).rowcount == 1
    # Not ``rowcount``: Python's sqlite3 counts no rows for a statement that starts with ``WITH``.
    guarded = statement.where(exists().where(*guards)).returning(RUNS.c.id)
    return connection(session).execute(guarded, {"b_run_id": run_id}).first() is not None


# A guarded update finds its run by primary key and locks it, then tests the guard: with the
# status in the scan's own WHERE, PostgreSQL's planner took the status index whenever its
# statistics made that status look rare (a burst of pending runs, say), and walked every run in
# it. The lock comes first, so an update that waited on it tests the row the other writer left.
_LOCKED_RUN = (
    select(RUNS.c.status, RUNS.c.cancel_requested)
    .where(RUNS.c.id == bindparam("b_run_id"))
    .with_for_update()
    .cte("locked_run")
)


def load_run_txn(session: Session, run_id: str) -> RunRow:
    """The run's row, state included, as of now in this transaction.

    Raises:
        RunNotFoundError: No run has this id.
    """
    row = session.get(RunRow, run_id, populate_existing=True)
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id!r}", run_id=run_id)
    return row


def load_run_view_txn(session: Session, run_id: str) -> Run:
    """The run as the API shows it (without its state document), as of now in this transaction.

    Raises:
        RunNotFoundError: No run has this id.
    """
    row = connection(session).execute(run_select().where(RUNS.c.id == run_id)).first()
    if row is None:
        raise RunNotFoundError(f"no run with id {run_id!r}", run_id=run_id)
    return to_run(row)


def load_run_by_idempotency_key_txn(session: Session, idempotency_key: str) -> RunRow | None:
    """The run submitted with this idempotency key, if any."""
    statement = (
        select(RunRow).where(RUNS.c.idempotency_key == idempotency_key).execution_options(populate_existing=True)
    )
    return session.exec(statement).first()


@dataclass(frozen=True, kw_only=True)
class RunAdvance:
    """What `advance_run_txn` reserved and read back."""

    first_event_seq: int
    """The first of the event numbers reserved for the step's events."""
    usage: Usage
    """The run's usage totals as of this transaction (the step's model calls included)."""


def advance_run_txn(
    session: Session,
    run_id: str,
    *,
    state: str,
    events: int,
    last_seq: int | None = None,
    status: RunStatus | None = None,
    output: JsonValue | Unset = UNSET,
    error: ErrorBody | None | Unset = UNSET,
    now: datetime | None = None,
) -> RunAdvance | None:
    """A step commit's one write to its run; ``None`` when the run is no longer running (or asked to cancel).

    ``UPDATE runs SET state, [last_seq, status, output, error,] next_event_seq = next_event_seq +
    :events WHERE id AND status = 'running' AND NOT cancel_requested RETURNING next_event_seq,
    <usage>``. One statement does what `update_run_txn`, the event counter of `append_events_txn`
    and a reload of the usage would do in three: the guard, the state, the numbers for
    `insert_events_txn`, and the totals a final event reports. It holds the run's row lock to the
    end of the caller's transaction, so event numbers stay gap-free as with `append_events_txn`.
    """
    now = now or utcnow()
    values: dict[str, Any] = {"state": state, "updated_at": now, "next_event_seq": RUNS.c.next_event_seq + events}
    if last_seq is not None:
        values["last_seq"] = last_seq
    if status is not None:
        values["status"] = status
        values["finished_at"] = now if status.is_terminal else None
    if output is not UNSET:
        values["output"] = output
    if error is not UNSET:
        values["error"] = error
    statement = (
        update(RUNS)
        .where(RUNS.c.id == run_id, RUNS.c.status == RunStatus.RUNNING, RUNS.c.cancel_requested.is_(False))
        .values(**values)
        .returning(
            RUNS.c.next_event_seq,
            RUNS.c.input_tokens,
            RUNS.c.output_tokens,
            RUNS.c.cache_read_tokens,
            RUNS.c.cache_write_tokens,
            RUNS.c.requests,
            RUNS.c.cost_usd,
        )
    )
    row = connection(session).execute(statement).one_or_none()
    if row is None:
        return None
    return RunAdvance(first_event_seq=row.next_event_seq - events, usage=usage_of(row))


def reserve_events_txn(session: Session, run_id: str, *, events: int) -> tuple[RunRow, int] | None:
    """Reserve ``events`` event numbers and read the run in the same statement; ``None`` if no such run.

    ``UPDATE runs SET next_event_seq = next_event_seq + :events WHERE id = :run_id RETURNING *``:
    what `append_events_txn`'s counter and `load_run_txn` do in two round trips (a claim's hot
    path). Returns the run as of this transaction and the first reserved number, for
    `insert_events_txn`. The row lock keeps the numbers gap-free, as with `append_events_txn`.
    """
    row = (
        connection(session).execute(_RESERVE_EVENTS, {"b_run_id": run_id, "b_events": events}).mappings().one_or_none()
    )
    if row is None:
        return None
    run = loaded_run_row(dict(row))
    return run, run.next_event_seq - events


_RESERVE_EVENTS = (
    update(RUNS)
    .where(RUNS.c.id == bindparam("b_run_id"))
    .values(next_event_seq=RUNS.c.next_event_seq + bindparam("b_events"))
    .returning(*RUNS.c)
)
