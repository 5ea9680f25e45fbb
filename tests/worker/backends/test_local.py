"""The local-server factories against the fake OpenAI server, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic_ai import Agent
from pydantic_ai.direct import model_request
from pydantic_ai.exceptions import UserError
from pydantic_ai.messages import ModelRequest
from pydantic_ai.models import ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition

from mamba_worker.backends import (
    OpenAICompatibleBackend,
    create_lmstudio_backend,
    create_ollama_backend,
    create_vllm_backend,
    translate_model_error,
)
from mamba_worker.errors import ModelBackendError
from tests._support.openai_server import OpenAIServer, Text, ToolCall, ToolCalls

Factory = Callable[..., OpenAICompatibleBackend]
FACTORIES: dict[str, Factory] = {
    "ollama": create_ollama_backend,
    "vllm": create_vllm_backend,
    "lmstudio": create_lmstudio_backend,
}
ADD_TOOL = ToolDefinition(
    name="add",
    description="Add two numbers.",
    parameters_json_schema={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)


def _agent(backend: OpenAICompatibleBackend) -> Agent[None, str]:
    agent = Agent(backend.get_model())

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return agent


@pytest.fixture(params=sorted(FACTORIES))
def server_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.mark.parametrize(
    ("factory", "url"),
    [
        (create_ollama_backend, "http://localhost:11434/v1"),
        (create_vllm_backend, "http://localhost:8000/v1"),
        (create_lmstudio_backend, "http://localhost:1234/v1"),
    ],
)
def test_factories_default_to_the_usual_local_address(factory: Factory, url: str) -> None:
    assert factory("some-model").base_url == url


def test_default_model_names() -> None:
    assert create_ollama_backend().model == "llama3.2"
    assert create_lmstudio_backend().model == "local-model"


async def test_text_answer(server_kind: str, openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("Hello from the server."))

    async with FACTORIES[server_kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        result = await Agent(backend.get_model()).run("Say hello")

    assert result.output == "Hello from the server."
    assert openai_server.last_body["model"] == "llama3.2"
    assert openai_server.last_body["messages"] == [{"role": "user", "content": "Say hello"}]


async def test_tool_call_round_trip(server_kind: str, openai_server: OpenAIServer) -> None:
    openai_server.queue(ToolCalls([ToolCall("add", {"a": 2, "b": 3}, id="call_1")]), Text("It is 5."))

    async with FACTORIES[server_kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        result = await _agent(backend).run("What is 2 plus 3?")

    assert result.output == "It is 5."
    first, second = openai_server.chat_bodies
    assert [tool["function"]["name"] for tool in first["tools"]] == ["add"]
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "5"}


async def test_streaming(server_kind: str, openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("streamed in several words"))

    async with FACTORIES[server_kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        async with Agent(backend.get_model()).run_stream("Stream please") as stream:
            deltas = [delta async for delta in stream.stream_text(delta=True, debounce_by=None)]
            usage = stream.usage

    assert "".join(deltas) == "streamed in several words"
    assert len(deltas) > 1
    assert openai_server.last_body["stream"] is True
    assert openai_server.last_body["stream_options"] == {"include_usage": True}
    assert usage.output_tokens == len("streamed in several words") // 4


async def test_streamed_tool_call_round_trip(server_kind: str, openai_server: OpenAIServer) -> None:
    openai_server.queue(ToolCalls([ToolCall("add", {"a": 20, "b": 22})]), Text("42"))

    async with FACTORIES[server_kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        async with _agent(backend).run_stream("20 + 22?") as stream:
            output = await stream.get_output()

    assert output == "42"
    assert openai_server.chat_bodies[1]["messages"][-1]["content"] == "42"


@pytest.mark.parametrize(
    ("kind", "sent", "not_sent"),
    [
        ("ollama", "max_tokens", "max_completion_tokens"),
        ("lmstudio", "max_tokens", "max_completion_tokens"),
        ("vllm", "max_completion_tokens", "max_tokens"),
    ],
)
async def test_each_server_gets_the_token_limit_field_it_honours(
    kind: str, sent: str, not_sent: str, openai_server: OpenAIServer
) -> None:
    openai_server.queue(Text("ok"))

    async with FACTORIES[kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        await Agent(backend.get_model()).run("hi", model_settings=ModelSettings(max_tokens=77))

    assert openai_server.last_body[sent] == 77
    assert not_sent not in openai_server.last_body


@pytest.mark.parametrize(("kind", "content"), [("ollama", ""), ("lmstudio", ""), ("vllm", None)])
async def test_tool_call_turn_content_is_serialised_the_way_each_server_accepts(
    kind: str, content: str | None, openai_server: OpenAIServer
) -> None:
    openai_server.queue(ToolCalls([ToolCall("add", {"a": 1, "b": 1})]), Text("2"))

    async with FACTORIES[kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        await _agent(backend).run("1 + 1?")

    assistant = openai_server.chat_bodies[1]["messages"][1]
    assert assistant["role"] == "assistant"
    assert "content" in assistant
    assert assistant["content"] == content


@pytest.mark.parametrize(("kind", "tool_choice"), [("ollama", "auto"), ("lmstudio", "auto"), ("vllm", "required")])
async def test_structured_output_forces_the_output_tool_only_where_the_server_honours_it(
    kind: str, tool_choice: str, openai_server: OpenAIServer
) -> None:
    openai_server.queue(ToolCalls([ToolCall("final_result", {"response": 3})]))

    async with FACTORIES[kind]("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        result = await Agent(backend.get_model(), output_type=int).run("1 + 2?")

    assert result.output == 3
    assert openai_server.last_body["tool_choice"] == tool_choice


async def test_explicitly_forcing_a_tool_on_ollama_is_refused_before_sending(openai_server: OpenAIServer) -> None:
    async with create_ollama_backend("llama3.2", base_url=openai_server.url, max_retries=0) as backend:
        with pytest.raises(UserError, match="does not support forcing tool use"):
            await model_request(
                backend.get_model(),
                [ModelRequest.user_text_prompt("add 1 and 2")],
                model_settings=ModelSettings(tool_choice="required"),
                model_request_parameters=ModelRequestParameters(function_tools=[ADD_TOOL]),
            )

    assert openai_server.requests == []


@pytest.mark.parametrize("kind", ["ollama", "lmstudio"])
async def test_servers_that_reject_null_content_accept_what_their_backend_sends(
    kind: str, openai_server_factory: Callable[..., OpenAIServer]
) -> None:
    server = openai_server_factory(reject_null_content=True)
    server.queue(ToolCalls([ToolCall("add", {"a": 1, "b": 1})]), Text("2"))

    async with FACTORIES[kind]("llama3.2", base_url=server.url, max_retries=0) as backend:
        result = await _agent(backend).run("1 + 1?")

    assert result.output == "2"


async def test_a_null_content_rejecting_server_fails_a_plain_openai_compatible_backend_clearly(
    openai_server_factory: Callable[..., OpenAIServer],
) -> None:
    # What the presets exist for: the same conversation, sent the way OpenAI's spec allows, fails.
    server = openai_server_factory(reject_null_content=True)
    server.queue(ToolCalls([ToolCall("add", {"a": 1, "b": 1})]), Text("2"))

    async with OpenAICompatibleBackend("llama3.2", server.url, max_retries=0) as backend:
        with pytest.raises(Exception) as caught:
            await _agent(backend).run("1 + 1?")

    translated = translate_model_error(caught.value)
    assert isinstance(translated, ModelBackendError)
    assert translated.status_code == 400
    assert "'content' field must be a string" in translated.message


async def test_vllm_preset_works_where_max_tokens_is_refused(
    openai_server_factory: Callable[..., OpenAIServer],
) -> None:
    server = openai_server_factory(reject_fields={"max_tokens"})
    server.queue(Text("fine"))

    async with create_vllm_backend("m", base_url=server.url, max_retries=0) as backend:
        result = await Agent(backend.get_model()).run("hi", model_settings=ModelSettings(max_tokens=5))

    assert result.output == "fine"


def test_ollama_backend_uses_the_ollama_provider_profile() -> None:
    model = create_ollama_backend("llama3.2").get_model()

    assert model.system == "ollama"
    # pydantic-ai's Ollama profile: Ollama does not support strict tool definitions.
    assert model.profile.get("openai_supports_strict_tool_definition") is False


def test_vllm_backend_sends_one_system_message() -> None:
    model = create_vllm_backend("meta-llama/Llama-3.2-3B-Instruct").get_model()

    assert model.system == "vllm"
    assert model.profile.get("openai_chat_supports_multiple_system_messages") is False


def _profile_value(model: Any, key: str) -> object:
    return model.profile.get(key)


def test_known_model_context_window_reaches_the_pydantic_ai_profile() -> None:
    model = create_lmstudio_backend("qwen2.5-7b-instruct").get_model()

    assert _profile_value(model, "context_window") == 32_768
