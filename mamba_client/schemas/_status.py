"""The closed sets of the protocol: run, step and tool-call statuses, and the reasons beside them.

Each is a `StrEnum` defined here and nowhere else: the SQL columns, the HTTP bodies, the events and
the CLI all use these members, so a status cannot be spelled two ways.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """Where a run is in its life.

    ``pending`` → ``running`` → (``waiting`` ↔ ``running``) → ``succeeded`` | ``failed`` | ``cancelled``.
    A failed run can be resumed or retried, which makes it ``running`` again.
    """

    PENDING = "pending"
    """Submitted; its first step has not started yet."""
    RUNNING = "running"
    """A step is queued or executing."""
    WAITING = "waiting"
    """Paused until someone answers: the workflow asked for input, or a tool call is in doubt."""
    SUCCEEDED = "succeeded"
    """Finished with an output."""
    FAILED = "failed"
    """Stopped by an error; the failed step keeps its error, traceback and attempts."""
    CANCELLED = "cancelled"
    """Stopped on request."""

    @property
    def is_terminal(self) -> bool:
        """Whether the run has stopped (succeeded, failed or cancelled) and no step will run."""
        return self in _TERMINAL_RUN_STATUSES

    @property
    def is_settled(self) -> bool:
        """Whether nothing happens until someone acts: terminal, or waiting for an answer.

        What waiting for a run (``wait``) waits for.
        """
        return self.is_terminal or self == RunStatus.WAITING


_TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class StepStatus(StrEnum):
    """Where one step, identified by ``(run_id, seq)``, is.

    ``pending`` → ``dispatched`` → ``running`` → ``committed`` | ``failed``. A running step whose
    lease expires goes back to ``pending`` and is dispatched again with ``attempt + 1``.
    """

    PENDING = "pending"
    """Written by the previous step's commit; its task message may not have been sent yet."""
    DISPATCHED = "dispatched"
    """Its task message was handed to the broker."""
    RUNNING = "running"
    """A worker holds its lease and is executing it."""
    COMMITTED = "committed"
    """Its result, the run's new state and the next step were committed together."""
    FAILED = "failed"
    """It raised and will not be retried automatically."""

    @property
    def is_terminal(self) -> bool:
        """Whether the step is finished (committed or failed)."""
        return self in (StepStatus.COMMITTED, StepStatus.FAILED)


class ToolCallStatus(StrEnum):
    """The ledger entry of one tool call, identified by ``(run_id, seq, tool_call_id)``."""

    STARTED = "started"
    """Recorded before the tool ran; if it stays so after a crash, the call may or may not have happened."""
    FINISHED = "finished"
    """The tool returned; its result is recorded and a re-run of the step reuses it."""
    FAILED = "failed"
    """The tool raised; the error is recorded."""
    IN_DOUBT = "in_doubt"
    """A non-idempotent call was started but never recorded as finished: someone must decide."""


class WaitReason(StrEnum):
    """Why a run is ``waiting``."""

    INPUT = "input"
    """The workflow asked a question (answer it with `AnswerRun.answer`)."""
    IN_DOUBT = "in_doubt"
    """A non-idempotent tool call may have run; decide with `AnswerRun.decision`."""


class InDoubtDecision(StrEnum):
    """What to do with tool calls that are in doubt."""

    RERUN = "rerun"
    """Run the tool again (accept that it may run twice)."""
    SKIP = "skip"
    """Do not run it again; the model is told the result is unknown."""
    FAIL = "fail"
    """Fail the run."""


class RedispatchReason(StrEnum):
    """Why a step's task message was sent again."""

    LEASE_EXPIRED = "lease_expired"
    """The worker running it stopped renewing its lease (crash, kill, node loss)."""
    LOST_DISPATCH = "lost_dispatch"
    """The message was never sent, or the broker lost it before a worker claimed the step."""
    RETRY = "retry"
    """The step failed with a retryable error, or someone asked to retry it."""


class ResumeReason(StrEnum):
    """Why a stopped or waiting run started moving again."""

    RESUME = "resume"
    """``resume``: continue from the last committed step."""
    RETRY = "retry"
    """``retry``: run the failed step again."""
    ANSWER = "answer"
    """Someone answered a waiting run."""
