"""`to_model_messages`: role/content dicts (and pydantic-ai messages) to pydantic-ai messages."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    ModelResponsePart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from mamba_worker.context.errors import MessageFormatError

_ROLES = ("system", "user", "assistant", "tool")


def to_model_messages(
    items: Iterable[ModelMessage | Mapping[str, Any]],
    *,
    history: Sequence[ModelMessage] = (),
) -> list[ModelMessage]:
    """Convert role/content dicts to pydantic-ai messages; pydantic-ai messages pass through unchanged.

    Each dict becomes exactly one message, so ``message_count`` matches what was added:

    - ``{"role": "system", "content": str}``: a `ModelRequest` with a `SystemPromptPart`.
    - ``{"role": "user", "content": str | list}``: a `ModelRequest` with a `UserPromptPart`. List items
      are pydantic-ai user content; OpenAI-style ``{"type": "text", "text": ...}`` items become text.
    - ``{"role": "assistant", "content": str | None, "tool_calls": [...]}``: a `ModelResponse` with a
      `TextPart` and one `ToolCallPart` per call. A call is OpenAI-shaped
      (``{"id", "function": {"name", "arguments"}}``) or flat (``{"id", "name", "args"}``).
    - ``{"role": "tool", "tool_call_id": str, "content": ..., "name": str}``: a `ModelRequest` with a
      `ToolReturnPart`. ``name`` may be left out when the call is in ``items`` or ``history``.

    Example:
        >>> [m.kind for m in to_model_messages([{"role": "user", "content": "Hi"}])]
        ['request']

    Args:
        items: Messages and dicts, oldest first.
        history: Messages already in the conversation, searched (newest first) for the name of a
            tool whose result a ``"tool"`` dict carries without ``name``.

    Returns:
        The messages, in the same order.

    Raises:
        MessageFormatError: An item is neither a message nor a dict of one of the shapes above.
    """
    converted: list[ModelMessage] = []
    call_names: dict[str, str] = {}
    for index, item in enumerate(items):
        if isinstance(item, ModelRequest | ModelResponse):
            message: ModelMessage = item
        elif isinstance(item, Mapping):
            message = _from_dict(item, index=index, call_names=call_names, history=history)
        else:
            raise MessageFormatError(
                f"item {index} is a {type(item).__name__}; pass pydantic-ai ModelRequest/ModelResponse "
                f"objects or dicts with 'role' ({', '.join(_ROLES)}) and 'content'",
                index=index,
            )
        if isinstance(message, ModelResponse):
            call_names.update((part.tool_call_id, part.tool_name) for part in message.tool_calls)
        converted.append(message)
    return converted


def _from_dict(
    item: Mapping[str, Any], *, index: int, call_names: Mapping[str, str], history: Sequence[ModelMessage]
) -> ModelMessage:
    role = item.get("role")
    content = item.get("content")
    if role == "system":
        return ModelRequest(parts=[SystemPromptPart(_text(content, index=index, role="system"))])
    if role == "user":
        return ModelRequest(parts=[UserPromptPart(_user_content(content, index=index))])
    if role == "assistant":
        return _assistant(item, index=index)
    if role == "tool":
        return _tool_result(item, index=index, call_names=call_names, history=history)
    raise MessageFormatError(f"item {index} has role {role!r}; use one of {', '.join(_ROLES)}", index=index)


def _text(content: object, *, index: int, role: str) -> str:
    if not isinstance(content, str) or not content:
        raise MessageFormatError(f"item {index} ({role}) needs 'content' as a non-empty string", index=index)
    return content


def _user_content(content: object, *, index: int) -> Any:
    if isinstance(content, str):
        return _text(content, index=index, role="user")
    if isinstance(content, Sequence) and content:
        # OpenAI-style text items are unwrapped; anything else must already be pydantic-ai user content
        # (UserPromptPart checks it and raises a ValueError naming the item).
        items = [item["text"] if isinstance(item, Mapping) and item.get("type") == "text" else item for item in content]
        try:
            UserPromptPart(items)
        except ValueError as exc:
            raise MessageFormatError(
                f"item {index} (user) has content pydantic-ai cannot send: {exc}", index=index
            ) from exc
        return items
    raise MessageFormatError(f"item {index} (user) needs 'content' as a string or a non-empty list", index=index)


def _assistant(item: Mapping[str, Any], *, index: int) -> ModelResponse:
    parts: list[ModelResponsePart] = []
    content = item.get("content")
    if content is not None and not isinstance(content, str):
        raise MessageFormatError(f"item {index} (assistant) needs 'content' as a string or None", index=index)
    if content:
        parts.append(TextPart(content))
    calls = item.get("tool_calls") or []
    if not isinstance(calls, Sequence) or isinstance(calls, str):
        raise MessageFormatError(f"item {index} (assistant) needs 'tool_calls' as a list", index=index)
    parts.extend(_tool_call(call, index=index) for call in calls)
    if not parts:
        raise MessageFormatError(
            f"item {index} (assistant) is empty: give it 'content' text or 'tool_calls'", index=index
        )
    return ModelResponse(parts=parts)


def _tool_call(call: object, *, index: int) -> ToolCallPart:
    if not isinstance(call, Mapping):
        raise MessageFormatError(f"item {index} (assistant) has a tool call that is not a dict", index=index)
    function = call.get("function")
    spec: Mapping[str, Any] = function if isinstance(function, Mapping) else call
    name = spec.get("name")
    args = spec.get("arguments", spec.get("args"))
    call_id = call.get("id")
    if not isinstance(name, str) or not name or not isinstance(call_id, str) or not call_id:
        raise MessageFormatError(
            f"item {index} (assistant) has a tool call without a string 'id' and 'name'", index=index
        )
    if args is not None and not isinstance(args, str | dict):
        raise MessageFormatError(
            f"item {index} (assistant) tool call {call_id!r} needs arguments as a JSON string or a dict", index=index
        )
    return ToolCallPart(tool_name=name, args=args, tool_call_id=call_id)


def _tool_result(
    item: Mapping[str, Any], *, index: int, call_names: Mapping[str, str], history: Sequence[ModelMessage]
) -> ModelRequest:
    call_id = item.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise MessageFormatError(f"item {index} (tool) needs 'tool_call_id' naming the call it answers", index=index)
    name = item.get("name", item.get("tool_name"))
    if name is None:
        name = call_names.get(call_id) or _name_in_history(call_id, history)
    if not isinstance(name, str) or not name:
        raise MessageFormatError(
            f"item {index} (tool) answers call {call_id!r}, which is not in this batch or the history; "
            "give the tool's 'name'",
            index=index,
        )
    return ModelRequest(parts=[ToolReturnPart(tool_name=name, content=item.get("content"), tool_call_id=call_id)])


def _name_in_history(call_id: str, history: Sequence[ModelMessage]) -> str | None:
    # Newest first: the call a result answers is almost always in the last response.
    for message in reversed(history):
        if isinstance(message, ModelResponse):
            for part in message.tool_calls:
                if part.tool_call_id == call_id:
                    return part.tool_name
    return None
