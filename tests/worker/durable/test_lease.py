"""Leases: a running step's lease is extended by heartbeat, and a lost lease commits nothing (invariant 4)."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta

import pytest

from mamba_client.schemas import ModelResponseRecorded, StepCommitted, StepStatus
from mamba_worker.durable import StepOutcome
from mamba_worker.durable._commit import StepCommit, send_commit
from mamba_worker.durable._lease import StepLease
from mamba_worker.durable.errors import LeaseLostError
from mamba_worker.durable.store import claim_step_txn, utcnow
from mamba_worker.workflows import Next
from tests._support.durable import BACKENDS, Harness, RecordingDispatcher, RuntimeFactory, executor
from tests._support.durable_workflows import Gate, Script, answer
from tests._support.wait import wait_until


def _expires(h: Harness, run_id: str, seq: int = 1) -> datetime:
    expires = h.store.get_step_row(run_id, seq).lease_expires_at
    assert expires is not None
    return expires


def _in_thread(h: Harness, run_id: str, outcomes: list[StepOutcome]) -> threading.Thread:
    thread = threading.Thread(target=lambda: outcomes.append(asyncio.run(h.executor.execute(run_id, 1))))
    thread.start()
    return thread


def test_extend_moves_the_lease_forward(factory: RuntimeFactory) -> None:
    h = factory.harness(lease_seconds=30)
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        attempt = claim_step_txn(session, run_id, 1, owner="w1", lease_seconds=1)
    assert attempt == 1
    before = _expires(h, run_id)
    lease = StepLease(h.store, run_id=run_id, seq=1, owner="w1", attempt=1, lease_seconds=30, heartbeat_interval=10)

    assert lease.extend() is True
    assert _expires(h, run_id) > before


def test_extend_fails_for_another_owner_or_attempt(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        claim_step_txn(session, run_id, 1, owner="w1", lease_seconds=30)
    before = _expires(h, run_id)

    for owner, attempt in (("w2", 1), ("w1", 2)):
        lease = StepLease(
            h.store, run_id=run_id, seq=1, owner=owner, attempt=attempt, lease_seconds=60, heartbeat_interval=10
        )
        assert lease.extend() is False
    assert _expires(h, run_id) == before


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_heartbeat_keeps_a_long_step_leased(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("5"))])
    h = factory.harness(lease_seconds=0.6, heartbeat_seconds=0.1)
    run_id = h.submit(model=factory.model("scripted", script.model))
    outcomes: list[StepOutcome] = []
    thread = _in_thread(h, run_id, outcomes)
    try:
        wait_until(gate.entered.is_set, what="the step in its model call")
        first = _expires(h, run_id)
        # Outlive the first lease: only heartbeats can keep it.
        wait_until(lambda: utcnow() > first and _expires(h, run_id) > utcnow(), what="a lease extended past its end")
        assert h.store.get_step_row(run_id, 1).status == StepStatus.RUNNING
        assert h.store.get_expired_leases() == []
    finally:
        gate.open()
        thread.join(10)

    assert outcomes == [StepOutcome.COMMITTED]
    assert h.store.get_step_row(run_id, 1).attempt == 1


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_a_late_commit_after_a_takeover_raises_lease_lost_and_writes_nothing(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("from the first attempt")), answer("from the second attempt")])
    # A "GC pause": the heartbeat comes far too late to save the lease.
    h = factory.harness(lease_seconds=0.3, heartbeat_seconds=30)
    run_id = h.submit(model=factory.model("scripted", script.model))
    outcomes: list[StepOutcome] = []
    thread = _in_thread(h, run_id, outcomes)
    try:
        wait_until(gate.entered.is_set, what="attempt 1 in its model call")
        wait_until(lambda: _expires(h, run_id) < utcnow(), what="attempt 1's lease to expire")
        thief = executor(factory.runtime(lease_seconds=30), RecordingDispatcher(h.runtime))
        assert asyncio.run(thief.execute(run_id, 1)) == StepOutcome.COMMITTED
    finally:
        gate.open()
        thread.join(10)

    assert outcomes == [StepOutcome.LEASE_LOST]
    committed = [e for e in h.service.events(run_id) if isinstance(e, StepCommitted)]
    assert [(e.step_seq, e.attempt) for e in committed] == [(1, 2)]
    responses = [e for e in h.service.events(run_id) if isinstance(e, ModelResponseRecorded)]
    assert len(responses) == 1
    assert h.store.get_step_row(run_id, 1).attempt == 2
    assert [s.seq for s in h.service.steps(run_id)] == [1, 2]
    # The first attempt's model call was paid for: its usage stays in the ledger and the totals.
    run = h.service.get(run_id)
    assert run.usage.requests == 2
    assert sum(row.requests for row in h.store.get_model_calls(run_id, 1)) == 2


def test_a_heartbeat_that_finds_the_lease_taken_stops_the_step_at_once(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("never"))])
    h = factory.harness(lease_seconds=5, heartbeat_seconds=0.05)
    run_id = h.submit(model=factory.model("scripted", script.model))
    outcomes: list[StepOutcome] = []
    thread = _in_thread(h, run_id, outcomes)
    try:
        wait_until(gate.entered.is_set, what="the step in its model call")
        # Another worker took the step over (as after an expiry the heartbeat did not see).
        with h.store.session() as session, session.begin():
            later = utcnow() + timedelta(hours=1)
            claimed = claim_step_txn(session, run_id, 1, owner="thief", lease_seconds=60, now=later)
        assert claimed == 2
        wait_until(lambda: bool(outcomes), timeout=10, what="the first attempt to stop")
    finally:
        gate.open()
        thread.join(10)

    assert outcomes == [StepOutcome.LEASE_LOST]
    row = h.store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner, row.attempt) == (StepStatus.RUNNING, "thief", 2)
    assert not any(isinstance(e, StepCommitted) for e in h.service.events(run_id))


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_a_commit_by_a_former_holder_raises_and_writes_nothing(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        claim_step_txn(session, run_id, 1, owner="old", lease_seconds=60)
    with h.store.session() as session, session.begin():
        later = utcnow() + timedelta(hours=1)
        assert claim_step_txn(session, run_id, 1, owner="new", lease_seconds=60, now=later) == 2
    events_before = h.service.events(run_id)
    state_before = h.store.get_state(run_id)

    with pytest.raises(LeaseLostError) as raised:
        send_commit(
            h.store,
            StepCommit(
                run_id=run_id,
                seq=1,
                step="think",
                workflow="react",
                queue="q",
                owner="old",
                attempt=1,
                state='{"task": "changed"}',
                result=Next(step="act"),
            ),
        ).confirm()

    assert raised.value.owner == "old"
    assert h.service.events(run_id) == events_before
    assert h.store.get_state(run_id) == state_before
    assert [s.seq for s in h.service.steps(run_id)] == [1]
    assert h.store.get_step_row(run_id, 1).status == StepStatus.RUNNING
