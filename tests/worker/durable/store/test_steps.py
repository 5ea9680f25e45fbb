from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mamba_client.schemas import ErrorBody, RunStatus, StepStatus
from mamba_worker.durable.errors import StepNotFoundError
from mamba_worker.durable.store import (
    RunStore,
    StepClaim,
    abort_step_txn,
    claim_running_step_txn,
    claim_step_txn,
    expire_lease_txn,
    heartbeat_txn,
    insert_step_txn,
    load_run_txn,
    mark_step_committed_txn,
    mark_step_failed_txn,
    reserve_events_txn,
    reset_step_txn,
    update_run_txn,
)
from tests.worker.durable.store.conftest import MakeRun, finished_and_analysed, plan_of_update

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
LEASE = 60.0
ERROR = ErrorBody(code="tool_execution_error", message="the tool broke")


def _claim(store: RunStore, run_id: str, owner: str, *, now: datetime = T0, seq: int = 1) -> int | None:
    with store.session() as session, session.begin():
        return claim_step_txn(session, run_id, seq, owner=owner, lease_seconds=LEASE, now=now)


def test_a_step_seq_is_unique_per_run(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with pytest.raises(IntegrityError), store.session() as session, session.begin():
        insert_step_txn(session, run_id=run_id, seq=1, name="act")
    assert [step.name for step in store.get_steps(run_id)] == ["think"]


def test_the_same_seq_in_another_run_is_fine(store: RunStore, make_run: MakeRun) -> None:
    first, second = make_run(steps=("think",)), make_run(steps=("think",))
    assert [s.seq for s in store.get_steps(first)] == [s.seq for s in store.get_steps(second)] == [1]


def test_a_step_needs_its_run(store: RunStore) -> None:
    with pytest.raises(IntegrityError), store.session() as session, session.begin():
        insert_step_txn(session, run_id="no-such-run", seq=1, name="think")


def test_claim_starts_attempt_one_with_a_lease(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    assert _claim(store, run_id, "w1") == 1
    row = store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner, row.lease_expires_at, row.started_at) == (
        StepStatus.RUNNING,
        "w1",
        T0 + timedelta(seconds=LEASE),
        T0,
    )


def test_a_live_lease_cannot_be_claimed_again(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    assert _claim(store, run_id, "w1") == 1
    assert _claim(store, run_id, "w2", now=T0 + timedelta(seconds=LEASE - 1)) is None
    assert store.get_step_row(run_id, 1).lease_owner == "w1"


def test_concurrent_claims_have_exactly_one_winner(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    workers = 6
    barrier = threading.Barrier(workers)
    results: dict[str, int | None] = {}

    def claim(owner: str) -> None:
        # Wait outside the transaction: on SQLite a writer's BEGIN takes the database lock.
        barrier.wait()
        with store.session() as session, session.begin():
            results[owner] = claim_step_txn(session, run_id, 1, owner=owner, lease_seconds=LEASE)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    winners = [owner for owner, attempt in results.items() if attempt is not None]
    assert len(results) == workers
    assert len(winners) == 1
    assert results[winners[0]] == 1
    assert store.get_step_row(run_id, 1).lease_owner == winners[0]


def test_an_expired_lease_can_be_claimed_with_the_next_attempt(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    assert _claim(store, run_id, "w2", now=T0 + timedelta(seconds=LEASE + 1)) == 2
    assert store.get_step_row(run_id, 1).lease_owner == "w2"


def test_a_finished_step_cannot_be_claimed(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        assert mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1)
    assert _claim(store, run_id, "w2", now=T0 + timedelta(days=1)) is None


def test_heartbeat_extends_only_the_owners_lease(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    later = T0 + timedelta(seconds=30)
    with store.session() as session, session.begin():
        assert not heartbeat_txn(session, run_id, 1, owner="w2", attempt=1, lease_seconds=LEASE, now=later)
        assert not heartbeat_txn(session, run_id, 1, owner="w1", attempt=2, lease_seconds=LEASE, now=later)
    assert store.get_step_row(run_id, 1).lease_expires_at == T0 + timedelta(seconds=LEASE)
    with store.session() as session, session.begin():
        assert heartbeat_txn(session, run_id, 1, owner="w1", attempt=1, lease_seconds=LEASE, now=later)
    assert store.get_step_row(run_id, 1).lease_expires_at == later + timedelta(seconds=LEASE)


# Every writer of one step, as the runtime calls it (the outcome does not matter here, the plan does).
_STEP_WRITERS: dict[str, Callable[[Session, str], object]] = {
    "claim": lambda session, run_id: claim_step_txn(session, run_id, 1, owner="w2", lease_seconds=LEASE, now=T0),
    "claim while running": lambda session, run_id: claim_running_step_txn(
        session, run_id, 1, owner="w2", lease_seconds=LEASE, now=T0
    ),
    "heartbeat": lambda session, run_id: heartbeat_txn(
        session, run_id, 1, owner="w1", attempt=1, lease_seconds=LEASE, now=T0
    ),
    "commit": lambda session, run_id: mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1, now=T0),
    "failure": lambda session, run_id: mark_step_failed_txn(
        session, run_id, 1, owner="w1", attempt=1, error=ERROR, now=T0
    ),
    "lease expiry": lambda session, run_id: expire_lease_txn(session, run_id, 1, now=T0 + timedelta(hours=1)),
    "abort": lambda session, run_id: abort_step_txn(session, run_id, 1, error=ERROR, now=T0),
    "retry": lambda session, run_id: reset_step_txn(session, run_id, 1),
}


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize("writer", list(_STEP_WRITERS))
def test_a_step_writer_finds_its_rows_by_primary_key(
    store: RunStore, make_run: MakeRun, engine: Engine, writer: str
) -> None:
    # Statistics in which every status a writer tests is rare (many finished runs and steps,
    # analysed), then a running step: a write planned to scan a status index walks every row in
    # that status to find its own.
    for _ in range(150):
        make_run(steps=("think", "act", "observe"))
    finished_and_analysed(engine, steps="status = 'committed'", runs="status = 'succeeded'")
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")

    def write() -> None:
        with store.session() as session, session.begin():
            _STEP_WRITERS[writer](session, run_id)

    plan = plan_of_update(engine, "steps", write)

    assert set(re.findall(r"Index (?:Only )?Scan (?:using|on) (\w+)", plan)) <= {"pk_steps", "pk_runs"}, plan
    assert "Seq Scan" not in plan, plan


def test_a_failure_is_recorded_only_for_the_lease_holder(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        assert not mark_step_failed_txn(session, run_id, 1, owner="w2", attempt=1, error=ERROR, now=T0)
    with store.session() as session, session.begin():
        assert mark_step_failed_txn(session, run_id, 1, owner="w1", attempt=1, error=ERROR, now=T0)
    assert store.get_step_row(run_id, 1).status is StepStatus.FAILED


def test_a_taken_over_worker_can_neither_heartbeat_nor_commit(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    _claim(store, run_id, "w2", now=T0 + timedelta(seconds=LEASE + 1))
    with store.session() as session, session.begin():
        assert not heartbeat_txn(session, run_id, 1, owner="w1", attempt=1, lease_seconds=LEASE)
        assert not mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1)
        assert not mark_step_failed_txn(session, run_id, 1, owner="w1", attempt=1, error=ERROR)
    assert store.get_step_row(run_id, 1).status is StepStatus.RUNNING


def test_commit_releases_the_lease_and_happens_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        assert mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1, now=T0)
        assert not mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1, now=T0)
    row = store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner, row.lease_expires_at, row.finished_at) == (
        StepStatus.COMMITTED,
        None,
        None,
        T0,
    )


def test_a_failed_attempt_keeps_its_error_and_traceback(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        assert mark_step_failed_txn(session, run_id, 1, owner="w1", attempt=1, error=ERROR, traceback="Traceback…")
    [step] = store.get_steps(run_id)
    assert (step.status, step.error, step.attempt) == (StepStatus.FAILED, ERROR, 1)
    assert store.get_step_row(run_id, 1).traceback == "Traceback…"


def test_a_retryable_failure_makes_the_step_claimable_again(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        mark_step_failed_txn(session, run_id, 1, owner="w1", attempt=1, error=ERROR, will_retry=True)
    assert store.get_step_row(run_id, 1).status is StepStatus.PENDING
    assert _claim(store, run_id, "w2") == 2


def test_reset_makes_a_failed_step_pending(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        mark_step_failed_txn(session, run_id, 1, owner="w1", attempt=1, error=ERROR)
        assert reset_step_txn(session, run_id, 1)
        assert not reset_step_txn(session, run_id, 1)
    row = store.get_step_row(run_id, 1)
    assert (row.status, row.error, row.attempt) == (StepStatus.PENDING, ERROR, 1)


def test_abort_fails_a_running_step_whoever_holds_it(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("act",))
    _claim(store, run_id, "w1")
    with store.session() as session, session.begin():
        assert abort_step_txn(session, run_id, 1, error=ERROR)
        assert not abort_step_txn(session, run_id, 1, error=ERROR)
        assert not mark_step_committed_txn(session, run_id, 1, owner="w1", attempt=1)
    assert store.get_step_row(run_id, 1).status is StepStatus.FAILED


def test_expired_leases_are_found_and_live_ones_are_not(store: RunStore, make_run: MakeRun) -> None:
    stale, live, waiting = make_run(steps=("think",)), make_run(steps=("think",)), make_run(steps=("think",))
    _claim(store, stale, "w1", now=T0)
    _claim(store, live, "w2", now=T0 + timedelta(seconds=LEASE))
    expired = store.get_expired_leases(now=T0 + timedelta(seconds=LEASE + 1))
    assert [(row.run_id, row.seq, row.lease_owner) for row in expired] == [(stale, 1, "w1")]
    assert waiting not in {row.run_id for row in expired}


def test_expire_lease_returns_the_step_to_pending_once(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    _claim(store, run_id, "w1")
    after = T0 + timedelta(seconds=LEASE + 1)
    with store.session() as session, session.begin():
        assert not expire_lease_txn(session, run_id, 1, now=T0 + timedelta(seconds=1))
        assert expire_lease_txn(session, run_id, 1, now=after)
        assert not expire_lease_txn(session, run_id, 1, now=after)
    row = store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner, row.attempt) == (StepStatus.PENDING, None, 1)
    assert store.get_expired_leases(now=after) == []


def test_inserting_a_step_advances_the_runs_newest_seq(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think", "act", "observe"))
    assert store.get_run_row(run_id).last_seq == 3


def test_a_missing_step_raises_step_not_found(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with pytest.raises(StepNotFoundError) as caught:
        store.get_step_row(run_id, 9)
    assert (caught.value.run_id, caught.value.seq) == (run_id, 9)


def _claim_running(store: RunStore, run_id: str, owner: str = "w1") -> StepClaim | None:
    with store.session() as session, session.begin():
        return claim_running_step_txn(session, run_id, 1, owner=owner, lease_seconds=LEASE, now=T0)


@pytest.mark.parametrize(
    ("changes", "claims"),
    [
        pytest.param({"status": RunStatus.RUNNING}, True, id="running"),
        pytest.param({}, False, id="pending"),
        pytest.param({"status": RunStatus.WAITING}, False, id="waiting"),
        pytest.param({"status": RunStatus.SUCCEEDED}, False, id="succeeded"),
        pytest.param({"status": RunStatus.RUNNING, "cancel_requested": True}, False, id="cancel-requested"),
    ],
)
def test_the_running_run_claim_only_claims_for_a_running_run(
    store: RunStore, make_run: MakeRun, changes: dict[str, Any], claims: bool
) -> None:
    run_id = make_run(steps=("think",))
    if changes:
        with store.session() as session, session.begin():
            update_run_txn(session, run_id, **changes)

    claim = _claim_running(store, run_id)

    assert claim == (StepClaim(attempt=1, name="think") if claims else None)
    expected = StepStatus.RUNNING if claims else StepStatus.PENDING
    assert store.get_step_row(run_id, 1).status == expected


def test_the_running_run_claim_loses_to_a_live_lease(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING)
    assert _claim_running(store, run_id, "w1") == StepClaim(attempt=1, name="think")

    assert _claim_running(store, run_id, "w2") is None
    assert store.get_step_row(run_id, 1).lease_owner == "w1"


def test_reserving_events_reads_the_run_and_numbers_from_its_counter(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        before = load_run_txn(session, run_id).next_event_seq
        reserved = reserve_events_txn(session, run_id, events=2)
    assert reserved is not None
    run, first = reserved
    assert (run.id, first, run.next_event_seq) == (run_id, before, before + 2)
    assert run.state == store.get_run_row(run_id).state
    with store.session() as session, session.begin():
        assert reserve_events_txn(session, "no-such-run", events=1) is None
