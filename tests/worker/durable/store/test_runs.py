from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from dirty_equals import IsDatetime, IsStr
from sqlalchemy import Engine

from mamba_client.schemas import ErrorBody, RunOptions, RunStatus, SubmitRun, Usage, Waiting, WaitReason
from mamba_worker.durable.errors import InvalidCursorError, RunNotFoundError
from mamba_worker.durable.store import (
    RunStore,
    insert_run_txn,
    load_run_by_idempotency_key_txn,
    new_run_id,
    update_run_txn,
)
from tests.worker.durable.store.conftest import MakeRun, finished_and_analysed, plan_of_update

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_a_submitted_run_reads_back_as_submitted(store: RunStore) -> None:
    submit = SubmitRun(
        input="Summarise README.md",
        model="test",
        tools=["read_file"],
        options=RunOptions(max_iterations=3),
        idempotency_key="job-1",
        metadata={"team": "search"},
    )
    run_id = new_run_id()
    with store.session() as session, session.begin():
        assert insert_run_txn(
            session, submit, run_id=run_id, queue="agents", priority=4, now=T0, state='{"messages":[]}'
        )

    run = store.get_run(run_id)

    assert run.model_dump() == {
        "id": run_id,
        "workflow": "react",
        "status": RunStatus.PENDING,
        "input": "Summarise README.md",
        "model": "test",
        "tools": ["read_file"],
        "options": RunOptions(max_iterations=3).model_dump(),
        "queue": "agents",
        "priority": 4,
        "metadata": {"team": "search"},
        "idempotency_key": "job-1",
        "output": None,
        "error": None,
        "waiting": None,
        "usage": Usage().model_dump(),
        "current_seq": 0,
        "current_step": None,
        "current_attempt": 0,
        "cancel_requested": False,
        "parent_run_id": None,
        "parent_seq": None,
        "created_at": T0,
        "updated_at": T0,
        "finished_at": None,
    }
    assert store.get_run_row(run_id).state == '{"messages":[]}'


def test_get_run_shows_the_newest_step(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think", "act"))
    run = store.get_run(run_id)
    assert (run.current_seq, run.current_step, run.current_attempt) == (2, "act", 0)


def test_unknown_run_raises_run_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFoundError) as caught:
        store.get_run("nope")
    assert caught.value.run_id == "nope"
    with pytest.raises(RunNotFoundError):
        store.get_run_row("nope")


def test_a_second_submission_with_the_same_key_inserts_nothing(store: RunStore, make_run: MakeRun) -> None:
    first = make_run(idempotency_key="job-7")
    with store.session() as session, session.begin():
        inserted = insert_run_txn(
            session, SubmitRun(input="again", idempotency_key="job-7"), run_id=new_run_id(), queue="mamba"
        )
        existing = load_run_by_idempotency_key_txn(session, "job-7")
    assert inserted is False
    assert existing is not None and existing.id == first
    assert store.get_run_by_idempotency_key("job-7") == store.get_run(first)


def test_runs_without_a_key_never_conflict(make_run: MakeRun, store: RunStore) -> None:
    make_run()
    make_run()
    assert len(store.list_runs().items) == 2


def test_update_applies_only_when_the_status_guard_holds(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        assert update_run_txn(session, run_id, status=RunStatus.CANCELLED, only_if_status=[RunStatus.PENDING])
    with store.session() as session, session.begin():
        moved = update_run_txn(
            session, run_id, status=RunStatus.RUNNING, only_if_status=[RunStatus.PENDING, RunStatus.RUNNING]
        )
    assert moved is False
    assert store.get_run(run_id).status is RunStatus.CANCELLED


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_guarded_update_finds_its_run_by_primary_key(store: RunStore, make_run: MakeRun, engine: Engine) -> None:
    # Statistics in which 'pending' is rare (many finished runs, analysed), then pending runs (a
    # burst of submits): an update planned to scan the status index walks every pending run.
    for _ in range(300):
        make_run()
    finished_and_analysed(engine, runs="status = 'succeeded'")
    run_id = make_run()

    def start() -> None:
        with store.session() as session, session.begin():
            assert update_run_txn(session, run_id, status=RunStatus.RUNNING, only_if_status=[RunStatus.PENDING])

    plan = plan_of_update(engine, "runs", start)

    assert set(re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", plan)) == {"pk_runs"}, plan
    assert store.get_run(run_id).status is RunStatus.RUNNING


def test_update_respects_a_cancel_request(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, cancel_requested=True)
    with store.session() as session, session.begin():
        assert not update_run_txn(session, run_id, state="{}", only_if_not_cancel_requested=True)
    assert store.get_run(run_id).cancel_requested


def test_update_leaves_unset_fields_and_clears_none(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    error = ErrorBody(code="boom", message="it broke")
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, state='{"a":1}', error=error)
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, error=None)
    row = store.get_run_row(run_id)
    assert (row.state, row.error) == ('{"a":1}', None)


def test_a_terminal_status_stamps_finished_at_and_a_resume_clears_it(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(now=T0)
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.SUCCEEDED, output={"answer": 42}, now=T0 + timedelta(1))
    run = store.get_run(run_id)
    assert (run.finished_at, run.updated_at, run.output) == (T0 + timedelta(1), T0 + timedelta(1), {"answer": 42})
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)
    assert store.get_run(run_id).finished_at is None


def test_waiting_round_trips(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    waiting = Waiting(reason=WaitReason.IN_DOUBT, seq=2, tool_call_ids=["c1"])
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.WAITING, waiting=waiting)
    assert store.get_run(run_id).waiting == waiting


def test_list_runs_pages_newest_first(store: RunStore, make_run: MakeRun) -> None:
    ids = [make_run(now=T0 + timedelta(seconds=i)) for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = store.list_runs(limit=2, cursor=cursor)
        seen += [run.id for run in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == ids[::-1]


def test_list_runs_breaks_ties_on_created_at_by_id(store: RunStore, make_run: MakeRun) -> None:
    ids = {make_run(now=T0) for _ in range(3)}
    first = store.list_runs(limit=2)
    second = store.list_runs(limit=2, cursor=first.next_cursor)
    assert {run.id for run in first.items + second.items} == ids
    assert second.next_cursor is None


def test_list_runs_filters_by_status_and_workflow(store: RunStore, make_run: MakeRun) -> None:
    done = make_run(workflow="research")
    make_run()
    with store.session() as session, session.begin():
        update_run_txn(session, done, status=RunStatus.SUCCEEDED)
    assert [run.id for run in store.list_runs(status=RunStatus.SUCCEEDED).items] == [done]
    assert [run.id for run in store.list_runs(workflow="research").items] == [done]


@pytest.mark.parametrize("cursor", ["garbage!", "W10", "WyJub3QgYSBkYXRlIiwgIngiXQ"])
def test_a_foreign_cursor_is_rejected(store: RunStore, cursor: str) -> None:
    with pytest.raises(InvalidCursorError, match="next_cursor"):
        store.list_runs(cursor=cursor)


def test_runs_carry_timestamps_in_utc(store: RunStore, make_run: MakeRun) -> None:
    run = store.get_run(make_run())
    assert run.created_at == IsDatetime(iso_string=False) and run.created_at.tzinfo is not None
    assert run.created_at.utcoffset() == timedelta(0)
    assert run.id == IsStr(regex=r"^[0-9a-f-]{36}$")
