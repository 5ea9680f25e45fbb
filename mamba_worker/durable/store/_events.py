"""Writer for ``events``: append a run's events with gap-free per-run sequence numbers."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert, update
from sqlmodel import Session

from mamba_client.schemas import Event
from mamba_worker.durable.errors import RunNotFoundError
from mamba_worker.durable.store._sql import connection
from mamba_worker.durable.store._tables import EVENTS, RUNS
from mamba_worker.errors import UsageError


def append_events_txn(session: Session, events: Sequence[Event]) -> list[Event]:
    """Store events of one run, numbering them; returns them with their ``seq``.

    The numbers come from ``UPDATE runs SET next_event_seq = next_event_seq + :n WHERE id = :run_id
    RETURNING next_event_seq``: the row lock (PostgreSQL) or the write lock (SQLite) is held until
    the caller's transaction ends, so concurrent appenders take turns, and a transaction that rolls
    back returns its numbers with it. The log therefore has no gaps and no duplicates, which is what
    lets a client resume from its last ``seq``. The ``(run_id, seq)`` primary key backs this up:
    a duplicate could only come from a bug, and it would fail the transaction rather than fork the log.

    Raises:
        UsageError: The events belong to different runs.
        RunNotFoundError: The run does not exist.
    """
    if not events:
        return []
    run_id = events[0].run_id
    if any(event.run_id != run_id for event in events):
        raise UsageError("append_events_txn takes the events of one run at a time; split them by run_id")
    conn = connection(session)
    end = conn.execute(
        update(RUNS)
        .where(RUNS.c.id == run_id)
        .values(next_event_seq=RUNS.c.next_event_seq + len(events))
        .returning(RUNS.c.next_event_seq)
    ).scalar_one_or_none()
    if end is None:
        raise RunNotFoundError(f"cannot append events to run {run_id!r}: no such run", run_id=run_id)
    return insert_events_txn(session, events, first_seq=end - len(events))


def insert_events_txn(session: Session, events: Sequence[Event], *, first_seq: int) -> list[Event]:
    """Store one run's events under numbers already reserved from ``first_seq`` on; returns them numbered.

    The numbers must come from the run's counter in this same transaction (`append_events_txn`
    or `advance_run_txn`), which is what keeps the log gap-free. One multi-row ``INSERT``.
    """
    if not events:
        return []
    numbered: list[Event] = [event.model_copy(update={"seq": first_seq + i}) for i, event in enumerate(events)]
    insert_numbered_events_txn(session, numbered, [event.model_dump_json() for event in numbered])
    return numbered


def insert_numbered_events_txn(session: Session, events: Sequence[Event], payloads: Sequence[str]) -> None:
    """`insert_events_txn` for events already numbered and serialised (``payloads``, in the same order)."""
    if not events:
        return
    connection(session).execute(
        insert(EVENTS),
        [
            {"run_id": event.run_id, "seq": event.seq, "type": event.type, "payload": payload, "created_at": event.ts}
            for event, payload in zip(events, payloads, strict=True)
        ],
    )
