"""A scriptable OpenAI-compatible HTTP server for tests, on 127.0.0.1 in a background thread.

It answers ``POST /v1/chat/completions`` (plain and ``stream: true``) and ``GET /v1/models`` over
real HTTP (uvicorn + starlette), so a model under test goes through its whole client stack:
the OpenAI SDK, pydantic-ai's mapping and error translation, retries, timeouts.

Usage::

    from tests._support.openai_server import OpenAIServer, Text, ToolCall, ToolCalls, Error

    with OpenAIServer() as server:             # starts on a free port, stops on exit
        server.queue(
            ToolCalls([ToolCall("add", {"a": 1, "b": 2})]),   # first request: call a tool
            Text("The sum is 3."),                            # second request: answer
        )
        backend = OpenAICompatibleBackend("test-model", server.url)
        ...
        server.requests[0].body["messages"]   # every request body, parsed, in order
        server.chat_bodies                    # just the chat completion bodies

Replies (answered in queue order, one per chat completion request; defined in
`tests._support.openai_wire` and re-exported here):

- `Text(content)`: an assistant message; streamed word by word when the request streams.
- `ToolCalls([ToolCall(name, arguments, id=None), ...], content=None)`: tool calls (ids are
  ``call_<n>`` unless given); arguments may be a dict or a raw JSON string (for bad JSON).
- `Error(status, message, retry_after=None)`: an OpenAI-shaped error body with that status;
  ``retry_after`` sets the ``Retry-After`` header (use it with 429).
- A callable ``(RecordedRequest) -> reply``: decides from the request (echo, branching).

With the queue empty, the ``default`` given to the constructor answers; without one, the server
answers 400 ``no scripted reply`` (a 400, so clients do not retry it).

Server behaviours, set in the constructor:

- ``api_key="..."``: requests without ``Authorization: Bearer <key>`` get 401.
- ``reject_null_content=True``: an assistant message with ``"content": null`` gets 400, the way
  Ollama and LM Studio answer.
- ``reject_fields={"max_completion_tokens"}``: a body carrying any of these fields gets 400
  ``Unrecognized request argument``, the way servers that do not know a field answer.

Every chat response reports usage (prompt: characters of the messages // 4, completion:
characters of the reply // 4); a stream sends it in a last chunk with no choices when the
request asks for ``stream_options.include_usage``, as OpenAI does.

For pytest, import the fixtures into a ``conftest.py``::

    from tests._support.openai_server import (  # noqa: F401
        _shared_openai_server, openai_server, openai_server_factory,
    )

``openai_server`` is a running server with default behaviours, shared by the session and reset
before each test; ``openai_server_factory(**kwargs)`` starts a server of the test's own, with
options, and stops it after the test.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests._support.openai_wire import (
    Error,
    RecordedRequest,
    Reply,
    Text,
    ToolCall,
    ToolCalls,
    completion,
    echo,
    error_response,
    sse,
    stream_chunks,
    usage_for,
)
from tests._support.wait import wait_until

__all__ = [
    "Error",
    "OpenAIServer",
    "RecordedRequest",
    "Reply",
    "Text",
    "ToolCall",
    "ToolCalls",
    "_shared_openai_server",
    "echo",
    "openai_server",
    "openai_server_factory",
]


class OpenAIServer:
    """The fake server; see the module docstring."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        default: Reply | None = None,
        reject_null_content: bool = False,
        reject_fields: frozenset[str] | set[str] = frozenset(),
        models: tuple[str, ...] = ("test-model",),
    ) -> None:
        self.api_key = api_key
        self.default = default
        self.reject_null_content = reject_null_content
        self.reject_fields = frozenset(reject_fields)
        self.models = models
        self._replies: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._calls = 0
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------

    def queue(self, *replies: Reply) -> OpenAIServer:
        """Append replies, answered one per chat completion request in order."""
        with self._lock:
            self._replies.extend(replies)
        return self

    def reply_text(self, content: str) -> OpenAIServer:
        """Queue a text answer."""
        return self.queue(Text(content))

    def reply_tool_call(
        self, name: str, arguments: dict[str, Any] | str | None = None, *, id: str | None = None
    ) -> OpenAIServer:
        """Queue one tool call."""
        return self.queue(ToolCalls([ToolCall(name, arguments if arguments is not None else {}, id)]))

    def reply_error(
        self, status: int, message: str = "scripted error", *, retry_after: float | None = None
    ) -> OpenAIServer:
        """Queue an error response."""
        return self.queue(Error(status, message, retry_after))

    def reset(self) -> OpenAIServer:
        """Forget queued replies and recorded requests, and restore the default behaviours.

        Lets one running server serve many tests (starting one costs a few hundred milliseconds).
        """
        with self._lock:
            self._replies.clear()
            self._requests.clear()
        self.api_key = None
        self.default = None
        self.reject_null_content = False
        self.reject_fields = frozenset()
        return self

    @property
    def pending(self) -> int:
        """Replies still queued."""
        with self._lock:
            return len(self._replies)

    # -- inspection ------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_bodies(self) -> list[dict[str, Any]]:
        """The bodies of the chat completion requests received so far."""
        return [r.body for r in self.requests if r.path.endswith("/chat/completions") and r.body is not None]

    @property
    def last_body(self) -> dict[str, Any]:
        """The body of the last chat completion request."""
        bodies = self.chat_bodies
        assert bodies, "the server has received no chat completion request"
        return bodies[-1]

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The port the server listens on (known once started)."""
        assert self._socket is not None, "the server is not started"
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def url(self) -> str:
        """The OpenAI-compatible root, ``http://127.0.0.1:<port>/v1``: pass it as ``base_url``."""
        return f"http://127.0.0.1:{self.port}/v1"

    base_url = url

    def start(self) -> OpenAIServer:
        """Start serving in a background thread; returns once the server accepts connections."""
        assert self._thread is None, "the server is already started"
        # Bind here, before the thread starts, so the port is known and cannot be taken meanwhile.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._socket = sock
        config = uvicorn.Config(
            self._app(), log_level="warning", access_log=False, lifespan="off", ws="none", http="h11"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="openai-test-server", daemon=True
        )
        self._thread.start()
        server = self._server
        wait_until(lambda: server.started or not self._thread_alive(), timeout=10, what="the OpenAI test server")
        assert server.started, "the OpenAI test server did not start"
        return self

    def stop(self) -> None:
        """Stop the server and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server = None
        self._thread = None

    def _thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the app ---------------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request) -> RecordedRequest:
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = {"_unparsed": raw.decode(errors="replace")}
        recorded = RecordedRequest(request.method, request.url.path, dict(request.headers), body)
        with self._lock:
            self._requests.append(recorded)
        return recorded

    def _unauthorised(self, request: RecordedRequest) -> Response | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return error_response(
            Error(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
        )

    async def _models(self, request: Request) -> Response:
        recorded = await self._record(request)
        if (denied := self._unauthorised(recorded)) is not None:
            return denied
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "test"} for name in self.models]
        return JSONResponse({"object": "list", "data": data})

    async def _chat(self, request: Request) -> Response:
        recorded = await self._record(request)
        if (denied := self._unauthorised(recorded)) is not None:
            return denied
        body = recorded.body or {}
        if rejected := self._reject(body):
            return error_response(rejected)
        reply = self._next_reply(recorded)
        if isinstance(reply, Error):
            return error_response(reply)
        with self._lock:
            self._calls += 1
            seq = self._calls
        model = str(body.get("model", "test-model"))
        usage = usage_for(body, reply)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                sse(stream_chunks(reply, model=model, seq=seq, usage=usage if include_usage else None)),
                media_type="text/event-stream",
            )
        return JSONResponse(completion(reply, model=model, seq=seq, usage=usage))

    def _reject(self, body: dict[str, Any]) -> Error | None:
        for name in sorted(self.reject_fields & body.keys()):
            return Error(400, f"Unrecognized request argument supplied: {name}", type="invalid_request_error")
        if self.reject_null_content:
            for index, message in enumerate(body.get("messages", [])):
                if "content" in message and message["content"] is None:
                    return Error(
                        400,
                        f"Invalid 'messages[{index}].content': "
                        "'content' field must be a string or an array of objects.",
                        type="invalid_request_error",
                    )
        return None

    def _next_reply(self, request: RecordedRequest) -> Text | ToolCalls | Error:
        with self._lock:
            reply = self._replies.popleft() if self._replies else self.default
            number = len(self._requests)
        if reply is None:
            return Error(
                400, f"openai test server: no scripted reply for request #{number}", type="invalid_request_error"
            )
        if isinstance(reply, Text | ToolCalls | Error):
            return reply
        return reply(request)


@pytest.fixture
def openai_server_factory() -> Iterator[Callable[..., OpenAIServer]]:
    """Start `OpenAIServer`s with options (``openai_server_factory(api_key="k")``); stops them after the test."""
    started: list[OpenAIServer] = []

    def start(**options: Any) -> OpenAIServer:
        server = OpenAIServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def _shared_openai_server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
def openai_server(_shared_openai_server: OpenAIServer) -> OpenAIServer:
    """A running `OpenAIServer` with default behaviours, an empty queue and no recorded requests.

    One server serves the whole session (`OpenAIServer.reset` between tests); a test may change
    its behaviours (``openai_server.api_key = "k"``), which the next test's reset undoes.
    """
    return _shared_openai_server.reset()
