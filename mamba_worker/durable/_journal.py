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

import functools
import json
import operator
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from mamba_worker.durable.store import ChunkRead, StateChunk, StoredChunks, joined_state
from mamba_worker.errors import ConfigurationError
from mamba_worker.workflows import StepWorkflow


@dataclass(frozen=True)
class JournalMark:
    """The items the store holds of each journal list, as the objects in memory."""

    written: Mapping[str, tuple[Any, ...]]
    chunks: Mapping[str, int]
    """How many chunks the store holds of each list (what `StateJournal.load_after` checks)."""
    sizes: Mapping[str, int]
    """Each list's stored JSON, in characters (what `StateCache` budgets)."""

    @property
    def size(self) -> int:
        """All the lists' stored JSON, in characters."""
        return sum(self.sizes.values())


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
        self._partial_ok = _validates_items_alone(workflow.state_type, self._fields)

    def split(self, state: BaseModel, mark: JournalMark | None) -> SplitState:
        """The state as a commit writes it, given what the store holds (``mark``; ``None``: nothing known)."""
        if not self._fields:
            return SplitState(head=self._workflow.dump_state(state), chunks=[], mark=None)
        chunks: list[StateChunk] = []
        written: dict[str, tuple[Any, ...]] = {}
        counts: dict[str, int] = {}
        sizes: dict[str, int] = {}
        for name in self._fields:
            items: list[Any] = getattr(state, name)
            stored = mark.written.get(name) if mark is not None else None
            if stored is not None and len(items) >= len(stored) and all(map(operator.is_, items, stored)):
                assert mark is not None
                counts[name], sizes[name] = mark.chunks.get(name, 0), mark.sizes.get(name, 0)
                if len(items) > len(stored):
                    data = self._items(state, name, len(stored), len(items))
                    chunks.append(StateChunk(field=name, data=data))
                    counts[name] += 1
                    sizes[name] += len(data)
            else:
                data = self._items(state, name, 0, len(items))
                chunks.append(StateChunk(field=name, data=data, replace=True))
                counts[name], sizes[name] = 1, len(data)  # the list's old chunks are deleted
            written[name] = tuple(items)
        head = state.model_dump_json(exclude=self._exclude)
        return SplitState(head=head, chunks=chunks, mark=JournalMark(written, counts, sizes))

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
        counts = {name: len(chunks[name]) for name in written}
        return state, JournalMark(written, counts, {name: sum(map(len, chunks[name])) for name in written})

    def load_after(self, head: str, read: ChunkRead, held: JournalMark) -> tuple[BaseModel, JournalMark] | None:
        """The state from ``head``, the lists' items ``held`` and the chunks written since; ``None``: cannot.

        ``held`` is the mark of a commit of this run this process made (`StateCache`), and ``read``
        the chunks written after it. Only the new items are parsed; the held ones are reused, as an
        inline successor reuses its predecessor's state (journal items are never changed in place).
        ``None`` when a list was rewritten since (fewer of its chunks are kept than ``held`` counts),
        when ``held`` does not cover every list, or when the state type could see the difference:
        the head and the new items are validated without the old ones, so a validator of the whole
        model or of a journal list, or list constraints, rule this out.
        """
        kept = {name: count for name, count in read.kept.items() if count}
        if (
            not self._partial_ok
            or read.after_seq is None
            or set(held.written) != set(self._fields)
            or kept != {name: count for name, count in held.chunks.items() if count}
        ):
            return None
        new = {name: read.chunks.get(name, ()) for name in self._fields}
        state = self._workflow.load_state(joined_state(head, new))
        written: dict[str, tuple[Any, ...]] = {}
        for name in self._fields:
            written[name] = (*held.written[name], *getattr(state, name))
            setattr(state, name, list(written[name]))
        counts = {name: held.chunks[name] + len(new[name]) for name in self._fields}
        sizes = {name: held.sizes.get(name, 0) + sum(map(len, new[name])) for name in self._fields}
        return state, JournalMark(written, counts, sizes)


@functools.cache
def _validates_items_alone(state_type: type[BaseModel], fields: tuple[str, ...]) -> bool:
    """Whether parsing a state with only some of its journal lists' items gives those items as a whole parse would.

    True for a plain model: each item is validated on its own, and nothing looks at a list as a
    whole. A model validator, a validator of a journal field, a list constraint (``max_length``),
    a ``model_post_init`` or validated assignment could each see, or change, the difference.
    Cached per state type: a journal is built for every step.
    """
    decorators = state_type.__pydantic_decorators__
    if decorators.model_validators or decorators.root_validators or state_type.model_config.get("validate_assignment"):
        return False
    if state_type.model_post_init is not BaseModel.model_post_init:
        return False
    # Field validators, and pydantic 1-style ``@validator``s, of a journal field (or of every field).
    named = [v.info.fields for v in decorators.field_validators.values()]
    named += [v.info.fields for v in decorators.validators.values()]
    if any("*" in names or set(names) & set(fields) for names in named):
        return False
    return not any(state_type.model_fields[name].metadata for name in fields)
