"""The same step message delivered twice, to two workers at once: one commit (DESIGN.md invariant 2).

Brokers deliver at least once (a redelivery after a lost ack, a reconciler re-send racing the
original). Here the duplicates are sent by hand with ``app.send_task`` while two workers consume:
first while the step is running in one of them (the other must not claim it), then after it
committed (whoever gets them must only make sure the successor was sent).
"""

from __future__ import annotations

import pytest

from mamba_client.schemas import StepStarted
from tests._support.crash.workflow import NOTE_LOG
from tests.crash.conftest import RigFactory

pytestmark = pytest.mark.slow


def test_a_step_delivered_twice_to_two_workers_commits_once(rig_factory: RigFactory) -> None:
    rig = rig_factory(database="postgresql", broker="embedded")
    rig.gates.hold("think-1")
    first = rig.workers.start("threads", pool="threads", concurrency=2, wait=False)
    second = rig.workers.start("solo", wait=False)
    first.wait_ready()
    second.wait_ready()
    run = rig.submit()
    owner = rig.workers.owner_of(rig.wait_entered("think-1", run.id)[0])

    # While the first delivery runs step 1 (its model call is held), two more arrive.
    while_running = [rig.send_step("mamba.think", run.id, 1) for _ in range(2)]
    outcomes = [rig.wait_done(task_id, run.id) for task_id in while_running]
    assert outcomes == ["not_claimable", "not_claimable"]
    rig.gates.release("think-1")
    finished = rig.wait_finished(run.id)
    # After the commits: a redelivery of every step only checks that its successor was sent.
    # ReAct step tasks are named mamba.<step> (part of the wire contract, like the queue names).
    after = [rig.send_step(f"mamba.{name}", run.id, seq) for seq, name, _, _ in rig.step_rows(run.id)]
    assert {rig.wait_done(task_id, run.id) for task_id in after} == {"duplicate"}

    rig.assert_committed_once(run.id)
    starts = [event for event in rig.events(run.id) if isinstance(event, StepStarted)]
    assert [event.step_seq for event in starts] == [1, 2, 3, 4, 5, 6]
    assert len(rig.gates.entries("think-1")) == 1  # the model ran once for step 1
    assert len(rig.gates.lines(NOTE_LOG)) == 1  # and the non-idempotent tool once
    assert owner.alive()
    assert finished.output == rig.run_uninterrupted().output
