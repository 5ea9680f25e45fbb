"""`send_commit`: THE place where a step is committed.

One transaction writes everything a step produced (DESIGN.md invariant 1): the step's status,
the run's new state, the step's events, and the next step with its outbox row (or the run's
final status). Either all of it is in SQL, or none of it is and the step runs again.

Two predicates guard the transaction (invariants 2 and 7):

- the step must still be ``running`` under this worker's lease and attempt
  (`mark_step_committed_txn`), so a worker whose lease was taken over cannot commit;
- the run must still be ``running`` and not asked to cancel (`advance_run_txn`), so
  a cancelled run commits nothing more.

With ``claim_next_for`` the same transaction also claims the successor for this worker (it is
inserted ``running`` under this worker's lease, attempt 1, ``step.started`` recorded): the
executor then runs it inline, with no broker hop and no claim transaction. A crash after this
commit leaves a running successor whose lease expires, which the reconciler re-sends like any
other (invariant 4).

`RunStore.send_step` does the writing (`StepWrite`): on PostgreSQL with psycopg, in one round
trip when this worker knows the run's event counter (from its claim or its inline predecessor's
commit), else two; elsewhere with the portable ``*_txn`` writers. The one-round-trip commit is
sent without waiting for its outcome, which `CommitInFlight.confirm` reads when it is needed: an
inline successor's own work runs meanwhile, and none of its effects (a model request, a tool call,
its own commit) happens before the outcome is known. A commit refused or failed is therefore
never followed by anything its successor did outside this process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, assert_never

from pydantic import TypeAdapter

from mamba_client.schemas import (
    ErrorBody,
    Event,
    RunFailed,
    RunStatus,
    RunSucceeded,
    StepCommitted,
    StepStarted,
    Usage,
)
from mamba_worker.durable._dispatch import new_task_id
from mamba_worker.durable._faults import FaultPoint, fault
from mamba_worker.durable._names import step_task_name
from mamba_worker.durable.errors import LeaseLostError, RunCancelledError
from mamba_worker.durable.store import (
    PendingStepWrite,
    RunStore,
    StateChunk,
    StepWrite,
    StepWritten,
    SuccessorWrite,
    ToolCallResult,
    WriteRefused,
    utcnow,
)
from mamba_worker.workflows import Finish, Next, StepResult


@dataclass(frozen=True, kw_only=True)
class NextDispatch:
    """The successor step whose doorbell must be rung after the commit."""

    run_id: str
    seq: int
    step: str
    task_name: str
    queue: str
    priority: int | None
    """On Mamba's scale (0-9), as resolved at submit; ``None``: none."""
    task_id: str
    """The Celery task id the outbox row was stamped with; send the message with exactly this id."""
    claimed_attempt: int | None = None
    """Set when the commit claimed the successor for this worker (run it inline, send nothing)."""


@dataclass(frozen=True, kw_only=True)
class StepCommit:
    """Everything one step attempt produced, to be committed at once."""

    run_id: str
    seq: int
    step: str
    workflow: str
    queue: str
    priority: int | None = None
    """The run's priority (its successor's message carries it)."""
    owner: str
    attempt: int
    state: str
    """The workflow state after the step (JSON text), without its journal lists."""
    chunks: Sequence[StateChunk] = ()
    """What the state's journal lists gained (`StateJournal.split`)."""
    result: StepResult
    events: list[Event] = field(default_factory=list)
    """Events the step reported (reasoning, tool calls, model responses)."""
    usage: Usage = field(default_factory=Usage)
    """Usage of this attempt's new model calls (already in the ledger; reported in the event)."""
    claim_next_for: float | None = None
    """Lease seconds: claim the successor for ``owner`` in this commit, to run it inline."""
    expected_event_seq: int | None = None
    """The run's next event number as this worker last wrote it (`StepWrite.expected_event_seq`)."""
    tool_results: Sequence[ToolCallResult] = ()
    """Finished idempotent calls whose ledger rows this commit writes (`StepWrite.tool_results`)."""


@dataclass(frozen=True, kw_only=True)
class CommitOutcome:
    """What the commit wrote."""

    next: NextDispatch | None
    """The successor to dispatch; ``None`` when the run ended."""
    events: list[Event]
    """The committed events, numbered."""
    status: RunStatus
    """The run's status after the commit."""
    payloads: list[str] | None = None
    """`events` as stored (JSON text), when known: published as they are."""
    next_event_seq: int
    """The run's next event number after the commit (what an inline successor's commit expects)."""


def send_commit(store: RunStore, commit: StepCommit) -> CommitInFlight:
    """Commit a step attempt in one transaction (`RunStore.send_step`); its outcome is read by `CommitInFlight.confirm`.

    On PostgreSQL the commit is sent without waiting for its outcome: the caller may run the
    successor's own work meanwhile, and must confirm before anything of the successor leaves the
    process (DESIGN.md, "A commit's outcome is read when it is needed"). Elsewhere it is written
    here, and the confirm only reports it.
    """
    write, planned = _planned(commit)
    pending = store.send_step(write)
    # Sent: on PostgreSQL the server commits it whatever happens to this process from here on
    # (but on a statement's first use on the connection, which psycopg prepares first). A crash
    # now leaves an inline successor claimed by a dead attempt, which its lease brings back.
    fault(FaultPoint.AFTER_STEP_SENT)
    return CommitInFlight(planned, pending)


def _planned(commit: StepCommit) -> tuple[StepWrite, _Plan]:
    """What ``commit`` writes, and what the executor does once it is written."""
    fault(FaultPoint.BEFORE_STEP_COMMIT)
    next_dispatch: NextDispatch | None = None
    successor: SuccessorWrite | None = None
    step_events: list[Event] = list(commit.events)
    # The final event reports the run's totals as of the commit, which the write reads back; the
    # other events are known now, so a non-final step is written in one round trip on PostgreSQL.
    final: Callable[[Usage], Event] | None = None
    fields: dict[str, Any] = {}
    match commit.result:
        case Next(step=next_step):
            status = RunStatus.RUNNING
            next_seq = commit.seq + 1
            inline = commit.claim_next_for is not None
            step_events.append(_committed(commit, next_step=next_step))
            if inline:
                step_events.append(
                    StepStarted(run_id=commit.run_id, step_seq=next_seq, step=next_step, attempt=1, worker=commit.owner)
                )
            task_name = step_task_name(commit.workflow, next_step)
            task_id = new_task_id(commit.run_id, next_seq)
            # Inserted already claimed when it runs inline: the insert is its claim (attempt 1).
            # Its outbox row is stamped dispatched in this transaction: the executor sends right
            # after the commit (or runs the successor inline; the row then only serves a re-send).
            successor = SuccessorWrite(
                seq=next_seq,
                name=next_step,
                task_name=task_name,
                queue=commit.queue,
                priority=commit.priority,
                task_id=task_id,
                claimed_by=commit.owner if inline else None,
                lease_seconds=commit.claim_next_for or 0.0,
            )
            next_dispatch = NextDispatch(
                run_id=commit.run_id,
                seq=next_seq,
                step=next_step,
                task_name=task_name,
                queue=commit.queue,
                priority=commit.priority,
                task_id=task_id,
                claimed_attempt=1 if inline else None,
            )
        case Finish(output=output, error=None):
            status = RunStatus.SUCCEEDED
            jsonable = _jsonable(output)
            fields = {"status": status, "output": jsonable}
            step_events.append(_committed(commit, next_step=None))
            final = _final(RunSucceeded, run_id=commit.run_id, output=jsonable)

        case Finish(error=message):
            status = RunStatus.FAILED
            error = ErrorBody(code="workflow_failed", message=str(message))
            fields = {"status": status, "error": error}
            step_events.append(_committed(commit, next_step=None))
            final = _final(RunFailed, run_id=commit.run_id, error=error)

        case _:
            assert_never(commit.result)
    write = StepWrite(
        run_id=commit.run_id,
        seq=commit.seq,
        owner=commit.owner,
        attempt=commit.attempt,
        state=commit.state,
        chunks=commit.chunks,
        successor=successor,
        events=step_events,
        final=final,
        expected_event_seq=commit.expected_event_seq,
        tool_results=commit.tool_results,
        now=utcnow(),
        **fields,
    )
    return write, _Plan(commit=commit, next=next_dispatch, status=status)


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """A step commit as planned before it was written: what its outcome is made of."""

    commit: StepCommit
    next: NextDispatch | None
    status: RunStatus

    def outcome(self, written: StepWritten | WriteRefused) -> CommitOutcome:
        """The outcome of the write, or the error that says why nothing was written."""
        commit = self.commit
        if written is WriteRefused.LEASE_LOST:
            raise LeaseLostError(
                f"step {commit.seq} of run {commit.run_id!r} is no longer held by {commit.owner} attempt "
                f"{commit.attempt}; not committing it",
                run_id=commit.run_id,
                seq=commit.seq,
                owner=commit.owner,
            )
        if isinstance(written, WriteRefused):
            raise RunCancelledError(
                f"run {commit.run_id!r} was cancelled or stopped while step {commit.seq} ran; the step is discarded",
                run_id=commit.run_id,
            )
        # Committed. A crash from here on leaves the successor stamped but unsent: no worker claims
        # it, and the reconciler sends it again after redispatch_after (a lease's length by default).
        fault(FaultPoint.AFTER_STEP_COMMIT)
        return CommitOutcome(
            next=self.next,
            events=written.events,
            status=self.status,
            payloads=written.payloads,
            next_event_seq=written.next_event_seq,
        )


class CommitInFlight:
    """A step commit sent (`send_commit`) whose outcome is read when it is needed (`confirm`)."""

    def __init__(self, plan: _Plan, pending: PendingStepWrite) -> None:
        self._plan = plan
        self._pending = pending
        self._outcome: CommitOutcome | None = None

    @property
    def next(self) -> NextDispatch | None:
        """The successor the commit dispatches or claims, if it is confirmed; ``None`` when it ends the run."""
        return self._plan.next

    def confirm(self) -> CommitOutcome:
        """The commit's outcome, read once (on the thread that sent it); the same outcome, or failure, every time.

        Raises:
            LeaseLostError: Another attempt owns the step now; nothing was written.
            RunCancelledError: The run was cancelled (or stopped) meanwhile; nothing was written.
            DBAPIError: The write failed, or its outcome could not be read.
        """
        if self._outcome is None:
            # The pending write keeps its result, or its error: a refusal is raised again, alike.
            self._outcome = self._plan.outcome(self._pending.confirm())
        return self._outcome


def _final(event: Callable[..., Event], **fields: Any) -> Callable[[Usage], Event]:
    """The run's final event, once the commit has read the run's usage totals."""
    return lambda usage: event(usage=usage, **fields)


def _committed(commit: StepCommit, *, next_step: str | None) -> StepCommitted:
    return StepCommitted(
        run_id=commit.run_id,
        step_seq=commit.seq,
        step=commit.step,
        attempt=commit.attempt,
        next_step=next_step,
        usage=commit.usage,
    )


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def _jsonable(value: Any) -> Any:
    """Outputs are JSON documents: pydantic models and dataclasses are dumped, the rest kept."""
    return _ANY.dump_python(value, mode="json")
