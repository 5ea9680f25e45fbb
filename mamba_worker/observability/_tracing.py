"""`RequestTracer`: lightweight in-process traces of spans, without OpenTelemetry.

The active trace and the current span live in a context variable, so concurrent asyncio tasks
(and threads) each trace their own request with one shared tracer. A task started inside a span
inherits the trace and records its spans into it, as children of that span.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from itertools import count
from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, JsonValue, PrivateAttr

from mamba_worker.errors import UsageError
from mamba_worker.observability._redaction import redact

logger = logging.getLogger(__name__)


class SpanStatus(StrEnum):
    """How a span ended."""

    UNSET = "unset"
    """Still open."""
    OK = "ok"
    """The block finished normally."""
    ERROR = "error"
    """The block raised; see `Span.error`."""


class SpanError(BaseModel):
    """The exception a span's block raised."""

    model_config = ConfigDict(frozen=True)

    type: str
    """The exception's class name."""
    message: str
    """Its message, with secrets masked."""


class Span(BaseModel):
    """One timed operation inside a trace."""

    span_id: str
    """Unique within the process (16 hex digits)."""
    trace_id: str | None
    """The trace it belongs to; ``None`` when it was started outside any trace."""
    parent_id: str | None = None
    """The span it was started in, if any."""
    name: str
    """What the operation is (``"agent.run"``, ``"tool.read_file"``)."""
    start_time: datetime
    """When it started (UTC)."""
    end_time: datetime | None = None
    """When it ended (UTC); ``None`` while open."""
    duration_ms: float | None = None
    """Its duration from a monotonic clock; ``None`` while open."""
    attributes: dict[str, JsonValue] = {}
    """Key/value data attached with `set_attribute` or `start_span`'s keyword arguments."""
    status: SpanStatus = SpanStatus.UNSET
    """How it ended."""
    error: SpanError | None = None
    """The exception its block raised, if it did."""

    _started: float = PrivateAttr(default_factory=time.perf_counter)

    def set_attribute(self, key: str, value: JsonValue) -> None:
        """Attach (or replace) one attribute."""
        self.attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, JsonValue]) -> None:
        """Attach several attributes."""
        self.attributes.update(attributes)

    def record_error(self, error: BaseException) -> None:
        """Mark the span failed with `error` (its message is redacted)."""
        self.status = SpanStatus.ERROR
        self.error = SpanError(type=type(error).__name__, message=redact(str(error)))

    def end(self) -> None:
        """Close the span (again is a no-op); an open span that did not fail ends OK."""
        if self.end_time is not None:
            return
        self.duration_ms = (time.perf_counter() - self._started) * 1000
        self.end_time = datetime.now(UTC)
        if self.status is SpanStatus.UNSET:
            self.status = SpanStatus.OK


class Trace(BaseModel):
    """A finished trace: every span recorded between `start_trace` and `end_trace`."""

    trace_id: str
    """32 hex digits, or the id passed to `start_trace`."""
    start_time: datetime
    """When `start_trace` was called (UTC)."""
    end_time: datetime
    """When `end_trace` was called (UTC)."""
    duration_ms: float
    """Time between the two, from a monotonic clock."""
    spans: list[Span]
    """All spans in the order they started (spans still open at `end_trace` have no end time)."""

    def spans_named(self, name: str) -> list[Span]:
        """The spans called `name`, in start order."""
        return [span for span in self.spans if span.name == name]

    def children_of(self, span: Span | None) -> list[Span]:
        """The spans started directly in `span` (``None``: the top-level spans)."""
        parent_id = span.span_id if span is not None else None
        return [child for child in self.spans if child.parent_id == parent_id]


class _Buffer:
    """The spans of one active trace; shared by every task the trace spreads to."""

    def __init__(self, trace_id: str) -> None:
        self.trace_id = trace_id
        self.start_time = datetime.now(UTC)
        self.started = time.perf_counter()
        self._lock = threading.Lock()  # tasks on other threads (asyncio.to_thread) may add spans
        self._spans: list[Span] = []

    def add(self, span: Span) -> None:
        with self._lock:
            self._spans.append(span)

    def spans(self) -> list[Span]:
        with self._lock:
            return list(self._spans)


@dataclass(frozen=True)
class _Active:
    buffer: _Buffer
    span: Span | None = field(default=None)


# tracer key -> its active trace in this context. Immutable mappings: a child task copies the
# context, and replacing (not mutating) keeps its span nesting from leaking into the parent's.
_ACTIVE: ContextVar[Mapping[int, _Active]] = ContextVar("mamba_request_tracer", default=MappingProxyType({}))
_KEYS = count()


class RequestTracer:
    """Records spans per request, in memory.

    Example:
        ```python
        tracer = RequestTracer()
        tracer.start_trace()
        with tracer.start_span("agent.run") as span:
            span.set_attribute("prompt_length", len(prompt))
            result = await agent.run(prompt)
        trace = tracer.end_trace()
        ```

    One tracer may serve many concurrent requests: each asyncio task (or thread) sees its own
    active trace.
    """

    def __init__(self) -> None:
        # A counter, not id(self): ids are reused after garbage collection.
        self._key = next(_KEYS)

    def _active(self) -> _Active | None:
        return _ACTIVE.get().get(self._key)

    def _set_active(self, active: _Active | None) -> None:
        current = dict(_ACTIVE.get())
        if active is None:
            current.pop(self._key, None)
        else:
            current[self._key] = active
        _ACTIVE.set(current)

    @property
    def current_trace_id(self) -> str | None:
        """The id of this context's active trace, if one is active."""
        active = self._active()
        return active.buffer.trace_id if active is not None else None

    @property
    def current_span(self) -> Span | None:
        """The innermost open span of this context's active trace, if any."""
        active = self._active()
        return active.span if active is not None else None

    def start_trace(self, trace_id: str | None = None) -> str:
        """Start a trace in the current context and return its id.

        A trace this context left unfinished (a request that crashed before `end_trace`) is
        dropped with a warning, so a reused worker thread never inherits a stale trace.

        Args:
            trace_id: Reuse an id from upstream (a request header, a run id); a new one by default.
        """
        stale = self._active()
        if stale is not None:
            logger.warning("trace %s was never ended; dropping it and starting a new one", stale.buffer.trace_id)
        buffer = _Buffer(trace_id if trace_id is not None else uuid.uuid4().hex)
        self._set_active(_Active(buffer))
        return buffer.trace_id

    @contextmanager
    def start_span(self, name: str, **attributes: JsonValue) -> Iterator[Span]:
        """Time the block as a span, a child of the current span.

        An exception raised in the block is recorded on the span and re-raised. Outside a trace
        the span still works (timing, attributes) but belongs to no trace.

        Args:
            name: What the operation is.
            **attributes: Initial attributes.

        Yields:
            The open span; it is closed when the block ends.
        """
        active = self._active()
        span = Span(
            span_id=uuid.uuid4().hex[:16],
            trace_id=active.buffer.trace_id if active is not None else None,
            parent_id=active.span.span_id if active is not None and active.span is not None else None,
            name=name,
            start_time=datetime.now(UTC),
            attributes=dict(attributes),
        )
        if active is not None:
            active.buffer.add(span)
            self._set_active(replace(active, span=span))
        try:
            yield span
        except BaseException as error:
            span.record_error(error)
            raise
        finally:
            span.end()
            current = self._active()
            # Step back out only if our span is still the current one: if the block ended the trace
            # (or started another), restoring the old state would bring a finished trace back.
            if active is not None and current is not None and current.span is span:
                self._set_active(replace(current, span=active.span))

    def end_trace(self) -> Trace:
        """Finish this context's active trace and return it.

        Raises:
            UsageError: No trace is active in this context (call `start_trace` first).
        """
        active = self._active()
        if active is None:
            raise UsageError("RequestTracer.end_trace() was called with no active trace; call start_trace() first.")
        self._set_active(None)
        buffer = active.buffer
        return Trace(
            trace_id=buffer.trace_id,
            start_time=buffer.start_time,
            end_time=datetime.now(UTC),
            duration_ms=(time.perf_counter() - buffer.started) * 1000,
            spans=buffer.spans(),
        )
