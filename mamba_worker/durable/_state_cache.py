"""`StateCache`: the journal lists of runs this worker committed a step of, so a claim reads only what is new.

Why: with a task per step, each claim read the run's whole state (every chunk of its message
history) and parsed all of it, a cost per step that grows with the run (at step 30 of the
benchmark, 0.6 ms for the claim statement's chunks alone). A run's steps alternate between the
workers that happen to be free, but a worker still holds the lists as of the last step of the run
it committed. It tells the claim that step (`StepClaimer.claim`'s ``after_seq``), the claim reads
only the chunks written since (`ChunkRead`), and only their items are parsed; the held items are
reused (`StateJournal.load_after`), as an inline successor reuses its predecessor's state.

Nothing here is needed for correctness. A miss (another process committed the rest, the run was
evicted, a list was rewritten since, the state type validates its lists as a whole) reads every
chunk, as without the cache. The cache is bounded by the size of what it holds
(`runtime.state_cache_mb`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from pydantic import BaseModel

from mamba_worker.durable._claim import ClaimedStep
from mamba_worker.durable._journal import JournalMark, StateJournal
from mamba_worker.durable.store import RunStore
from mamba_worker.errors import ConfigurationError


@dataclass(frozen=True)
class HeldState:
    """A run's journal lists as of one commit this process made."""

    seq: int
    """The committed step (its chunks have this ``seq``)."""
    mark: JournalMark
    """The lists' items and chunk counts as the commit left the store."""


class StateCache:
    """The `HeldState` of the runs this process committed a step of most recently (LRU, thread-safe).

    Bounded by the held lists' size as stored (`JournalMark.size`, JSON characters), the measure
    of a history's weight the store already has; a run bigger than the whole budget is not kept.

    Args:
        max_chars: The budget; 0 keeps nothing.
    """

    def __init__(self, max_chars: int) -> None:
        self._max_chars = max_chars
        self._held: OrderedDict[str, HeldState] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    @property
    def chars(self) -> int:
        """What the kept runs' lists take as stored, in JSON characters."""
        return self._chars

    def get(self, run_id: str) -> HeldState | None:
        """What this process holds of run ``run_id``, if anything."""
        with self._lock:
            held = self._held.get(run_id)
            if held is not None:
                self._held.move_to_end(run_id)
            return held

    def put(self, run_id: str, held: HeldState) -> None:
        """Keep ``held`` for run ``run_id`` (replacing what was kept), evicting the least recent runs."""
        with self._lock:
            self._drop(run_id)
            if self._max_chars <= 0 or held.mark.size > self._max_chars:
                return
            self._held[run_id] = held
            self._chars += held.mark.size
            while self._chars > self._max_chars:
                oldest = next(iter(self._held))
                self._drop(oldest)

    def discard(self, run_id: str) -> None:
        """Forget run ``run_id`` (it ended)."""
        with self._lock:
            self._drop(run_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)

    def _drop(self, run_id: str) -> None:
        dropped = self._held.pop(run_id, None)
        if dropped is not None:
            self._chars -= dropped.mark.size


def load_claimed_state(
    journal: StateJournal, claimed: ClaimedStep, *, held: HeldState | None, store: RunStore
) -> tuple[BaseModel, JournalMark | None]:
    """The state a claimed step starts from, and the mark of what the store holds of its lists.

    An inline successor's is the object its predecessor committed; a claimed step's is parsed from
    the claim's head and chunks, reusing ``held`` (what the claim was told this process holds)
    when the chunks since allow it, else from every chunk (read again if the claim read only the
    newer ones).
    """
    if claimed.loaded is not None:
        return claimed.loaded, claimed.mark
    if claimed.state is None:
        raise ConfigurationError(f"run {claimed.run.id!r} has no state to continue from")
    read = claimed.chunks
    if held is not None and held.seq == read.after_seq:
        loaded = journal.load_after(claimed.state, read, held.mark)
        if loaded is not None:
            return loaded
    # A miss. Only this worker commits the run while it holds the lease, so reading the chunks
    # now, after the claim, reads what the claim would have.
    chunks = read.chunks if read.after_seq is None else store.get_state_chunks(claimed.run.id)
    return journal.load(claimed.state, chunks)
