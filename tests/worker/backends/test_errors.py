"""translate_model_error, with the errors produced by real HTTP exchanges where possible."""

from __future__ import annotations

import pickle
import socket

import httpx2
import pytest
from pydantic_ai import Agent
from pydantic_ai.exceptions import ModelHTTPError, UnexpectedModelBehavior

from mamba_worker.backends import OpenAICompatibleBackend, translate_model_error
from mamba_worker.errors import AuthenticationError, ConfigurationError, ModelBackendError, RateLimitError
from tests._support.openai_server import Error, OpenAIServer, Text


async def _failure(backend: OpenAICompatibleBackend) -> BaseException:
    with pytest.raises(Exception) as caught:
        await Agent(backend.get_model()).run("hi")
    return caught.value


async def _translated(server: OpenAIServer, *, api_key: str | None = None) -> ModelBackendError:
    async with OpenAICompatibleBackend("test-model", server.url, api_key, max_retries=0) as backend:
        error = await _failure(backend)
    translated = translate_model_error(error)
    assert isinstance(translated, ModelBackendError)
    return translated


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_429_becomes_rate_limit_error_with_retry_after(openai_server: OpenAIServer) -> None:
    openai_server.queue(Error(429, "Rate limit reached for requests", retry_after=7))

    error = await _translated(openai_server)

    assert isinstance(error, RateLimitError)
    assert error.retry_after == 7
    assert error.status_code == 429
    assert error.model == "test-model"
    assert "Rate limit reached" in error.message


async def test_429_without_retry_after(openai_server: OpenAIServer) -> None:
    openai_server.queue(Error(429, "slow down"))

    error = await _translated(openai_server)

    assert isinstance(error, RateLimitError)
    assert error.retry_after is None


async def test_500_becomes_model_backend_error_with_status(openai_server: OpenAIServer) -> None:
    openai_server.queue(Error(500, "upstream exploded"))

    error = await _translated(openai_server)

    assert type(error) is ModelBackendError
    assert error.status_code == 500
    assert "HTTP 500" in error.message
    assert "upstream exploded" in error.message


async def test_500_is_retried_by_the_client_when_retries_are_allowed(openai_server: OpenAIServer) -> None:
    # retry_after keeps the client's backoff short; the header is what the OpenAI client honours.
    openai_server.queue(Error(500, "flaky", retry_after=0.01), Text("recovered"))

    async with OpenAICompatibleBackend("test-model", openai_server.url, max_retries=1) as backend:
        result = await Agent(backend.get_model()).run("hi")

    assert result.output == "recovered"
    assert len(openai_server.chat_bodies) == 2


async def test_wrong_key_becomes_authentication_error_naming_the_setting_not_the_key(
    openai_server: OpenAIServer,
) -> None:
    openai_server.api_key = "the-right-key"

    error = await _translated(openai_server, api_key="sk-wrong-secret-value")

    assert isinstance(error, AuthenticationError)
    assert error.status_code == 401
    assert "MAMBA_MODEL_BACKEND__API_KEY" in error.message
    assert "sk-wrong-secret-value" not in error.message
    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-wrong-secret-value"


async def test_unreachable_server_names_the_url_and_the_setting() -> None:
    port = _closed_port()

    async with OpenAICompatibleBackend("test-model", f"http://127.0.0.1:{port}/v1", max_retries=0) as backend:
        error = translate_model_error(await _failure(backend))

    assert type(error) is ModelBackendError
    assert f"127.0.0.1:{port}" in error.message
    assert "MAMBA_MODEL_BACKEND__BASE_URL" in error.message


async def test_unreachable_url_keeps_credentials_out_of_the_message() -> None:
    port = _closed_port()
    url = f"http://user:hunter2@127.0.0.1:{port}/v1"

    async with OpenAICompatibleBackend("test-model", url, max_retries=0) as backend:
        error = translate_model_error(await _failure(backend), base_url=url)

    assert error is not None
    assert "hunter2" not in error.message
    assert f"127.0.0.1:{port}" in error.message


async def test_unknown_model_names_the_model_setting(openai_server: OpenAIServer) -> None:
    openai_server.queue(Error(404, "model 'test-model' not found", code="model_not_found"))

    error = await _translated(openai_server)

    assert error.status_code == 404
    assert "MAMBA_MODEL_BACKEND__MODEL" in error.message


async def test_secrets_echoed_by_the_server_are_masked(openai_server: OpenAIServer) -> None:
    openai_server.queue(Error(400, "bad request with Authorization: Bearer sk-proj-abcdef0123456789 attached"))

    error = await _translated(openai_server)

    assert "sk-proj-abcdef0123456789" not in error.message
    assert "***" in error.message


def test_raw_connection_error_from_the_http_client() -> None:
    request = httpx2.Request("POST", "http://10.9.8.7:11434/v1/chat/completions")

    error = translate_model_error(httpx2.ConnectError("refused", request=request), model="llama3.2")

    assert type(error) is ModelBackendError
    assert "10.9.8.7:11434" in error.message
    assert error.model == "llama3.2"


def test_raw_timeout_says_which_setting_to_raise() -> None:
    error = translate_model_error(httpx2.ReadTimeout("slow"), base_url="http://gpu-box:8000/v1")

    assert error is not None
    assert "MAMBA_MODEL_BACKEND__TIMEOUT" in error.message
    assert "gpu-box:8000" in error.message


def test_http_error_without_category_is_translated_by_status() -> None:
    error = translate_model_error(ModelHTTPError(503, "m", body={"message": "warming up"}), model="m")

    assert type(error) is ModelBackendError
    assert error.status_code == 503


def test_group_translates_its_first_backend_failure() -> None:
    group = ExceptionGroup("all models failed", [ValueError("x"), ModelHTTPError(429, "m")])

    assert isinstance(translate_model_error(group), RateLimitError)


def test_mamba_errors_pass_through() -> None:
    original = ConfigurationError("already ours")

    assert translate_model_error(original) is original


@pytest.mark.parametrize("error", [ValueError("x"), UnexpectedModelBehavior("odd output"), KeyboardInterrupt()])
def test_other_exceptions_are_not_backend_errors(error: BaseException) -> None:
    assert translate_model_error(error) is None


def test_translated_rate_limit_error_pickles_with_its_details() -> None:
    error = translate_model_error(ModelHTTPError(429, "m", headers={"Retry-After": "3"}))

    copy = pickle.loads(pickle.dumps(error))

    assert isinstance(copy, RateLimitError)
    assert (copy.retry_after, copy.status_code, copy.message) == (3, 429, error.message)  # type: ignore[union-attr]
