"""`RunService`: the runtime's Python API (submit, get, list, wait, cancel, resume, answer).

The gateway, the CLI and the tests all go through this one class, so they cannot diverge. It
returns `mamba_client.schemas` models.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import assert_never

from sqlalchemy.exc import DBAPIError

from mamba_client.schemas import (
    AnswerRun,
    ErrorBody,
    Event,
    InDoubtDecision,
    ResumeReason,
    Run,
    RunCancelled,
    RunFailed,
    RunPage,
    RunResumed,
    RunStatus,
    StepRecord,
    StepStatus,
    SubmitRun,
    WaitReason,
)
from mamba_worker.durable._dispatch import Dispatcher, new_task_id
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._journal import StateJournal
from mamba_worker.durable._names import step_task_name
from mamba_worker.durable._recording import unknown_outcome_result
from mamba_worker.durable._routing import resolve_route
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.errors import RunConflictError
from mamba_worker.durable.store import (
    FirstStep,
    NewRun,
    ToolCallRow,
    abort_step_txn,
    append_events_txn,
    expire_lease_txn,
    load_run_txn,
    load_step_txn,
    new_run_id,
    record_tool_call_finished_txn,
    requeue_outbox_txn,
    reset_step_txn,
    restart_tool_call_txn,
    update_run_txn,
    utcnow,
)
from mamba_worker.errors import ConfigurationError
from mamba_worker.workflows import ReActState

SETTLE_RECHECK_SECONDS = 1.0
"""How long `RunService.wait` trusts the settle notices before reading SQL again (a notice can be lost)."""


class WaitTimeoutError(RunConflictError):
    """`RunService.wait` gave up before the run settled."""

    code = "wait_timeout"


class RunService:
    """Submit and manage durable runs.

    Args:
        runtime: The runtime (store, broker, registry).
        dispatcher: Sends step tasks (default: over the runtime's app).
        publisher: Pushes the events it commits live (default: Redis when the broker is Redis).
    """

    def __init__(
        self, runtime: Runtime, *, dispatcher: Dispatcher | None = None, publisher: EventPublisher | None = None
    ) -> None:
        self._rt = runtime
        self._dispatcher = dispatcher or Dispatcher(runtime.app, runtime.store)
        self._publisher = publisher or EventPublisher(runtime.runtime.broker_url.get_secret_value())

    # -- submit -----------------------------------------------------------------------------

    def submit(self, request: SubmitRun) -> Run:
        """Create a run and send its first step; with an idempotency key, a repeat returns the same run.

        Raises:
            ConfigurationError: Unknown workflow or tool, or no model configured.
            RunConflictError: The idempotency key belongs to a different request.
        """
        rt = self._rt
        if request.idempotency_key is not None:
            existing = rt.store.get_run_by_idempotency_key(request.idempotency_key)
            if existing is not None:
                return self._same_request(existing, request)
        model = request.model or rt.settings.model_backend.model
        if model is None:
            raise ConfigurationError(
                "no model for this run: pass one with the run, or set MAMBA_MODEL_BACKEND__MODEL "
                '("offline" selects the built-in offline model)'
            )
        rt.model(model)  # a missing key or unknown model fails the submit, not the first step
        rt.registry.tools_for(request.tools, sandbox=rt.sandbox())
        workflow = rt.registry.build_workflow(request.workflow, request.options, rt.prompts)
        state = workflow.initial_context(request.input)
        if isinstance(state, ReActState) and request.options.system_prompt:
            state.system_prompt = request.options.system_prompt
        request = request.model_copy(update={"model": model})
        run_id = new_run_id()
        # Resolved once and stored: every later send of this run (successors, resume, the
        # reconciler's re-sends) reads queue and priority from SQL, never from today's settings.
        route = resolve_route(request, runtime=rt.runtime, workflow_default=rt.registry.route_of(request.workflow))
        queue, priority = route.queue, route.priority
        task_name = step_task_name(request.workflow, workflow.initial_step)
        split = StateJournal(workflow).split(state, None)
        # The commit stamps the first step's outbox row sent under this task id (one transaction
        # per submit, not two).
        first = FirstStep(name=workflow.initial_step, task_name=task_name, task_id=new_task_id(run_id, 1))
        new = NewRun(run_id=run_id, queue=queue, priority=priority, state=split.head, chunks=split.chunks, first=first)
        submitted = rt.store.insert_submitted_run(request, new)
        if submitted.events is not None:
            self._publisher.publish(submitted.events)
            self._dispatcher.send_stamped(
                run_id=run_id, seq=1, task_name=task_name, queue=queue, task_id=first.task_id, priority=priority
            )
        # else another submit with this key won: it sends the first step (or the reconciler does).
        return submitted.run

    def _same_request(self, existing: Run, request: SubmitRun) -> Run:
        if existing.workflow != request.workflow or existing.input != request.input:
            raise RunConflictError(
                f"idempotency key {request.idempotency_key!r} was already used for run {existing.id!r} "
                "with a different workflow or input",
                run_id=existing.id,
            )
        return existing

    # -- read -------------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        """The run. Raises `RunNotFoundError` for an unknown id."""
        return self._rt.store.get_run(run_id)

    def list_runs(self, *, status: RunStatus | None = None, limit: int = 50, cursor: str | None = None) -> RunPage:
        """Runs, newest first."""
        return self._rt.store.list_runs(status=status, limit=limit, cursor=cursor)

    def steps(self, run_id: str) -> list[StepRecord]:
        """The run's steps in order."""
        self.get(run_id)
        return self._rt.store.get_steps(run_id)

    def events(self, run_id: str, *, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """The run's events after ``after_seq``, in order."""
        self.get(run_id)
        return self._rt.store.get_events(run_id, after_seq=after_seq, limit=limit)

    def wait(self, run_id: str, *, timeout: float | None = None, poll_interval: float = 0.05) -> Run:
        """Block until the run succeeds, fails, is cancelled or waits for a person.

        Where the broker is Redis, the wait wakes on the run's settle notice (read SQL again at
        least every `SETTLE_RECHECK_SECONDS`, in case a notice was lost); elsewhere it reads the
        run every ``poll_interval`` seconds.

        Raises:
            WaitTimeoutError: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._publisher.settle_notices(run_id) as notices:
            while True:
                try:
                    run = self.get(run_id)
                except DBAPIError:
                    # The database restarted (or failed over): the pool drops its stale connections
                    # on this error, so the next read reconnects. A waiter should not fail for that.
                    if deadline is not None and time.monotonic() > deadline:
                        raise
                    time.sleep(poll_interval)
                    continue
                if run.status.is_settled:
                    return run
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeoutError(f"run {run_id!r} is still {run.status} after {timeout}s", run_id=run_id)
                if notices is None:
                    time.sleep(poll_interval if left is None else min(poll_interval, left))
                else:
                    notices.wait(SETTLE_RECHECK_SECONDS if left is None else min(SETTLE_RECHECK_SECONDS, left))

    # -- control ----------------------------------------------------------------------------

    def cancel(self, run_id: str) -> Run:
        """Ask the run to stop: no further step commits; a run with no step running stops at once."""
        rt = self._rt
        committed: list[Event] = []
        with rt.store.session() as session, session.begin():
            run = load_run_txn(session, run_id)
            if run.status.is_terminal:
                return rt.store.get_run(run_id)
            update_run_txn(session, run_id, cancel_requested=True)
            step = load_step_txn(session, run_id, run.last_seq) if run.last_seq else None
            if step is None or step.status != StepStatus.RUNNING:
                if step is not None:
                    abort_step_txn(
                        session, run_id, step.seq, error=ErrorBody(code="run_cancelled", message="cancelled")
                    )
                update_run_txn(session, run_id, status=RunStatus.CANCELLED)
                cancelled = RunCancelled(run_id=run_id, reason="cancel requested", usage=run.usage)
                committed = append_events_txn(session, [cancelled])
        self._publisher.publish(committed)
        return rt.store.get_run(run_id)

    def resume(self, run_id: str) -> Run:
        """Continue a run from its last committed step.

        A failed (or waiting) run's last step is made pending and sent again. A run that is still
        running (its process was killed, say) gets any step whose worker is known dead on this
        machine released at once, instead of waiting for its lease to expire; the reconciler
        would do the same after the lease.

        Raises:
            RunConflictError: The run succeeded or was cancelled.
        """
        rt = self._rt
        committed: list[Event] = []
        with rt.store.session() as session, session.begin():
            run = load_run_txn(session, run_id)
            if run.status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED):
                raise RunConflictError(f"run {run_id!r} is {run.status}; there is nothing to resume", run_id=run_id)
            seq = run.last_seq
            step = load_step_txn(session, run_id, seq)
            if run.status == RunStatus.FAILED and step.status == StepStatus.COMMITTED:
                # The workflow itself ended the run (no answer within max_iterations, say): running
                # its last step again would end it the same way.
                raise RunConflictError(
                    f"run {run_id!r} was ended by its workflow ({run.error.message if run.error else 'failed'}); "
                    "there is no failed step to resume: fork it or submit a new run",
                    run_id=run_id,
                )
            if step.status == StepStatus.FAILED:
                reset_step_txn(session, run_id, seq)
                requeue_outbox_txn(session, run_id, seq)
                update_run_txn(session, run_id, status=RunStatus.RUNNING, error=None, waiting=None)
                resumed = RunResumed(run_id=run_id, reason=ResumeReason.RESUME, from_seq=seq)
                committed = append_events_txn(session, [resumed])
            elif step.status == StepStatus.RUNNING and _owner_is_dead(step.lease_owner):
                far_future = utcnow() + timedelta(days=3650)
                expire_lease_txn(session, run_id, seq, now=far_future)
                requeue_outbox_txn(session, run_id, seq)
                resumed = RunResumed(run_id=run_id, reason=ResumeReason.RESUME, from_seq=seq)
                committed = append_events_txn(session, [resumed])
            elif step.status in (StepStatus.PENDING, StepStatus.DISPATCHED):
                requeue_outbox_txn(session, run_id, seq)
            task_name, queue, priority = step_task_name(run.workflow, step.name), run.queue, run.priority
        self._publisher.publish(committed)
        current = rt.store.get_step_row(run_id, seq)
        if current.status in (StepStatus.PENDING, StepStatus.DISPATCHED):
            self._dispatcher.send(run_id=run_id, seq=seq, task_name=task_name, queue=queue, priority=priority)
        return rt.store.get_run(run_id)

    def answer(self, run_id: str, body: AnswerRun) -> Run:
        """Decide for a run that waits on tool calls in doubt, and continue it (unless the decision is ``fail``).

        A non-idempotent call that a crash left ``started`` may or may not have happened; the run
        waits (``waiting``, reason ``in_doubt``) until a person checks and answers:

        - ``rerun``: the calls run again in the step's next attempt, with the same idempotency key
          (``run_id:seq:tool_call_id``), so an API that deduplicates on it sees one request;
        - ``skip``: they are not run again; the model is told their outcome is unknown;
        - ``fail``: the run fails with the decision as its error (a later ``resume`` asks again).

        Raises:
            RunNotFoundError: No such run.
            RunConflictError: The run is not waiting, or waits for something a decision cannot answer.
        """
        rt = self._rt
        with rt.store.session() as session, session.begin():
            run = load_run_txn(session, run_id)
            waiting = run.waiting
            if run.status != RunStatus.WAITING or waiting is None:
                raise RunConflictError(
                    f"run {run_id!r} is {run.status}; only a waiting run can be answered", run_id=run_id
                )
            if waiting.reason != WaitReason.IN_DOUBT or body.decision is None:
                raise RunConflictError(
                    f"run {run_id!r} waits for {waiting.reason.value} ({waiting.prompt}); this runtime answers "
                    "tool calls in doubt, with decision=rerun, skip or fail",
                    run_id=run_id,
                )
            seq, calls = waiting.seq, waiting.tool_call_ids
            step = load_step_txn(session, run_id, seq)
            events: list[Event]
            match body.decision:
                case InDoubtDecision.RERUN:
                    for call_id in calls:
                        # "started" by the attempt that comes next: the ledger reads it as approved.
                        restart_tool_call_txn(session, run_id, seq, call_id, attempt=step.attempt + 1)
                case InDoubtDecision.SKIP:
                    for call_id in calls:
                        row = session.get(ToolCallRow, (run_id, seq, call_id))
                        result = unknown_outcome_result(tool_name=row.tool_name if row else "?", tool_call_id=call_id)
                        record_tool_call_finished_txn(session, run_id, seq, call_id, result=result)
                case InDoubtDecision.FAIL:
                    error = ErrorBody(
                        code="in_doubt_failed",
                        message=f"tool calls {', '.join(calls)} of step {seq} were in doubt and the run was failed "
                        "on a person's decision; resume it to be asked again",
                    )
                    update_run_txn(session, run_id, status=RunStatus.FAILED, error=error, waiting=None)
                    events = [RunFailed(run_id=run_id, error=error, usage=run.usage)]
                case _:
                    assert_never(body.decision)
            if body.decision != InDoubtDecision.FAIL:
                reset_step_txn(session, run_id, seq)
                requeue_outbox_txn(session, run_id, seq)
                update_run_txn(session, run_id, status=RunStatus.RUNNING, error=None, waiting=None)
                events = [RunResumed(run_id=run_id, reason=ResumeReason.ANSWER, from_seq=seq)]
            committed = append_events_txn(session, events)
            task_name, queue, priority = step_task_name(run.workflow, step.name), run.queue, run.priority
        self._publisher.publish(committed)
        if body.decision != InDoubtDecision.FAIL:
            self._dispatcher.send(run_id=run_id, seq=seq, task_name=task_name, queue=queue, priority=priority)
        return rt.store.get_run(run_id)


def _owner_is_dead(owner: str | None) -> bool:
    """Whether a lease owner (``host:pid:nonce``) is a process of this machine that no longer exists."""
    if owner is None:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
