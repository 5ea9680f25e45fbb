"""`StepExecutor`: runs one step of one run (the body of every step task; no Celery here).

claim (lease; `StepClaimer`) → run the workflow's step with the recording context → commit →
ring the successor's doorbell → publish events. With ``inline_steps``, a successor that qualifies
is claimed in the commit and run here next, instead of the doorbell (DESIGN.md's "biggest lever":
no broker hop and no claim transaction; each step still commits on its own, under its own lease).
Every way out of that path is decided here:

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
import traceback
from datetime import timedelta

from pydantic import BaseModel

from mamba_client.schemas import (
    ErrorBody,
    Event,
    RedispatchReason,
    RunCancelled,
    RunFailed,
    RunStatus,
    RunWaiting,
    StepFailed,
    StepRedispatched,
    StepStatus,
    Waiting,
    WaitReason,
)
from mamba_worker.durable._attempts import attempt_limit
from mamba_worker.durable._claim import ClaimedStep, StepClaimer, StepOutcome
from mamba_worker.durable._commit import CommitOutcome, StepCommit, commit_step
from mamba_worker.durable._context import DurableStepContext
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._failures import check_run_limits, error_body, is_transient
from mamba_worker.durable._faults import FaultPoint, fault
from mamba_worker.durable._journal import JournalMark
from mamba_worker.durable._lease import StepLease
from mamba_worker.durable._names import step_task_name
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable._setup import RunSetup
from mamba_worker.durable._state_cache import HeldState, StateCache, load_claimed_state
from mamba_worker.durable.errors import (
    LeaseLostError,
    RunCancelledError,
    RunNotFoundError,
    StepInDoubtError,
    StepNotFoundError,
    StepTimeoutError,
)
from mamba_worker.durable.store import (
    abort_step_txn,
    append_events_txn,
    load_run_txn,
    load_step_txn,
    mark_step_failed_txn,
    requeue_outbox_txn,
    update_run_txn,
    utcnow,
)
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
        while True:
            fault(FaultPoint.AFTER_CLAIM)
            inline_ok = budget > 0 and time.monotonic() < chain_deadline
            try:
                setup = setup or RunSetup.build(self._rt, claimed.run)
                outcome, head, loaded, mark = await self._run_and_commit(claimed, setup, inline_ok=inline_ok, held=held)
            except LeaseLostError as error:
                logger.warning("%s", error)
                return StepOutcome.LEASE_LOST
            except RunCancelledError:
                self._finish_cancelled(claimed)
                return StepOutcome.CANCELLED
            except StepInDoubtError as error:
                if error.policy == "fail":
                    # The tool's (or the runtime's) policy is "fail": no person is asked; the run
                    # fails (resumable) with the call named.
                    return self._fail(claimed, error)
                return self._wait_in_doubt(claimed, error)
            except Exception as error:
                return self._fail(claimed, error)
            self._publisher.publish(outcome.events, payloads=outcome.payloads)
            successor = outcome.next
            if successor is None:
                self._held.discard(run_id)
                return StepOutcome.COMMITTED
            if successor.claimed_attempt is None:
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
            # Claimed in the commit: run it here, from the state just committed. The state object
            # is exactly what was dumped and committed, so it is reused instead of parsed again,
            # with the journal's mark of what the store now holds.
            budget -= 1
            claimed = ClaimedStep(
                run=claimed.run,
                seq=successor.seq,
                name=successor.step,
                attempt=successor.claimed_attempt,
                state=head,
                loaded=loaded,
                mark=mark,
                next_event_seq=outcome.next_event_seq,
            )
            held = None

    def _runs_inline(self, workflow: str, step: str) -> bool:
        """Whether ``step`` of ``workflow`` may run right after its predecessor, in the same task."""
        return self._inline_all or step in self._inline or f"{workflow}.{step}" in self._inline

    # -- run and commit ----------------------------------------------------------------------

    async def _run_and_commit(
        self, claimed: ClaimedStep, setup: RunSetup, *, inline_ok: bool, held: HeldState | None
    ) -> tuple[CommitOutcome, str, BaseModel, JournalMark | None]:
        """Run the claimed step (of the run ``setup`` was built for) and commit it.

        Returns the outcome and the state committed: its head (JSON text), the object, and the
        journal's mark of what the store holds of it.
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
                expected_event_seq=claimed.next_event_seq,
                tool_results=ctx.deferred_tool_results,
            )
            outcome = commit_step(rt.store, commit)
        except Exception:
            # The step is not committing (it failed, or its commit was refused or failed): the
            # finished calls whose rows were left for the commit are written on their own, for the
            # next attempt to reuse (a row the refused commit did write is left as it is). A crash
            # writes nothing: those calls then run again, which their tools allow.
            ctx.flush_tool_results()
            raise
        return outcome, split.head, state, split.mark

    # -- the ways a step does not commit -----------------------------------------------------

    def reject_unknown_task(self, run_id: str, seq: int, *, task_name: str) -> None:
        """Record that no worker here knows ``task_name``: the step and run fail, resumable once deployed."""
        error = ErrorBody(
            code="unknown_step",
            message=f"no worker task {task_name!r}: the workflow or step is not registered in this worker "
            "(removed, renamed, or its module is missing from MAMBA_RUNTIME__WORKFLOW_MODULES)",
        )
        try:
            with self._rt.store.session() as session, session.begin():
                step = load_step_txn(session, run_id, seq)
                if step.status == StepStatus.RUNNING and (step.lease_expires_at or utcnow()) > utcnow():
                    return  # a stray copy of the message: a worker that knows the task is running the step
                if not abort_step_txn(session, run_id, seq, error=error):
                    return
                update_run_txn(session, run_id, status=RunStatus.FAILED, error=error)
                run = load_run_txn(session, run_id)
                failed = StepFailed(
                    run_id=run_id,
                    step_seq=seq,
                    step=step.name,
                    attempt=max(step.attempt, 1),
                    error=error,
                    will_retry=False,
                )
                committed = append_events_txn(session, [failed, RunFailed(run_id=run_id, error=error, usage=run.usage)])
        except (RunNotFoundError, StepNotFoundError):
            logger.error("the unknown task %r also names an unknown run or step (%s, %s)", task_name, run_id, seq)
            return
        self._publisher.publish(committed)

    def _fail(self, claimed: ClaimedStep, error: Exception) -> StepOutcome:
        rt = self._rt
        run, attempt = claimed.run, claimed.attempt
        # Another attempt only if the next one is still within the allowance.
        next_limit = attempt_limit(rt.store, run, claimed.seq, attempt=attempt + 1, runtime=rt.runtime)
        retry = is_transient(error) and attempt < next_limit
        body = error_body(error)
        trace = "".join(traceback.format_exception(error))
        logger.log(
            logging.WARNING if retry else logging.ERROR,
            "run %s step %s (%s) attempt %s failed%s: %s",
            run.id,
            claimed.seq,
            claimed.name,
            attempt,
            ", will retry" if retry else "",
            body.message,
        )
        events: list[Event] = [
            StepFailed(
                run_id=run.id, step_seq=claimed.seq, step=claimed.name, attempt=attempt, error=body, will_retry=retry
            )
        ]
        with rt.store.session() as session, session.begin():
            if not mark_step_failed_txn(
                session,
                run.id,
                claimed.seq,
                owner=rt.worker_id,
                attempt=attempt,
                error=body,
                traceback=trace,
                will_retry=retry,
            ):
                return StepOutcome.LEASE_LOST
            backoff = rt.runtime.retry_backoff_seconds * 2 ** (attempt - 1)
            if retry:
                # Due after the back-off. This worker sends it right after the commit, with that
                # countdown; if it dies first, the row is still due and the reconciler sends it.
                requeue_outbox_txn(session, run.id, claimed.seq, not_before=utcnow() + timedelta(seconds=backoff))
                events.append(
                    StepRedispatched(
                        run_id=run.id, step_seq=claimed.seq, step=claimed.name, reason=RedispatchReason.RETRY
                    )
                )
            else:
                update_run_txn(session, run.id, status=RunStatus.FAILED, error=body)
                events.append(RunFailed(run_id=run.id, error=body, usage=load_run_txn(session, run.id).usage))
            committed = append_events_txn(session, events)
        self._publisher.publish(committed)
        if not retry:
            return StepOutcome.FAILED
        self._dispatcher.send(
            run_id=run.id,
            seq=claimed.seq,
            task_name=step_task_name(run.workflow, claimed.name),
            queue=run.queue,
            priority=run.priority,
            countdown=backoff,
        )
        return StepOutcome.RETRY_SCHEDULED

    def _wait_in_doubt(self, claimed: ClaimedStep, error: StepInDoubtError) -> StepOutcome:
        rt = self._rt
        run = claimed.run
        body = error_body(error)
        waiting = Waiting(
            reason=WaitReason.IN_DOUBT, seq=claimed.seq, prompt=str(error), tool_call_ids=[error.tool_call_id]
        )
        with rt.store.session() as session, session.begin():
            if not mark_step_failed_txn(
                session, run.id, claimed.seq, owner=rt.worker_id, attempt=claimed.attempt, error=body, will_retry=False
            ):
                return StepOutcome.LEASE_LOST  # another attempt owns the step: it decides
            update_run_txn(session, run.id, status=RunStatus.WAITING, waiting=waiting, error=body)
            failed = StepFailed(
                run_id=run.id,
                step_seq=claimed.seq,
                step=claimed.name,
                attempt=claimed.attempt,
                error=body,
                will_retry=False,
            )
            committed = append_events_txn(session, [failed, RunWaiting(run_id=run.id, waiting=waiting)])
        self._publisher.publish(committed)
        return StepOutcome.WAITING

    def _finish_cancelled(self, claimed: ClaimedStep) -> None:
        rt = self._rt
        run = claimed.run
        committed: list[Event] = []
        with rt.store.session() as session, session.begin():
            abort_step_txn(session, run.id, claimed.seq, error=ErrorBody(code="run_cancelled", message="run cancelled"))
            if update_run_txn(
                session, run.id, status=RunStatus.CANCELLED, only_if_status=[RunStatus.RUNNING, RunStatus.PENDING]
            ):
                usage = load_run_txn(session, run.id).usage
                cancelled = RunCancelled(run_id=run.id, reason="cancel requested", usage=usage)
                committed = append_events_txn(session, [cancelled])
        self._publisher.publish(committed)
