"""Duplicate deliveries: a step message delivered twice commits the step once (DESIGN.md invariant 2)."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta

import pytest
from sqlalchemy import update

from mamba_client.schemas import StepCommitted, StepStarted
from mamba_worker.durable import StepOutcome
from mamba_worker.durable.store import utcnow
from mamba_worker.durable.store._tables import OUTBOX
from tests._support.durable import (
    BACKENDS,
    DroppingDispatcher,
    Harness,
    RecordingDispatcher,
    RuntimeFactory,
    executor,
)
from tests._support.durable_workflows import Gate, Script, answer
from tests._support.wait import wait_until


def _committed_events(h: Harness, run_id: str, seq: int) -> list[StepCommitted]:
    return [e for e in h.service.events(run_id) if isinstance(e, StepCommitted) and e.step_seq == seq]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_second_delivery_of_a_committed_step_is_a_duplicate(factory: RuntimeFactory) -> None:
    script = Script([answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))

    first = await h.step(run_id, 1)
    second = await h.step(run_id, 1)

    assert (first, second) == (StepOutcome.COMMITTED, StepOutcome.DUPLICATE)
    assert len(_committed_events(h, run_id, 1)) == 1
    assert script.calls == 1
    # The successor had been sent by the first delivery: the duplicate sends nothing more.
    assert h.dispatcher.seqs(run_id) == [1, 2]
    assert [s.seq for s in h.service.steps(run_id)] == [1, 2]


async def test_a_duplicate_sends_the_successor_the_first_delivery_never_sent(factory: RuntimeFactory) -> None:
    script = Script([answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    dying = executor(h.runtime, DroppingDispatcher(h.runtime))  # commits, then "dies" before sending

    assert await dying.execute(run_id, 1) == StepOutcome.COMMITTED
    assert h.dispatcher.seqs(run_id) == [1]

    # Right after the commit a duplicate does not ring again: the message may just be in flight.
    assert await h.step(run_id, 1) == StepOutcome.DUPLICATE
    assert h.dispatcher.seqs(run_id) == [1]

    # Once the dispatch grace has passed with the successor unclaimed, it does.
    with h.store.session() as session, session.begin():
        session.execute(
            update(OUTBOX)
            .where(OUTBOX.c.run_id == run_id, OUTBOX.c.seq == 2)
            .values(dispatched_at=utcnow() - timedelta(hours=1))
        )
    assert await h.step(run_id, 1) == StepOutcome.DUPLICATE
    assert h.dispatcher.seqs(run_id) == [1, 2]
    assert len(_committed_events(h, run_id, 1)) == 1


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_delivery_while_another_worker_runs_the_step_is_not_claimable(factory: RuntimeFactory) -> None:
    gate = Gate()
    script = Script([gate.then(answer("5"))])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    other = executor(factory.runtime(), RecordingDispatcher(h.runtime))
    outcomes: list[StepOutcome] = []
    worker_a = threading.Thread(target=lambda: outcomes.append(asyncio.run(h.executor.execute(run_id, 1))))
    worker_a.start()
    try:
        wait_until(gate.entered.is_set, what="worker A in the model call")

        assert await other.execute(run_id, 1) == StepOutcome.NOT_CLAIMABLE
    finally:
        gate.open()
        worker_a.join(10)

    assert outcomes == [StepOutcome.COMMITTED]
    assert script.calls == 1
    assert len(_committed_events(h, run_id, 1)) == 1
    started = [e for e in h.service.events(run_id) if isinstance(e, StepStarted)]
    assert [(e.step_seq, e.attempt, e.worker) for e in started] == [(1, 1, h.runtime.worker_id)]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
def test_two_workers_racing_for_one_step_commit_it_once(factory: RuntimeFactory) -> None:
    script = Script([answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    workers = [h.executor, executor(factory.runtime(), RecordingDispatcher(h.runtime))]
    barrier = threading.Barrier(len(workers))
    outcomes: list[StepOutcome] = []

    def deliver(index: int) -> None:
        barrier.wait()
        outcomes.append(asyncio.run(workers[index].execute(run_id, 1)))

    threads = [threading.Thread(target=deliver, args=(index,)) for index in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)

    assert set(outcomes) - {StepOutcome.COMMITTED} <= {StepOutcome.NOT_CLAIMABLE, StepOutcome.DUPLICATE}
    assert outcomes.count(StepOutcome.COMMITTED) == 1
    assert script.calls == 1
    assert len(_committed_events(h, run_id, 1)) == 1
    assert [s.seq for s in h.service.steps(run_id)] == [1, 2]
    assert h.store.get_step_row(run_id, 1).attempt == 1
