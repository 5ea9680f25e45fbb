"""`StateJournal`: a state stored as a head plus chunks of its journal lists, and read back whole."""

from __future__ import annotations

import pytest
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, UserPromptPart

from mamba_client.schemas import RunStatus
from mamba_worker.config import CompactionConfig
from mamba_worker.durable._journal import JournalMark, StateJournal
from mamba_worker.durable.store import StateChunk
from mamba_worker.errors import ConfigurationError
from mamba_worker.workflows import ReActState, ReActWorkflow
from tests._support.durable import BACKENDS, Harness, RuntimeFactory, messages_json, stored_history
from tests._support.durable_workflows import CountState, CountWorkflow, Script, answer, answer_recording, call


def _journal() -> StateJournal:
    return StateJournal(ReActWorkflow())


def _said(text: str) -> ModelRequest:
    return ModelRequest(parts=[UserPromptPart(content=text)])


def _stored(chunks: list[StateChunk]) -> dict[str, list[str]]:
    """The chunks as the store would return them after these writes (replace drops a list's older chunks)."""
    stored: dict[str, list[str]] = {}
    for chunk in chunks:
        if chunk.replace:
            stored[chunk.field] = []
        stored.setdefault(chunk.field, []).append(chunk.data)
    return stored


def test_a_first_split_writes_every_list_whole_and_the_head_without_them() -> None:
    state = ReActState(task="t", messages=[_said("a"), _said("b")])

    split = _journal().split(state, None)

    assert '"messages"' not in split.head and '"scratchpad"' not in split.head
    assert [(c.field, c.replace) for c in split.chunks] == [("messages", True), ("scratchpad", True)]
    assert [c.data for c in split.chunks if c.field == "scratchpad"] == [""]


def test_an_appended_list_writes_only_its_new_items() -> None:
    journal = _journal()
    state = ReActState(task="t", messages=[_said("a")])
    first = journal.split(state, None)
    state.messages.append(_said("b"))

    second = journal.split(state, first.mark)

    assert [(c.field, c.replace) for c in second.chunks] == [("messages", False)]
    assert '"b"' in second.chunks[0].data and '"a"' not in second.chunks[0].data


def test_an_unchanged_list_writes_nothing() -> None:
    journal = _journal()
    state = ReActState(task="t", messages=[_said("a")])
    first = journal.split(state, None)

    assert journal.split(state, first.mark).chunks == []


def test_a_list_replaced_by_a_new_one_is_rewritten() -> None:
    journal = _journal()
    state = ReActState(task="t", messages=[_said("a"), _said("b")])
    first = journal.split(state, None)
    state.messages = [_said("summary"), state.messages[-1]]  # what compaction does

    second = journal.split(state, first.mark)

    [chunk] = second.chunks
    assert (chunk.field, chunk.replace) == ("messages", True)
    assert '"summary"' in chunk.data and '"b"' in chunk.data


def test_head_and_chunks_read_back_as_the_state() -> None:
    journal = _journal()
    state = ReActState(task="t", system_prompt="be brief", messages=[_said("a")], iteration=2)
    first = journal.split(state, None)
    state.messages.append(_said("b"))
    second = journal.split(state, first.mark)

    loaded, mark = journal.load(second.head, _stored(first.chunks + second.chunks))

    assert loaded == state
    assert isinstance(mark, JournalMark) and set(mark.written) == {"messages", "scratchpad"}


def test_a_state_stored_whole_before_chunks_is_read_and_then_rewritten_as_chunks() -> None:
    journal = _journal()
    state = ReActState(task="t", messages=[_said("a")])

    loaded, mark = journal.load(state.model_dump_json(), {})
    assert loaded == state
    loaded.messages.append(_said("b"))
    split = journal.split(loaded, mark)

    assert {(c.field, c.replace) for c in split.chunks} == {("messages", True), ("scratchpad", True)}
    assert journal.load(split.head, _stored(split.chunks))[0] == loaded


def test_a_workflow_without_journal_fields_stores_its_state_whole() -> None:
    class Counting(CountWorkflow):
        def dump_state(self, state: CountState) -> str:
            return "!" + super().dump_state(state)

        def load_state(self, data: str | bytes) -> CountState:
            return super().load_state(str(data)[1:])

    journal = StateJournal(Counting())
    state = CountState(target=3)

    split = journal.split(state, None)

    assert (split.head, split.chunks) == ("!" + state.model_dump_json(), [])
    assert journal.load(split.head, {})[0] == state


def test_a_journal_field_the_state_lacks_is_refused() -> None:
    class Broken(ReActWorkflow):
        journal_fields = ("messages", "notes")

    with pytest.raises(ConfigurationError, match="'notes'"):
        StateJournal(Broken())


# -- through the runtime ------------------------------------------------------------------


def _stored_state(h: Harness, run_id: str) -> ReActState:
    document = h.store.get_state(run_id)
    assert document is not None
    return ReActState.model_validate_json(document)


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
@pytest.mark.parametrize("inline", [False, True], ids=["hop", "inline"])
async def test_a_compacted_runs_stored_history_is_what_its_model_saw(factory: RuntimeFactory, inline: bool) -> None:
    seen: list[list[ModelMessage]] = []
    compaction = CompactionConfig(trigger_threshold_tokens=300, target_tokens=200, preserve_recent_turns=1)
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer_recording(seen, "5")])
    h = factory.harness(agent={"context": compaction}, inline_steps=["*"] if inline else [])
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await h.drive(run_id)

    assert h.service.get(run_id).status == RunStatus.SUCCEEDED
    assert "compact" in [s.name for s in h.service.steps(run_id)]
    stored = _stored_state(h, run_id)
    asked = len(seen[-1])
    assert stored_history(h.store, run_id)[:asked] == messages_json(seen[-1])
    reply = stored.messages[asked]
    assert isinstance(reply, ModelResponse) and [c.args for c in reply.tool_calls] == [{"answer": "5"}]
    assert stored.final_answer == "5"


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_steps_append_chunks_instead_of_rewriting_the_history(factory: RuntimeFactory) -> None:
    from sqlalchemy import select

    from mamba_worker.durable.store import StateChunkRow

    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await h.drive(run_id)

    with h.store.session() as session:
        rows = session.exec(
            select(StateChunkRow.seq).where(StateChunkRow.run_id == run_id, StateChunkRow.field == "messages")
        ).all()
    steps = [(s.seq, s.name) for s in h.service.steps(run_id)]
    assert [name for _, name in steps] == ["think", "act", "observe"] * 2
    # The submit's chunk, then one per step that added to the history (all but the last observe,
    # which only reads the answer). A step that rewrote the history would have left one chunk.
    assert sorted(seq for (seq,) in rows) == [0, *(seq for seq, _ in steps[:-1])]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_run_stored_before_chunks_continues_from_its_whole_state(factory: RuntimeFactory) -> None:
    from sqlalchemy import delete, update

    from mamba_worker.durable.store import StateChunkRow
    from mamba_worker.durable.store._tables import RUNS

    seen: list[list[ModelMessage]] = []
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer_recording(seen, "5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])
    for _ in range(3):  # think, act, observe
        await h.step(run_id)
    whole = _stored_state(h, run_id)
    # What a store written before revision 0003 holds: the whole state in runs.state, no chunks.
    with h.store.session() as session, session.begin():
        session.exec(delete(StateChunkRow).where(StateChunkRow.run_id == run_id))  # type: ignore[call-overload]
        session.exec(update(RUNS).where(RUNS.c.id == run_id).values(state=whole.model_dump_json()))  # type: ignore[call-overload]

    await h.drive(run_id)

    assert h.service.get(run_id).output == "5"
    assert messages_json(seen[-1]) == messages_json(whole.messages)
    assert stored_history(h.store, run_id)[: len(whole.messages)] == messages_json(whole.messages)
