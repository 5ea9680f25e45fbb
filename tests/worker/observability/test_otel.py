from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from pydantic_ai import Agent
from pydantic_ai.models.test import TestModel

from mamba_worker.errors import UsageError
from mamba_worker.observability import (
    ATTR_MODEL,
    ATTR_PROMPT,
    ATTR_PROMPT_LENGTH,
    SPAN_AGENT_RUN,
    OTelIntegration,
    get_otel_integration,
)


@pytest.fixture
def otel() -> Iterator[OTelIntegration]:
    integration = OTelIntegration()
    yield integration
    integration.shutdown()  # also turns pydantic-ai's global instrumentation back off


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def start(otel: OTelIntegration, exporter: InMemorySpanExporter, **kwargs: bool) -> None:
    # Synchronous export and no global provider: OpenTelemetry lets the global one be set only once.
    assert otel.initialize(exporter=exporter, batch=False, set_global=False, **kwargs)


def test_initialize_returns_false_when_opentelemetry_is_missing(
    otel: OTelIntegration, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for name in [n for n in sys.modules if n == "opentelemetry.sdk" or n.startswith("opentelemetry.sdk.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)

    with caplog.at_level(logging.WARNING, logger="mamba_worker.observability"):
        assert otel.initialize() is False

    assert not otel.is_initialized
    assert otel.tracer_provider is None
    assert "mamba[otel]" in caplog.text


def test_trace_agent_run_before_initialize_is_a_usage_error(otel: OTelIntegration) -> None:
    with pytest.raises(UsageError, match="initialize"), otel.trace_agent_run("hi"):
        pass


def test_trace_agent_run_records_length_model_and_attributes_not_the_prompt(
    otel: OTelIntegration, exporter: InMemorySpanExporter
) -> None:
    start(otel, exporter)

    with otel.trace_agent_run("tell me a secret", model="gpt-4o", run_id="run-1"):
        pass

    (span,) = exporter.get_finished_spans()
    assert span.name == SPAN_AGENT_RUN
    assert dict(span.attributes or {}) == {ATTR_PROMPT_LENGTH: 16, ATTR_MODEL: "gpt-4o", "run_id": "run-1"}


def test_include_content_records_the_prompt(otel: OTelIntegration, exporter: InMemorySpanExporter) -> None:
    start(otel, exporter, include_content=True)

    with otel.trace_agent_run(["part one ", object(), "part two"]):
        pass

    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes[ATTR_PROMPT] == "part one part two"
    assert span.attributes[ATTR_PROMPT_LENGTH] == 17


def test_an_exception_marks_the_span_failed(otel: OTelIntegration, exporter: InMemorySpanExporter) -> None:
    start(otel, exporter)

    with pytest.raises(RuntimeError), otel.trace_agent_run("hi"):
        raise RuntimeError("model exploded")

    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


async def test_pydantic_ai_spans_nest_inside_the_agent_run_span(
    otel: OTelIntegration, exporter: InMemorySpanExporter
) -> None:
    start(otel, exporter)
    agent = Agent(TestModel(custom_output_text="done"))

    with otel.trace_agent_run("private prompt text", model="test"):
        result = await agent.run("private prompt text")

    assert result.output == "done"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    ours, agent_span, model_span = spans[SPAN_AGENT_RUN], spans["invoke_agent agent"], spans["chat test"]
    assert agent_span.parent is not None and agent_span.parent.span_id == ours.context.span_id
    assert model_span.parent is not None and model_span.parent.span_id == agent_span.context.span_id
    assert model_span.context.trace_id == ours.context.trace_id
    # Content recording is off by default, so the prompt appears in no attribute.
    for span in spans.values():
        assert all("private prompt text" not in str(value) for value in (span.attributes or {}).values())


async def test_shutdown_turns_pydantic_ai_instrumentation_off(
    otel: OTelIntegration, exporter: InMemorySpanExporter
) -> None:
    start(otel, exporter)
    assert otel.instrumentation_settings is not None
    otel.shutdown()
    exporter.clear()

    await Agent(TestModel()).run("hello")

    assert exporter.get_finished_spans() == ()
    assert not otel.is_initialized
    assert otel.instrumentation_settings is None


def test_initialize_twice_keeps_the_first_setup(otel: OTelIntegration, exporter: InMemorySpanExporter) -> None:
    start(otel, exporter)
    provider = otel.tracer_provider

    assert otel.initialize(exporter=exporter, batch=False, set_global=False)
    with otel.trace_agent_run("hi"):
        pass

    assert otel.tracer_provider is provider
    assert len(exporter.get_finished_spans()) == 1  # one processor, not two


def test_uses_a_given_tracer_provider(otel: OTelIntegration, exporter: InMemorySpanExporter) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    assert otel.initialize(tracer_provider=provider, instrument_pydantic_ai=False)
    with otel.trace_agent_run("hi"):
        pass
    otel.shutdown()

    assert otel.tracer_provider is None
    assert len(exporter.get_finished_spans()) == 1
    with provider.get_tracer("t").start_as_current_span("still alive"):
        pass  # a provider we were given is flushed, never shut down
    assert len(exporter.get_finished_spans()) == 2


def test_batch_export_is_flushed_on_demand(otel: OTelIntegration, exporter: InMemorySpanExporter) -> None:
    assert otel.initialize(exporter=exporter, set_global=False, instrument_pydantic_ai=False)

    with otel.trace_agent_run("hi"):
        pass
    otel.force_flush()

    assert len(exporter.get_finished_spans()) == 1


def test_get_otel_integration_is_one_shared_object() -> None:
    assert get_otel_integration() is get_otel_integration()
