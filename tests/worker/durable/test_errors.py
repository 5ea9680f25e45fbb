from __future__ import annotations

import pickle

import pytest

from mamba_worker.durable.errors import (
    InvalidCursorError,
    LeaseLostError,
    PoisonMessageError,
    RunCancelledError,
    RunConflictError,
    RunError,
    RunNotFoundError,
    StepInDoubtError,
    StepNotFoundError,
    StepTimeoutError,
)
from mamba_worker.errors import MambaError, UsageError

ERRORS = [
    RunNotFoundError("no run 'r1'", run_id="r1"),
    StepNotFoundError("no step 3", run_id="r1", seq=3),
    RunConflictError("run 'r1' is finished", run_id="r1"),
    LeaseLostError("lost", run_id="r1", seq=2, owner="w1"),
    RunCancelledError("cancelled", run_id="r1"),
    PoisonMessageError("gave up", run_id="r1", seq=2, attempts=5),
    StepInDoubtError("in doubt", run_id="r1", seq=2, tool_call_id="c1", tool_name="run_bash"),
    StepTimeoutError("too slow", run_id="r1", seq=2, timeout=30.0),
    InvalidCursorError("bad cursor"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_with_their_attributes(error: MambaError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.message, copy.details, vars(copy)) == (error.message, error.details, vars(error))


def test_codes_are_stable_and_distinct() -> None:
    assert [type(error).code for error in ERRORS] == [
        "run_not_found",
        "step_not_found",
        "run_conflict",
        "lease_lost",
        "run_cancelled",
        "poison_message",
        "step_in_doubt",
        "step_timeout",
        "invalid_cursor",
    ]


def test_runtime_errors_share_a_base_and_cursor_errors_are_usage_errors() -> None:
    assert all(isinstance(error, RunError) for error in ERRORS[:-1])
    assert isinstance(ERRORS[-1], UsageError)
