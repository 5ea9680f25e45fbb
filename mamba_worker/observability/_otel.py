"""`OTelIntegration`: optional OpenTelemetry export, with pydantic-ai's own instrumentation.

OpenTelemetry's SDK is an optional extra (``mamba[otel]``), so nothing here imports it at module
level: `OTelIntegration.initialize` imports it and reports False when it is missing. Model and tool
spans are not written here: pydantic-ai emits them itself once `Agent.instrument_all` is given our
tracer provider; `trace_agent_run` only adds the span around a whole agent run.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from mamba_worker.errors import UsageError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer
    from opentelemetry.util.types import AttributeValue
    from pydantic_ai.models.instrumented import InstrumentationSettings

logger = logging.getLogger(__name__)

SPAN_AGENT_RUN = "mamba.agent.run"
"""Name of the span `trace_agent_run` opens (a rename is a breaking change for dashboards)."""
ATTR_PROMPT_LENGTH = "mamba.prompt.length"
"""Characters of text in the prompt."""
ATTR_PROMPT = "mamba.prompt"
"""The prompt text itself; only recorded with ``include_content=True``."""
ATTR_MODEL = "gen_ai.request.model"
"""The model name, under the OpenTelemetry GenAI semantic-convention key."""

_INSTRUMENTATION_NAME = "mamba_worker"


def _prompt_text(prompt: str | Sequence[object]) -> str:
    # pydantic-ai prompts are a string or a sequence of parts; only the text parts have a length.
    if isinstance(prompt, str):
        return prompt
    return "".join(part for part in prompt if isinstance(part, str))


class OTelIntegration:
    """Sets up OpenTelemetry tracing for Mamba and pydantic-ai.

    Example:
        ```python
        otel = get_otel_integration()
        if otel.initialize():
            with otel.trace_agent_run(prompt, model="gpt-4o"):
                result = await agent.run(prompt)
        ```
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._provider: TracerProvider | None = None
        self._owns_provider = False
        self._tracer: Tracer | None = None
        self._instrumentation: InstrumentationSettings | None = None
        self._include_content = False

    @property
    def is_initialized(self) -> bool:
        """Whether `initialize` succeeded (and `shutdown` has not been called since)."""
        return self._tracer is not None

    @property
    def tracer_provider(self) -> TracerProvider | None:
        """The SDK tracer provider in use, once initialised (add span processors to it)."""
        return self._provider

    @property
    def instrumentation_settings(self) -> InstrumentationSettings | None:
        """pydantic-ai's settings bound to our provider, for code that wraps models itself.

        The durable runtime calls models without an `Agent`; it passes these to pydantic-ai's
        ``InstrumentedModel`` to get the same model spans.
        """
        return self._instrumentation

    def initialize(
        self,
        *,
        service_name: str = "mamba",
        exporter: SpanExporter | None = None,
        tracer_provider: TracerProvider | None = None,
        batch: bool = True,
        set_global: bool = True,
        instrument_pydantic_ai: bool = True,
        include_content: bool = False,
    ) -> bool:
        """Set up tracing; return False (and log why) when OpenTelemetry's SDK is not installed.

        Calling it again once initialised does nothing and returns True.

        Args:
            service_name: The ``service.name`` resource attribute of a provider created here.
            exporter: Where spans go (OTLP, console, in-memory for tests). Without one, spans are
                only exported by processors you add to `tracer_provider` yourself.
            tracer_provider: Use this provider instead of creating one. Otherwise the global SDK
                provider is reused when there is one (``set_global``), or a new one is created.
            batch: Export through a `BatchSpanProcessor` (True) or synchronously, span by span.
            set_global: Make a provider created here the global one, so other libraries' spans
                (HTTP clients, databases) land in the same traces.
            instrument_pydantic_ai: Turn on pydantic-ai's model and tool spans for every agent.
            include_content: Record prompts, completions and tool arguments in spans. Off by
                default: they may hold personal data or secrets.

        Returns:
            Whether tracing is on.
        """
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError as error:
            logger.warning(
                "OpenTelemetry is not available (%s); tracing stays off. Install it with: pip install 'mamba[otel]'",
                error,
            )
            return False

        with self._lock:
            if self._tracer is not None:
                return True
            owns = False
            provider = tracer_provider
            if provider is None and set_global:
                existing = trace.get_tracer_provider()
                provider = existing if isinstance(existing, TracerProvider) else None
            if provider is None:
                provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
                owns = True
                if set_global:
                    trace.set_tracer_provider(provider)
            if exporter is not None:
                processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
                provider.add_span_processor(processor)
            if instrument_pydantic_ai:
                self._instrument_pydantic_ai(provider, include_content=include_content)
            self._provider = provider
            self._owns_provider = owns
            self._include_content = include_content
            self._tracer = provider.get_tracer(_INSTRUMENTATION_NAME)
        logger.info("OpenTelemetry tracing is on (service %r)", service_name)
        return True

    def _instrument_pydantic_ai(self, provider: TracerProvider, *, include_content: bool) -> None:
        from pydantic_ai import Agent, InstrumentationSettings

        settings = InstrumentationSettings(
            tracer_provider=provider,
            include_content=include_content,
            include_binary_content=include_content,
        )
        Agent.instrument_all(settings)
        self._instrumentation = settings

    @contextmanager
    def trace_agent_run(
        self, prompt: str | Sequence[object], *, model: str | None = None, **attributes: AttributeValue
    ) -> Iterator[Span]:
        """Open a span around one agent run; pydantic-ai's spans for the run nest inside it.

        The span records the prompt's length, not its text (unless `initialize` was called with
        ``include_content=True``). An exception in the block is recorded and re-raised.

        Args:
            prompt: The user prompt.
            model: The model name, when known.
            **attributes: More span attributes (``run_id="..."``).

        Yields:
            The OpenTelemetry span.

        Raises:
            UsageError: `initialize` has not succeeded.
        """
        tracer = self._tracer
        if tracer is None:
            raise UsageError(
                "trace_agent_run() needs OpenTelemetry: call initialize() first, and use this only if it returned True."
            )
        text = _prompt_text(prompt)
        span_attributes: dict[str, AttributeValue] = {ATTR_PROMPT_LENGTH: len(text), **attributes}
        if model is not None:
            span_attributes[ATTR_MODEL] = model
        if self._include_content:
            span_attributes[ATTR_PROMPT] = text
        with tracer.start_as_current_span(SPAN_AGENT_RUN, attributes=span_attributes) as span:
            yield span

    def force_flush(self) -> None:
        """Export every finished span now (a no-op before `initialize`)."""
        if self._provider is not None:
            self._provider.force_flush()

    def shutdown(self) -> None:
        """Flush spans, stop pydantic-ai instrumentation, and forget the provider.

        A provider created here is shut down; one passed in or found global is only flushed. After
        this, `initialize` may be called again.
        """
        with self._lock:
            provider, owns = self._provider, self._owns_provider
            if self._instrumentation is not None:
                from pydantic_ai import Agent

                Agent.instrument_all(False)
            self._provider = None
            self._owns_provider = False
            self._tracer = None
            self._instrumentation = None
            self._include_content = False
        if provider is not None:
            provider.force_flush()
            from opentelemetry import trace

            # OpenTelemetry never lets the global provider be replaced, so one we made global stays
            # alive for a later initialize() to reuse; any other provider we made is shut down.
            if owns and provider is not trace.get_tracer_provider():
                provider.shutdown()


@functools.cache
def get_otel_integration() -> OTelIntegration:
    """The process-wide `OTelIntegration` (created on first use; it does nothing until initialised)."""
    return OTelIntegration()
