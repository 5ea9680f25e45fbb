"""The broker loses messages, or a worker dies between its commit and its send: no run is lost (invariant 3).

SQL is the truth and the broker only a doorbell: the outbox remembers every step that must run,
and the reconciler rings again for steps whose message was never sent, or was sent and never
claimed.
"""

from __future__ import annotations

import sqlite3

import pytest
import redis

from mamba_client.schemas import RedispatchReason
from tests._support.crash.workers import WorkerProcess
from tests._support.crash.workflow import NOTE_LOG
from tests._support.durable import redis_queue_keys
from tests.crash.conftest import CrashRig, RigFactory

pytestmark = pytest.mark.slow


def hold_one_run_and_queue_another(rig: CrashRig) -> tuple[WorkerProcess, str, str]:
    """One worker busy in run A's first think (held); run B's first message waits in the broker."""
    rig.gates.hold("think-1")
    busy = rig.workers.start("busy")
    held = rig.submit()
    rig.wait_entered("think-1", held.id)
    queued = rig.submit()
    return busy, held.id, queued.id


def test_a_redis_queue_emptied_mid_run_loses_no_run(rig_factory: RigFactory) -> None:
    rig = rig_factory(database="postgresql", broker="redis")
    _, held, queued = hold_one_run_and_queue_another(rig)
    client = redis.Redis.from_url(rig.stack.broker_url)
    try:
        keys = redis_queue_keys(rig.stack.queue)
        queue_length = lambda: sum(client.llen(key) for key in keys)  # noqa: E731
        rig.wait(queue_length, "run B's message to wait in Redis", run_id=queued)
        # What FLUSHALL does to this test's queue (FLUSHALL itself would hit other tests' queues).
        assert client.delete(*keys) == 1
    finally:
        client.close()
    rig.gates.release("think-1")

    first = rig.wait_finished(held)
    second = rig.wait_finished(queued)
    assert RedispatchReason.LOST_DISPATCH in rig.redispatch_reasons(queued)
    assert rig.assert_committed_once(held) == rig.assert_committed_once(queued)
    assert first.output == second.output
    assert len(rig.gates.lines(NOTE_LOG)) == 2


def test_the_embedded_broker_file_deleted_mid_run_loses_no_run(rig: CrashRig) -> None:
    spare = rig.workers.start("spare", held=True)
    busy, held, queued = hold_one_run_and_queue_another(rig)
    broker_file = rig.directory / "broker.db"

    def waiting_messages() -> int:
        with sqlite3.connect(broker_file) as connection:
            return int(connection.execute("SELECT count(*) FROM kombu_message WHERE visible = 1").fetchone()[0])

    rig.wait(waiting_messages, "run B's message to wait in the broker file", run_id=queued)
    for path in rig.directory.glob("broker.db*"):
        path.unlink()
    # The running worker still has the deleted file open; a restart is what loses its contents.
    busy.kill()
    rig.gates.release("think-1")
    spare.let_in()

    first = rig.wait_finished(held)
    second = rig.wait_finished(queued)
    assert RedispatchReason.LEASE_EXPIRED in rig.redispatch_reasons(held)
    assert RedispatchReason.LOST_DISPATCH in rig.redispatch_reasons(queued)
    assert rig.assert_committed_once(held) == rig.assert_committed_once(queued)
    assert first.output == second.output
    assert len(rig.gates.lines(NOTE_LOG)) == 2


@pytest.mark.parametrize("point", ["after_step_commit", "before_step_commit"])
def test_a_worker_killed_around_its_commit_leaves_the_run_to_the_reconciler(rig: CrashRig, point: str) -> None:
    victim = rig.workers.start("victim", faults=f"{point}:kill", wait=False)
    spare = rig.workers.start("spare", held=True)
    victim.wait_ready()
    run = rig.submit()
    assert victim.wait_exit() == -9
    spare.let_in()

    finished = rig.wait_finished(run.id)
    rig.assert_committed_once(run.id)
    first_attempts = rig.step_rows(run.id)[0][3]
    reasons = rig.redispatch_reasons(run.id)
    if point == "after_step_commit":
        # Step 1 was committed; only its successor's doorbell was lost, and the reconciler rang it.
        assert first_attempts == 1
        assert RedispatchReason.LOST_DISPATCH in reasons
    else:
        # Step 1 ran but did not commit: it ran again after its lease expired...
        assert first_attempts == 2
        assert RedispatchReason.LEASE_EXPIRED in reasons
    # ...and either way the model answered step 1 once: the re-run replayed the recorded response.
    assert len(rig.gates.entries("think-1")) == 1
    assert finished.output == rig.run_uninterrupted().output
