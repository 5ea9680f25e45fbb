"""A worker's `StateCache`: a claim reads only the chunks written since this worker's last commit of the run."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import Field, field_validator, model_validator
from pydantic_ai.messages import ModelMessage, ModelRequest, UserPromptPart

from mamba_client.schemas import RunStatus
from mamba_worker.config import CompactionConfig
from mamba_worker.durable._journal import JournalMark, StateJournal
from mamba_worker.durable._state_cache import HeldState, StateCache
from mamba_worker.durable.store import ChunkRead, StateChunk
from mamba_worker.workflows import ReActState, ReActWorkflow, ScratchpadEntry
from tests._support.durable import BACKENDS, Harness, RuntimeFactory, messages_json, stored_history
from tests._support.durable_workflows import Script, answer_recording, call


def _said(text: str) -> ModelRequest:
    return ModelRequest(parts=[UserPromptPart(content=text)])


def _by_field(chunks: list[StateChunk]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for chunk in chunks:
        grouped.setdefault(chunk.field, []).append(chunk.data)
    return grouped


def _two_commits(journal: StateJournal) -> tuple[ReActState, JournalMark, str, dict[str, list[str]]]:
    """A state committed at step 1, then appended to and committed at step 2: the state, step 1's
    mark, and what a claim after step 1 reads (step 2's head and chunks)."""
    state = ReActState(task="t", messages=[_said("a")], scratchpad=[ScratchpadEntry(entry_type="thought", content="1")])
    first = journal.split(state, None)
    assert first.mark is not None
    state.messages.append(_said("b"))
    state.scratchpad.append(ScratchpadEntry(entry_type="thought", content="2"))
    state.iteration = 2
    second = journal.split(state, first.mark)
    return state, first.mark, second.head, _by_field(second.chunks)


def test_a_state_read_after_a_held_commit_equals_the_state_committed() -> None:
    journal = StateJournal(ReActWorkflow())
    state, held, head, newer = _two_commits(journal)

    loaded = journal.load_after(head, ChunkRead(after_seq=1, chunks=newer, kept=dict(held.chunks)), held)

    assert loaded is not None
    assert loaded[0] == state


def test_a_read_from_what_is_held_marks_what_a_whole_read_marks() -> None:
    journal = StateJournal(ReActWorkflow())
    state = ReActState(task="t", messages=[_said("a")], scratchpad=[ScratchpadEntry(entry_type="thought", content="1")])
    first = journal.split(state, None)
    state.messages.append(_said("b"))
    second = journal.split(state, first.mark)
    assert first.mark is not None and second.mark is not None
    stored = _by_field(first.chunks + second.chunks)

    loaded = journal.load_after(
        second.head, ChunkRead(after_seq=1, chunks=_by_field(second.chunks), kept=dict(first.mark.chunks)), first.mark
    )
    _, whole = journal.load(second.head, stored)

    assert loaded is not None and whole is not None
    assert (loaded[1].chunks, loaded[1].sizes) == (whole.chunks, whole.sizes) == (second.mark.chunks, second.mark.sizes)


def test_the_held_items_are_reused_and_only_the_new_ones_parsed() -> None:
    journal = StateJournal(ReActWorkflow())
    state, held, head, newer = _two_commits(journal)

    loaded = journal.load_after(head, ChunkRead(after_seq=1, chunks=newer, kept=dict(held.chunks)), held)

    assert loaded is not None
    assert loaded[0].messages[0] is held.written["messages"][0]
    assert loaded[0].messages[1] is not state.messages[1]  # parsed from the chunk
    assert loaded[1].written["messages"] == tuple(loaded[0].messages)


def test_a_list_rewritten_since_the_held_commit_is_not_read_from_what_is_held() -> None:
    journal = StateJournal(ReActWorkflow())
    _, held, head, newer = _two_commits(journal)

    # Another worker compacted the history: its older chunks were deleted.
    read = ChunkRead(after_seq=1, chunks=newer, kept={"scratchpad": 1})

    assert journal.load_after(head, read, held) is None


class _ModelChecked(ReActState):
    @model_validator(mode="after")
    def _starts_with_a_request(self) -> _ModelChecked:
        if self.messages and not isinstance(self.messages[0], ModelRequest):
            raise ValueError("the history must start with a request")
        return self


class _HistoryChecked(ReActState):
    @field_validator("messages")
    @classmethod
    def _not_empty(cls, messages: list[ModelMessage]) -> list[ModelMessage]:
        if not messages:
            raise ValueError("a history is never empty")
        return messages


class _HistoryBounded(ReActState):
    messages: list[ModelMessage] = Field(default_factory=list, max_length=1000)


@pytest.mark.parametrize(
    "state_type",
    [_ModelChecked, _HistoryChecked, _HistoryBounded],
    ids=["model-validator", "field-validator", "max-length"],
)
def test_a_state_type_that_could_see_a_partial_history_is_read_whole(state_type: type[ReActState]) -> None:
    class Checked(ReActWorkflow):
        pass

    Checked.state_type = state_type
    journal = StateJournal(Checked())
    _, held, head, newer = _two_commits(journal)

    assert journal.load_after(head, ChunkRead(after_seq=1, chunks=newer, kept=dict(held.chunks)), held) is None


def _held(chars: int) -> HeldState:
    return HeldState(seq=1, mark=JournalMark({"messages": ()}, {"messages": 1}, {"messages": chars}))


def test_the_cache_forgets_the_least_recently_used_runs_beyond_its_budget() -> None:
    cache = StateCache(100)
    cache.put("a", _held(40))
    cache.put("b", _held(40))
    assert cache.get("a") is not None  # "a" is now the more recent

    cache.put("c", _held(40))

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (_held(40), None, _held(40))
    assert cache.chars == 80


def test_a_run_bigger_than_the_whole_budget_is_not_kept() -> None:
    cache = StateCache(100)
    cache.put("a", _held(40))

    cache.put("a", _held(101))

    assert (cache.get("a"), cache.chars) == (None, 0)


def test_a_cache_with_no_budget_keeps_nothing() -> None:
    cache = StateCache(0)

    cache.put("a", _held(0))

    assert len(cache) == 0


# -- through the runtime: two workers taking turns ------------------------------------------


async def _take_turns(workers: list[Harness], run_id: str, *, max_steps: int = 60) -> None:
    """Run ``run_id``'s steps on each worker in turn (as a step's successor goes to the idle worker)."""
    store = workers[0].store
    for turn in range(max_steps):
        run = store.get_run(run_id)
        if run.status.is_settled:
            return
        await workers[turn % len(workers)].executor.execute(run_id, run.current_seq)
    raise AssertionError(f"run {run_id} did not settle within {max_steps} steps")


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Each `StateJournal.load_after` call's result: whether the held items could be used."""
    results: list[bool] = []
    original = StateJournal.load_after

    def spy(self: StateJournal, *args: Any) -> Any:
        loaded = original(self, *args)
        results.append(loaded is not None)
        return loaded

    monkeypatch.setattr(StateJournal, "load_after", spy)
    return results


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_workers_taking_turns_read_only_what_the_other_wrote(factory: RuntimeFactory, reads: list[bool]) -> None:
    asked: list[list[ModelMessage]] = []
    first, second = call("dt_add", {"a": 2, "b": 3}, call_id="c1"), call("dt_add", {"a": 5, "b": 4}, call_id="c2")
    script = Script([first, second, answer_recording(asked, "9")])
    workers = [factory.harness(), factory.harness()]
    run_id = workers[0].submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await _take_turns(workers, run_id)

    assert workers[0].service.get(run_id).status == RunStatus.SUCCEEDED
    # Each worker's claims after its first step of the run reused what it held.
    assert reads and all(reads)
    assert stored_history(workers[1].store, run_id)[: len(asked[-1])] == messages_json(asked[-1])


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_history_the_other_worker_compacted_is_read_whole(factory: RuntimeFactory, reads: list[bool]) -> None:
    asked: list[list[ModelMessage]] = []
    compaction = CompactionConfig(trigger_threshold_tokens=300, target_tokens=200, preserve_recent_turns=1)
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer_recording(asked, "5")])
    workers = [factory.harness(agent={"context": compaction}), factory.harness(agent={"context": compaction})]
    run_id = workers[0].submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await _take_turns(workers, run_id)

    assert "compact" in [s.name for s in workers[0].service.steps(run_id)]
    # The worker after the compaction held the history from before it: read whole instead.
    assert False in reads
    assert stored_history(workers[0].store, run_id)[: len(asked[-1])] == messages_json(asked[-1])
