"""`StateJournal`: a step's state stored as a small head plus what its growing lists gained.

Why: a ReAct run's state is mostly its message history and scratchpad, lists every step appends
to. Rewriting the whole state after each step serialised and wrote the whole history each time
(in the benchmark, a third of an inline step's time went to that document: its JSON and its
write). A workflow names such lists in `StepWorkflow.journal_fields`; a commit then writes the
state without them (the head, ``runs.state``) and, per list, a chunk with only the items added
since the last commit (``state_chunks``). Reading the state joins head and chunks back into one
JSON document, parsed once.

How an append is told from a change, without serialising old items again: by identity. The
journal keeps, per list, the item objects the store holds (`JournalMark`, from the load or the
last commit). A list that still starts with exactly those objects was appended to, and only its
tail is written; any other change (compaction's new list, an item removed or replaced) rewrites
the list as one chunk. An item changed in place would go unseen, hence the contract on
`StepWorkflow.journal_fields`: items are replaced, never mutated.

A run stored before chunks existed has its lists inside the head and no chunks: a list without
chunks is not marked, so the first commit rewrites it.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mamba_worker.durable.store import StateChunk, StoredChunks, joined_state
from mamba_worker.errors import ConfigurationError
from mamba_worker.workflows import StepWorkflow


@dataclass(frozen=True)
class JournalMark:
    """The items the store holds of each journal list, as the objects in memory."""

    written: Mapping[str, tuple[Any, ...]]


@dataclass(frozen=True, kw_only=True)
class SplitState:
    """What a commit writes of a state: its head, its lists' chunks, and the mark after the commit."""

    head: str
    chunks: list[StateChunk]
    mark: JournalMark | None


class StateJournal:
    """Splits a workflow's states into head and chunks, and joins them back.

    Args:
        workflow: The workflow whose states these are (its `journal_fields` and `state_type`).
    """

    def __init__(self, workflow: StepWorkflow[Any, Any, Any]) -> None:
        self._workflow = workflow
        self._fields = tuple(workflow.journal_fields)
        fields = workflow.state_type.model_fields
        for name in self._fields:
            if name not in fields:
                raise ConfigurationError(
                    f"workflow {workflow.name!r} names journal field {name!r}, "
                    f"which {workflow.state_type.__name__} does not have"
                )
        self._exclude = set(self._fields)
        # What `model_dump_json(include={name: ...})` starts with: the list's key, then its items
        # (`joined_state` puts them back under the same key).
        self._prefixes = {name: f"{{{json.dumps(name)}:[" for name in self._fields}

    def split(self, state: BaseModel, mark: JournalMark | None) -> SplitState:
        """The state as a commit writes it, given what the store holds (``mark``; ``None``: nothing known)."""
        if not self._fields:
            return SplitState(head=self._workflow.dump_state(state), chunks=[], mark=None)
        chunks: list[StateChunk] = []
        written: dict[str, tuple[Any, ...]] = {}
        for name in self._fields:
            items: list[Any] = getattr(state, name)
            stored = mark.written.get(name) if mark is not None else None
            if stored is not None and len(items) >= len(stored) and all(map(operator.is_, items, stored)):
                if len(items) > len(stored):
                    chunks.append(StateChunk(field=name, data=self._items(state, name, len(stored), len(items))))
            else:
                data = self._items(state, name, 0, len(items))
                chunks.append(StateChunk(field=name, data=data, replace=True))
            written[name] = tuple(items)
        head = state.model_dump_json(exclude=self._exclude)
        return SplitState(head=head, chunks=chunks, mark=JournalMark(written))

    def _items(self, state: BaseModel, name: str, start: int, stop: int) -> str:
        """Items ``start:stop`` of list ``name`` as JSON without brackets, serialised as the model does."""
        if start == stop:
            return ""
        text = state.model_dump_json(include={name: set(range(start, stop))})
        prefix = self._prefixes[name]
        if not (text.startswith(prefix) and text.endswith("]}")):
            raise ConfigurationError(
                f"journal field {name!r} of {type(state).__name__} does not serialise as a JSON list under "
                f"its own name (an alias or a custom serializer?): {text[:80]!r}"
            )
        return text[len(prefix) : -2]

    def load(self, head: str, chunks: StoredChunks) -> tuple[BaseModel, JournalMark | None]:
        """The state stored as ``head`` and ``chunks``, and the mark of what the store holds."""
        state = self._workflow.load_state(joined_state(head, chunks))
        if not self._fields:
            return state, None
        # A list with no chunk at all is in the head (a run stored before chunks): not marked,
        # so the next commit writes it as chunks.
        written = {name: tuple(getattr(state, name)) for name in self._fields if name in chunks}
        return state, JournalMark(written)
