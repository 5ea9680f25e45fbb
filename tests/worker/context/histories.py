"""Builders for message histories, a deterministic token counter and scripted models."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Sequence

from hypothesis import strategies as st
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    RetryFeedbackPart,
    RetryInfo,
    SystemPromptPart,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.context._history import is_turn_start


def count_tokens(message: ModelMessage) -> int:
    """A stand-in counter: 3 per message, 2 per part, a token per 4 characters of content."""
    return 3 + sum(2 + len(_text(part)) // 4 for part in message.parts)


def _text(part: ModelRequestPart | ModelResponsePart) -> str:
    if isinstance(part, ToolCallPart):
        return part.tool_name + part.args_as_json_str()
    content = getattr(part, "content", "")
    return content if isinstance(content, str) else json.dumps(content, default=str)


def words(count: int) -> str:
    return " ".join(["word"] * count)


# -- hand-built histories ------------------------------------------------------------------


def user(text: str) -> ModelRequest:
    return ModelRequest(parts=[UserPromptPart(text)])


def reply(text: str) -> ModelResponse:
    return ModelResponse(parts=[TextPart(text)])


def call(*call_ids: str, text: str | None = None) -> ModelResponse:
    parts: list[ModelResponsePart] = [TextPart(text)] if text else []
    parts.extend(ToolCallPart("lookup", {"q": call_id}, call_id) for call_id in call_ids)
    return ModelResponse(parts=parts)


def results(*call_ids: str, size: int = 50) -> ModelRequest:
    return ModelRequest(parts=[ToolReturnPart("lookup", words(size), call_id) for call_id in call_ids])


def chat(turns: int, *, system: str | None = "Be brief.", size: int = 20) -> list[ModelMessage]:
    """``turns`` user/assistant exchanges, the system prompt in the first request."""
    messages: list[ModelMessage] = []
    for turn in range(turns):
        request = user(f"question {turn} {words(size)}")
        if turn == 0 and system is not None:
            request = ModelRequest(parts=[SystemPromptPart(system), *request.parts])
        messages += [request, reply(f"answer {turn} {words(size)}")]
    return messages


def tool_turn(turn: int, *, steps: int, size: int = 50) -> list[ModelMessage]:
    """A turn in which the model calls a tool ``steps`` times before answering."""
    messages: list[ModelMessage] = [user(f"task {turn}")]
    for step in range(steps):
        call_id = f"t{turn}s{step}"
        messages += [call(call_id), results(call_id, size=size)]
    messages.append(reply(f"done {turn}"))
    return messages


def leading_system_prompt(messages: Sequence[ModelMessage]) -> list[str]:
    contents: list[str] = []
    for message in messages:
        if isinstance(message, ModelResponse):
            break
        contents += [part.content for part in message.parts if isinstance(part, SystemPromptPart)]
    return contents


def protected_tail(messages: Sequence[ModelMessage], turns: int) -> list[ModelMessage]:
    """The last ``turns`` turns (everything, when there are fewer)."""
    if turns == 0:
        return []
    starts = [index for index, message in enumerate(messages) if is_turn_start(message)]
    return list(messages if len(starts) < turns else messages[starts[-turns] :])


# -- scripted models -----------------------------------------------------------------------


def text_model(answer: str | Callable[[str], str]) -> FunctionModel:
    """A model answering every request with ``answer`` (or ``answer(prompt)``)."""

    def respond(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        prompt = "".join(
            part.content
            for message in messages
            for part in message.parts
            if isinstance(part, UserPromptPart) and isinstance(part.content, str)
        )
        return ModelResponse(parts=[TextPart(answer(prompt) if callable(answer) else answer)])

    return FunctionModel(respond, model_name="scripted")


# -- hypothesis ----------------------------------------------------------------------------


@st.composite
def histories(draw: st.DrawFn) -> list[ModelMessage]:
    """Random valid histories: system prompt first (or not), user turns, text answers, tool steps
    with 1-3 calls answered together or one request per result (some retried or failed), retry
    feedback, results that share a request with the next user prompt, and maybe unanswered calls
    at the very end."""
    ids = itertools.count()
    sizes = st.integers(min_value=0, max_value=60)
    messages: list[ModelMessage] = []
    system = draw(st.sampled_from(["none", "own_request", "with_prompt"]))
    if system == "own_request":
        messages.append(ModelRequest(parts=[SystemPromptPart(f"system {words(draw(sizes))}")]))
    pending_results: list[ModelRequestPart] = []  # results the next user request carries
    turns = draw(st.integers(min_value=1, max_value=6))
    for turn in range(turns):
        parts: list[ModelRequestPart] = [*pending_results]
        pending_results = []
        if turn == 0 and system == "with_prompt":
            parts.append(SystemPromptPart(f"system {words(draw(sizes))}"))
        parts.append(UserPromptPart(f"user {turn} {words(draw(sizes))}"))
        messages.append(ModelRequest(parts=parts))
        for _ in range(draw(st.integers(min_value=0, max_value=4))):
            if draw(st.booleans()):
                messages.append(ModelResponse(parts=[TextPart(f"bad output {words(draw(sizes))}")]))
                feedback = RetryFeedbackPart(f"invalid {words(draw(sizes))}", retry=RetryInfo(cause="model_retry"))
                messages.append(ModelRequest(parts=[feedback]))
                continue
            calls, returns = _tool_step(draw, ids, sizes)
            messages.append(ModelResponse(parts=calls))
            if draw(st.booleans()):
                messages.append(ModelRequest(parts=returns))
            else:
                messages.extend(ModelRequest(parts=[part]) for part in returns)
        # A turn may end on calls: answered at the end of history by nobody (pending), else by the
        # next turn's request, next to its user prompt.
        if draw(st.booleans()):
            messages.append(ModelResponse(parts=[TextPart(f"answer {words(draw(sizes))}")]))
        else:
            calls, returns = _tool_step(draw, ids, sizes)
            messages.append(ModelResponse(parts=calls))
            if turn < turns - 1:
                pending_results = list(returns)
    return messages


def _tool_step(
    draw: st.DrawFn, ids: itertools.count[int], sizes: st.SearchStrategy[int]
) -> tuple[list[ModelResponsePart], list[ModelRequestPart]]:
    calls: list[ModelResponsePart] = []
    returns: list[ModelRequestPart] = []
    if draw(st.booleans()):
        calls.append(ThinkingPart(f"thinking {words(draw(sizes))}"))
    if draw(st.booleans()):
        calls.append(TextPart(f"let me check {words(draw(sizes))}"))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        call_id = f"call_{next(ids)}"
        calls.append(ToolCallPart("search", {"query": words(draw(sizes))}, call_id))
        outcome = draw(st.sampled_from(["success", "success", "retried", "failed"]))
        returns.append(ToolReturnPart("search", f"result {words(draw(sizes))}", call_id, outcome=outcome))
    return calls, returns
