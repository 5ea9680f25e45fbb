"""`insert_submitted_run_txn`: a submit's rows, in one transaction, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import select

from mamba_client.schemas import Event, RunStatus, RunSubmitted, StepStatus, SubmitRun
from mamba_worker.durable.store import (
    FirstStep,
    NewRun,
    OutboxRow,
    RunRow,
    RunStore,
    StateChunk,
    StateChunkRow,
    SubmittedRun,
    insert_submitted_run_txn,
    load_run_view_txn,
)

FIRST = FirstStep(name="think", task_name="mamba.react.think", task_id="r1:1:abc")


def _new(run_id: str, *, data: str = "") -> NewRun:
    """A new run's rows, its one chunk holding ``data``."""
    return NewRun(
        run_id=run_id,
        queue="mamba",
        priority=3,
        state='{"task":"hi"}',
        chunks=[StateChunk(field="messages", data=data, replace=True)],
        first=FIRST,
    )


def _submit(store: RunStore, run_id: str, submit: SubmitRun) -> list[Event] | None:
    with store.session() as session, session.begin():
        return insert_submitted_run_txn(session, submit, _new(run_id))


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


def _insert(store: RunStore, run_id: str, submit: SubmitRun) -> SubmittedRun:
    return store.insert_submitted_run(submit, _new(run_id, data=REQUEST), now=NOW)


REQUEST = '{"kind":"request"}'
NOW = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)


def _rows(store: RunStore, run_id: str) -> dict[str, object]:
    """Every row a submit writes for ``run_id``, as the ORM reads them, without the run's id."""
    with store.session() as session:
        run = session.exec(select(RunRow).where(RunRow.id == run_id)).one().model_dump(exclude={"id"})
        step = store.get_step_row(run_id, 1).model_dump(exclude={"run_id"})
        outbox = session.exec(select(OutboxRow).where(OutboxRow.run_id == run_id)).one().model_dump(exclude={"run_id"})
        chunks = [
            (c.field, c.seq, c.data) for c in session.exec(select(StateChunkRow).where(StateChunkRow.run_id == run_id))
        ]
    events = [event.model_dump(exclude={"run_id", "ts"}) for event in store.get_events(run_id)]
    return {"run": run, "step": step, "outbox": outbox, "chunks": chunks, "events": events}


def test_a_submit_through_the_store_writes_the_rows_the_transaction_writes(store: RunStore) -> None:
    # On PostgreSQL a submit without a key is one statement of its own (`_pg_submit`); the rows
    # must be the portable writer's, value for value.
    submit = SubmitRun(input="hi", model="offline", tools=["read_file"], metadata={"team": "a"})
    with store.session() as session, session.begin():
        insert_submitted_run_txn(session, submit, _new("by-txn", data=REQUEST), now=NOW)

    written = _insert(store, "by-store", submit)

    assert written.events is not None
    assert [event.seq for event in written.events] == [1]
    assert _rows(store, "by-store") == _rows(store, "by-txn")


def test_a_submit_returns_the_run_as_it_reads_back(store: RunStore) -> None:
    submit = SubmitRun(input="hi", model="offline", tools=["read_file"], metadata={"team": "a"})

    written = _insert(store, "r1", submit)

    assert written.run == store.get_run("r1")


def test_a_submit_whose_key_another_run_holds_returns_that_run_and_writes_nothing(store: RunStore) -> None:
    submit = SubmitRun(input="hi", model="offline", idempotency_key="job-1")
    first = _insert(store, "r1", submit)

    second = _insert(store, "r2", submit)

    assert first.events is not None
    assert second.events is None
    assert second.run == store.get_run("r1")
    assert [run.id for run in store.list_runs().items] == ["r1"]


def test_the_run_a_submit_returns_shares_nothing_with_the_request(store: RunStore) -> None:
    submit = SubmitRun(input="hi", model="offline", tools=["read_file"], metadata={"team": "a"})

    run = _insert(store, "r1", submit).run

    assert run.options is not submit.options
    assert run.tools is not submit.tools
    assert run.metadata is not submit.metadata
