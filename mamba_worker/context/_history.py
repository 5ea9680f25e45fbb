"""The shape of a message history: turns, tool call pairing, and where it may be cut.

A history is valid for a model when (`validate_history`):

- it starts with a `ModelRequest`, and no message has zero parts;
- no two `ModelResponse`s are adjacent (consecutive `ModelRequest`s are allowed: pydantic-ai merges
  them into one before sending, and its own summaries rely on that);
- every tool result (a `ToolReturnPart`, or a legacy tool-bound `RetryPromptPart`) answers a
  `ToolCallPart` made earlier;
- every `ToolCallPart` is answered later, except calls in a final `ModelResponse` (the live frontier
  a run resumes from), when ``allow_pending_calls`` is set.

Native (provider-executed) tool parts live inside one response and are never paired across messages.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelRequestPart,
    ModelResponse,
    ModelResponsePart,
    RetryPromptPart,
    SystemPromptPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)


def is_tool_result(part: ModelRequestPart | ModelResponsePart) -> bool:
    """Whether ``part`` answers a `ToolCallPart` (a tool return, or a legacy tool-bound retry prompt)."""
    # A RetryPromptPart without a tool name is feedback about the whole response, bound to no call.
    return isinstance(part, ToolReturnPart) or (isinstance(part, RetryPromptPart) and part.tool_name is not None)


def result_call_id(part: ModelRequestPart | ModelResponsePart) -> str | None:
    """The id of the call ``part`` answers, or `None` when it answers none."""
    if isinstance(part, ToolReturnPart) or (isinstance(part, RetryPromptPart) and part.tool_name is not None):
        return part.tool_call_id
    return None


def is_turn_start(message: ModelMessage) -> bool:
    """Whether ``message`` opens a turn: a request that carries a user prompt."""
    if isinstance(message, ModelRequest):
        for part in message.parts:  # a loop, not any(<generator>): this runs for every message
            if isinstance(part, UserPromptPart):
                return True
    return False


def validate_history(messages: Sequence[ModelMessage], *, allow_pending_calls: bool = True) -> list[str]:
    """List what would make a model refuse this history; an empty list means it is valid.

    See the module docstring for the rules.

    Args:
        messages: The history, oldest first.
        allow_pending_calls: Accept unanswered tool calls in a final `ModelResponse`.

    Returns:
        One sentence per problem, naming the message index.
    """
    problems: list[str] = []
    if messages and isinstance(messages[0], ModelResponse):
        problems.append("message 0 is a model response; a history must start with a model request")
    calls: dict[str, tuple[int, str]] = {}
    answered: set[str] = set()
    for index, message in enumerate(messages):
        if not message.parts:
            problems.append(f"message {index} ({message.kind}) has no parts")
        if isinstance(message, ModelResponse):
            if index > 0 and isinstance(messages[index - 1], ModelResponse):
                problems.append(f"messages {index - 1} and {index} are consecutive model responses")
            for response_part in message.parts:
                if isinstance(response_part, ToolCallPart):
                    calls[response_part.tool_call_id] = (index, response_part.tool_name)
            continue
        for request_part in message.parts:
            call_id = result_call_id(request_part)
            if call_id is None:
                continue
            if call_id in calls:
                answered.add(call_id)
            else:
                problems.append(f"message {index} has a result for tool call {call_id!r} that was never made before it")
    last = len(messages) - 1
    for call_id, (index, tool_name) in calls.items():
        if call_id in answered or (allow_pending_calls and index == last):
            continue
        problems.append(f"message {index} has a call to {tool_name!r} ({call_id!r}) that is never answered")
    return problems


def cut_points(messages: Sequence[ModelMessage]) -> list[bool]:
    """``points[i]`` is true when the history may be cut between message ``i - 1`` and ``i``.

    That is when no tool call made before ``i`` is answered at or after ``i``. ``points`` has
    ``len(messages) + 1`` entries; the last (the end) is always true. Calls never answered (or
    answered before they were made) constrain nothing. O(n).
    """
    answered_at: dict[str, int] = {}
    for index, message in enumerate(messages):
        if isinstance(message, ModelRequest):
            for part in message.parts:
                if isinstance(part, ToolReturnPart):  # the common case, checked first
                    answered_at[part.tool_call_id] = index
                elif (call_id := result_call_id(part)) is not None:
                    answered_at[call_id] = index
    points = [True] * (len(messages) + 1)
    reach = -1  # the furthest message that answers a call made so far
    for index, message in enumerate(messages):
        points[index] = reach < index
        if isinstance(message, ModelResponse):
            for response_part in message.parts:
                if isinstance(response_part, ToolCallPart):
                    reach = max(reach, answered_at.get(response_part.tool_call_id, -1))
    return points


@dataclass(frozen=True, kw_only=True)
class HistoryLayout:
    """Where a history may be compacted: ``messages[prefix_end:tail_start]``, cut only at `cuts`.

    Built once per compaction in O(n) by `HistoryLayout.of`.
    """

    prefix_end: int
    """Leading requests made only of system prompts end here; they are always kept as they are."""
    tail_start: int
    """The protected tail (the last ``preserve_recent_turns`` turns, widened back to a cut point)."""
    cuts: tuple[int, ...]
    """Cut points in ``[prefix_end, tail_start]`` after which a `ModelRequest` (or the end) follows,
    ascending, always starting with ``prefix_end``. Removing ``messages[a:b]`` for two such cuts
    keeps every call paired and never makes two responses adjacent."""
    system_prompt: tuple[tuple[int, SystemPromptPart], ...]
    """The system prompt parts after ``prefix_end`` and before the first `ModelResponse`, with the
    index of the message holding each: *the* system prompt, which compaction always keeps."""

    @classmethod
    def of(
        cls, messages: Sequence[ModelMessage], *, preserve_recent_turns: int, keep_system_prompt: bool = True
    ) -> HistoryLayout:
        """Lay out ``messages`` for compaction, keeping the last ``preserve_recent_turns`` turns whole.

        With ``keep_system_prompt`` off, system prompts are compacted like any other content.
        """
        total = len(messages)
        prefix_end = 0
        while keep_system_prompt and prefix_end < total and _is_system_only(messages[prefix_end]):
            prefix_end += 1
        points = cut_points(messages)
        turns = [index for index in range(prefix_end, total) if is_turn_start(messages[index])]
        if preserve_recent_turns == 0:
            tail_start = total
        elif len(turns) < preserve_recent_turns:
            tail_start = prefix_end
        else:
            # A turn may open with the results of the previous turn's calls: protect from a cut point.
            tail_start = turns[-preserve_recent_turns]
            while tail_start > prefix_end and not points[tail_start]:
                tail_start -= 1
        cuts = [prefix_end]
        cuts.extend(
            index
            for index in range(prefix_end + 1, tail_start + 1)
            if points[index] and (index == total or isinstance(messages[index], ModelRequest))
        )
        system_prompt: list[tuple[int, SystemPromptPart]] = []
        for index in range(prefix_end, total if keep_system_prompt else 0):
            message = messages[index]
            if isinstance(message, ModelResponse):
                break
            system_prompt.extend((index, part) for part in message.parts if isinstance(part, SystemPromptPart))
        return cls(prefix_end=prefix_end, tail_start=tail_start, cuts=tuple(cuts), system_prompt=tuple(system_prompt))

    def system_parts(self, start: int, stop: int) -> list[ModelRequestPart]:
        """The system prompt parts in ``messages[start:stop]``, which removing those messages must keep."""
        first = bisect_left(self.system_prompt, start, key=lambda item: item[0])
        last = bisect_left(self.system_prompt, stop, key=lambda item: item[0])
        return [part for _, part in self.system_prompt[first:last]]


def _is_system_only(message: ModelMessage) -> bool:
    return (
        isinstance(message, ModelRequest)
        and bool(message.parts)
        and all(isinstance(part, SystemPromptPart) for part in message.parts)
    )
