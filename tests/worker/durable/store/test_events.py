from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from mamba_client.schemas import (
    ErrorBody,
    RunFailed,
    RunSubmitted,
    StepCommitted,
    StepStarted,
    Usage,
)
from mamba_worker.durable.errors import RunNotFoundError
from mamba_worker.durable.store import RunStore, append_events_txn
from mamba_worker.durable.store._tables import EVENTS
from mamba_worker.errors import UsageError
from tests.worker.durable.store.conftest import MakeRun

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_events_are_numbered_from_one_in_order(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        first = append_events_txn(session, [RunSubmitted(run_id=run_id, workflow="react", input="hi", queue="mamba")])
        more = append_events_txn(
            session,
            [
                StepStarted(run_id=run_id, step_seq=1, step="think", attempt=1, worker="w1"),
                StepCommitted(run_id=run_id, step_seq=1, step="think", attempt=1, next_step="act"),
            ],
        )
    assert [event.seq for event in first + more] == [1, 2, 3]
    assert store.get_events(run_id) == first + more


def test_events_read_back_exactly(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    event = RunFailed(
        run_id=run_id, ts=T0, error=ErrorBody(code="poison_message", message="gave up"), usage=Usage(requests=2)
    )
    with store.session() as session, session.begin():
        [stored] = append_events_txn(session, [event])
    assert store.get_events(run_id) == [event.model_copy(update={"seq": 1})] == [stored]


def test_replay_starts_after_the_last_seen_seq(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        append_events_txn(
            session, [StepStarted(run_id=run_id, step_seq=i, step="think", attempt=1, worker="w") for i in range(1, 6)]
        )
    assert [event.seq for event in store.get_events(run_id, after_seq=3)] == [4, 5]
    assert [event.seq for event in store.get_events(run_id, after_seq=1, limit=2)] == [2, 3]


def test_a_rolled_back_append_leaves_no_gap(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    event = StepStarted(run_id=run_id, step_seq=1, step="think", attempt=1, worker="w")
    with pytest.raises(RuntimeError), store.session() as session, session.begin():
        append_events_txn(session, [event, event])
        raise RuntimeError("the step's commit failed")
    with store.session() as session, session.begin():
        append_events_txn(session, [event])
    assert [e.seq for e in store.get_events(run_id)] == [1]


def test_an_event_seq_is_unique_per_run(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    with store.session() as session, session.begin():
        append_events_txn(session, [StepStarted(run_id=run_id, step_seq=1, step="think", attempt=1, worker="w")])
    row = {"run_id": run_id, "seq": 1, "type": "step.started", "payload": "{}", "created_at": T0}
    with pytest.raises(IntegrityError), store.session() as session, session.begin():
        session.connection().execute(insert(EVENTS).values(**row))


def test_events_of_two_runs_cannot_be_mixed(store: RunStore, make_run: MakeRun) -> None:
    a, b = make_run(), make_run()
    with pytest.raises(UsageError), store.session() as session, session.begin():
        append_events_txn(
            session,
            [
                StepStarted(run_id=a, step_seq=1, step="think", attempt=1, worker="w"),
                StepStarted(run_id=b, step_seq=1, step="think", attempt=1, worker="w"),
            ],
        )


def test_appending_to_an_unknown_run_fails(store: RunStore) -> None:
    with pytest.raises(RunNotFoundError), store.session() as session, session.begin():
        append_events_txn(session, [StepStarted(run_id="nope", step_seq=1, step="think", attempt=1, worker="w")])


def test_concurrent_appenders_leave_no_gaps(store: RunStore, make_run: MakeRun) -> None:
    run_id = make_run()
    writers, rounds = 4, 5
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def append(worker: str) -> None:
        try:
            barrier.wait()
            for i in range(rounds):
                events = [StepStarted(run_id=run_id, step_seq=1, step="think", attempt=1, worker=worker)] * 2
                try:
                    with store.session() as session, session.begin():
                        append_events_txn(session, events)
                        if i % 2:
                            raise _Abort  # every other transaction rolls back its numbers
                except _Abort:
                    pass
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=append, args=(f"w{n}",)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    committed = writers * ((rounds + 1) // 2) * 2
    assert [event.seq for event in store.get_events(run_id)] == list(range(1, committed + 1))


class _Abort(Exception):
    pass
