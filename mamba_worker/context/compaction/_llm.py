"""What the LLM strategies share: choosing their model, rendering messages as text, asking once."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pydantic_ai.direct import model_request
from pydantic_ai.messages import (
    CompactionPart,
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    RetryFeedbackPart,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models import Model, infer_model

from mamba_worker.context.errors import CompactionError
from mamba_worker.errors import UsageError

MAX_PART_CHARS = 2_000
"""Longest text one part contributes to a transcript; a model asked to summarise or score needs the
gist of a tool result, not all of it, and long results would crowd out the rest."""


def choose_model(own: Model | None, configured: str | None, fallback: Model | None, *, strategy: str) -> Model:
    """The model a strategy asks: its own, else the one the config names, else the caller's."""
    if own is not None:
        return own
    if configured is not None:
        return infer_model(configured)
    if fallback is not None:
        return fallback
    setting = "summarization_model" if strategy == "summarize_older" else "scoring_model"
    raise UsageError(
        f"the {strategy} strategy needs a model: pass model= to compact() or to the strategy, "
        f"or set CompactionConfig.{setting}"
    )


async def ask(model: Model, *, instructions: str, prompt: str, strategy: str) -> str:
    """Send one request to ``model`` and return its text answer.

    Raises:
        CompactionError: The model call failed; the message names the error type, never its content,
            which may echo the prompt.
    """
    request = ModelRequest(parts=[SystemPromptPart(instructions), UserPromptPart(prompt)])
    try:
        response = await model_request(model, [request])
    except Exception as exc:  # any provider or transport failure; the cause stays chained
        raise CompactionError(
            f"{strategy} could not ask {model.model_name!r}: {type(exc).__name__}; "
            "check the model settings or choose a strategy that needs no model",
            strategy=strategy,
        ) from exc
    return response.text or ""


def render(messages: Iterable[ModelMessage], *, max_part_chars: int = MAX_PART_CHARS) -> str:
    """Render messages as a plain transcript, one line group per part, for a model to read."""
    lines: list[str] = []
    for message in messages:
        parts: Sequence[ModelRequestPart | ModelResponsePart] = message.parts
        for part in parts:
            line = _render_part(part, in_response=isinstance(message, ModelResponse))
            if line is not None:
                lines.append(_clip(line, max_part_chars))
    return "\n".join(lines)


def _render_part(part: ModelRequestPart | ModelResponsePart, *, in_response: bool) -> str | None:
    if isinstance(part, SystemPromptPart):
        return f"System: {part.content}"
    if isinstance(part, UserPromptPart):
        return f"User: {_user_text(part)}"
    if isinstance(part, CompactionPart):
        return f"Summary of the conversation before this point: {part.content}" if part.content else None
    if isinstance(part, TextPart):
        return f"Assistant: {part.content}"
    if isinstance(part, ToolCallPart):
        return f"Assistant called {part.tool_name}({part.args_as_json_str()})"
    if isinstance(part, ToolReturnPart):
        outcome = "" if part.outcome == "success" else f" ({part.outcome})"
        return f"{part.tool_name} returned{outcome}: {part.model_response_str()}"
    if isinstance(part, RetryFeedbackPart | RetryPromptPart):
        return f"Feedback to the assistant: {part.model_response()}"
    # Thinking, files and framework bookkeeping parts carry nothing a summary needs.
    return None


def _user_text(part: UserPromptPart) -> str:
    if isinstance(part.content, str):
        return part.content
    return " ".join(item if isinstance(item, str) else f"[{type(item).__name__}]" for item in part.content)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit} more characters]"


def extract_json(text: str) -> object:
    """The first JSON object or array in ``text`` (models wrap answers in prose and code fences).

    Returns:
        The decoded value, or `None` when there is none.
    """
    decoder = json.JSONDecoder()
    for index, char in enumerate(text):
        if char in "{[":
            try:
                value, _ = decoder.raw_decode(text, index)
            except json.JSONDecodeError:
                continue
            return value
    return None
