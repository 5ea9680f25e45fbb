from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

from mamba_worker.backends import ModelProfileInfo, OpenAICompatibleBackend, ServerCompat, get_profile
from mamba_worker.errors import ConfigurationError
from tests._support.openai_server import OpenAIServer, Text


def test_key_is_kept_as_a_secret_and_never_shown() -> None:
    backend = OpenAICompatibleBackend("my-model", "http://localhost:8000/v1", "sk-very-secret")

    assert backend.api_key == SecretStr("sk-very-secret")
    assert "sk-very-secret" not in repr(backend)
    assert "sk-very-secret" not in str(backend)


def test_accepts_a_secret_str_key() -> None:
    backend = OpenAICompatibleBackend("m", "http://localhost:8000/v1", SecretStr("k"))

    assert backend.api_key is not None
    assert backend.api_key.get_secret_value() == "k"


def test_holds_its_configuration() -> None:
    backend = OpenAICompatibleBackend("my-model", "http://localhost:8000/v1/", timeout=5, max_retries=1)

    assert (backend.model, backend.base_url, backend.timeout, backend.max_retries) == (
        "my-model",
        "http://localhost:8000/v1",
        5,
        1,
    )
    assert backend.server == "openai-compatible"
    assert backend.profile == get_profile("my-model")


def test_get_model_builds_one_chat_model_and_reuses_it() -> None:
    backend = OpenAICompatibleBackend("my-model", "http://localhost:8000/v1")

    model = backend.get_model()

    assert isinstance(model, OpenAIChatModel)
    assert model.model_name == "my-model"
    assert model.base_url == "http://localhost:8000/v1/"
    assert backend.get_model() is model


def test_timeout_and_retries_become_model_settings() -> None:
    model = OpenAICompatibleBackend("m", "http://localhost:8000/v1", timeout=12.5, max_retries=0).get_model()

    assert model.settings == {"timeout": 12.5, "max_retries": 0}


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://host/v1", "", "http://"])
def test_a_url_that_is_not_http_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigurationError, match="MAMBA_MODEL_BACKEND__BASE_URL"):
        OpenAICompatibleBackend("m", url)


def test_an_empty_model_name_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="MAMBA_MODEL_BACKEND__MODEL"):
        OpenAICompatibleBackend("  ", "http://localhost:8000/v1")


@pytest.mark.parametrize(("option", "value"), [("timeout", 0), ("max_retries", -1)])
def test_bad_limits_are_refused(option: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=option):
        OpenAICompatibleBackend("m", "http://localhost:8000/v1", **{option: value})  # type: ignore[arg-type]


async def test_sends_the_key_as_bearer_token(openai_server: OpenAIServer) -> None:
    openai_server.api_key = "k-123"
    openai_server.queue(Text("authorised"))

    async with OpenAICompatibleBackend("test-model", openai_server.url, "k-123", max_retries=0) as backend:
        result = await Agent(backend.get_model()).run("hi")

    assert result.output == "authorised"


async def test_usage_comes_from_the_server(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("twelve chars"))

    async with OpenAICompatibleBackend("test-model", openai_server.url, max_retries=0) as backend:
        result = await Agent(backend.get_model()).run("hi")

    assert result.usage.output_tokens == len("twelve chars") // 4
    assert result.usage.input_tokens >= 1


async def test_after_aclose_the_backend_builds_a_fresh_model(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("one"), Text("two"))
    backend = OpenAICompatibleBackend("test-model", openai_server.url, max_retries=0)
    first = backend.get_model()
    assert (await Agent(first).run("a")).output == "one"

    await backend.aclose()
    second = backend.get_model()

    assert second is not first
    assert (await Agent(second).run("b")).output == "two"
    await backend.aclose()


def test_an_explicit_profile_narrows_what_pydantic_ai_may_use() -> None:
    profile = ModelProfileInfo(
        name="tiny", context_window=2048, max_output_tokens=512, supports_tools=False, supports_tool_choice=False
    )

    model = OpenAICompatibleBackend("tiny", "http://localhost:8000/v1", profile=profile).get_model()

    assert model.profile["context_window"] == 2048
    assert model.profile["supports_tools"] is False
    assert model.profile["supports_forced_tool_choice"] is False


def test_unknown_models_leave_pydantic_ai_defaults_alone() -> None:
    model = OpenAICompatibleBackend("mystery-model", "http://localhost:8000/v1").get_model()

    assert model.profile.get("context_window") != get_profile("mystery-model").context_window
    assert model.profile.get("supports_tools", True) is True


async def test_a_custom_compat_overrides_the_preset(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("ok"))
    compat = ServerCompat(max_tokens_field="max_completion_tokens")

    async with OpenAICompatibleBackend(
        "test-model", openai_server.url, server="lmstudio", compat=compat, max_retries=0
    ) as backend:
        await Agent(backend.get_model()).run("hi", model_settings={"max_tokens": 9})

    assert openai_server.last_body["max_completion_tokens"] == 9
    assert "max_tokens" not in openai_server.last_body


async def test_a_generic_server_gets_max_tokens_and_null_content(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("ok"))

    async with OpenAICompatibleBackend("test-model", openai_server.url, max_retries=0) as backend:
        await Agent(backend.get_model()).run("hi", model_settings={"max_tokens": 9})

    assert openai_server.last_body["max_tokens"] == 9
    assert backend.compat.tool_call_content == "null"


def test_one_backend_serves_runs_on_successive_event_loops(openai_server: OpenAIServer) -> None:
    # run_sync and Celery tasks each run on a fresh loop. Entering the model per loop (here through
    # the agent) closes that loop's connections at the end, and the next loop gets a new client.
    openai_server.queue(Text("first"), Text("second"))
    backend = OpenAICompatibleBackend("test-model", openai_server.url, max_retries=0)
    agent = Agent(backend.get_model())

    async def run(prompt: str) -> str:
        async with agent:
            return (await agent.run(prompt)).output

    outputs = [asyncio.run(run("a")), asyncio.run(run("b"))]

    assert outputs == ["first", "second"]
