"""`StepClaimer`: takes a delivered step's lease, or says why the delivery does nothing.

The claim is its own transaction, before the step runs: the lease in SQL is what tells the
reconciler that a worker is on the step (and, once it expires, that the worker died). A step run
inline after its predecessor (`RuntimeSettings.inline_steps`) is claimed in that predecessor's
commit instead (`send_commit`), and never passes through here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum

from pydantic import BaseModel
from sqlmodel import Session

from mamba_client.schemas import (
    ErrorBody,
    Event,
    RunCancelled,
    RunFailed,
    RunStarted,
    RunStatus,
    StepFailed,
    StepStarted,
    StepStatus,
)
from mamba_worker.durable._attempts import allowed_attempts, attempt_limit
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._journal import JournalMark
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.store import (
    ChunkRead,
    OutboxRow,
    RunningClaim,
    RunRow,
    StepClaim,
    StepRow,
    abort_step_txn,
    append_events_txn,
    claim_step_txn,
    load_run_txn,
    load_step_txn,
    read_state_chunks_txn,
    update_run_txn,
    utcnow,
)

logger = logging.getLogger(__name__)


class StepOutcome(StrEnum):
    """How one delivery of a step task ended."""

    COMMITTED = "committed"
    DUPLICATE = "duplicate"
    NOT_CLAIMABLE = "not_claimable"
    RETRY_SCHEDULED = "retry_scheduled"
    FAILED = "failed"
    WAITING = "waiting"
    CANCELLED = "cancelled"
    LEASE_LOST = "lease_lost"
    POISON = "poison"


@dataclass(frozen=True, kw_only=True)
class ClaimedStep:
    """A step this worker holds the lease of, with what running it needs."""

    run: RunRow
    """The run as loaded at the claim; its ``state`` may be older than `state` for inline steps."""
    seq: int
    name: str
    attempt: int
    state: str | None
    """The workflow state the step starts from (JSON text; ``None`` only for a damaged run), without
    its journal lists (`chunks`)."""
    chunks: ChunkRead = field(default_factory=ChunkRead)
    """The state's journal lists as stored (see ``durable/_journal.py``): all of them, or what was
    written after the step the claimer said it holds them as of (`StepClaimer.claim`'s ``after_seq``)."""
    loaded: BaseModel | None = None
    """The state already parsed: the object an inline predecessor just committed (saves a parse)."""
    mark: JournalMark | None = None
    """With `loaded`: what the store holds of its journal lists."""
    next_event_seq: int | None = None
    """The run's next event number as this worker's claim or commit left it (``None``: unknown)."""


class StepClaimer:
    """Claims delivered steps for one worker.

    Args:
        runtime: The process's runtime.
        dispatcher: Re-sends a successor whose message looks lost (duplicate deliveries).
        publisher: Publishes the claim's events live.
    """

    def __init__(self, runtime: Runtime, *, dispatcher: Dispatcher, publisher: EventPublisher) -> None:
        self._rt = runtime
        self._dispatcher = dispatcher
        self._publisher = publisher

    def claim(self, run_id: str, seq: int, *, after_seq: int | None = None) -> ClaimedStep | StepOutcome:
        """Take step ``seq``'s lease, or return why this delivery does nothing.

        ``after_seq``: this worker holds the state's journal lists as of that step's commit
        (`StateCache`), so only the chunks written since are read.

        Raises:
            RunNotFoundError: No such run (a poison message).
            StepNotFoundError: The run has no such step (a poison message).
        """
        taken = self._claim_running(run_id, seq, after_seq=after_seq)
        if taken is not None:
            self._publisher.publish(taken.events, payloads=taken.payloads)
            run, claim = taken.run, taken.claim
            return ClaimedStep(
                run=run,
                seq=seq,
                name=claim.name,
                attempt=claim.attempt,
                state=run.state,
                chunks=taken.chunks,
                next_event_seq=run.next_event_seq,
            )
        committed: list[Event] = []
        with self._rt.store.session() as session, session.begin():
            general = self._claim_general_txn(session, run_id, seq, committed, after_seq=after_seq)
        # Published after the commit: a watcher must never see an event SQL does not have.
        self._publisher.publish(committed)
        if general == StepOutcome.DUPLICATE:
            self._ensure_successor(run_id, seq)
        return general

    def _claim_running(self, run_id: str, seq: int, *, after_seq: int | None) -> RunningClaim | None:
        """The common case in one transaction: the run is running, the step claimable.

        The claim (guarded by the run's status in the same UPDATE), the run read back while
        reserving the ``step.started`` number, the event: on PostgreSQL one statement for a step
        never claimed (a run's first step included: the statement starts the run), else two
        round trips. ``None``: nothing was written, and the general path decides (first step
        elsewhere, duplicate, cancel, waiting or finished run, poison, and a step past its attempt
        allowance).
        """
        rt = self._rt

        def started(run: RunRow, claim: StepClaim) -> Event | None:
            if claim.attempt > attempt_limit(rt.store, run, seq, attempt=claim.attempt, runtime=rt.runtime):
                return None  # rolled back; the general path stops the poisoned step
            return StepStarted(run_id=run_id, step_seq=seq, step=claim.name, attempt=claim.attempt, worker=rt.worker_id)

        # A first attempt is within any allowance (at least 1), so its event needs no check.
        fresh = StepStarted(run_id=run_id, step_seq=seq, step="", attempt=1, worker=rt.worker_id)
        return rt.store.claim_running_step(
            run_id=run_id,
            seq=seq,
            owner=rt.worker_id,
            lease_seconds=rt.runtime.lease_seconds,
            started=started,
            fresh=fresh,
            after_seq=after_seq,
        )

    def _claim_general_txn(
        self, session: Session, run_id: str, seq: int, committed: list[Event], *, after_seq: int | None
    ) -> ClaimedStep | StepOutcome:
        rt = self._rt
        run = load_run_txn(session, run_id)
        step = load_step_txn(session, run_id, seq)
        if step.status == StepStatus.COMMITTED:
            return StepOutcome.DUPLICATE
        if run.status.is_terminal or run.status == RunStatus.WAITING:
            return StepOutcome.NOT_CLAIMABLE
        if run.cancel_requested:
            abort_step_txn(session, run_id, seq, error=ErrorBody(code="run_cancelled", message="run cancelled"))
            update_run_txn(session, run_id, status=RunStatus.CANCELLED)
            cancelled = RunCancelled(run_id=run_id, reason="cancel requested", usage=run.usage)
            committed += append_events_txn(session, [cancelled])
            return StepOutcome.CANCELLED
        attempt = claim_step_txn(session, run_id, seq, owner=rt.worker_id, lease_seconds=rt.runtime.lease_seconds)
        if attempt is None:
            return StepOutcome.NOT_CLAIMABLE
        if attempt > (limit := attempt_limit(rt.store, run, seq, attempt=attempt, runtime=rt.runtime)):
            committed += self._stop_poisoned_txn(session, run, seq, step.name, attempt=attempt, limit=limit)
            return StepOutcome.POISON
        events: list[Event] = []
        if run.status == RunStatus.PENDING:
            # Only the first step moves the run; later steps find it running already.
            events.append(RunStarted(run_id=run_id))
            update_run_txn(session, run_id, status=RunStatus.RUNNING, only_if_status=[RunStatus.PENDING])
        events.append(StepStarted(run_id=run_id, step_seq=seq, step=step.name, attempt=attempt, worker=rt.worker_id))
        committed += append_events_txn(session, events)
        chunks = read_state_chunks_txn(session, run_id, after_seq=after_seq)
        return ClaimedStep(run=run, seq=seq, name=step.name, attempt=attempt, state=run.state, chunks=chunks)

    def _stop_poisoned_txn(
        self, session: Session, run: RunRow, seq: int, name: str, *, attempt: int, limit: int
    ) -> list[Event]:
        """A step attempted more than its allowance: fail it and the run (resumable), record why."""
        allowed = allowed_attempts(run, self._rt.runtime)
        error = ErrorBody(
            code="poison_message",
            message=f"step {seq} ({name}) was attempted {allowed} times without committing; "
            f"the run is stopped (max_step_attempts={allowed}, attempt {attempt} of at most {limit}). "
            "Fix the cause, then resume the run.",
        )
        abort_step_txn(session, run.id, seq, error=error)
        update_run_txn(session, run.id, status=RunStatus.FAILED, error=error)
        failed = StepFailed(run_id=run.id, step_seq=seq, step=name, attempt=attempt, error=error, will_retry=False)
        return append_events_txn(session, [failed, RunFailed(run_id=run.id, error=error, usage=run.usage)])

    def _ensure_successor(self, run_id: str, seq: int) -> None:
        """A committed step's duplicate delivery: ring the successor again if its message looks lost.

        The commit stamps the successor's outbox row and the message goes out right after; if
        the committing worker died in between, the message never left. When the successor is
        still unclaimed ``dispatch_grace_seconds`` after the stamp, send it again (harmless if
        the first one was merely slow: only one claim can win).
        """
        grace = timedelta(seconds=self._rt.runtime.dispatch_grace_seconds)
        with self._rt.store.session() as session:
            successor = session.get(StepRow, (run_id, seq + 1))
            outbox = session.get(OutboxRow, (run_id, seq + 1))
        if successor is None or outbox is None or successor.status not in (StepStatus.PENDING, StepStatus.DISPATCHED):
            return
        if outbox.dispatched_at is not None and outbox.dispatched_at > utcnow() - grace:
            return
        self._dispatcher.send(
            run_id=run_id, seq=seq + 1, task_name=outbox.task_name, queue=outbox.queue, priority=outbox.priority
        )
