"""`UsageTracker`: tokens and requests used, per request and per model."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic_ai.usage import RequestUsage, RunUsage

from mamba_worker.errors import UsageError

UNKNOWN_MODEL = "unknown"
"""The `UsageSummary.by_model` key for usage recorded without a model name."""


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageRecord:
    """The usage of one model request (or of one batch of requests recorded together)."""

    timestamp: datetime
    """When the usage was recorded, timezone-aware UTC."""
    model: str | None
    """The model that was used, as given when recording (``"gpt-4o"``, ``"openai:gpt-4o"``), if known."""
    input_tokens: int
    """Prompt tokens, cached ones included."""
    output_tokens: int
    """Completion tokens."""
    request_count: int = 1
    """Model requests this record covers."""
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache (included in `input_tokens`)."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache (included in `input_tokens`)."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelUsage:
    """Usage totals for one model."""

    model: str
    """The model name as recorded, or `UNKNOWN_MODEL`."""
    input_tokens: int = 0
    """Prompt tokens, cached ones included."""
    output_tokens: int = 0
    """Completion tokens."""
    request_count: int = 0
    """Model requests."""
    cache_read_tokens: int = 0
    """Input tokens read from the provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    def _plus(self, record: UsageRecord) -> ModelUsage:
        return ModelUsage(
            model=self.model,
            input_tokens=self.input_tokens + record.input_tokens,
            output_tokens=self.output_tokens + record.output_tokens,
            request_count=self.request_count + record.request_count,
            cache_read_tokens=self.cache_read_tokens + record.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + record.cache_write_tokens,
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageSummary:
    """Usage totals across all models, with a breakdown per model.

    Example:
        ```python
        summary = tracker.get_summary()
        summary.total_tokens, summary.request_count, summary.by_model["gpt-4o"].input_tokens
        ```
    """

    input_tokens: int = 0
    """Prompt tokens, cached ones included."""
    output_tokens: int = 0
    """Completion tokens."""
    request_count: int = 0
    """Model requests."""
    cache_read_tokens: int = 0
    """Input tokens read from a provider's prompt cache."""
    cache_write_tokens: int = 0
    """Input tokens written to a provider's prompt cache."""
    by_model: dict[str, ModelUsage] = field(default_factory=dict)
    """Totals per model name (`UNKNOWN_MODEL` for usage recorded without one), in first-use order."""

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens."""
        return self.input_tokens + self.output_tokens

    @property
    def prompt_tokens(self) -> int:
        """Alias of `input_tokens`, in OpenAI's words."""
        return self.input_tokens

    @property
    def completion_tokens(self) -> int:
        """Alias of `output_tokens`, in OpenAI's words."""
        return self.output_tokens


class UsageTracker:
    """Records the usage of every model request and sums it per model.

    Totals are kept as records arrive, so `get_summary` costs the same after a million requests
    as after one. Thread-safe.

    Example:
        ```python
        tracker = UsageTracker()
        tracker.record_usage(input_tokens=100, output_tokens=50, model="gpt-4o")
        tracker.get_summary().total_tokens  # 150
        ```
    """

    def __init__(self, *, max_history: int | None = None) -> None:
        """Start with no usage.

        Args:
            max_history: Keep at most this many records in `get_history` (the oldest go first);
                the summary still counts every record. ``None`` keeps them all.
        """
        if max_history is not None and max_history < 1:
            raise UsageError(f"max_history must be at least 1 or None, got {max_history!r}.")
        self._lock = threading.Lock()
        self._history: deque[UsageRecord] = deque(maxlen=max_history)
        self._by_model: dict[str, ModelUsage] = {}

    def record_usage(
        self,
        *,
        input_tokens: int,
        output_tokens: int,
        model: str | None = None,
        request_count: int = 1,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        timestamp: datetime | None = None,
    ) -> UsageRecord:
        """Record the usage of one request (or ``request_count`` requests together).

        Args:
            input_tokens: Prompt tokens, cached ones included.
            output_tokens: Completion tokens.
            model: The model used, if known.
            request_count: How many requests this usage covers.
            cache_read_tokens: Input tokens read from the prompt cache.
            cache_write_tokens: Input tokens written to the prompt cache.
            timestamp: When the usage happened (a replay of stored usage passes the original
                time); now when omitted. Must be timezone-aware.

        Raises:
            UsageError: A count is negative, or ``timestamp`` is naive.
        """
        counts = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "request_count": request_count,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
        }
        for name, value in counts.items():
            if value < 0:
                raise UsageError(f"{name} must not be negative, got {value!r}.")
        if timestamp is not None and timestamp.tzinfo is None:
            raise UsageError("timestamp must be timezone-aware, e.g. datetime.now(UTC).")
        record = UsageRecord(
            timestamp=datetime.now(UTC) if timestamp is None else timestamp.astimezone(UTC),
            model=model,
            **counts,
        )
        key = model if model is not None else UNKNOWN_MODEL
        with self._lock:
            self._history.append(record)
            self._by_model[key] = self._by_model.get(key, ModelUsage(model=key))._plus(record)
        return record

    def record_run_usage(self, usage: RunUsage | RequestUsage, *, model: str | None) -> UsageRecord:
        """Record a pydantic-ai usage: a `RequestUsage` (one request) or a `RunUsage` (a run).

        Args:
            usage: The usage from a `ModelResponse.usage` or an agent run's ``result.usage()``.
            model: The model used, if known.
        """
        return self.record_usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            model=model,
            request_count=usage.requests,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        )

    def get_summary(self) -> UsageSummary:
        """Totals across everything recorded since creation or the last `reset`."""
        with self._lock:
            by_model = dict(self._by_model)
        return UsageSummary(
            input_tokens=sum(m.input_tokens for m in by_model.values()),
            output_tokens=sum(m.output_tokens for m in by_model.values()),
            request_count=sum(m.request_count for m in by_model.values()),
            cache_read_tokens=sum(m.cache_read_tokens for m in by_model.values()),
            cache_write_tokens=sum(m.cache_write_tokens for m in by_model.values()),
            by_model=by_model,
        )

    def get_history(self) -> list[UsageRecord]:
        """The records, oldest first (a copy)."""
        with self._lock:
            return list(self._history)

    def reset(self) -> None:
        """Forget all usage."""
        with self._lock:
            self._history.clear()
            self._by_model.clear()
