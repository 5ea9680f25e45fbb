"""`insert_submitted_run_txn`: a submit's rows, in one transaction, on both databases."""

from __future__ import annotations

from sqlmodel import select

from mamba_client.schemas import Event, RunStatus, RunSubmitted, StepStatus, SubmitRun
from mamba_worker.durable.store import (
    FirstStep,
    OutboxRow,
    RunStore,
    StateChunk,
    insert_submitted_run_txn,
    load_run_view_txn,
)

FIRST = FirstStep(name="think", task_name="mamba.react.think", task_id="r1:1:abc")


def _submit(store: RunStore, run_id: str, submit: SubmitRun) -> list[Event] | None:
    with store.session() as session, session.begin():
        return insert_submitted_run_txn(
            session,
            submit,
            run_id=run_id,
            queue="mamba",
            priority=3,
            state='{"task":"hi"}',
            chunks=[StateChunk(field="messages", data="", replace=True)],
            first=FIRST,
        )


def test_a_submit_writes_the_run_its_first_step_a_stamped_doorbell_and_event_1(store: RunStore) -> None:
    events = _submit(store, "r1", SubmitRun(input="hi", model="offline"))

    assert events is not None
    [submitted] = events
    assert isinstance(submitted, RunSubmitted)
    assert (submitted.seq, submitted.model, submitted.queue, submitted.priority) == (1, "offline", "mamba", 3)
    with store.session() as session:
        run = load_run_view_txn(session, "r1")
        outbox = session.exec(select(OutboxRow)).one()
    assert (run.status, run.current_seq, run.current_step) == (RunStatus.PENDING, 1, "think")
    assert store.get_step_row("r1", 1).status == StepStatus.PENDING
    assert (outbox.seq, outbox.task_id, outbox.attempt, outbox.dispatched_at is not None) == (1, FIRST.task_id, 1, True)
    assert [event.seq for event in store.get_events("r1")] == [1]
    row = store.get_run_row("r1")
    assert (row.last_seq, row.next_event_seq) == (1, 2)
    assert store.get_state("r1") == '{"task":"hi","messages":[]}'


def test_a_submit_whose_idempotency_key_is_taken_writes_nothing(store: RunStore) -> None:
    submit = SubmitRun(input="hi", model="offline", idempotency_key="job-1")
    assert _submit(store, "r1", submit) is not None

    assert _submit(store, "r2", submit) is None

    assert [run.id for run in store.list_runs().items] == ["r1"]
    assert store.get_events("r1")[-1].seq == 1
