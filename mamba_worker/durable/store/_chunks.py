"""Writers and readers for ``state_chunks``: the journal lists of a run's state, a chunk per commit.

The runtime (``durable/_journal.py``) splits a step's state into a head, stored in ``runs.state``,
and the items each journal list gained since the last commit, stored here; reading a run's state
joins them back. A commit either appends one chunk to a list, or rewrites the list (its old chunks
deleted, one chunk with every item inserted) when the list changed other than by appending.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select
from sqlmodel import Session

from mamba_worker.durable.store._sql import connection
from mamba_worker.durable.store._tables import STATE_CHUNKS


@dataclass(frozen=True, kw_only=True)
class StateChunk:
    """Items a commit writes for one journal list of the run's state."""

    field: str
    """The state's list field."""
    data: str
    """The new items' JSON without the enclosing brackets (``a,b``); empty for a list rewritten empty."""
    replace: bool = False
    """The list's earlier chunks are deleted first (it changed other than by appending)."""


StoredChunks = Mapping[str, Sequence[str]]
"""A run's chunks by field, each field's in commit order (the ``data`` of each)."""


@dataclass(frozen=True, kw_only=True)
class ChunkRead:
    """A run's chunks as one read returned them: all of them, or those a reader did not hold yet.

    A worker that holds the lists as of step ``after_seq``'s commit (`durable/_state_cache.py`)
    asks only for the chunks written since. That is sound because a chunk is never inserted with a
    ``seq`` below a committed step's (steps commit in order; a commit writes its own ``seq``), and
    the only other change to a list's chunks is a rewrite, which deletes all of them: so the
    chunks up to ``after_seq`` are unchanged exactly when as many of them are still stored as the
    reader holds (`kept`).
    """

    after_seq: int | None = None
    """``None``: `chunks` holds every chunk of the run; else those written after step ``after_seq``."""
    chunks: StoredChunks = field(default_factory=dict)
    """The chunks read, by field, in commit order."""
    kept: Mapping[str, int] = field(default_factory=dict)
    """Per field, how many chunks written up to step ``after_seq`` are still stored (empty for ``None``)."""


def write_state_chunks_txn(session: Session, run_id: str, seq: int, chunks: Sequence[StateChunk]) -> None:
    """Store the chunks a commit of step ``seq`` (0: the submit) wrote.

    Runs inside the commit's transaction. Two commits of one step cannot both land (the step
    guard), so ``(run_id, field, seq)`` is new unless a replaced list's old chunk had it: the
    deletes come first.
    """
    if not chunks:
        return
    db = connection(session)
    replaced = [chunk.field for chunk in chunks if chunk.replace]
    if replaced:
        db.execute(delete(STATE_CHUNKS).where(STATE_CHUNKS.c.run_id == run_id, STATE_CHUNKS.c.field.in_(replaced)))
    db.execute(
        insert(STATE_CHUNKS),
        [{"run_id": run_id, "field": chunk.field, "seq": seq, "data": chunk.data} for chunk in chunks],
    )


def load_state_chunks_txn(session: Session, run_id: str) -> StoredChunks:
    """The run's chunks by field, in commit order (empty for a run stored before chunks existed)."""
    rows = connection(session).execute(
        select(STATE_CHUNKS.c.field, STATE_CHUNKS.c.data)
        .where(STATE_CHUNKS.c.run_id == run_id)
        .order_by(STATE_CHUNKS.c.field, STATE_CHUNKS.c.seq)
    )
    return group_chunks((name, data) for name, data in rows)


def read_state_chunks_txn(session: Session, run_id: str, *, after_seq: int | None) -> ChunkRead:
    """The run's chunks written after step ``after_seq`` (``None``: all), and how many up to it are kept."""
    if after_seq is None:
        return ChunkRead(chunks=load_state_chunks_txn(session, run_id))
    db = connection(session)
    rows = db.execute(
        select(STATE_CHUNKS.c.field, STATE_CHUNKS.c.data)
        .where(STATE_CHUNKS.c.run_id == run_id, STATE_CHUNKS.c.seq > after_seq)
        .order_by(STATE_CHUNKS.c.field, STATE_CHUNKS.c.seq)
    )
    chunks = group_chunks((name, data) for name, data in rows)
    kept = db.execute(
        select(STATE_CHUNKS.c.field, func.count())
        .where(STATE_CHUNKS.c.run_id == run_id, STATE_CHUNKS.c.seq <= after_seq)
        .group_by(STATE_CHUNKS.c.field)
    )
    return ChunkRead(after_seq=after_seq, chunks=chunks, kept={name: count for name, count in kept})


def joined_state(head: str, chunks: StoredChunks) -> str:
    """The state document: ``head`` (a JSON object) with each chunked list added under its field's name.

    Text only, nothing parsed: the chunks' items are already JSON. A run stored before chunks
    existed has none, and its head is the whole state.
    """
    lists = [f"{json.dumps(name)}:[{','.join(data for data in parts if data)}]" for name, parts in chunks.items()]
    if not lists:
        return head
    body = head.strip()
    if not (body.startswith("{") and body.endswith("}")):
        raise ValueError(f"a state stored with chunks must be a JSON object; its head is {body[:80]!r}")
    inner = body[1:-1].strip()
    return "{" + (inner + "," if inner else "") + ",".join(lists) + "}"


def group_chunks(rows: Iterable[tuple[str, str]]) -> StoredChunks:
    """``(field, data)`` pairs in commit order, grouped by field."""
    grouped: dict[str, list[str]] = {}
    for name, data in rows:
        grouped.setdefault(name, []).append(data)
    return grouped
