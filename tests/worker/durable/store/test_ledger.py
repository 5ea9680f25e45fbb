from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mamba_client.schemas import ErrorBody, ToolCallStatus, Usage
from mamba_worker.durable.store import (
    RunStore,
    mark_tool_call_in_doubt_txn,
    record_model_call_txn,
    record_tool_call_finished_txn,
    record_tool_call_started_txn,
    restart_tool_call_txn,
    supersede_model_calls_txn,
)
from mamba_worker.errors import UsageError
from tests.worker.durable.store.conftest import MakeRun

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
USAGE = Usage(input_tokens=100, output_tokens=20, cache_read_tokens=10, requests=1, cost_usd=0.25)


def _start(store: RunStore, run_id: str, *, call: str = "c1", attempt: int = 1, idempotent: bool = False) -> bool:
    with store.session() as session, session.begin():
        return record_tool_call_started_txn(
            session,
            run_id=run_id,
            seq=1,
            tool_call_id=call,
            tool_name="run_bash",
            idempotent=idempotent,
            attempt=attempt,
            args='{"command":"ls"}',
            now=T0,
        )


def test_a_tool_call_is_recorded_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    assert _start(store, run_id)
    assert not _start(store, run_id, attempt=2)
    [call] = store.get_tool_calls(run_id, 1)
    assert (call.tool_call_id, call.status, call.attempt, call.args, call.idempotent) == (
        "c1",
        ToolCallStatus.STARTED,
        1,
        '{"command":"ls"}',
        False,
    )


def test_a_finished_call_keeps_its_first_result(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _start(store, run_id)
    with store.session() as session, session.begin():
        assert record_tool_call_finished_txn(session, run_id, 1, "c1", result='"a.txt"', now=T0)
        assert not record_tool_call_finished_txn(session, run_id, 1, "c1", result='"other"')
    [call] = store.get_tool_calls(run_id, 1)
    assert (call.status, call.result, call.finished_at) == (ToolCallStatus.FINISHED, '"a.txt"', T0)


def test_a_failed_call_records_its_error(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _start(store, run_id)
    error = ErrorBody(code="tool_execution_error", message="exit 1")
    with store.session() as session, session.begin():
        assert record_tool_call_finished_txn(session, run_id, 1, "c1", error=error)
    [call] = store.get_tool_calls(run_id, 1)
    assert (call.status, call.error, call.result) == (ToolCallStatus.FAILED, error, None)


def test_finishing_needs_exactly_one_outcome(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    with pytest.raises(UsageError), store.session() as session, session.begin():
        record_tool_call_finished_txn(session, run_id, 1, "c1")


def test_an_unfinished_call_can_be_marked_in_doubt_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _start(store, run_id)
    with store.session() as session, session.begin():
        assert mark_tool_call_in_doubt_txn(session, run_id, 1, "c1")
        assert not mark_tool_call_in_doubt_txn(session, run_id, 1, "c1")
    assert store.get_tool_calls(run_id, 1)[0].status is ToolCallStatus.IN_DOUBT


def test_a_later_attempt_can_restart_an_unfinished_call_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _start(store, run_id, idempotent=True)
    with store.session() as session, session.begin():
        assert not restart_tool_call_txn(session, run_id, 1, "c1", attempt=1)
        assert restart_tool_call_txn(session, run_id, 1, "c1", attempt=2)
        assert not restart_tool_call_txn(session, run_id, 1, "c1", attempt=2)
    assert store.get_tool_calls(run_id, 1)[0].attempt == 2


def test_a_finished_call_is_never_restarted(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _start(store, run_id)
    with store.session() as session, session.begin():
        record_tool_call_finished_txn(session, run_id, 1, "c1", result="null")
        assert not restart_tool_call_txn(session, run_id, 1, "c1", attempt=2)
        assert not mark_tool_call_in_doubt_txn(session, run_id, 1, "c1")


def test_calls_of_a_step_come_back_in_start_order(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    for call in ("c2", "c1", "c3"):
        _start(store, run_id, call=call)
    assert [call.tool_call_id for call in store.get_tool_calls(run_id, 1)] == ["c1", "c2", "c3"]


def _record(store: RunStore, run_id: str, *, seq: int = 1, attempt: int = 1, index: int = 0) -> bool:
    with store.session() as session, session.begin():
        return record_model_call_txn(
            session,
            run_id=run_id,
            seq=seq,
            attempt=attempt,
            call_index=index,
            usage=USAGE,
            model_name="test",
            response='{"parts":[]}',
        )


def test_model_usage_is_added_to_the_step_and_the_run_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    assert _record(store, run_id)
    assert not _record(store, run_id)
    assert store.get_steps(run_id)[0].usage == USAGE
    assert store.get_run(run_id).usage == USAGE


def test_usage_of_retried_attempts_is_kept_and_marked(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think", "think"))
    _record(store, run_id, attempt=1)
    with store.session() as session, session.begin():
        assert supersede_model_calls_txn(session, run_id, 1, attempt=1) == 1
        assert supersede_model_calls_txn(session, run_id, 1, attempt=1) == 0
    _record(store, run_id, attempt=2)
    _record(store, run_id, seq=2)
    calls = store.get_model_calls(run_id, 1)
    assert [(call.attempt, call.superseded, call.response) for call in calls] == [
        (1, True, '{"parts":[]}'),
        (2, False, '{"parts":[]}'),
    ]
    assert store.get_steps(run_id)[0].usage == USAGE + USAGE
    assert store.get_run(run_id).usage == USAGE + USAGE + USAGE
