"""`OfflineModel`: a deterministic model that needs no key and no server.

It lets ``mamba run`` work on a fresh machine, and gives demos and tests a real model to drive
the whole runtime with. What it does, in order:

1. After a tool ran, it reports the tool's result.
2. ``/tool <name> <json args>`` calls the named tool with those arguments (the only way it ever
   calls a tool, so a run's tool calls are exactly the ones the prompt asked for).
3. A question with arithmetic in it (``What is 2 + 2?``) gets the answer, computed with `ast`
   (never `eval`).
4. Anything else gets a short text saying this is the offline model and which setting selects
   a real one.

Everything is a pure function of the messages, so a replayed step gets the same answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, DeltaToolCall, DeltaToolCalls, FunctionModel
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.usage import RequestUsage

from mamba_worker.backends._arithmetic import find_and_evaluate, format_number

OFFLINE_MODEL_NAME: Final = "offline"

HELP_TEXT: Final = (
    "I am Mamba's offline model: I need no API key and no server, and I only do arithmetic "
    '(ask "What is 2 + 2?") and call tools you name with "/tool <name> <json args>". '
    "To use a real model, set MAMBA_MODEL_BACKEND__MODEL, for example "
    "MAMBA_MODEL_BACKEND__MODEL=openai:gpt-4o (with OPENAI_API_KEY or MAMBA_MODEL_BACKEND__API_KEY), "
    "or MAMBA_MODEL_BACKEND__MODEL=ollama:llama3.2 for a local Ollama server."
)
"""The answer to anything the offline model cannot do."""

_TOOL_COMMAND: Final = "/tool"


@dataclass(frozen=True)
class _Text:
    text: str


@dataclass(frozen=True)
class _Call:
    tool_name: str
    args: dict[str, Any]
    tool_call_id: str


_Reply = _Text | _Call


class OfflineModel(FunctionModel):
    """Mamba's built-in model for machines with no model configured.

    Example:
        >>> from pydantic_ai import Agent
        >>> Agent(OfflineModel()).run_sync("What is 2 + 2?").output
        '2 + 2 = 4'
    """

    def __init__(self) -> None:
        super().__init__(self._respond, stream_function=self._stream, model_name=OFFLINE_MODEL_NAME)
        # The system shows up in traces and message history as the provider's name.
        self._system = "mamba-offline"

    async def _respond(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        reply = _reply(messages, info)
        match reply:
            case _Text(text):
                parts: list[TextPart | ToolCallPart] = [TextPart(text)]
                output_chars = len(text)
            case _Call(name, args, call_id):
                parts = [ToolCallPart(name, args, tool_call_id=call_id)]
                output_chars = len(json.dumps(args)) + len(name)
        return ModelResponse(
            parts=parts,
            usage=RequestUsage(input_tokens=_tokens(_chars(messages)), output_tokens=_tokens(output_chars)),
            model_name=OFFLINE_MODEL_NAME,
        )

    async def _stream(self, messages: list[ModelMessage], info: AgentInfo) -> AsyncIterator[str | DeltaToolCalls]:
        reply = _reply(messages, info)
        match reply:
            case _Text(text):
                # Word by word, so streaming consumers see more than one delta.
                words = text.split(" ")
                for index, word in enumerate(words):
                    yield word if index == len(words) - 1 else word + " "
            case _Call(name, args, call_id):
                yield {0: DeltaToolCall(name=name, json_args=json.dumps(args), tool_call_id=call_id)}


def _reply(messages: Sequence[ModelMessage], info: AgentInfo) -> _Reply:
    finishing = _finishing_tool(info)
    if finishing is not None:
        return _finishing_reply(messages, info, finishing)
    last = messages[-1] if messages else None
    parts = last.parts if isinstance(last, ModelRequest) else ()
    returns = [part for part in parts if isinstance(part, ToolReturnPart)]
    if returns:
        return _as_output(_describe_returns(returns), info, len(messages))
    feedback = [part for part in parts if isinstance(part, RetryFeedbackPart)]
    if feedback:
        # Asked to try again: say what was wrong instead of repeating the same answer forever.
        return _Text(f"I cannot produce that: {feedback[-1].model_response()}")
    prompt = _last_prompt(messages)
    if prompt.startswith(_TOOL_COMMAND + " ") or prompt == _TOOL_COMMAND:
        return _tool_command(prompt, info, len(messages))
    found = find_and_evaluate(prompt)
    if found is not None:
        expression, value = found
        return _as_output(f"{expression} = {format_number(value)}", info, len(messages), value=value)
    return _as_output(HELP_TEXT, info, len(messages))


def _finishing_tool(info: AgentInfo) -> ToolDefinition | None:
    """A ``final_answer``-style tool (as ReAct offers): the way to give an answer in that loop."""
    for tool in info.function_tools:
        properties = tool.parameters_json_schema.get("properties", {})
        if tool.name.endswith("final_answer") and "answer" in properties:
            return tool
    return None


def _finishing_reply(messages: Sequence[ModelMessage], info: AgentInfo, finishing: ToolDefinition) -> _Reply:
    """In a loop that ends with a finishing tool: run the task's /tool once, then answer through it."""
    seq = len(messages)
    requests = [message for message in messages if isinstance(message, ModelRequest)]
    returns = [
        part
        for message in requests
        for part in message.parts
        if isinstance(part, ToolReturnPart) and part.tool_name != finishing.name
    ]
    if returns:
        return _Call(finishing.name, {"answer": _describe_returns(returns)}, _call_id(seq))
    task = next(
        (part.content for message in requests for part in message.parts if isinstance(part, UserPromptPart)), ""
    )
    task = task.strip() if isinstance(task, str) else ""
    if task.startswith(_TOOL_COMMAND + " "):
        reply = _tool_command(task, info, seq)
        if isinstance(reply, _Call):
            return reply
        return _Call(finishing.name, {"answer": reply.text}, _call_id(seq))
    found = find_and_evaluate(task)
    answer = f"{found[0]} = {format_number(found[1])}" if found is not None else HELP_TEXT
    return _Call(finishing.name, {"answer": answer}, _call_id(seq))


def _tool_command(prompt: str, info: AgentInfo, seq: int) -> _Reply:
    _, _, rest = prompt.partition(" ")
    name, _, raw_args = rest.strip().partition(" ")
    available = {tool.name: tool for tool in info.function_tools}
    if name not in available:
        names = ", ".join(sorted(available)) or "none"
        return _Text(f"There is no tool named {name!r}. Tools available: {names}.")
    try:
        args = json.loads(raw_args) if raw_args.strip() else {}
    except json.JSONDecodeError as error:
        return _Text(f"The arguments for {name!r} are not valid JSON ({error.msg}); write /tool {name} {{...}}.")
    if not isinstance(args, dict):
        return _Text(f"The arguments for {name!r} must be a JSON object, like /tool {name} {{...}}.")
    return _Call(name, args, _call_id(seq))


def _describe_returns(returns: Sequence[ToolReturnPart]) -> str:
    lines = []
    for part in returns:
        verb = "returned" if part.outcome == "success" else f"did not succeed ({part.outcome})"
        lines.append(f"The tool {part.tool_name!r} {verb}: {part.model_response_str()}")
    return "\n".join(lines)


def _as_output(text: str, info: AgentInfo, seq: int, *, value: float | None = None) -> _Reply:
    """Answer as text, or through the output tool when the agent wants structured output."""
    if info.allow_text_output or not info.output_tools:
        return _Text(text)
    tool = info.output_tools[0]
    return _Call(tool.name, _fill_output(tool, text, value), _call_id(seq))


def _fill_output(tool: ToolDefinition, text: str, value: float | None) -> dict[str, Any]:
    # Only the simplest output shape (one field) can be filled sensibly; anything else gets the
    # text in its first field, and the agent's validation says what is missing.
    properties: dict[str, Any] = tool.parameters_json_schema.get("properties", {})
    if not properties:
        return {}
    field, schema = next(iter(properties.items()))
    kind = schema.get("type") if isinstance(schema, dict) else None
    if value is not None and kind == "integer" and float(value).is_integer():
        return {field: int(value)}
    if value is not None and kind == "number":
        return {field: value}
    return {field: text}


def _last_prompt(messages: Sequence[ModelMessage]) -> str:
    for message in reversed(messages):
        if not isinstance(message, ModelRequest):
            continue
        for part in reversed(message.parts):
            if isinstance(part, UserPromptPart):
                content = part.content
                if isinstance(content, str):
                    return content.strip()
                return " ".join(item for item in content if isinstance(item, str)).strip()
    return ""


def _call_id(seq: int) -> str:
    # Deterministic, so a replayed step produces the same tool call id.
    return f"offline-call-{seq}"


def _chars(messages: Sequence[ModelMessage]) -> int:
    total = 0
    for message in messages:
        for part in message.parts:
            content = getattr(part, "content", None)
            if isinstance(content, str):
                total += len(content)
            elif isinstance(part, ToolCallPart):
                total += len(part.args_as_json_str())
    return total


def _tokens(chars: int) -> int:
    # About four characters per token, the usual rule of thumb for English text.
    return max(1, chars // 4)
