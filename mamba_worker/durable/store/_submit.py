"""Writer for a submit: a new run with its first step, that step's doorbell and ``run.submitted``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session

from mamba_client.schemas import Event, Run, RunStatus, RunSubmitted, SubmitRun, Usage
from mamba_worker.durable.store._chunks import StateChunk, write_state_chunks_txn
from mamba_worker.durable.store._events import insert_events_txn
from mamba_worker.durable.store._outbox import insert_outbox_txn
from mamba_worker.durable.store._runs import insert_run_txn
from mamba_worker.durable.store._steps import insert_step_txn
from mamba_worker.durable.store._types import utcnow


@dataclass(frozen=True, kw_only=True)
class FirstStep:
    """A new run's first step and its Celery message, as the submit's commit records them."""

    name: str
    """The workflow's initial step."""
    task_name: str
    """Its Celery task name."""
    task_id: str
    """The message's task id: the outbox row is stamped sent under it; the caller sends it after the commit."""


@dataclass(frozen=True, kw_only=True)
class NewRun:
    """A new run's rows as its submit resolved them: what `insert_submitted_run_txn` writes."""

    run_id: str
    """The new run's id (`new_run_id`)."""
    queue: str
    """The queue its steps go to (resolved at submit)."""
    priority: int | None
    """Its messages' priority on Mamba's 0-9 scale; ``None``: none."""
    state: str
    """The state document's head (`StateJournal.split`)."""
    chunks: Sequence[StateChunk]
    """The state's journal lists."""
    first: FirstStep
    """The first step and its message."""


@dataclass(frozen=True, kw_only=True)
class SubmittedRun:
    """What a submit wrote (`StepWriter.insert_submitted_run`)."""

    run: Run
    """The run as the API shows it: the new one, or the run that holds the submit's idempotency key."""
    events: list[Event] | None
    """The events written (``run.submitted``); ``None``: nothing was, another run holds the key."""


def submitted_run_view(submit: SubmitRun, new: NewRun, *, now: datetime) -> Run:
    """The run a submit just inserted, as `load_run_view_txn` would read it back (without the read).

    Its lists and options are copies, as a read would give: never the caller's own objects.
    """
    return Run(
        id=new.run_id,
        workflow=submit.workflow,
        status=RunStatus.PENDING,
        input=submit.input,
        model=submit.model,
        tools=list(submit.tools),
        options=submit.options.model_copy(deep=True),
        queue=new.queue,
        priority=new.priority,
        metadata=dict(submit.metadata),
        idempotency_key=submit.idempotency_key,
        usage=Usage(),
        current_seq=1,
        current_step=new.first.name,
        current_attempt=0,
        created_at=now,
        updated_at=now,
    )


def insert_submitted_run_txn(
    session: Session, submit: SubmitRun, new: NewRun, *, now: datetime | None = None
) -> list[Event] | None:
    """Insert a submitted run; returns the events written, or ``None`` when another run holds its idempotency key.

    One statement per row, five in all: the run (its first step already its newest, event 1
    already taken), its state's chunks (a new run has none to replace, so no delete), the first
    step, its outbox row stamped dispatched as ``new.first.task_id`` (as a step's commit stamps its
    successor's: a crash before the send is the reconciler's stalled-dispatch case), and
    ``run.submitted``, numbered 1.

    Args:
        session: The caller's session; not committed here.
        submit: What was submitted, its model resolved.
        new: The run's rows as the submit resolved them.
        now: The time to record (default: now).
    """
    now = now or utcnow()
    if not insert_run_txn(
        session,
        submit,
        run_id=new.run_id,
        queue=new.queue,
        priority=new.priority,
        state=new.state,
        last_seq=1,
        reserved_events=1,
        now=now,
    ):
        return None
    write_state_chunks_txn(session, new.run_id, 0, [replace(chunk, replace=False) for chunk in new.chunks])
    insert_step_txn(session, run_id=new.run_id, seq=1, name=new.first.name, bump_last_seq=False, now=now)
    insert_outbox_txn(
        session,
        run_id=new.run_id,
        seq=1,
        task_name=new.first.task_name,
        queue=new.queue,
        priority=new.priority,
        dispatching_as=new.first.task_id,
        now=now,
    )
    submitted = RunSubmitted(
        run_id=new.run_id,
        workflow=submit.workflow,
        input=submit.input,
        model=submit.model,
        queue=new.queue,
        priority=new.priority,
    )
    return insert_events_txn(session, [submitted], first_seq=1)
