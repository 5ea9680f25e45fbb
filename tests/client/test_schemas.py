from __future__ import annotations

import typing
from datetime import UTC, datetime

import pytest
from dirty_equals import IsDatetime
from pydantic import TypeAdapter, ValidationError

import mamba_client
from mamba_client.schemas import (
    EVENT_TYPES,
    AnswerRun,
    ErrorBody,
    Event,
    EventAdapter,
    InDoubtDecision,
    Run,
    RunOptions,
    RunStatus,
    StepCommitted,
    StepStatus,
    SubmitRun,
    ToolCallInDoubt,
    Usage,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_usage_adds_field_by_field() -> None:
    total = Usage(input_tokens=10, output_tokens=5, cost_usd=0.5, requests=1) + Usage(
        input_tokens=1, cache_read_tokens=3, cache_write_tokens=2, requests=1, cost_usd=0.25
    )
    assert total == Usage(
        input_tokens=11, output_tokens=5, cache_read_tokens=3, cache_write_tokens=2, requests=2, cost_usd=0.75
    )


def test_usage_total_is_input_plus_output_and_is_serialised() -> None:
    usage = Usage(input_tokens=7, output_tokens=3)
    assert usage.total_tokens == 10
    assert usage.model_dump()["total_tokens"] == 10
    assert Usage.model_validate_json(usage.model_dump_json()) == usage


def test_submit_run_defaults_to_react() -> None:
    submit = SubmitRun(input="hi")
    assert (submit.workflow, submit.tools, submit.options, submit.metadata) == ("react", [], RunOptions(), {})


def test_submit_run_rejects_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="extra"):
        SubmitRun.model_validate({"input": "hi", "max_iterations": 3})


@pytest.mark.parametrize("workflow", ["my.flow", "has space", "1st", ""])
def test_submit_run_rejects_workflow_names_that_break_task_names(workflow: str) -> None:
    with pytest.raises(ValidationError, match="workflow"):
        SubmitRun(input="hi", workflow=workflow)


def test_run_options_reject_nonsense_limits() -> None:
    with pytest.raises(ValidationError, match="max_iterations"):
        RunOptions(max_iterations=0)


def test_responses_ignore_fields_a_newer_gateway_adds() -> None:
    body = {
        "id": "r1",
        "workflow": "react",
        "status": "running",
        "input": "hi",
        "queue": "mamba",
        "created_at": "2030-01-01T12:00:00Z",
        "updated_at": "2030-01-01T12:00:00Z",
        "brand_new_field": 1,
    }
    run = Run.model_validate(body)
    assert (run.status, run.created_at) == (RunStatus.RUNNING, T0)


def test_run_output_may_be_any_json() -> None:
    run = Run(
        id="r1",
        workflow="plan",
        status=RunStatus.SUCCEEDED,
        input="x",
        queue="q",
        created_at=T0,
        updated_at=T0,
        output={"items": [1, 2]},
    )
    assert Run.model_validate_json(run.model_dump_json()) == run


def test_answer_needs_exactly_one_of_answer_and_decision() -> None:
    assert AnswerRun(answer="yes").answer == "yes"
    assert AnswerRun(decision=InDoubtDecision.RERUN).decision is InDoubtDecision.RERUN
    with pytest.raises(ValidationError, match="exactly one"):
        AnswerRun()
    with pytest.raises(ValidationError, match="exactly one"):
        AnswerRun(answer="yes", decision=InDoubtDecision.SKIP)


def test_events_parse_back_to_their_class() -> None:
    event = StepCommitted(run_id="r1", seq=4, ts=T0, step_seq=2, step="think", attempt=1, next_step="act")
    parsed = EventAdapter.validate_json(event.model_dump_json())
    assert isinstance(parsed, StepCommitted)
    assert parsed == event


def test_an_event_body_is_its_type_plus_header_and_payload() -> None:
    event = ToolCallInDoubt(run_id="r1", seq=9, ts=T0, step_seq=3, tool_call_id="c1", tool_name="run_bash")
    assert EventAdapter.dump_python(event, mode="json") == {
        "type": "tool_call.in_doubt",
        "run_id": "r1",
        "seq": 9,
        "ts": "2030-01-01T12:00:00Z",
        "step_seq": 3,
        "tool_call_id": "c1",
        "tool_name": "run_bash",
    }


def test_an_unknown_event_type_is_rejected() -> None:
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        EventAdapter.validate_python({"type": "run.exploded", "run_id": "r1", "seq": 1, "ts": T0})


def test_a_new_event_is_stamped_now_and_unnumbered() -> None:
    event = StepCommitted(run_id="r1", step_seq=1, step="think", attempt=1)
    assert event.seq == 0
    assert event.ts == IsDatetime(approx=datetime.now(UTC), delta=60)


def test_event_types_are_unique_and_listed() -> None:
    members = typing.get_args(typing.get_args(Event)[0])
    types = [member.model_fields["type"].default for member in members]
    assert len(types) == len(set(types)) == len(EVENT_TYPES)
    assert set(types) == EVENT_TYPES


def test_statuses_know_which_are_terminal() -> None:
    assert {s for s in RunStatus if s.is_terminal} == {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    assert {s for s in StepStatus if s.is_terminal} == {StepStatus.COMMITTED, StepStatus.FAILED}


def test_a_run_status_knows_whether_the_run_is_settled() -> None:
    # Settled: nothing happens until someone acts (what waiting for a run waits for).
    assert {s for s in RunStatus if s.is_settled} == {
        RunStatus.WAITING,
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    }


def test_statuses_travel_as_their_values() -> None:
    assert TypeAdapter(RunStatus).dump_json(RunStatus.WAITING) == b'"waiting"'
    assert ErrorBody(code="run_not_found", message="no run").model_dump() == {
        "code": "run_not_found",
        "message": "no run",
    }


def test_the_package_exports_the_schemas_sorted() -> None:
    assert mamba_client.__all__ == sorted(mamba_client.__all__)
    assert all(hasattr(mamba_client, name) for name in mamba_client.__all__)
    assert mamba_client.SubmitRun is SubmitRun


def test_submit_run_priority_is_on_the_0_to_9_scale() -> None:
    from mamba_client.schemas import MAX_PRIORITY, MIN_PRIORITY

    assert SubmitRun(input="x").priority is None
    assert [SubmitRun(input="x", priority=p).priority for p in (MIN_PRIORITY, MAX_PRIORITY)] == [0, 9]
    for bad in (-1, 10):
        with pytest.raises(ValidationError):
            SubmitRun(input="x", priority=bad)
