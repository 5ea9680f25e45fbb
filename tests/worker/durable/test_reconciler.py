"""`Reconciler`: lost doorbells and expired leases are rung again (invariants 3 and 4)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from kombu.exceptions import OperationalError

from mamba_client.schemas import RedispatchReason, RunStatus, StepRedispatched, StepStarted, StepStatus, SubmitRun
from mamba_worker.durable import Reconciler, ReconcilerThread, RunService, StepOutcome
from mamba_worker.durable.store import claim_step_txn, requeue_outbox_txn, utcnow
from tests._support.durable import (
    BACKENDS,
    DroppingDispatcher,
    FailingDispatcher,
    Harness,
    LosingDispatcher,
    RuntimeFactory,
    executor,
    submit_refused,
)
from tests._support.wait import wait_until


def _redispatched(h: Harness, run_id: str) -> list[tuple[int, RedispatchReason]]:
    return [(e.step_seq, e.reason) for e in h.service.events(run_id) if isinstance(e, StepRedispatched)]


def _submit(service: RunService) -> str:
    return service.submit(SubmitRun(input="What is 2 + 3?", model="offline")).id


def _submit_unsent(h: Harness) -> str:
    """A run whose first message the broker refused: the submit raised, its outbox row is unsent."""
    return submit_refused(h.runtime, SubmitRun(input="What is 2 + 3?", model="offline"))


def test_an_unsent_step_is_left_to_its_worker_during_the_grace_period(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=60)
    _submit_unsent(h)

    report = Reconciler(h.runtime, dispatcher=h.dispatcher).run_once()

    assert report.total == 0
    assert h.dispatcher.sent == []


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_an_unsent_step_is_sent_after_the_grace_period(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=0.2)
    run_id = _submit_unsent(h)
    reconciler = Reconciler(h.runtime, dispatcher=h.dispatcher)

    wait_until(lambda: reconciler.run_once().unsent == 1, what="the reconciler to send the unsent step")

    assert h.dispatcher.seqs(run_id) == [1]
    assert _redispatched(h, run_id) == [(1, RedispatchReason.LOST_DISPATCH)]
    assert h.store.get_step_row(run_id, 1).status == StepStatus.DISPATCHED
    assert reconciler.run_once().total == 0  # sent: nothing more to do
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_a_submit_stamps_its_first_step_sent_in_its_own_commit(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=0, redispatch_after_seconds=3600)
    run_id = h.submit(model="offline")

    # Not unsent (no grace to wait out), not stalled (an hour to go): nothing for the reconciler.
    assert Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().total == 0
    assert h.dispatcher.seqs(run_id) == [1]


def test_a_submit_whose_process_died_before_its_send_is_sent_again_after_redispatch_after(
    factory: RuntimeFactory,
) -> None:
    h = factory.harness(dispatch_grace_seconds=0, redispatch_after_seconds=0.2)
    run_id = _submit(RunService(h.runtime, dispatcher=DroppingDispatcher(h.runtime)))
    reconciler = Reconciler(h.runtime, dispatcher=h.dispatcher)

    wait_until(lambda: reconciler.run_once().lost_dispatches == 1, what="the reconciler to re-send the first step")

    assert h.dispatcher.seqs(run_id) == [1]
    assert _redispatched(h, run_id) == [(1, RedispatchReason.LOST_DISPATCH)]


async def test_a_successor_the_broker_refused_is_sent_after_the_grace_period_not_a_lease_later(
    factory: RuntimeFactory,
) -> None:
    h = factory.harness(dispatch_grace_seconds=0, redispatch_after_seconds=3600)
    run_id = h.submit(model="offline")

    with pytest.raises(OperationalError):
        await executor(h.runtime, FailingDispatcher(h.runtime)).execute(run_id, 1)

    assert Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().unsent == 1
    assert h.dispatcher.seqs(run_id) == [1, 2]
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_step_whose_lease_expired_is_sent_again_as_the_next_attempt(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        # A worker claimed the step and died: its lease runs out.
        assert claim_step_txn(session, run_id, 1, owner="dead-worker", lease_seconds=0.05) == 1
    reconciler = Reconciler(h.runtime, dispatcher=h.dispatcher)

    wait_until(lambda: reconciler.run_once().expired_leases == 1, what="the reconciler to see the expired lease")

    assert _redispatched(h, run_id) == [(1, RedispatchReason.LEASE_EXPIRED)]
    assert h.dispatcher.seqs(run_id) == [1, 1]
    row = h.store.get_step_row(run_id, 1)
    assert (row.status, row.lease_owner) == (StepStatus.DISPATCHED, None)
    assert await h.step(run_id, 1) == StepOutcome.COMMITTED
    started = [e for e in h.service.events(run_id) if isinstance(e, StepStarted)]
    assert [(e.step_seq, e.attempt) for e in started] == [(1, 2)]


def test_a_live_lease_is_left_alone(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        claim_step_txn(session, run_id, 1, owner="busy-worker", lease_seconds=60)

    assert Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().total == 0
    assert h.store.get_step_row(run_id, 1).lease_owner == "busy-worker"


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_sent_step_the_broker_lost_is_sent_again(factory: RuntimeFactory) -> None:
    h = factory.harness(redispatch_after_seconds=0.2)
    losing = LosingDispatcher(h.runtime)
    run_id = _submit(RunService(h.runtime, dispatcher=losing))
    assert losing.seqs(run_id) == [1]
    reconciler = Reconciler(h.runtime, dispatcher=h.dispatcher)

    wait_until(lambda: reconciler.run_once().lost_dispatches == 1, what="the reconciler to re-send the lost step")

    assert h.dispatcher.seqs(run_id) == [1]
    assert _redispatched(h, run_id) == [(1, RedispatchReason.LOST_DISPATCH)]
    await h.drive(run_id)
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


def test_steps_of_finished_runs_are_never_sent(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=0)
    run_id = _submit_unsent(h)
    h.service.cancel(run_id)

    assert Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().total == 0
    assert h.dispatcher.sent == []


def test_a_retry_is_not_sent_before_its_back_off(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=0)
    run_id = h.submit(model="offline")
    with h.store.session() as session, session.begin():
        requeue_outbox_txn(session, run_id, 1, not_before=utcnow() + timedelta(hours=1))

    assert Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().total == 0
    assert h.dispatcher.seqs(run_id) == [1]


def test_the_reconciler_thread_reconciles_until_stopped(factory: RuntimeFactory) -> None:
    h = factory.harness(dispatch_grace_seconds=0)
    run_id = _submit(RunService(h.runtime, dispatcher=DroppingDispatcher(h.runtime)))
    thread = ReconcilerThread(h.runtime, interval=0.05).start()
    try:
        wait_until(lambda: h.store.get_step_row(run_id, 1).status == StepStatus.DISPATCHED, what="a pass")
    finally:
        thread.stop()

    assert _redispatched(h, run_id) == [(1, RedispatchReason.LOST_DISPATCH)]
