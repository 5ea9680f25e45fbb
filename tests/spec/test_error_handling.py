"""Spec README, "Error Handling": the error classes, the retry decorator and the circuit breaker,
as written; then the errors an Agent raises for a failing backend.

Substitutions: the spec's ``model.complete(messages)`` is an awaitable of the test's own (the spec
leaves ``model`` undefined); the retry test that fails on purpose passes ``sleep=`` (a documented
option of `create_retry_decorator`) to record the back-off instead of waiting it out.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests._support.openai_server import Error, OpenAIServer


class _Model:
    """Stands in for the spec's undefined ``model``: its ``complete`` fails ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0

    async def complete(self, messages: list[dict[str, Any]]) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            from mamba_worker.errors import ModelBackendError

            raise ModelBackendError("the service is down", status_code=503)
        return f"answer to {messages[-1]['content']}"


async def test_spec_examples() -> None:
    from mamba_worker.errors import (
        AgentError,
        CircuitBreaker,
        ModelBackendError,
        RateLimitError,
        create_retry_decorator,
    )

    calls = 0

    # Custom retry decorator
    @create_retry_decorator(max_attempts=3, base_wait=1.0)
    async def call_api():
        nonlocal calls
        calls += 1
        return "ok"

    # Circuit breaker for external services
    breaker = CircuitBreaker("model-api", failure_threshold=5, timeout=30.0)
    model, messages = _Model(), [{"role": "user", "content": "Hi"}]
    async with breaker:
        result = await model.complete(messages)

    assert await call_api() == "ok" and calls == 1
    assert result == "answer to Hi"
    assert issubclass(RateLimitError, ModelBackendError) and issubclass(ModelBackendError, AgentError)


async def test_retry_decorator_retries_transient_failures() -> None:
    from mamba_worker.errors import RateLimitError, create_retry_decorator

    waits: list[float] = []
    attempts = 0

    @create_retry_decorator(max_attempts=3, base_wait=1.0, sleep=waits.append)
    async def call_api() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise RateLimitError("slow down", retry_after=2.0)
        return "ok"

    assert await call_api() == "ok"
    assert attempts == 3 and waits[0] >= 2.0  # the server's retry_after is honoured


async def test_circuit_breaker_opens_after_the_threshold() -> None:
    from mamba_worker.errors import CircuitBreaker, CircuitOpenError, ModelBackendError

    breaker = CircuitBreaker("model-api", failure_threshold=5, timeout=30.0)
    model, messages = _Model(failures=100), [{"role": "user", "content": "Hi"}]
    for _ in range(5):
        with pytest.raises(ModelBackendError):
            async with breaker:
                await model.complete(messages)
    with pytest.raises(CircuitOpenError):
        async with breaker:
            await model.complete(messages)
    assert model.calls == 5  # the open circuit did not call the model


@pytest.fixture
def no_retries(settings_env: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> OpenAIServer:
    # One attempt per request, so each scripted error reaches the caller at once.
    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MAX_RETRIES", "0")
    monkeypatch.setenv("MAMBA_RETRY__MAX_RETRIES", "0")
    return settings_env


@pytest.mark.parametrize(
    ("status", "error_name"),
    [(429, "RateLimitError"), (401, "AuthenticationError"), (500, "ModelBackendError"), (400, "ModelBackendError")],
)
def test_agent_raises_mamba_errors(no_retries: OpenAIServer, status: int, error_name: str) -> None:
    import mamba_worker.errors as errors
    from mamba_worker import Agent, AgentSettings

    no_retries.queue(Error(status, "scripted failure"))
    agent = Agent("gpt-4o", settings=AgentSettings())

    with pytest.raises(errors.AgentError) as caught:
        agent.run_sync("Hello")
    assert type(caught.value).__name__ == error_name
    assert isinstance(caught.value, errors.ModelBackendError) and caught.value.status_code == status
    assert "sk-spec-dummy-key-0000" not in str(caught.value)


def test_agent_retries_a_rate_limit(settings_env: OpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from mamba_worker import Agent, AgentSettings
    from tests._support.openai_server import Text

    monkeypatch.setenv("MAMBA_MODEL_BACKEND__MAX_RETRIES", "0")  # Mamba's retry, not the HTTP client's
    monkeypatch.setenv("MAMBA_RETRY__BASE_WAIT", "0")
    settings_env.queue(Error(429, "slow down"), Text("fine now"))

    assert Agent("gpt-4o", settings=AgentSettings()).run_sync("Hello").output == "fine now"
    assert len(settings_env.chat_bodies) == 2
