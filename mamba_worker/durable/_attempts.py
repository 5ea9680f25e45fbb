"""How many attempts a step gets (``max_step_attempts``), counted from the step's last resume.

Attempt numbers only grow: the ledgers (``model_calls``, ``tool_calls``) are keyed by them, so a
resumed step continues at the next number instead of starting again at 1. The allowance, though,
starts afresh at each resume: a run that was stopped as a poison message, or failed on its last
attempt, gets ``max_step_attempts`` new attempts once someone fixed the cause and resumed it.
"""

from __future__ import annotations

from mamba_client.schemas import RunResumed, StepFailed, StepStarted
from mamba_worker.config import RuntimeSettings
from mamba_worker.durable.store import RunRow, RunStore


def allowed_attempts(run: RunRow, runtime: RuntimeSettings) -> int:
    """Attempts a step of ``run`` gets between resumes: the run's own ``max_step_attempts``, else the runtime's."""
    return run.options.max_step_attempts or runtime.max_step_attempts


def attempt_limit(store: RunStore, run: RunRow, seq: int, *, attempt: int, runtime: RuntimeSettings) -> int:
    """The highest attempt number step ``seq`` may reach, for a caller at attempt ``attempt``.

    The event scan that finds the last resume runs only when ``attempt`` is past the plain
    allowance, which is rare (a step that keeps failing), so the common path costs nothing.
    """
    allowed = allowed_attempts(run, runtime)
    if attempt <= allowed:
        return allowed
    return attempts_before_resume(store, run.id, seq) + allowed


def attempts_before_resume(store: RunStore, run_id: str, seq: int) -> int:
    """The highest attempt step ``seq`` had reached when it was last resumed (0 if it never was)."""
    resumed_at = 0
    attempts: list[tuple[int, int]] = []  # (event seq, attempt) of each start or failure of the step
    after = 0
    while events := store.get_events(run_id, after_seq=after):
        for event in events:
            if isinstance(event, RunResumed) and event.from_seq == seq:
                resumed_at = event.seq
            elif isinstance(event, StepStarted | StepFailed) and event.step_seq == seq:
                attempts.append((event.seq, event.attempt))
        after = events[-1].seq
    return max((attempt for at, attempt in attempts if at < resumed_at), default=0)
