"""Inline successors (``runtime.inline_steps``): a step claimed in its predecessor's commit and run
in the same task, still committed on its own, and recovered like any other step after a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, ToolReturnPart

from mamba_client.schemas import RunStatus, StepCommitted, StepStarted, StepStatus
from mamba_worker.durable import Reconciler, Registry, StepOutcome
from mamba_worker.durable._faults import FaultPoint
from tests._support.durable import BACKENDS, RuntimeFactory, after_crash, arm_fault, event_types
from tests._support.durable_workflows import CALLS, SEEN, Script, SimulatedCrash, answer, call, say
from tests._support.wait import wait_until


def _sum_answer(messages: list[ModelMessage]) -> ModelResponse:
    results = [
        part.content
        for message in messages
        if isinstance(message, ModelRequest)
        for part in message.parts
        if isinstance(part, ToolReturnPart)
    ]
    return answer(f"the sum is {results[-1]}")


def _script() -> Script:
    return Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), _sum_answer])


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_every_step_inline_runs_the_whole_run_in_one_delivery(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["*"])
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])

    assert await h.step(run_id) == StepOutcome.COMMITTED

    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "the sum is 5")
    steps = h.service.steps(run_id)
    assert [(s.seq, s.name, s.status, s.attempt) for s in steps] == [
        (1, "think", StepStatus.COMMITTED, 1),
        (2, "act", StepStatus.COMMITTED, 1),
        (3, "observe", StepStatus.COMMITTED, 1),
        (4, "think", StepStatus.COMMITTED, 1),
        (5, "act", StepStatus.COMMITTED, 1),
        (6, "observe", StepStatus.COMMITTED, 1),
    ]
    assert h.dispatcher.seqs(run_id) == [1]  # only the submit's doorbell went through the broker


async def test_an_inline_chain_builds_its_run_s_workflow_once(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = factory.harness(inline_steps=["*"])
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])
    built: list[str] = []
    build = Registry.build_workflow

    def counted(registry: Registry, name: str, *args: Any) -> Any:
        built.append(name)
        return build(registry, name, *args)

    monkeypatch.setattr(Registry, "build_workflow", counted)

    assert await h.step(run_id) == StepOutcome.COMMITTED

    assert len(h.service.steps(run_id)) == 6
    assert built == ["react"]


async def test_an_inline_chain_asks_its_toolset_for_the_tools_once(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pydantic_ai.toolsets import FunctionToolset

    h = factory.harness(inline_steps=["*"])
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])
    asked: list[list[str]] = []
    get_tools = FunctionToolset.get_tools

    async def counted(toolset: FunctionToolset[Any], ctx: Any) -> Any:
        tools = await get_tools(toolset, ctx)
        asked.append(sorted(tools))
        return tools

    monkeypatch.setattr(FunctionToolset, "get_tools", counted)

    assert await h.step(run_id) == StepOutcome.COMMITTED

    # Two thinks and an act, each needing the tools, in one chain (as in-process: once per run).
    assert [step.name for step in h.service.steps(run_id)].count("think") == 2
    assert asked == [["dt_add"]]


async def test_inline_steps_record_the_same_events_as_hopping_ones(factory: RuntimeFactory) -> None:
    hopping, inline = factory.harness(), factory.harness(inline_steps=["*"])
    runs = [
        (h, h.submit(model=factory.model(f"scripted{i}", _script().model), tools=["dt_add"]))
        for i, h in enumerate((hopping, inline))
    ]
    for h, run_id in runs:
        await h.drive(run_id)

    hop_events, inline_events = (h.service.events(run_id) for h, run_id in runs)
    assert event_types(inline_events) == event_types(hop_events)
    assert [e.seq for e in inline_events] == list(range(1, len(inline_events) + 1))
    started = [(e.step_seq, e.attempt) for e in inline_events if isinstance(e, StepStarted)]
    assert started == [(seq, 1) for seq in range(1, 7)]


async def test_only_the_named_steps_run_inline(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["observe"])
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])

    outcomes = await h.drive(run_id)

    assert outcomes == [StepOutcome.COMMITTED] * 4  # think, act+observe, think, act+observe
    assert h.dispatcher.seqs(run_id) == [1, 2, 4, 5]
    assert h.service.get(run_id).status == RunStatus.SUCCEEDED


async def test_workflow_qualified_names_select_steps(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["react.act", "other.observe"])
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])

    await h.drive(run_id)

    assert h.dispatcher.seqs(run_id) == [1, 3, 4, 6]  # act follows think inline; observe hops


async def test_a_chain_hands_back_to_the_broker_after_max_inline_steps(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["*"], max_inline_steps=2)
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])

    await h.drive(run_id)

    assert h.dispatcher.seqs(run_id) == [1, 4]
    committed = [e.step_seq for e in h.service.events(run_id) if isinstance(e, StepCommitted)]
    assert committed == [1, 2, 3, 4, 5, 6]


async def test_a_chain_hands_back_to_the_broker_after_max_inline_seconds(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["*"], max_inline_seconds=1e-9)
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])

    await h.drive(run_id)

    assert h.dispatcher.seqs(run_id) == [1, 2, 3, 4, 5, 6]  # the budget is spent before any successor


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_crash_in_an_inline_step_is_re_sent_by_the_reconciler_after_its_lease(
    factory: RuntimeFactory,
) -> None:
    # Step 4 (the second think) runs inline and its model call kills the worker.
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), SimulatedCrash("killed in think"), _sum_answer])
    h = factory.harness(inline_steps=["*"], lease_seconds=0.3, heartbeat_seconds=0.1)
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])
    with pytest.raises(SimulatedCrash):
        await h.step(run_id)
    crashed = h.store.get_step_row(run_id, 4)
    assert (crashed.status, crashed.attempt) == (StepStatus.RUNNING, 1)

    wait_until(
        lambda: Reconciler(h.runtime, dispatcher=h.dispatcher).run_once().expired_leases == 1,
        timeout=10,
        interval=0.05,
        what="the reconciler to re-send the inline step whose lease expired",
    )
    assert h.dispatcher.seqs(run_id) == [1, 4]
    assert await h.step(run_id, 4) == StepOutcome.COMMITTED

    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "the sum is 5")
    assert [(s.seq, s.attempt) for s in h.service.steps(run_id)] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 1), (6, 1)]
    committed = [e.step_seq for e in h.service.events(run_id) if isinstance(e, StepCommitted)]
    assert committed == [1, 2, 3, 4, 5, 6]
    assert script.calls == 3


# -- a step's commit is read when the next step needs it ---------------------------------------


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_an_inline_steps_model_requests_and_tool_calls_wait_for_its_predecessors_commit(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mamba_worker.durable import _commit
    from tests._support import durable_workflows

    happened: list[object] = []
    confirm, enter = _commit.CommitInFlight.confirm, durable_workflows._enter

    def confirmed(commit: _commit.CommitInFlight) -> _commit.CommitOutcome:
        outcome = confirm(commit)
        if outcome.next is not None and ("committed", outcome.next.seq - 1) not in happened:
            happened.append(("committed", outcome.next.seq - 1))
        return outcome

    def tool_entered(tool: str, seen: Any = None) -> None:
        happened.append(tool)
        enter(tool, seen)

    def requested(respond: Callable[[list[ModelMessage]], ModelResponse]) -> Callable[..., ModelResponse]:
        def logged(messages: list[ModelMessage]) -> ModelResponse:
            happened.append("model")
            return respond(messages)

        return logged

    monkeypatch.setattr(_commit.CommitInFlight, "confirm", confirmed)
    monkeypatch.setattr(durable_workflows, "_enter", tool_entered)
    first = call("dt_add", {"a": 2, "b": 3}, call_id="c1")
    script = Script([requested(lambda messages: first), requested(_sum_answer)])
    h = factory.harness(inline_steps=["*"])
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    assert await h.step(run_id) == StepOutcome.COMMITTED

    # Each step's own work may start before its predecessor's commit is read; nothing of it
    # leaves the process (a model request, a tool call) until that commit is known to be in.
    assert happened == [
        "model",
        ("committed", 1),
        "dt_add",
        ("committed", 2),
        ("committed", 3),
        "model",
        ("committed", 4),
        ("committed", 5),
    ]
    assert h.service.get(run_id).output == "the sum is 5"


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_step_whose_predecessor_was_refused_makes_no_request_and_the_predecessor_is_recorded(
    factory: RuntimeFactory,
) -> None:
    h = factory.harness(inline_steps=["*"])
    run: list[str] = []

    def cancelling(messages: list[ModelMessage]) -> ModelResponse:
        h.service.cancel(run[0])  # while step 1 runs: its commit is refused
        return call("dt_add", {"a": 2, "b": 3}, call_id="c1")

    script = Script([cancelling, _sum_answer])
    run.append(h.submit(model=factory.model("scripted", script.model), tools=["dt_add"]))

    assert await h.step(run[0]) == StepOutcome.CANCELLED

    # Step 2 (act) may have started on its own work, but its tool call waited for step 1's
    # commit, which was refused: the tool never ran, and the cancel is what was recorded.
    assert CALLS["dt_add"] == 0
    assert script.calls == 1
    assert h.service.get(run[0]).status == RunStatus.CANCELLED
    assert [(s.seq, s.status) for s in h.service.steps(run[0])] == [(1, StepStatus.FAILED)]


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_predecessors_refusal_ends_the_chain_though_the_step_swallowed_it(factory: RuntimeFactory) -> None:
    h = factory.harness(inline_steps=["*"])
    run: list[str] = []

    def cancelling(messages: list[ModelMessage]) -> ModelResponse:
        h.service.cancel(run[0])
        return say("first")

    script = Script([cancelling, say("second")])
    run.append(h.submit("go", workflow="dt_swallow", model=factory.model("scripted", script.model)))

    assert await h.step(run[0]) == StepOutcome.CANCELLED

    # Step 2 caught the error its request raised and carried on; its commit still waited for
    # step 1's, whose refusal is what the chain reports.
    assert SEEN["dt_swallow"] == ["RunCancelledError"]
    assert script.calls == 1
    assert h.service.get(run[0]).status == RunStatus.CANCELLED
    assert [s.seq for s in h.service.steps(run[0])] == [1]


def _statuses_elsewhere(engine: Any, run_id: str) -> list[tuple[int, str]]:
    """The run's steps as a connection of its own sees them (the store's reads wait for this thread's writes first)."""
    other = sa.create_engine(engine.url, poolclass=sa.NullPool)
    try:
        with other.connect() as connection:
            query = sa.text("SELECT seq, status FROM steps WHERE run_id = :run_id ORDER BY seq")
            return [(seq, status) for seq, status in connection.execute(query, {"run_id": run_id})]
    finally:
        other.dispose()


@pytest.mark.parametrize("db", BACKENDS, indirect=True)
async def test_a_crash_after_a_commit_is_sent_leaves_it_committed_and_its_successor_is_recovered(
    factory: RuntimeFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = factory.harness(inline_steps=["*"], lease_seconds=0.3, heartbeat_seconds=0.1)
    run_id = h.submit(model=factory.model("scripted", _script().model), tools=["dt_add"])
    # Step 3's commit: on PostgreSQL its statement's shape was prepared by an earlier step's, so it goes out.
    arm_fault(monkeypatch, FaultPoint.AFTER_STEP_SENT, skip=2)

    with pytest.raises(SimulatedCrash):
        await h.step(run_id)

    # Its outcome was never read: it is committed all the same, step 4 claimed by the dead attempt.
    committed_three = [(1, "committed"), (2, "committed"), (3, "committed"), (4, "running")]
    wait_until(lambda: _statuses_elsewhere(h.store.engine, run_id) == committed_three, what="step 3's sent commit")
    assert await after_crash(h, run_id, 4) == StepOutcome.COMMITTED
    run = h.service.get(run_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "the sum is 5")
    assert [(s.seq, s.attempt) for s in h.service.steps(run_id)] == [(1, 1), (2, 1), (3, 1), (4, 2), (5, 1), (6, 1)]
    committed = [e.step_seq for e in h.service.events(run_id) if isinstance(e, StepCommitted)]
    assert committed == [1, 2, 3, 4, 5, 6]
