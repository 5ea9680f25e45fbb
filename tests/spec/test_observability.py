"""Spec README, "Observability": structured logging, request tracing and OpenTelemetry, as written.

Substitutions: the spec leaves ``prompt`` and ``agent`` undefined; here they are a question and
an ``Agent("gpt-4o", ...)`` served by the fake OpenAI server (see ``conftest.py``). To look at the
OpenTelemetry spans, an in-memory exporter is added to the integration's provider.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests._support.openai_server import OpenAIServer


@pytest.fixture(autouse=True)
def _restore_mamba_logger() -> Iterator[None]:
    """setup_logging changes the process-wide ``mamba_worker`` logger; put it back afterwards."""
    logger = logging.getLogger("mamba_worker")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    for handler in list(logger.handlers):
        if handler not in saved[0]:
            logger.removeHandler(handler)
            handler.close()
    logger.setLevel(saved[1])
    logger.propagate = saved[2]


def test_setup_logging(capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker.config import LoggingConfig
    from mamba_worker.observability import setup_logging

    # Configure logging
    config = LoggingConfig(
        level="INFO",
        format="json",
        redact_sensitive=True,
    )
    logger = setup_logging(config)

    logging.getLogger("mamba_worker.agent").info("calling with key %s", "sk-proj-abcdefghijklmnopqrstuvwx1234")
    logging.getLogger("mamba_worker.agent").debug("below the level")
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert logger.name == "mamba_worker"
    assert (record["level"], record["logger"]) == ("INFO", "mamba_worker.agent")
    assert record["message"].startswith("calling with key ") and "abcdefghijklmnop" not in record["message"]


async def test_request_tracing(settings_env: OpenAIServer) -> None:
    from mamba_worker import Agent, AgentSettings
    from mamba_worker.observability import RequestTracer

    prompt = "What is 2 + 2?"
    agent = Agent("gpt-4o", settings=AgentSettings())

    # Request tracing
    tracer = RequestTracer()
    tracer.start_trace()
    with tracer.start_span("agent.run") as span:
        span.set_attribute("prompt_length", len(prompt))
        result = await agent.run(prompt)
    trace = tracer.end_trace()

    assert result.output == "4"
    (run_span,) = trace.spans_named("agent.run")
    assert run_span.attributes == {"prompt_length": 14}
    assert run_span.status == "ok" and run_span.duration_ms is not None


async def test_opentelemetry(settings_env: OpenAIServer) -> None:
    from mamba_worker import Agent, AgentSettings
    from mamba_worker.observability import get_otel_integration

    prompt = "What is 2 + 2?"
    agent = Agent("gpt-4o", settings=AgentSettings())
    exporter = InMemorySpanExporter()

    # OpenTelemetry (optional)
    otel = get_otel_integration()
    try:
        if otel.initialize():
            assert otel.tracer_provider is not None
            otel.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            with otel.trace_agent_run(prompt, model="gpt-4o"):
                result = await agent.run(prompt)
        otel.force_flush()
    finally:
        otel.shutdown()

    assert result.output == "4"
    spans = {span.name: span for span in exporter.get_finished_spans()}
    run = spans["mamba.agent.run"]
    assert dict(run.attributes or {}) == {"mamba.prompt.length": 14, "gen_ai.request.model": "gpt-4o"}
    # pydantic-ai's own model span is nested inside the run span.
    chat = next(span for span in spans.values() if span.name.startswith("chat "))
    assert chat.context.trace_id == run.context.trace_id
