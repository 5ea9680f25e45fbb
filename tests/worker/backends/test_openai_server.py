"""The fake OpenAI server other test folders rely on: the behaviours its docstring promises."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests._support.openai_server import OpenAIServer, Text, echo


def _chat(server: OpenAIServer, **body: object) -> httpx.Response:
    payload = {"model": "test-model", "messages": [{"role": "user", "content": "ping"}], **body}
    return httpx.post(f"{server.url}/chat/completions", json=payload, timeout=10)


def test_without_a_scripted_reply_it_answers_a_clear_400(openai_server: OpenAIServer) -> None:
    response = _chat(openai_server)

    assert response.status_code == 400
    assert "no scripted reply" in response.json()["error"]["message"]


def test_default_handler_answers_when_the_queue_is_empty(openai_server: OpenAIServer) -> None:
    openai_server.default = echo

    response = _chat(openai_server)

    assert response.json()["choices"][0]["message"]["content"] == "echo: ping"


def test_handler_replies_see_the_request(openai_server: OpenAIServer) -> None:
    openai_server.queue(lambda request: Text(f"{len(request.messages)} message(s)"))

    response = _chat(openai_server)

    assert response.json()["choices"][0]["message"]["content"] == "1 message(s)"


def test_models_endpoint_checks_the_key(openai_server_factory: Callable[..., OpenAIServer]) -> None:
    server = openai_server_factory(api_key="k")

    refused = httpx.get(f"{server.url}/models", timeout=10)
    allowed = httpx.get(f"{server.url}/models", headers={"Authorization": "Bearer k"}, timeout=10)

    assert refused.status_code == 401
    assert [model["id"] for model in allowed.json()["data"]] == ["test-model"]


def test_stream_ends_with_usage_and_done(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("a b"))

    response = _chat(openai_server, stream=True, stream_options={"include_usage": True})

    events = [line.removeprefix("data: ") for line in response.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"choices": []' in events[-2] and '"usage"' in events[-2]


def test_reset_forgets_requests_and_replies(openai_server: OpenAIServer) -> None:
    openai_server.queue(Text("answered"), Text("still queued"))
    _chat(openai_server, model="other")
    assert openai_server.pending == 1

    openai_server.reset()

    assert openai_server.requests == []
    assert openai_server.pending == 0
