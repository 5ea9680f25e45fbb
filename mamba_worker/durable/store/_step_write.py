"""`StepWrite`: everything a step commit writes, and `write_step_txn`, the portable way to write it.

`send_commit` (``durable/_commit.py``) decides *what* a step commit writes; this module says how
it lands in SQL. `RunStore.write_step` runs it in one transaction: on PostgreSQL through
`PgPipeline` (one round trip when the writer knows the run's event counter, else two), elsewhere
through `write_step_txn` (the ``*_txn`` writers on a session). Both write the same rows and take
the same guards, in the same order:

1. the step must still be ``running`` under the writer's lease and attempt (`mark_step_committed_txn`);
2. the run must still be ``running`` and not asked to cancel (`advance_run_txn`, which also sets
   the state, reserves the event numbers and reads the usage totals);
3. the state's chunks (``state_chunks``), the successor's step and outbox rows (for a ``Next``),
   then the events.

A guard that fails rolls everything back and is reported as a `WriteRefused`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import JsonValue
from sqlmodel import Session

from mamba_client.schemas import ErrorBody, Event, RunStatus, Usage
from mamba_worker.durable.store._chunks import ChunkRead, StateChunk, write_state_chunks_txn
from mamba_worker.durable.store._events import insert_numbered_events_txn
from mamba_worker.durable.store._outbox import insert_outbox_txn
from mamba_worker.durable.store._runs import UNSET, Unset, advance_run_txn
from mamba_worker.durable.store._steps import StepClaim, insert_step_txn, mark_step_committed_txn
from mamba_worker.durable.store._tables import RunRow
from mamba_worker.durable.store._types import utcnow


@dataclass(frozen=True, kw_only=True)
class SuccessorWrite:
    """The successor step a commit inserts, with its outbox row."""

    seq: int
    name: str
    task_name: str
    queue: str
    priority: int | None
    task_id: str
    """The Celery task id the outbox row is stamped with (the caller sends it right after)."""
    claimed_by: str | None = None
    """Insert it already claimed by this worker (attempt 1): it runs inline, no message is sent."""
    lease_seconds: float = 0.0


@dataclass(frozen=True, kw_only=True)
class StepWrite:
    """One step commit's rows (see the module docstring for the order and the guards)."""

    run_id: str
    seq: int
    owner: str
    attempt: int
    state: str
    """The run's new state document (JSON text), without its journal lists."""
    chunks: Sequence[StateChunk] = ()
    """What the journal lists gained (or their new items, for a list rewritten)."""
    status: RunStatus | None = None
    """The run's new status; ``None``: it stays ``running``."""
    output: JsonValue | Unset = UNSET
    error: ErrorBody | None | Unset = UNSET
    successor: SuccessorWrite | None = None
    events: Sequence[Event]
    """The step's events, in order (numbered by the write)."""
    final: Callable[[Usage], Event] | None = None
    """The run's final event, built from its usage totals as of the commit (which the write reads)."""
    expected_event_seq: int | None = None
    """The run's next event number as this writer last wrote it (its claim, or its inline
    predecessor's commit). With it, PostgreSQL numbers the events before the write and checks the
    guess in the same statement: one round trip. A wrong guess (another writer appended events
    meanwhile) writes nothing and the write takes the general path."""
    tool_results: Sequence[ToolCallResult] = ()
    """Finished calls of idempotent tools whose ledger rows ride in this commit: written first, in
    the same transaction. A refused write may leave them unwritten: the caller then writes them on
    their own (`RunStore.record_tool_results`; writing one twice changes nothing). Losing one to a
    crash before the commit only means running the call again, which an idempotent tool allows."""
    now: datetime

    @property
    def event_count(self) -> int:
        """How many events the write stores (their numbers are reserved together)."""
        return len(self.events) + (self.final is not None)


ToolCallStart = Literal["insert", "restart"]
"""How `RunStore.record_tool_call_finished` also records the call's start: a new row, or a later attempt's takeover."""


@dataclass(frozen=True, kw_only=True)
class RunningClaim:
    """What `RunStore.claim_running_step` took and wrote."""

    run: RunRow
    """The run as of the claim (state included)."""
    chunks: ChunkRead
    """The run's state chunks (its journal lists) as of the claim: all, or those after ``after_seq``."""
    claim: StepClaim
    events: Sequence[Event]
    """What the claim wrote, numbered: ``step.started``, after ``run.started`` when it started the run."""
    payloads: Sequence[str]
    """`events` as stored (JSON text), for publishing them without serialising them again."""

    @property
    def event(self) -> Event:
        """The claim's own event (``step.started``)."""
        return self.events[-1]

    @property
    def payload(self) -> str:
        """`event` as stored."""
        return self.payloads[-1]


@dataclass(frozen=True, kw_only=True)
class ModelCallRecord:
    """One model response for the ``model_calls`` ledger (`record_model_call_txn`'s arguments)."""

    run_id: str
    seq: int
    attempt: int
    call_index: int
    usage: Usage
    model_name: str | None
    response: str | None
    now: datetime = field(default_factory=utcnow)


@dataclass(frozen=True, kw_only=True)
class ToolCallRecord:
    """One tool call of a step attempt, as the ``tool_calls`` ledger records it (start and result)."""

    run_id: str
    seq: int
    tool_call_id: str
    tool_name: str
    idempotent: bool
    attempt: int
    args: str | None


@dataclass(frozen=True, kw_only=True)
class ToolCallResult:
    """A finished call's ledger write (`RunStore.record_tool_call_finished`'s arguments)."""

    call: ToolCallRecord
    result: str
    """What the model is given (JSON text)."""
    start: ToolCallStart | None
    """The call's start, recorded in the same write (see `RunStore.record_tool_call_finished`)."""


class WriteRefused(StrEnum):
    """Why `RunStore.write_step` wrote nothing."""

    LEASE_LOST = "lease_lost"
    """The step is no longer held by the writer's lease and attempt."""
    RUN_STOPPED = "run_stopped"
    """The run is no longer running, or was asked to cancel."""
    REFUSED = "refused"
    """The caller's own check refused it."""


@dataclass(frozen=True, kw_only=True)
class StepWritten:
    """What a step commit wrote."""

    events: list[Event]
    """The events, numbered."""
    usage: Usage
    """The run's usage totals as of the commit."""
    payloads: list[str]
    """The events as stored (JSON text), for publishing them without serialising them again."""
    next_event_seq: int
    """The run's next event number after the write (what the next write by this worker expects)."""


class PendingStepWrite(Protocol):
    """A step commit sent (`RunStore.send_step`), whose outcome is read when it is needed.

    Once it is sent, the server runs the write whatever happens to the sender; `confirm` reads
    what it did. It must be called on the thread that sent it, before that thread's next commit.
    """

    def confirm(self) -> StepWritten | WriteRefused:
        """What the write did (`RunStore.write_step`'s result); the same on every call.

        Raises:
            DBAPIError: The write failed, or its outcome could not be read (the connection was lost).
        """
        ...


@dataclass(frozen=True)
class SettledStepWrite:
    """A `PendingStepWrite` already written and read (every store but PostgreSQL's one-statement commit)."""

    result: StepWritten | WriteRefused

    def confirm(self) -> StepWritten | WriteRefused:
        """The write's result."""
        return self.result


def write_step_txn(session: Session, write: StepWrite) -> StepWritten | WriteRefused:
    """Write ``write`` with the ``*_txn`` writers on the caller's session (not committed here).

    On `WriteRefused` the caller must roll back: an earlier statement may have written.
    """
    if not mark_step_committed_txn(
        session, write.run_id, write.seq, owner=write.owner, attempt=write.attempt, now=write.now
    ):
        return WriteRefused.LEASE_LOST
    successor = write.successor
    advance = advance_run_txn(
        session,
        write.run_id,
        state=write.state,
        events=write.event_count,
        last_seq=successor.seq if successor is not None else None,
        status=write.status,
        output=write.output,
        error=write.error,
        now=write.now,
    )
    if advance is None:
        return WriteRefused.RUN_STOPPED
    write_state_chunks_txn(session, write.run_id, write.seq, write.chunks)
    if successor is not None:
        insert_step_txn(
            session,
            run_id=write.run_id,
            seq=successor.seq,
            name=successor.name,
            claimed_by=successor.claimed_by,
            lease_seconds=successor.lease_seconds,
            bump_last_seq=False,
            now=write.now,
        )
        insert_outbox_txn(
            session,
            run_id=write.run_id,
            seq=successor.seq,
            task_name=successor.task_name,
            queue=successor.queue,
            priority=successor.priority,
            dispatching_as=successor.task_id,
            now=write.now,
        )
    numbered, payloads = built_events(write, advance.usage, first_seq=advance.first_event_seq)
    insert_numbered_events_txn(session, numbered, payloads)
    return StepWritten(
        events=numbered,
        usage=advance.usage,
        payloads=payloads,
        next_event_seq=advance.first_event_seq + write.event_count,
    )


def built_events(write: StepWrite, usage: Usage | None, *, first_seq: int) -> tuple[list[Event], list[str]]:
    """The write's events numbered from ``first_seq``, and their JSON (what both paths store).

    ``usage``: the run's totals as of the commit, for the final event (``None`` only when the
    write has none).
    """
    events = list(write.events)
    if write.final is not None:
        if usage is None:
            raise ValueError("a final event needs the run's usage as of the commit")
        events.append(write.final(usage))
    numbered = [event.model_copy(update={"seq": first_seq + i}) for i, event in enumerate(events)]
    return numbered, [event.model_dump_json() for event in numbered]
