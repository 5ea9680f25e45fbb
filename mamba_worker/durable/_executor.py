"""`StepExecutor`: runs one step of one run (the body of every step task; no Celery here).

claim (lease; `StepClaimer`) → run the workflow's step with the recording context → commit →
publish events → ring the successor's doorbell. With ``inline_steps``, a successor that qualifies
is claimed in the commit and run here next, instead of the doorbell (DESIGN.md's "biggest lever":
no broker hop and no claim transaction; each step still commits on its own, under its own lease).
It starts before its predecessor's commit is known to be in (`send_commit`): that outcome is read
before the successor's first model request or tool call and before its own commit, and a commit
refused or failed ends the chain as its own step's outcome. Every way out of that path is decided
here (and recorded by `FailureRecorder`):

- already committed (a duplicate delivery): make sure the successor was sent, nothing else;
- not claimable (another worker holds a live lease, or the run stopped): nothing;
- a transient failure (model backend, database, timeout): the attempt is recorded as failed and
  the step is due again after a back-off, until ``max_step_attempts``;
- a permanent failure (garbage from the model, a bug, an unknown workflow or step): the step and
  the run fail with the error and traceback kept; ``mamba resume`` can continue later;
- a non-idempotent tool call in doubt: the run waits for a person;
- a cancelled run or a lost lease: nothing of the attempt is committed.
"""

from __future__ import annotations

import asyncio
import logging
import time

from pydantic import BaseModel

from mamba_worker.durable._claim import ClaimedStep, StepClaimer, StepOutcome
from mamba_worker.durable._commit import CommitInFlight, CommitOutcome, StepCommit, send_commit
from mamba_worker.durable._context import DurableStepContext
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._failure_recorder import FailureRecorder
from mamba_worker.durable._failures import check_run_limits
from mamba_worker.durable._faults import FaultPoint, fault
from mamba_worker.durable._journal import JournalMark
from mamba_worker.durable._lease import StepLease
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable._setup import RunSetup
from mamba_worker.durable._state_cache import HeldState, StateCache, load_claimed_state
from mamba_worker.durable.errors import (
    RunNotFoundError,
    StepNotFoundError,
    StepTimeoutError,
)
from mamba_worker.durable.store import utcnow
from mamba_worker.workflows import Next

logger = logging.getLogger(__name__)


class StepExecutor:
    """Executes steps for one worker process.

    Args:
        runtime: The process's runtime.
        dispatcher: Sends successors (default: one over the runtime's app and store).
        publisher: Publishes events live (default: Redis when the broker is Redis).
    """

    def __init__(
        self, runtime: Runtime, *, dispatcher: Dispatcher | None = None, publisher: EventPublisher | None = None
    ) -> None:
        self._rt = runtime
        self._dispatcher = dispatcher or Dispatcher(runtime.app, runtime.store)
        self._publisher = publisher or EventPublisher(runtime.runtime.broker_url.get_secret_value())
        self._claimer = StepClaimer(runtime, dispatcher=self._dispatcher, publisher=self._publisher)
        self._failures = FailureRecorder(runtime, dispatcher=self._dispatcher, publisher=self._publisher)
        inline = frozenset(runtime.runtime.inline_steps)
        self._inline_all = "*" in inline
        self._inline = inline
        self._held = StateCache(int(runtime.runtime.state_cache_mb * 1_000_000))

    @property
    def dispatcher(self) -> Dispatcher:
        """The dispatcher that sends successors."""
        return self._dispatcher

    async def execute(self, run_id: str, seq: int) -> StepOutcome:
        """Run step ``seq`` of run ``run_id`` once (see the module docstring for every outcome).

        With ``inline_steps`` set, successors that qualify run here too, each committed as its own
        step (the outcome is then the last one's).
        """
        held = self._held.get(run_id)
        try:
            claimed = self._claimer.claim(run_id, seq, after_seq=None if held is None else held.seq)
        except (RunNotFoundError, StepNotFoundError) as error:
            # A poison message: acknowledged (by returning) and logged; it never blocks the queue.
            logger.error("discarding a step message for an unknown run or step: %s", error)
            return StepOutcome.POISON
        if isinstance(claimed, StepOutcome):
            return claimed
        chain_deadline = time.monotonic() + self._rt.runtime.max_inline_seconds
        budget = self._rt.runtime.max_inline_steps
        setup: RunSetup | None = None  # built by the chain's first step, for all of them
        # The chain's previous step: its commit sent, its outcome read when this step needs it.
        sent: _SentStep | None = None
        while True:
            fault(FaultPoint.AFTER_CLAIM)
            inline_ok = budget > 0 and time.monotonic() < chain_deadline
            try:
                setup = setup or RunSetup.build(self._rt, claimed.run)
                commit, head, loaded, mark = await self._run_and_send(
                    claimed, setup, inline_ok=inline_ok, held=held, predecessor=sent
                )
            except Exception as error:
                if sent is not None:
                    # This step exists only if its predecessor's commit went through: if it did
                    # not, that is what ended the chain (whatever this step then ran into).
                    try:
                        sent.confirm()
                    except Exception as refused:
                        return self._failures.not_committed(sent.claimed, refused)
                return self._failures.not_committed(claimed, error)
            sent = _SentStep(claimed, commit, self._publisher)
            successor = commit.next
            if successor is not None and successor.claimed_attempt is not None:
                # Claimed in the commit: run it here, from the state just committed. The state
                # object is exactly what was dumped and committed, so it is reused instead of
                # parsed again, with the journal's mark of what the store now holds. Its own work
                # starts before the commit's outcome is read; its first effect waits for it.
                budget -= 1
                claimed = ClaimedStep(
                    run=claimed.run,
                    seq=successor.seq,
                    name=successor.step,
                    attempt=successor.claimed_attempt,
                    state=head,
                    loaded=loaded,
                    mark=mark,
                )
                held = None
                continue
            try:
                sent.confirm()
            except Exception as error:
                return self._failures.not_committed(sent.claimed, error)
            if successor is None:
                self._held.discard(run_id)
                return StepOutcome.COMMITTED
            if mark is not None:
                # Kept before the send: the successor may come back to this process at once.
                self._held.put(run_id, HeldState(seq=claimed.seq, mark=mark))
            self._dispatcher.send_stamped(
                run_id=successor.run_id,
                seq=successor.seq,
                task_name=successor.task_name,
                queue=successor.queue,
                task_id=successor.task_id,
                priority=successor.priority,
            )
            return StepOutcome.COMMITTED

    def reject_unknown_task(self, run_id: str, seq: int, *, task_name: str) -> None:
        """Record that no worker here knows ``task_name``: the step and run fail, resumable once deployed."""
        self._failures.reject_unknown_task(run_id, seq, task_name=task_name)

    def _runs_inline(self, workflow: str, step: str) -> bool:
        """Whether ``step`` of ``workflow`` may run right after its predecessor, in the same task."""
        return self._inline_all or step in self._inline or f"{workflow}.{step}" in self._inline

    # -- run and commit ----------------------------------------------------------------------

    async def _run_and_send(
        self,
        claimed: ClaimedStep,
        setup: RunSetup,
        *,
        inline_ok: bool,
        held: HeldState | None,
        predecessor: _SentStep | None,
    ) -> tuple[CommitInFlight, str, BaseModel, JournalMark | None]:
        """Run the claimed step (of the run ``setup`` was built for) and send its commit.

        ``predecessor``: the chain's previous step, whose commit was sent without its outcome
        read. It is confirmed before this step's first effect (a model request, a tool call) and
        before this step's commit, which is never sent before it (one commit in flight at most).

        Returns the commit sent and the state committed: its head (JSON text), the object, and
        the journal's mark of what the store holds of it.
        """
        rt = self._rt
        run, seq, name, attempt = claimed.run, claimed.seq, claimed.name, claimed.attempt
        workflow, journal = setup.workflow, setup.journal
        check_run_limits(workflow.config, run.options, run_id=run.id, seq=seq, created_at=run.created_at, now=utcnow())
        state, mark = load_claimed_state(journal, claimed, held=held, store=rt.store)
        lease = StepLease(
            rt.store,
            run_id=run.id,
            seq=seq,
            owner=rt.worker_id,
            attempt=attempt,
            lease_seconds=rt.runtime.lease_seconds,
            heartbeat_interval=rt.runtime.heartbeat_interval,
        )
        ctx = DurableStepContext(
            rt,
            run_id=run.id,
            seq=seq,
            attempt=attempt,
            model_name=run.model,
            tools=setup.tools,
            compaction=setup.compaction,
            compaction_ratio=setup.compaction_ratio,
            model_settings=setup.model_settings,
            toolset=setup.toolset,
            fetched=setup.fetched,
            before_effect=predecessor.confirm if predecessor is not None else None,
        )
        try:
            deadline = asyncio.timeout(workflow.config.step_timeout_seconds)
            try:
                async with ctx, lease.kept_alive(), deadline:
                    result = await workflow.run_step(name, state, ctx)
            except TimeoutError:
                if not deadline.expired():
                    raise  # the step's own timeout (a tool's, say), not the step's limit
                limit = workflow.config.step_timeout_seconds or 0.0
                raise StepTimeoutError(
                    f"step {seq} ({name}) of run {run.id!r} did not finish within step_timeout_seconds={limit}",
                    run_id=run.id,
                    seq=seq,
                    timeout=limit,
                ) from None
            claim_next = inline_ok and isinstance(result, Next) and self._runs_inline(run.workflow, result.step)
            # The predecessor's outcome, read now at the latest, numbers this step's events.
            expected_seq = claimed.next_event_seq if predecessor is None else predecessor.confirm().next_event_seq
            split = journal.split(state, mark)
            commit = StepCommit(
                run_id=run.id,
                seq=seq,
                step=name,
                workflow=run.workflow,
                queue=run.queue,
                priority=run.priority,
                owner=rt.worker_id,
                attempt=attempt,
                state=split.head,
                chunks=split.chunks,
                result=result,
                events=ctx.events,
                usage=ctx.usage,
                claim_next_for=rt.runtime.lease_seconds if claim_next else None,
                expected_event_seq=expected_seq,
                tool_results=ctx.deferred_tool_results,
            )
            sent = send_commit(rt.store, commit)
        except Exception:
            # The step is not committing (it failed, or its commit was refused or failed): the
            # finished calls whose rows were left for the commit are written on their own, for the
            # next attempt to reuse (a row the refused commit did write is left as it is). A crash
            # writes nothing: those calls then run again, which their tools allow.
            ctx.flush_tool_results()
            raise
        return sent, split.head, state, split.mark


class _SentStep:
    """A step of an inline chain whose commit was sent (`send_commit`): its events go live once it is confirmed."""

    def __init__(self, claimed: ClaimedStep, commit: CommitInFlight, publisher: EventPublisher) -> None:
        self.claimed = claimed
        self._commit = commit
        self._publisher = publisher
        self._published = False

    def confirm(self) -> CommitOutcome:
        """The commit's outcome (`CommitInFlight.confirm`); the first time, its events are published."""
        outcome = self._commit.confirm()
        if not self._published:
            self._published = True
            self._publisher.publish(outcome.events, payloads=outcome.payloads)
        return outcome
