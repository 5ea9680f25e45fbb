"""`FailureRecorder`: records the ways a step ends without its commit, and what follows from each.

- a failure: the attempt is recorded as failed; a transient one is due again after a back-off
  (until ``max_step_attempts``), a permanent one fails the run (resumable with ``mamba resume``);
- a non-idempotent tool call in doubt: the run waits for a person (or fails, by the tool's policy);
- a cancelled run: the step is aborted and the run cancelled;
- a lost lease: nothing (the attempt that holds the step decides);
- a task no worker knows: the step and the run fail, resumable once it is deployed.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

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
from mamba_worker.durable._claim import ClaimedStep, StepOutcome
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._failures import error_body, is_transient
from mamba_worker.durable._names import step_task_name
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.errors import (
    LeaseLostError,
    RunCancelledError,
    RunNotFoundError,
    StepInDoubtError,
    StepNotFoundError,
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

logger = logging.getLogger(__name__)


class FailureRecorder:
    """Records, for one worker process, how steps ended without committing.

    Args:
        runtime: The process's runtime.
        dispatcher: Sends a step due again after a transient failure.
        publisher: Publishes the events recorded.
    """

    def __init__(self, runtime: Runtime, *, dispatcher: Dispatcher, publisher: EventPublisher) -> None:
        self._rt = runtime
        self._dispatcher = dispatcher
        self._publisher = publisher

    def not_committed(self, claimed: ClaimedStep, error: Exception) -> StepOutcome:
        """Record why the claimed step did not commit (``error``, raised running or committing it)."""
        if isinstance(error, LeaseLostError):
            logger.warning("%s", error)
            return StepOutcome.LEASE_LOST
        if isinstance(error, RunCancelledError):
            self.finish_cancelled(claimed)
            return StepOutcome.CANCELLED
        if isinstance(error, StepInDoubtError) and error.policy != "fail":
            return self.wait_in_doubt(claimed, error)
        # The tool's (or the runtime's) in-doubt policy "fail" comes here too: no person is asked;
        # the run fails (resumable) with the call named.
        return self.fail(claimed, error)

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

    def fail(self, claimed: ClaimedStep, error: Exception) -> StepOutcome:
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

    def wait_in_doubt(self, claimed: ClaimedStep, error: StepInDoubtError) -> StepOutcome:
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

    def finish_cancelled(self, claimed: ClaimedStep) -> None:
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
