from __future__ import annotations

import warnings

from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryPromptPart,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from mamba_worker.context import validate_history
from mamba_worker.context._history import HistoryLayout, cut_points
from tests.worker.context.histories import call, chat, reply, results, tool_turn, user


def legacy_retry(*, tool_name: str | None, call_id: str) -> RetryPromptPart:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated in pydantic-ai 2, but older stored histories hold it
        return RetryPromptPart("try again", tool_name=tool_name, tool_call_id=call_id)


def test_a_chat_with_answered_tool_calls_is_valid() -> None:
    assert validate_history([*chat(2), *tool_turn(2, steps=2)]) == []


def test_an_empty_history_is_valid() -> None:
    assert validate_history([]) == []


def test_a_message_without_parts_is_reported() -> None:
    assert validate_history([user("hi"), ModelResponse(parts=[])]) == ["message 1 (response) has no parts"]


def test_a_result_without_its_call_is_reported() -> None:
    assert validate_history([user("hi"), reply("ok"), results("a")]) == [
        "message 2 has a result for tool call 'a' that was never made before it"
    ]


def test_a_result_before_its_call_is_reported() -> None:
    problems = validate_history([user("hi"), reply("ok"), results("a"), call("a")])
    assert problems[0] == "message 2 has a result for tool call 'a' that was never made before it"


def test_an_unanswered_call_in_the_middle_is_reported() -> None:
    assert validate_history([user("hi"), call("a"), user("again"), reply("ok")]) == [
        "message 1 has a call to 'lookup' ('a') that is never answered"
    ]


def test_unanswered_calls_at_the_end_are_allowed_only_when_asked() -> None:
    history: list[ModelMessage] = [user("hi"), call("a", "b")]

    assert validate_history(history) == []
    assert validate_history(history, allow_pending_calls=False) == [
        "message 1 has a call to 'lookup' ('a') that is never answered",
        "message 1 has a call to 'lookup' ('b') that is never answered",
    ]


def test_consecutive_responses_are_reported_but_consecutive_requests_are_not() -> None:
    assert validate_history([user("a"), user("b"), reply("c"), reply("d")]) == [
        "messages 2 and 3 are consecutive model responses"
    ]


def test_a_history_starting_with_a_response_is_reported() -> None:
    assert validate_history([reply("hello"), user("hi")]) == [
        "message 0 is a model response; a history must start with a model request"
    ]


def test_a_legacy_tool_retry_answers_its_call_and_a_toolless_one_needs_none() -> None:
    history: list[ModelMessage] = [
        user("hi"),
        call("a"),
        ModelRequest(parts=[legacy_retry(tool_name="lookup", call_id="a")]),
        reply("fixed"),
        ModelRequest(parts=[legacy_retry(tool_name=None, call_id="zzz")]),
    ]
    assert validate_history(history, allow_pending_calls=False) == []


def test_cut_points_exclude_positions_inside_a_tool_exchange() -> None:
    history = [user("q"), call("a", "b"), results("a"), results("b"), reply("done")]
    assert cut_points(history) == [True, True, False, False, True, True]


def test_cut_points_ignore_calls_that_are_never_answered() -> None:
    assert cut_points([user("q"), call("a")]) == [True, True, True]


def test_layout_keeps_system_only_requests_out_of_reach() -> None:
    history = [ModelRequest(parts=[SystemPromptPart("sys")]), *chat(3, system=None)]
    layout = HistoryLayout.of(history, preserve_recent_turns=1)
    assert (layout.prefix_end, layout.tail_start, layout.cuts) == (1, 5, (1, 3, 5))


def test_layout_widens_the_tail_back_to_the_call_its_first_turn_answers() -> None:
    history: list[ModelMessage] = [
        user("first"),
        reply("ok"),
        user("second"),
        call("a"),
        ModelRequest(parts=[ToolReturnPart("lookup", "r", "a"), UserPromptPart("third")]),
        reply("done"),
    ]
    layout = HistoryLayout.of(history, preserve_recent_turns=1)
    assert layout.tail_start == 3
    assert layout.cuts == (0, 2)


def test_layout_protects_everything_when_there_are_fewer_turns_than_preserved() -> None:
    layout = HistoryLayout.of(chat(2), preserve_recent_turns=3)
    assert (layout.tail_start, layout.cuts) == (0, (0,))


def test_layout_protects_nothing_when_no_turn_is_preserved() -> None:
    history = chat(2)
    layout = HistoryLayout.of(history, preserve_recent_turns=0)
    assert (layout.tail_start, layout.cuts) == (4, (0, 2, 4))


def test_layout_finds_the_system_prompt_before_the_first_response() -> None:
    history: list[ModelMessage] = [
        ModelRequest(parts=[SystemPromptPart("one"), UserPromptPart("hi")]),
        ModelResponse(parts=[TextPart("hello")]),
        ModelRequest(parts=[SystemPromptPart("later, not the system prompt"), UserPromptPart("again")]),
        ModelResponse(parts=[ToolCallPart("x", None, "c")]),
    ]
    layout = HistoryLayout.of(history, preserve_recent_turns=1)
    assert [part.content for part in layout.system_parts(0, 4)] == ["one"]  # type: ignore[attr-defined]
    assert layout.system_parts(1, 4) == []
