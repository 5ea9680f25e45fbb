"""Spec README, "Model Backends": the local-server factories, a custom backend and model profiles,
as written; then each backend answers a real request.

Substitution: the requests go to the fake OpenAI-compatible server (``base_url=``), since no
Ollama, vLLM or LM Studio runs here. The constructions themselves are the spec's, unchanged.
"""

from __future__ import annotations

import pytest

from tests._support.openai_server import OpenAIServer


def test_spec_examples(capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker.backends import (
        OpenAICompatibleBackend,
        create_lmstudio_backend,
        create_ollama_backend,
        create_vllm_backend,
        get_profile,
    )

    # Ollama
    backend = create_ollama_backend("llama3.2")
    assert (backend.model, backend.base_url, backend.server) == ("llama3.2", "http://localhost:11434/v1", "ollama")
    # vLLM
    backend = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct")
    assert (backend.base_url, backend.server) == ("http://localhost:8000/v1", "vllm")
    # LM Studio
    backend = create_lmstudio_backend()
    assert (backend.base_url, backend.server) == ("http://localhost:1234/v1", "lmstudio")
    # Custom OpenAI-compatible
    backend = OpenAICompatibleBackend(
        model="my-model",
        base_url="http://localhost:8000/v1",
        api_key="optional-key",
    )
    assert backend.api_key is not None and backend.api_key.get_secret_value() == "optional-key"
    assert "optional-key" not in repr(backend)
    # Check model capabilities
    profile = get_profile("gpt-4o")
    print(f"Context window: {profile.context_window}")
    print(f"Supports tools: {profile.supports_tools}")

    assert capsys.readouterr().out == "Context window: 128000\nSupports tools: True\n"


@pytest.mark.parametrize("factory", ["ollama", "vllm", "lmstudio", "custom"])
def test_each_backend_serves_an_agent(factory: str, spec_server: OpenAIServer) -> None:
    from mamba_worker import Agent, AgentSettings
    from mamba_worker.backends import (
        OpenAICompatibleBackend,
        create_lmstudio_backend,
        create_ollama_backend,
        create_vllm_backend,
    )

    url = spec_server.url
    backend = {
        "ollama": lambda: create_ollama_backend("llama3.2", base_url=url),
        "vllm": lambda: create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct", base_url=url),
        "lmstudio": lambda: create_lmstudio_backend(base_url=url),
        "custom": lambda: OpenAICompatibleBackend(model="my-model", base_url=url, api_key="optional-key"),
    }[factory]()

    agent = Agent(backend.get_model(), settings=AgentSettings())

    assert agent.run_sync("What is 2 + 2?").output == "4"
    assert spec_server.last_body["model"] == backend.model
    assert agent.get_cost() == 0.0  # local models cost nothing


@pytest.mark.parametrize(("model", "prefix"), [("llama3.2", "ollama"), ("meta-llama/Llama-3.2-3B-Instruct", "vllm")])
def test_local_model_strings_with_a_base_url(model: str, prefix: str, spec_server: OpenAIServer) -> None:
    from mamba_worker import Agent, AgentSettings

    agent = Agent(f"{prefix}:{model}", settings=AgentSettings())

    assert agent.run_sync("What is 1 + 2?").output == "3"
    assert spec_server.last_body["model"] == model
