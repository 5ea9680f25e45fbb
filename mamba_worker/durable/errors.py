"""Errors of the durable runtime, under `MambaError`.

The tree::

    MambaError
    ├── MigrationError              a store migration left the database inconsistent (rolled back)
    ├── UsageError
    │   └── InvalidCursorError      a list cursor is malformed or from another query
    └── RunError                    a run cannot do what was asked
        ├── RunNotFoundError        no run has that id (HTTP 404)
        ├── StepNotFoundError       the run has no step with that seq (HTTP 404)
        ├── RunConflictError        the run's status forbids the operation, or an idempotency key
        │                           was reused with a different request (HTTP 409)
        ├── LeaseLostError          a worker lost a step's lease to another attempt
        ├── RunCancelledError       the run was cancelled while a step ran; nothing of it is committed
        ├── PoisonMessageError      a step used up its attempts
        ├── StepTimeoutError        an attempt ran past step_timeout_seconds (it is tried again)
        └── StepInDoubtError        a non-idempotent tool call may have run; a person must decide

Every class pickles with its attributes (Celery moves exceptions between processes).
"""

from __future__ import annotations

from mamba_worker.errors import MambaError, UsageError


class RunError(MambaError):
    """A run cannot do what was asked, or failed in the runtime (not in the workflow)."""

    code = "run_error"


class RunNotFoundError(RunError):
    """No run has this id.

    Attributes:
        run_id: The id that was looked up.
    """

    code = "run_not_found"

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message, run_id=run_id)
        self.run_id = run_id


class StepNotFoundError(RunError):
    """The run has no step with this sequence number.

    Attributes:
        run_id: The run.
        seq: The step's sequence number that was looked up.
    """

    code = "step_not_found"

    def __init__(self, message: str, *, run_id: str, seq: int) -> None:
        super().__init__(message, run_id=run_id, seq=seq)
        self.run_id = run_id
        self.seq = seq


class RunConflictError(RunError):
    """The run's current status forbids the operation, or an idempotency key was reused differently.

    Attributes:
        run_id: The run.
    """

    code = "run_conflict"

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message, run_id=run_id)
        self.run_id = run_id


class LeaseLostError(RunError):
    """A worker tried to extend or commit a step whose lease another attempt now holds.

    Attributes:
        run_id: The run.
        seq: The step.
        owner: The worker that lost the lease.
    """

    code = "lease_lost"

    def __init__(self, message: str, *, run_id: str, seq: int, owner: str) -> None:
        super().__init__(message, run_id=run_id, seq=seq, owner=owner)
        self.run_id = run_id
        self.seq = seq
        self.owner = owner


class RunCancelledError(RunError):
    """The run was cancelled while a step ran; nothing of the step was committed.

    Attributes:
        run_id: The run.
    """

    code = "run_cancelled"

    def __init__(self, message: str, *, run_id: str) -> None:
        super().__init__(message, run_id=run_id)
        self.run_id = run_id


class PoisonMessageError(RunError):
    """A step was attempted as often as allowed without committing (it keeps crashing its worker).

    Attributes:
        run_id: The run.
        seq: The step.
        attempts: How often it was attempted.
    """

    code = "poison_message"

    def __init__(self, message: str, *, run_id: str, seq: int, attempts: int) -> None:
        super().__init__(message, run_id=run_id, seq=seq, attempts=attempts)
        self.run_id = run_id
        self.seq = seq
        self.attempts = attempts


class StepInDoubtError(RunError):
    """A non-idempotent tool call was started but not recorded as finished before a crash.

    Attributes:
        run_id: The run.
        seq: The step.
        tool_call_id: The call in doubt.
        tool_name: Its tool.
        policy: The tool's in-doubt policy: ``"wait"`` (the run waits for a person) or ``"fail"``.
    """

    code = "step_in_doubt"

    def __init__(
        self, message: str, *, run_id: str, seq: int, tool_call_id: str, tool_name: str, policy: str = "wait"
    ) -> None:
        super().__init__(message, run_id=run_id, seq=seq, tool_call_id=tool_call_id, tool_name=tool_name, policy=policy)
        self.run_id = run_id
        self.seq = seq
        self.tool_call_id = tool_call_id
        self.tool_name = tool_name
        self.policy = policy


class StepTimeoutError(RunError):
    """One attempt of a step ran past its ``step_timeout_seconds``; like a crash, it is tried again.

    Attributes:
        run_id: The run.
        seq: The step.
        timeout: The limit, in seconds.
    """

    code = "step_timeout"

    def __init__(self, message: str, *, run_id: str, seq: int, timeout: float) -> None:
        super().__init__(message, run_id=run_id, seq=seq, timeout=timeout)
        self.run_id = run_id
        self.seq = seq
        self.timeout = timeout


class InvalidCursorError(UsageError):
    """A pagination cursor is malformed; pass back exactly the ``next_cursor`` a page returned."""

    code = "invalid_cursor"


class MigrationError(MambaError):
    """A schema migration of the store would leave the database inconsistent; it was rolled back."""

    code = "migration_error"
