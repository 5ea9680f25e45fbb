from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from dirty_equals import IsFloat, IsStr

from mamba_worker.errors import UsageError
from mamba_worker.observability import RequestTracer, SpanStatus, Trace


def test_start_trace_returns_a_new_or_the_given_id() -> None:
    tracer = RequestTracer()

    generated = tracer.start_trace()
    assert len(generated) == 32 and int(generated, 16) >= 0
    assert tracer.current_trace_id == generated
    tracer.end_trace()

    assert tracer.start_trace("run-42") == "run-42"
    assert tracer.end_trace().trace_id == "run-42"


def test_trace_records_spans_with_attributes_and_durations() -> None:
    tracer = RequestTracer()
    trace_id = tracer.start_trace()

    with tracer.start_span("agent.run", model="gpt-4o") as span:
        span.set_attribute("prompt_length", 12)
    trace = tracer.end_trace()

    assert trace.model_dump(mode="json") == {
        "trace_id": trace_id,
        "start_time": IsStr(),
        "end_time": IsStr(),
        "duration_ms": IsFloat(ge=0),
        "spans": [
            {
                "span_id": IsStr(regex=r"[0-9a-f]{16}"),
                "trace_id": trace_id,
                "parent_id": None,
                "name": "agent.run",
                "start_time": IsStr(),
                "end_time": IsStr(),
                "duration_ms": IsFloat(ge=0),
                "attributes": {"model": "gpt-4o", "prompt_length": 12},
                "status": "ok",
                "error": None,
            }
        ],
    }
    assert Trace.model_validate_json(trace.model_dump_json()).model_dump() == trace.model_dump()


def test_nested_spans_record_their_parents() -> None:
    tracer = RequestTracer()
    tracer.start_trace()

    with tracer.start_span("run") as run:
        with tracer.start_span("think") as think:
            assert tracer.current_span is think
            with tracer.start_span("model.request"):
                pass
        assert tracer.current_span is run
        with tracer.start_span("act"):
            pass
    assert tracer.current_span is None
    trace = tracer.end_trace()

    assert [s.name for s in trace.children_of(None)] == ["run"]
    assert [s.name for s in trace.children_of(run)] == ["think", "act"]
    assert [s.name for s in trace.children_of(think)] == ["model.request"]
    assert [s.name for s in trace.spans] == ["run", "think", "model.request", "act"]


def test_an_exception_is_recorded_redacted_and_reraised() -> None:
    tracer = RequestTracer()
    tracer.start_trace()

    with pytest.raises(ConnectionError), tracer.start_span("call"):
        raise ConnectionError("refused for api_key=abc123")
    (span,) = tracer.end_trace().spans_named("call")

    assert span.status is SpanStatus.ERROR
    assert span.error is not None
    assert (span.error.type, span.error.message) == ("ConnectionError", "refused for api_key=***")
    assert span.end_time is not None


def test_end_trace_without_a_trace_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="start_trace"):
        RequestTracer().end_trace()


def test_spans_outside_a_trace_work_but_belong_to_none() -> None:
    tracer = RequestTracer()

    with tracer.start_span("orphan", n=1) as span:
        pass

    assert span.trace_id is None
    assert span.status is SpanStatus.OK
    assert span.duration_ms is not None
    assert tracer.current_trace_id is None


def test_spans_still_open_at_end_trace_have_no_end() -> None:
    tracer = RequestTracer()
    tracer.start_trace()

    with tracer.start_span("outer") as outer:
        trace = tracer.end_trace()

    assert trace.spans[0].span_id == outer.span_id
    assert tracer.current_trace_id is None  # leaving the span did not bring the ended trace back


def test_a_second_start_trace_drops_the_stale_one(caplog: pytest.LogCaptureFixture) -> None:
    tracer = RequestTracer()
    stale = tracer.start_trace()
    with tracer.start_span("lost"):
        pass

    with caplog.at_level(logging.WARNING, logger="mamba_worker.observability"):
        tracer.start_trace()

    assert stale in caplog.text
    assert tracer.end_trace().spans == []


def test_two_tracers_are_independent() -> None:
    first, second = RequestTracer(), RequestTracer()
    first.start_trace("a")
    second.start_trace("b")

    with first.start_span("only-first"):
        pass

    assert [s.name for s in first.end_trace().spans] == ["only-first"]
    assert second.end_trace().spans == []


async def test_concurrent_tasks_share_a_tracer_but_not_traces() -> None:
    tracer = RequestTracer()

    async def request(i: int) -> Trace:
        tracer.start_trace(f"t{i}")
        with tracer.start_span(f"req{i}"):
            await asyncio.sleep(0)  # let the other requests interleave
            with tracer.start_span(f"inner{i}"):
                await asyncio.sleep(0)
        return tracer.end_trace()

    traces = await asyncio.gather(*(request(i) for i in range(20)))

    for i, trace in enumerate(traces):
        assert trace.trace_id == f"t{i}"
        assert [s.name for s in trace.spans] == [f"req{i}", f"inner{i}"]
        assert trace.spans[1].parent_id == trace.spans[0].span_id


async def test_child_tasks_record_into_the_parent_trace() -> None:
    tracer = RequestTracer()
    tracer.start_trace()

    async def tool(name: str) -> None:
        with tracer.start_span(name):
            await asyncio.sleep(0)

    with tracer.start_span("act") as act:
        await asyncio.gather(tool("read"), tool("grep"))
        assert tracer.current_span is act
    trace = tracer.end_trace()

    assert sorted(s.name for s in trace.children_of(act)) == ["grep", "read"]


def test_threads_keep_their_own_traces() -> None:
    tracer = RequestTracer()
    results: dict[int, Trace] = {}
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        tracer.start_trace()
        barrier.wait()  # all four traces are active at once
        with tracer.start_span(f"thread{i}"):
            pass
        results[i] = tracer.end_trace()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {i: [s.name for s in t.spans] for i, t in results.items()} == {i: [f"thread{i}"] for i in range(4)}
    assert len({t.trace_id for t in results.values()}) == 4
