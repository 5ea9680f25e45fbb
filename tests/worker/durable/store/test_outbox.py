from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from mamba_client.schemas import RunStatus, StepStatus
from mamba_worker.durable.store import (
    RunStore,
    claim_step_txn,
    insert_outbox_txn,
    mark_dispatched_txn,
    requeue_outbox_txn,
    update_run_txn,
)
from tests.worker.durable.store.conftest import MakeRun, finished_and_analysed, plan_of_update

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def _queue(store: RunStore, run_id: str, *, now: datetime = T0, not_before: datetime | None = None) -> bool:
    with store.session() as session, session.begin():
        return insert_outbox_txn(
            session, run_id=run_id, seq=1, task_name="mamba.think", queue="mamba", now=now, not_before=not_before
        )


def _dispatch(store: RunStore, run_id: str, *, task_id: str = "t1", now: datetime = T0) -> bool:
    with store.session() as session, session.begin():
        return mark_dispatched_txn(session, run_id, 1, task_id=task_id, now=now)


def test_a_step_has_one_outbox_row(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    assert _queue(store, run_id)
    assert not _queue(store, run_id, now=T0 + timedelta(hours=1))
    [row] = store.get_outbox_pending(older_than=T0 + timedelta(days=1))
    assert (row.run_id, row.seq, row.task_name, row.queue, row.queued_at) == (run_id, 1, "mamba.think", "mamba", T0)


def test_undispatched_rows_are_pending_once_old_enough(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _queue(store, run_id)
    assert store.get_outbox_pending(older_than=T0) == []
    assert [row.run_id for row in store.get_outbox_pending(older_than=T0 + timedelta(seconds=1))] == [run_id]


def test_rows_are_not_pending_before_their_not_before(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _queue(store, run_id, not_before=T0 + timedelta(minutes=5))
    later = T0 + timedelta(minutes=1)
    assert store.get_outbox_pending(older_than=later, now=later) == []
    due = T0 + timedelta(minutes=6)
    assert len(store.get_outbox_pending(older_than=due, now=due)) == 1


def test_dispatch_is_recorded_once_and_moves_the_step(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _queue(store, run_id)
    assert _dispatch(store, run_id, task_id="t1")
    assert not _dispatch(store, run_id, task_id="t2")
    assert store.get_outbox_pending(older_than=T0 + timedelta(days=1)) == []
    assert store.get_step_row(run_id, 1).status is StepStatus.DISPATCHED
    [row] = store.get_stalled_dispatches(dispatched_before=T0 + timedelta(days=1))
    assert (row.task_id, row.attempt, row.dispatched_at) == ("t1", 1, T0)


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("table", ["outbox", "steps"])
def test_a_dispatch_finds_its_rows_by_primary_key(
    store: RunStore, make_run: MakeRun, engine: Engine, table: str
) -> None:
    # Statistics in which undispatched rows and pending steps are rare (many sent and finished,
    # analysed), then a backlog's row: a dispatch planned to scan the pending-outbox or status
    # index walks every row in it.
    for _ in range(150):
        _queue(store, make_run(steps=("think",)))
    finished_and_analysed(engine, outbox="dispatched_at = queued_at", steps="status = 'committed'")
    run_id = make_run(steps=("think",))
    _queue(store, run_id)

    plan = plan_of_update(engine, table, lambda: _dispatch(store, run_id))

    # Only the primary key, if any index: a table this small may be read whole.
    assert set(re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", plan)) <= {f"pk_{table}"}, plan
    assert store.get_step_row(run_id, 1).status is StepStatus.DISPATCHED


def test_dispatch_after_the_claim_leaves_the_step_running(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _queue(store, run_id)
    with store.session() as session, session.begin():
        claim_step_txn(session, run_id, 1, owner="w1", lease_seconds=60)
    assert _dispatch(store, run_id)
    assert store.get_step_row(run_id, 1).status is StepStatus.RUNNING


def test_a_sent_message_no_worker_claimed_is_stalled(store: RunStore, make_run: MakeRun) -> None:
    lost, claimed = make_run(steps=("think",)), make_run(steps=("think",))
    for run_id in (lost, claimed):
        _queue(store, run_id)
        _dispatch(store, run_id)
    with store.session() as session, session.begin():
        claim_step_txn(session, claimed, 1, owner="w1", lease_seconds=60)
    assert store.get_stalled_dispatches(dispatched_before=T0) == []
    stalled = store.get_stalled_dispatches(dispatched_before=T0 + timedelta(minutes=1))
    assert [row.run_id for row in stalled] == [lost]


def test_requeue_makes_a_row_pending_again(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _queue(store, run_id)
    _dispatch(store, run_id)
    later = T0 + timedelta(minutes=2)
    with store.session() as session, session.begin():
        assert requeue_outbox_txn(session, run_id, 1, now=later)
    [row] = store.get_outbox_pending(older_than=later + timedelta(seconds=1))
    assert (row.dispatched_at, row.queued_at, row.attempt) == (None, later, 1)
    assert _dispatch(store, run_id, task_id="t2", now=later)
    assert store.get_stalled_dispatches(dispatched_before=later + timedelta(1))[0].attempt == 2


def test_finished_runs_are_never_redispatched(store: RunStore, make_run: MakeRun) -> None:
    pending, sent = make_run(steps=("think",)), make_run(steps=("think",))
    _queue(store, pending)
    _queue(store, sent)
    _dispatch(store, sent)
    with store.session() as session, session.begin():
        for run_id in (pending, sent):
            update_run_txn(session, run_id, status=RunStatus.CANCELLED)
    later = T0 + timedelta(days=1)
    assert store.get_outbox_pending(older_than=later, now=later) == []
    assert store.get_stalled_dispatches(dispatched_before=later) == []
