"""Writers and readers for ``state_chunks``: the journal lists of a run's state, a chunk per commit.

The runtime (``durable/_journal.py``) splits a step's state into a head, stored in ``runs.state``,
and the items each journal list gained since the last commit, stored here; reading a run's state
joins them back. A commit either appends one chunk to a list, or rewrites the list (its old chunks
deleted, one chunk with every item inserted) when the list changed other than by appending.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
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
    return group_chunks((field, data) for field, data in rows)


def joined_state(head: str, chunks: StoredChunks) -> str:
    """The state document: ``head`` (a JSON object) with each chunked list added under its field's name.

    Text only, nothing parsed: the chunks' items are already JSON. A run stored before chunks
    existed has none, and its head is the whole state.
    """
    lists = [f"{json.dumps(field)}:[{','.join(data for data in parts if data)}]" for field, parts in chunks.items()]
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
    for field, data in rows:
        grouped.setdefault(field, []).append(data)
    return grouped
