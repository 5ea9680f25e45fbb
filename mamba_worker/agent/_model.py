"""`ResilientModel`: the model every Agent talks to, with retries and readable errors.

pydantic-ai raises its own exceptions (``ModelHTTPError``, connection errors, ...); users of Mamba
catch `mamba_worker.errors` instead. Translation and retries happen here, around each single
model request, rather than around a whole agent run: re-running a run would repeat tool calls
with side effects, while repeating one model request is always safe.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters, StreamedResponse
from pydantic_ai.models.wrapper import WrapperModel
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import RunContext

from mamba_worker.backends import translate_model_error
from mamba_worker.config import ErrorRecoveryConfig
from mamba_worker.errors import CircuitBreaker, create_retry_decorator


class ResilientModel(WrapperModel):
    """Wraps a pydantic-ai model: translates its errors and retries retryable ones.

    Args:
        wrapped: The model to call.
        retry: Retry settings (the ``retry`` section): attempts, back-off and ``retry_level``.
        breaker: An optional circuit breaker shared by everything that calls this backend.
    """

    def __init__(self, wrapped: Model, *, retry: ErrorRecoveryConfig, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(wrapped)
        self._breaker = breaker
        # Only what the user set explicitly overrides the retry_level preset; the rest comes from it.
        chosen = retry.model_fields_set
        self._retrying = create_retry_decorator(
            max_attempts=retry.max_retries + 1 if "max_retries" in chosen else None,
            base_wait=retry.base_wait if "base_wait" in chosen else None,
            max_wait=retry.max_wait if "max_wait" in chosen else None,
            retry_level=retry.retry_level,
        )

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        """Send one request; retry transient failures; raise `mamba_worker.errors` types."""

        @self._retrying
        async def attempt() -> ModelResponse:
            async with self._guard():
                return await self.wrapped.request(messages, model_settings, model_request_parameters)

        return await attempt()

    @asynccontextmanager
    async def request_stream(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
        run_context: RunContext[Any] | None = None,
    ) -> AsyncIterator[StreamedResponse]:
        """Stream one response. Not retried: part of it may already have reached the caller."""
        async with self._guard():
            async with self.wrapped.request_stream(
                messages, model_settings, model_request_parameters, run_context
            ) as stream:
                yield stream

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            if self._breaker is None:
                yield
            else:
                async with self._breaker:
                    yield
        except Exception as error:
            translated = translate_model_error(error, model=self.wrapped.model_name)
            if translated is None or translated is error:
                raise
            raise translated from error
