"""What a message puts in front of the model: its text pieces and its media items.

`TokenCounter` counts tokens piece by piece, so each piece is exactly the text the model reads:
the tool name and the JSON arguments of a tool call, the text a tool return is rendered to,
the feedback a retry prompt shows, and so on. Media (images, audio, documents) are not text;
they are counted as items and priced at a flat `TokenizerConfig.media_tokens` each.

Parts are dispatched on their exact class through a table filled on first sight, so a history of
ten thousand messages costs one dictionary lookup per part, not a chain of ``isinstance`` calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic_ai.messages import (
    MULTI_MODAL_CONTENT_TYPES,
    BaseToolCallPart,
    BaseToolReturnPart,
    CachePoint,
    CapabilityLoadDeltaPart,
    CompactionPart,
    FilePart,
    InstructionBaselinePart,
    InstructionDeltaPart,
    ModelRequest,
    ModelResponse,
    ModelSettingsDeltaPart,
    RetryFeedbackPart,
    RetryPromptPart,
    SpeechPart,
    SystemPromptPart,
    TextContent,
    TextPart,
    ThinkingPart,
    ToolAvailabilityDeltaPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from mamba_worker.errors import UsageError

Collect = Callable[[Any, list[str]], int]
"""Appends a part's text pieces to the list and returns how many media items it holds."""


@dataclass(frozen=True, slots=True)
class PartRule:
    """How one part class is counted."""

    collect: Collect
    """Appends the part's text pieces; returns its media item count."""
    is_chat_message: bool
    """Whether a provider sends the part as a chat message of its own (and so it pays the overhead)."""


def _system_prompt(part: SystemPromptPart, texts: list[str]) -> int:
    texts.append(part.content)
    return 0


def _user_prompt(part: UserPromptPart, texts: list[str]) -> int:
    content = part.content
    if isinstance(content, str):
        texts.append(content)
        return 0
    return _user_content(content, texts)


def _user_content(items: Sequence[object], texts: list[str]) -> int:
    media = 0
    for item in items:
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, TextContent):  # StructuredContent too: `content` is what the model reads
            texts.append(item.content)
        elif isinstance(item, MULTI_MODAL_CONTENT_TYPES):
            media += 1
        elif isinstance(item, CachePoint):
            continue  # a marker for the provider's prompt cache; the model reads nothing
        else:
            texts.append(_json(item))
    return media


def _tool_return(part: BaseToolReturnPart[Any], texts: list[str]) -> int:
    texts.append(part.tool_name)
    content = part.content
    if type(content) is str and part.outcome == "success":
        # The common case, and the hot path of a re-count: the stored string itself, no rendering.
        texts.append(content)
        return 0
    texts.append(part.model_response_str())
    return len(part.files)


def _retry_feedback(part: RetryFeedbackPart | RetryPromptPart, texts: list[str]) -> int:
    texts.append(part.model_response())
    return 0


def _tool_call(part: BaseToolCallPart[Any], texts: list[str]) -> int:
    texts.append(part.tool_name)
    args = part.args
    if isinstance(args, str):
        texts.append(args)
    elif args:
        # What `args_as_json_str` renders for a dict, without its extra calls (this is a hot path).
        texts.append(pydantic_core.to_json(args).decode())
    return 0


def _text(part: TextPart | ThinkingPart, texts: list[str]) -> int:
    texts.append(part.content)
    return 0


def _compaction(part: CompactionPart, texts: list[str]) -> int:
    if part.content:
        texts.append(part.content)
    return 0


def _file(part: FilePart, texts: list[str]) -> int:
    return 1


def _speech(part: SpeechPart, texts: list[str]) -> int:
    if part.transcript:
        texts.append(part.transcript)
    return 0 if part.audio is None else 1


def _nothing(part: object, texts: list[str]) -> int:
    return 0


def _unknown(part: object, texts: list[str]) -> int:
    # A part class newer than this module: count its text content if it has any, else nothing.
    content = getattr(part, "content", None)
    if isinstance(content, str):
        texts.append(content)
    return 0


# Order matters: subclasses (typed tool parts, StructuredContent) must meet their base's rule.
_RULE_TABLE: tuple[tuple[type[Any] | tuple[type[Any], ...], PartRule], ...] = (
    (SystemPromptPart, PartRule(_system_prompt, is_chat_message=True)),
    (UserPromptPart, PartRule(_user_prompt, is_chat_message=True)),
    (BaseToolReturnPart, PartRule(_tool_return, is_chat_message=True)),
    ((RetryFeedbackPart, RetryPromptPart), PartRule(_retry_feedback, is_chat_message=True)),
    (BaseToolCallPart, PartRule(_tool_call, is_chat_message=True)),
    ((TextPart, ThinkingPart), PartRule(_text, is_chat_message=True)),
    (CompactionPart, PartRule(_compaction, is_chat_message=True)),
    (FilePart, PartRule(_file, is_chat_message=True)),
    (SpeechPart, PartRule(_speech, is_chat_message=True)),
    # Records of what changed between requests (instructions, tools, capabilities, settings). The
    # model receives their effect through the request's instructions and tool definitions, never
    # the records themselves.
    (
        (
            InstructionDeltaPart,
            InstructionBaselinePart,
            ToolAvailabilityDeltaPart,
            CapabilityLoadDeltaPart,
            ModelSettingsDeltaPart,
        ),
        PartRule(_nothing, is_chat_message=False),
    ),
)
_UNKNOWN_RULE = PartRule(_unknown, is_chat_message=True)
RULES_BY_CLASS: dict[type[Any], PartRule] = {}
"""The rule of each part class seen so far; `rule_for` fills it. Read it directly on hot paths."""


def rule_for(part: object) -> PartRule:
    """The rule for ``part``'s class, found once per class and remembered."""
    cls = type(part)
    rule = RULES_BY_CLASS.get(cls)
    if rule is None:
        rule = next((r for classes, r in _RULE_TABLE if issubclass(cls, classes)), _UNKNOWN_RULE)
        # A benign race: two threads may both compute the same rule; either write is correct.
        RULES_BY_CLASS[cls] = rule
    return rule


def collect_messages(messages: Iterable[object], texts: list[str]) -> tuple[int, int, str | None]:
    """Append the text pieces of ``messages`` to ``texts``.

    Returns:
        How many chat messages a provider would see (each request part, each response, each
        plain mapping), how many media items there are, and the latest request's instructions.

    Raises:
        UsageError: An item is neither a pydantic-ai message nor a mapping.
    """
    # The hot loop of a re-count, where everything else is a cache hit; so it is written flat:
    # locals only, and the four most common part shapes handled inline (a Python call per part
    # costs a third more). Each inline branch does exactly what that class's rule does
    # (tests/worker/tokens pins this); every other part goes through its rule.
    append = texts.append
    rules = RULES_BY_CLASS
    to_json = pydantic_core.to_json
    chat_messages = 0
    media = 0
    instructions: str | None = None
    for message in messages:
        if isinstance(message, ModelResponse):
            chat_messages += 1  # a response is one assistant message, whatever its parts
            for response_part in message.parts:
                if isinstance(response_part, TextPart):
                    append(response_part.content)
                elif isinstance(response_part, ToolCallPart):
                    append(response_part.tool_name)
                    args = response_part.args
                    if isinstance(args, str):
                        append(args)
                    elif args:
                        append(to_json(args).decode())
                else:
                    media += (rules.get(type(response_part)) or rule_for(response_part)).collect(response_part, texts)
        elif isinstance(message, ModelRequest):
            if message.instructions is not None:
                instructions = message.instructions
            for part in message.parts:
                if isinstance(part, UserPromptPart) and type(part.content) is str:
                    append(part.content)
                    chat_messages += 1
                elif isinstance(part, ToolReturnPart) and type(part.content) is str and part.outcome == "success":
                    append(part.tool_name)
                    append(part.content)
                    chat_messages += 1
                else:
                    rule = rules.get(type(part)) or rule_for(part)
                    media += rule.collect(part, texts)
                    chat_messages += rule.is_chat_message
        elif isinstance(message, Mapping):
            chat_messages += 1
            media += collect_mapping(message, texts)
        else:
            raise UsageError(
                f"Cannot count the tokens of a {type(message).__name__!r}: pass a pydantic-ai ModelRequest or "
                "ModelResponse, or a mapping such as {'role': 'user', 'content': 'Hi'}."
            )
    return chat_messages, media, instructions


def collect_mapping(message: Mapping[str, Any], texts: list[str]) -> int:
    """Collect a plain ``{"role": ..., "content": ...}`` chat message (OpenAI's shape).

    ``content`` may be a string, a list of content parts (``{"type": "text", "text": ...}``; parts
    without text, such as images, count as media), or absent. ``name`` and the ``tool_calls``
    function names and arguments count as text. The role is part of the per-message overhead.
    """
    media = _mapping_content(message.get("content"), texts)
    name = message.get("name")
    if isinstance(name, str):
        texts.append(name)
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, Sequence):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                _append_text(function.get("name"), texts)
                _append_text(function.get("arguments"), texts)
    return media


def _mapping_content(content: object, texts: list[str]) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        texts.append(content)
        return 0
    if isinstance(content, bytes | bytearray):
        return 1  # raw media bytes
    if isinstance(content, Sequence):
        media = 0
        for item in content:
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, Mapping) and isinstance(item.get("text"), str):
                texts.append(item["text"])
            else:
                media += 1  # image_url, input_audio, file: not text
        return media
    texts.append(_json(content))
    return 0


def _append_text(value: object, texts: list[str]) -> None:
    if isinstance(value, str):
        texts.append(value)
    elif value is not None:
        texts.append(_json(value))


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
