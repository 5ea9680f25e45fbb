from __future__ import annotations

import importlib.util

import pytest
from pydantic import SecretStr
from pydantic_ai import Agent
from pydantic_ai.models.openai import OpenAIChatModel

from mamba_worker.backends import OfflineModel, create_model
from mamba_worker.config import AgentSettings, ModelBackendSettings
from mamba_worker.errors import ConfigurationError
from tests._support.openai_server import OpenAIServer, Text

SECRET = "sk-test-do-not-print-0123456789"


@pytest.fixture(autouse=True)
def _no_provider_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "OLLAMA_BASE_URL", "VLLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_offline() -> None:
    assert isinstance(create_model("offline", settings=ModelBackendSettings()), OfflineModel)


def test_no_model_names_the_setting() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_model(None, settings=ModelBackendSettings())

    assert "MAMBA_MODEL_BACKEND__MODEL" in caught.value.message
    assert "offline" in caught.value.message


def test_none_uses_the_model_from_settings() -> None:
    assert isinstance(create_model(None, settings=ModelBackendSettings(model="offline")), OfflineModel)


def test_the_argument_wins_over_settings() -> None:
    model = create_model("offline", settings=ModelBackendSettings(model="gpt-4o"))

    assert isinstance(model, OfflineModel)


def test_whole_agent_settings_are_accepted() -> None:
    settings = AgentSettings(model_backend=ModelBackendSettings(model="offline"))

    assert isinstance(create_model(None, settings=settings), OfflineModel)


@pytest.mark.parametrize(
    ("model", "system", "url"),
    [
        ("ollama:llama3.2", "ollama", "http://localhost:11434/v1/"),
        ("ollama:qwen2.5:7b", "ollama", "http://localhost:11434/v1/"),
        ("vllm:meta-llama/Llama-3.2-3B-Instruct", "vllm", "http://localhost:8000/v1/"),
        ("lmstudio:local-model", "lmstudio", "http://localhost:1234/v1/"),
    ],
)
def test_local_prefixes_pick_the_server_and_its_usual_address(model: str, system: str, url: str) -> None:
    built = create_model(model, settings=ModelBackendSettings())

    assert isinstance(built, OpenAIChatModel)
    assert (built.system, built.base_url) == (system, url)
    assert built.model_name == model.partition(":")[2]


def test_local_prefix_with_base_url_uses_that_url() -> None:
    built = create_model("ollama:llama3.2", settings=ModelBackendSettings(base_url="http://gpu-box:11434/v1"))

    assert isinstance(built, OpenAIChatModel)
    assert built.base_url == "http://gpu-box:11434/v1/"


def test_bare_name_with_base_url_is_an_openai_compatible_server() -> None:
    built = create_model("my-model", settings=ModelBackendSettings(base_url="http://gpu-box:9000/v1"))

    assert isinstance(built, OpenAIChatModel)
    assert built.system == "openai-compatible"


@pytest.mark.parametrize(("port", "system"), [(11434, "ollama"), (1234, "lmstudio")])
def test_bare_name_on_a_well_known_port_gets_that_servers_behaviour(port: int, system: str) -> None:
    built = create_model("llama3.2:3b", settings=ModelBackendSettings(base_url=f"http://localhost:{port}/v1"))

    assert built.system == system
    assert built.model_name == "llama3.2:3b"


def test_openai_compatible_prefix_needs_a_base_url() -> None:
    with pytest.raises(ConfigurationError, match="MAMBA_MODEL_BACKEND__BASE_URL"):
        create_model("openai-compatible:my-model", settings=ModelBackendSettings())


@pytest.mark.parametrize("model", ["openai:gpt-4o", "gpt-4o", "o3-mini"])
def test_openai_names_with_a_configured_key(model: str) -> None:
    built = create_model(model, settings=ModelBackendSettings(api_key=SecretStr(SECRET)))

    assert isinstance(built, OpenAIChatModel)
    assert built.system == "openai"
    assert built.model_name == model.removeprefix("openai:")


def test_openai_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    built = create_model("openai:gpt-4o-mini", settings=ModelBackendSettings())

    assert built.system == "openai"


@pytest.mark.parametrize("model", ["openai:gpt-4o", "gpt-4o"])
def test_missing_openai_key_names_both_settings(model: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_model(model, settings=ModelBackendSettings())

    assert "MAMBA_MODEL_BACKEND__API_KEY" in caught.value.message
    assert "OPENAI_API_KEY" in caught.value.message


def test_openai_base_url_for_a_bare_name_means_openai() -> None:
    settings = ModelBackendSettings(base_url="https://api.openai.com/v1", api_key=SecretStr(SECRET))

    built = create_model("gpt-4o", settings=settings)

    assert built.system == "openai"


def test_timeout_and_retries_from_settings_are_applied() -> None:
    settings = ModelBackendSettings(base_url="http://localhost:8000/v1", timeout=7, max_retries=1)

    built = create_model("my-model", settings=settings)

    assert built.settings == {"timeout": 7, "max_retries": 1}


@pytest.mark.skipif(importlib.util.find_spec("anthropic") is not None, reason="the anthropic extra is installed")
def test_anthropic_without_the_extra_says_what_to_install() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_model("anthropic:claude-sonnet-4-5", settings=ModelBackendSettings(api_key=SecretStr(SECRET)))

    assert 'pip install "pydantic-ai-slim[anthropic]"' in caught.value.message


@pytest.mark.parametrize("model", ["mystery-model", "google-gla:gemini-2.0-flash"])
def test_unknown_model_lists_the_accepted_forms(model: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_model(model, settings=ModelBackendSettings(api_key=SecretStr(SECRET)))

    message = caught.value.message
    assert repr(model) in message
    for form in ("'offline'", "'openai:<model>'", "'ollama:<model>'", "MAMBA_MODEL_BACKEND__BASE_URL"):
        assert form in message


def test_unknown_prefix_is_named() -> None:
    with pytest.raises(ConfigurationError, match="prefix 'google-gla'"):
        create_model("google-gla:gemini-2.0-flash", settings=ModelBackendSettings())


@pytest.mark.parametrize("model", ["openai:", "ollama:  "])
def test_prefix_without_a_name(model: str) -> None:
    with pytest.raises(ConfigurationError, match="no model name"):
        create_model(model, settings=ModelBackendSettings())


@pytest.mark.parametrize(
    "model", [None, "mystery-model", "openai:", "anthropic:claude-sonnet-4-5", "openai-compatible:x", "gpt-4o"]
)
def test_no_error_message_contains_the_key(model: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ModelBackendSettings(api_key=SecretStr(SECRET))
    try:
        create_model(model, settings=settings)
    except ConfigurationError as error:
        assert SECRET not in str(error)
        assert SECRET not in repr(error.details)


async def test_resolved_model_talks_to_the_server(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("resolved"))
    settings = ModelBackendSettings(base_url=openai_server.url, api_key=SecretStr("k"), max_retries=0)

    async with Agent(create_model("test-model", settings=settings)) as agent:
        result = await agent.run("hi")

    assert result.output == "resolved"
    assert openai_server.requests[0].headers["authorization"] == "Bearer k"
