"""A claim told which commit's lists the worker holds reads only the chunks written since (`ChunkRead`)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mamba_client.schemas import Event, RunStatus, StepStarted
from mamba_worker.durable.store import (
    ChunkRead,
    RunRow,
    RunStore,
    StateChunk,
    StepClaim,
    read_state_chunks_txn,
    update_run_txn,
    write_state_chunks_txn,
)
from tests.worker.durable.store.conftest import MakeRun

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _chunked_run(store: RunStore, make_run: MakeRun) -> str:
    """A running run whose ``messages`` has chunks from the submit and steps 1 and 2, ``notes`` one from step 1."""
    run_id = make_run(steps=("think",))
    with store.session() as session, session.begin():
        update_run_txn(session, run_id, status=RunStatus.RUNNING, state="{}")
        write_state_chunks_txn(session, run_id, 0, [StateChunk(field="messages", data='"a"', replace=True)])
        write_state_chunks_txn(
            session, run_id, 1, [StateChunk(field="messages", data='"b"'), StateChunk(field="notes", data='"n"')]
        )
        write_state_chunks_txn(session, run_id, 2, [StateChunk(field="messages", data='"c","d"')])
    return run_id


def _started(run: RunRow, claim: StepClaim) -> Event:
    return StepStarted(run_id=run.id, step_seq=1, step=claim.name, attempt=claim.attempt, worker="w1")


def test_reading_after_a_step_returns_the_newer_chunks_and_counts_the_older(store: RunStore, make_run: MakeRun) -> None:
    run_id = _chunked_run(store, make_run)

    with store.session() as session:
        read = read_state_chunks_txn(session, run_id, after_seq=1)

    assert read == ChunkRead(after_seq=1, chunks={"messages": ['"c","d"']}, kept={"messages": 2, "notes": 1})


def test_reading_after_no_step_returns_every_chunk(store: RunStore, make_run: MakeRun) -> None:
    run_id = _chunked_run(store, make_run)

    with store.session() as session:
        read = read_state_chunks_txn(session, run_id, after_seq=None)

    assert read == ChunkRead(chunks={"messages": ['"a"', '"b"', '"c","d"'], "notes": ['"n"']})


def test_a_rewritten_list_keeps_none_of_its_older_chunks(store: RunStore, make_run: MakeRun) -> None:
    run_id = _chunked_run(store, make_run)
    with store.session() as session, session.begin():
        write_state_chunks_txn(session, run_id, 3, [StateChunk(field="messages", data='"z"', replace=True)])

    with store.session() as session:
        read = read_state_chunks_txn(session, run_id, after_seq=2)

    assert read == ChunkRead(after_seq=2, chunks={"messages": ['"z"']}, kept={"notes": 1})


@pytest.mark.parametrize("fresh", [False, True], ids=["two-round-trips", "one-statement"])
def test_a_claim_after_a_step_reads_only_the_newer_chunks(store: RunStore, make_run: MakeRun, fresh: bool) -> None:
    # On PostgreSQL, both claim statements (the one-statement claim of a step never claimed, and
    # the two-round-trip one) carry the chunks; elsewhere one transaction reads them.
    run_id = _chunked_run(store, make_run)

    taken = store.claim_running_step(
        run_id=run_id,
        seq=1,
        owner="w1",
        lease_seconds=60,
        started=_started,
        fresh=StepStarted(run_id=run_id, step_seq=1, step="", attempt=1, worker="w1") if fresh else None,
        after_seq=1,
        now=T0,
    )

    assert taken is not None
    assert taken.chunks == ChunkRead(after_seq=1, chunks={"messages": ['"c","d"']}, kept={"messages": 2, "notes": 1})


def test_a_claim_after_the_last_step_reads_no_chunk(store: RunStore, make_run: MakeRun) -> None:
    run_id = _chunked_run(store, make_run)

    taken = store.claim_running_step(
        run_id=run_id, seq=1, owner="w1", lease_seconds=60, started=_started, after_seq=2, now=T0
    )

    assert taken is not None
    assert taken.chunks == ChunkRead(after_seq=2, chunks={}, kept={"messages": 3, "notes": 1})
