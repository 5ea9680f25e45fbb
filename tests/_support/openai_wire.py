"""The OpenAI wire format for the fake server: scripted reply types and the JSON they become.

Kept apart from `tests._support.openai_server` (which serves them) so the shapes of Chat
Completions responses, stream chunks and error bodies are in one short file.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import JSONResponse, Response

__all__ = [
    "Error",
    "RecordedRequest",
    "Reply",
    "Text",
    "ToolCall",
    "ToolCalls",
    "completion",
    "echo",
    "error_response",
    "sse",
    "stream_chunks",
    "usage_for",
]


@dataclass(frozen=True)
class Text:
    """An assistant message with text."""

    content: str
    finish_reason: str = "stop"


@dataclass(frozen=True)
class ToolCall:
    """One tool call; ``arguments`` is a dict (sent as JSON) or a raw string (sent as is)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class ToolCalls:
    """An assistant message that calls tools, optionally with text."""

    calls: list[ToolCall]
    content: str | None = None


@dataclass(frozen=True)
class Error:
    """An error response in OpenAI's shape."""

    status: int
    message: str = "scripted error"
    retry_after: float | None = None
    type: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The chat messages of the body (empty for other requests)."""
        return list((self.body or {}).get("messages", []))


Reply = Text | ToolCalls | Error | Callable[[RecordedRequest], "Text | ToolCalls | Error"]


def echo(request: RecordedRequest) -> Text:
    """A reply handler that answers ``echo: <last user message>``."""
    for message in reversed(request.messages):
        if message.get("role") == "user":
            content = message.get("content")
            text = content if isinstance(content, str) else json.dumps(content)
            return Text(f"echo: {text}")
    return Text("echo: (no user message)")


def error_response(error: Error) -> Response:
    headers = {"retry-after": f"{error.retry_after:g}"} if error.retry_after is not None else None
    payload = {"error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
    return JSONResponse(payload, status_code=error.status, headers=headers)


def _tool_calls_json(reply: ToolCalls, seq: int) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_{seq}_{index}",
            "type": "function",
            "function": {
                "name": call.name,
                "arguments": call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments),
            },
        }
        for index, call in enumerate(reply.calls)
    ]


def usage_for(body: dict[str, Any], reply: Text | ToolCalls) -> dict[str, int]:
    prompt = max(1, len(json.dumps(body.get("messages", []))) // 4)
    if isinstance(reply, Text):
        completion_chars = len(reply.content)
    else:
        completion_chars = len(reply.content or "") + sum(len(json.dumps(c.arguments)) for c in reply.calls)
    completion = max(1, completion_chars // 4)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def completion(reply: Text | ToolCalls, *, model: str, seq: int, usage: dict[str, int]) -> dict[str, Any]:
    message: dict[str, Any]
    if isinstance(reply, Text):
        message = {"role": "assistant", "content": reply.content}
        finish = reply.finish_reason
    else:
        message = {"role": "assistant", "content": reply.content, "tool_calls": _tool_calls_json(reply, seq)}
        finish = "tool_calls"
    return {
        "id": f"chatcmpl-{seq}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
    }


def stream_chunks(
    reply: Text | ToolCalls, *, model: str, seq: int, usage: dict[str, int] | None
) -> Iterator[dict[str, Any]]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{seq}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    yield chunk({"role": "assistant", "content": ""})
    text = reply.content if isinstance(reply, Text) else reply.content
    if text:
        words = text.split(" ")
        for index, word in enumerate(words):
            yield chunk({"content": word if index == len(words) - 1 else word + " "})
    if isinstance(reply, ToolCalls):
        for index, call in enumerate(_tool_calls_json(reply, seq)):
            arguments = call["function"]["arguments"]
            head = {"index": index, "id": call["id"], "type": "function"}
            yield chunk({"tool_calls": [{**head, "function": {"name": call["function"]["name"], "arguments": ""}}]})
            middle = len(arguments) // 2
            for piece in (arguments[:middle], arguments[middle:]):
                if piece:
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "stop" if isinstance(reply, Text) else "tool_calls")
    if usage is not None:
        yield {
            "id": f"chatcmpl-{seq}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }


async def sse(chunks: Iterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    for item in chunks:
        yield f"data: {json.dumps(item)}\n\n".encode()
    yield b"data: [DONE]\n\n"
