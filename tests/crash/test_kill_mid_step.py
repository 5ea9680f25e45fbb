"""SIGKILL a worker in the middle of a step; another worker finishes the run (DESIGN.md invariants 2, 4, 6).

The scripted run is think → act (``append_note`` then ``lookup``) → observe → think → act
(``final_answer``) → observe. A gate holds the victim at the chosen point; the test kills it there,
releases the gate and lets a spare worker (booted meanwhile) in. The lease expires, the spare's
reconciler re-dispatches the step, and the run must end exactly like an uninterrupted one.
"""

from __future__ import annotations

import time

import pytest

from mamba_client.schemas import RedispatchReason, RunStatus, WaitReason
from tests._support.crash.workflow import NOTE_LOG
from tests.crash.conftest import CrashRig, RigFactory

pytestmark = pytest.mark.slow


def kill_at(rig: CrashRig, point: str, *, pool: str = "solo") -> tuple[str, float]:
    """Run the script until a worker is inside ``point``, SIGKILL that worker; returns the run id and the kill time."""
    rig.gates.hold(point)
    victim = rig.workers.start("victim", pool=pool, wait=False)
    spare = rig.workers.start("spare", pool=pool, held=True)
    victim.wait_ready()
    run = rig.submit()
    pids = rig.wait_entered(point, run.id)
    assert rig.workers.owner_of(pids[0]) is victim
    victim.kill()
    killed_at = time.monotonic()
    rig.gates.release(point)
    spare.let_in()
    return run.id, killed_at


def assert_recovered(rig: CrashRig, run_id: str, killed_at: float) -> None:
    """The run finished within the recovery deadline, each step committed once, like an uninterrupted run."""
    run = rig.wait_finished(run_id, timeout=rig.recovery_deadline - (time.monotonic() - killed_at))
    steps = rig.assert_committed_once(run_id)
    assert RedispatchReason.LEASE_EXPIRED in rig.redispatch_reasons(run_id), rig.describe(run_id)
    reference = rig.run_uninterrupted()
    assert run.output == reference.output
    assert steps == rig.assert_committed_once(reference.id)


STACKS = [
    pytest.param("sqlite", "embedded", "solo", id="sqlite-embedded"),
    pytest.param("postgresql", "redis", "solo", id="postgresql-redis"),
    pytest.param("sqlite", "redis", "solo", id="sqlite-redis"),
    # DESIGN.md: on RabbitMQ use threads or prefork (solo stalls on deferred acks).
    pytest.param("sqlite", "rabbitmq", "threads", id="sqlite-rabbitmq"),
]


@pytest.mark.parametrize(("database", "broker", "pool"), STACKS)
def test_a_worker_killed_mid_think_is_replaced_and_the_run_finishes_as_if_uninterrupted(
    rig_factory: RigFactory, database: str, broker: str, pool: str
) -> None:
    rig = rig_factory(database=database, broker=broker)
    run_id, killed_at = kill_at(rig, "think-1", pool=pool)

    assert_recovered(rig, run_id, killed_at)
    # The crashed think is the only step that ran twice; the note was written once per run.
    attempts = {seq: attempt for seq, _, _, attempt in rig.step_rows(run_id)}
    assert attempts == {1: 2, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1}
    assert len(rig.gates.lines(NOTE_LOG)) == 2  # this run's and the reference run's


@pytest.mark.parametrize(
    ("database", "broker"),
    [
        pytest.param("postgresql", "redis", id="postgresql-redis"),
        pytest.param("sqlite", "embedded", id="sqlite-embedded"),
    ],
)
def test_a_worker_killed_mid_act_reruns_only_the_idempotent_call(
    rig_factory: RigFactory, database: str, broker: str
) -> None:
    # Prefork: the step runs in a pool child, killed with its parent (one process group); the
    # child inherited the parent's connections, which it must not share.
    rig = rig_factory(database=database, broker=broker)
    run_id, killed_at = kill_at(rig, "act-lookup", pool="prefork")

    assert_recovered(rig, run_id, killed_at)
    # append_note (not idempotent) finished before the kill: its recorded result was reused.
    notes = rig.gates.lines(NOTE_LOG)
    assert len(notes) == 2, notes  # this run's and the reference run's
    assert len(rig.gates.entries("act-lookup")) == 3  # killed attempt, its re-run, the reference run


@pytest.mark.parametrize(
    ("database", "broker"),
    [
        pytest.param("postgresql", "redis", id="postgresql-redis"),
        pytest.param("sqlite", "embedded", id="sqlite-embedded"),
    ],
)
def test_a_worker_killed_inside_an_inline_step_is_replaced_and_the_run_finishes(
    rig_factory: RigFactory, database: str, broker: str
) -> None:
    # With inline_steps, act runs in the task that delivered think, claimed in think's commit: it
    # never had a message of its own, so only its lease (and the reconciler) can bring it back.
    rig = rig_factory(database=database, broker=broker)
    inline = {"MAMBA_RUNTIME__INLINE_STEPS": '["*"]'}
    rig.gates.hold("act-lookup")
    victim = rig.workers.start("victim", extra_env=inline, wait=False)
    spare = rig.workers.start("spare", extra_env=inline, held=True)
    victim.wait_ready()
    run = rig.submit()
    pids = rig.wait_entered("act-lookup", run.id)
    assert rig.workers.owner_of(pids[0]) is victim
    victim.kill()
    killed_at = time.monotonic()
    rig.gates.release("act-lookup")
    spare.let_in()

    assert_recovered(rig, run.id, killed_at)
    attempts = {seq: attempt for seq, _, _, attempt in rig.step_rows(run.id)}
    assert attempts == {1: 1, 2: 2, 3: 1, 4: 1, 5: 1, 6: 1}


def test_a_crash_after_a_non_idempotent_tool_started_leaves_the_run_waiting_in_doubt(rig: CrashRig) -> None:
    victim = rig.workers.start("victim", faults="after_tool_started:kill", wait=False)
    spare = rig.workers.start("spare", held=True)
    victim.wait_ready()
    run = rig.submit()
    assert victim.wait_exit() == -9
    spare.let_in()

    waiting = rig.wait_status(run.id, RunStatus.WAITING, timeout=rig.recovery_deadline)
    assert waiting.waiting is not None
    assert waiting.waiting.reason == WaitReason.IN_DOUBT
    assert waiting.waiting.tool_call_ids == ["call-note"]
    # The fault fired after the ledger said "started" and before the tool ran: it never ran, and
    # nobody ran it again.
    assert rig.gates.lines(NOTE_LOG) == []
    assert RedispatchReason.LEASE_EXPIRED in rig.redispatch_reasons(run.id)


def test_a_step_that_kills_every_worker_running_it_stops_the_run_as_poison(rig: CrashRig) -> None:
    attempts = {"MAMBA_RUNTIME__MAX_STEP_ATTEMPTS": "2"}
    victims = [
        rig.workers.start(f"victim{n}", faults="after_claim:kill", extra_env=attempts, wait=False) for n in (1, 2)
    ]
    spare = rig.workers.start("spare", extra_env=attempts, held=True)
    run = rig.submit()
    # The first claim kills one victim; its lease expires and the other victim's reconciler sends
    # the step again, to the other victim, which dies the same way.
    assert [victim.wait_exit(timeout=rig.recovery_deadline) for victim in victims] == [-9, -9]
    spare.let_in()

    failed = rig.wait_status(run.id, RunStatus.FAILED, timeout=rig.recovery_deadline)
    assert failed.error is not None
    assert failed.error.code == "poison_message"
    assert rig.step_rows(run.id) == [(1, "think", "failed", 3)]
    assert rig.gates.entries("think-1") == []  # the model was never reached
