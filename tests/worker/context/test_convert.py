from __future__ import annotations

import pickle

import pytest
from pydantic_ai.messages import (
    ModelRequest,
    ModelResponse,
    SystemPromptPart,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

from mamba_worker.context import MessageFormatError, to_model_messages
from mamba_worker.errors import UsageError
from tests.worker.context.histories import call, reply, user


def test_each_role_becomes_one_message_of_the_matching_kind() -> None:
    messages = to_model_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi there!"},
        ]
    )
    assert messages == [
        ModelRequest(parts=[SystemPromptPart("Be brief.", timestamp=messages[0].parts[0].timestamp)]),
        ModelRequest(parts=[UserPromptPart("Hello", timestamp=messages[1].parts[0].timestamp)]),
        ModelResponse(parts=[TextPart("Hi there!")], timestamp=messages[2].timestamp),
    ]


def test_pydantic_ai_messages_pass_through_as_the_same_objects() -> None:
    request, response = user("hi"), reply("hello")
    converted = to_model_messages([request, {"role": "user", "content": "more"}, response])
    assert converted[0] is request and converted[2] is response


def test_openai_style_tool_calls_and_results_pair_up() -> None:
    messages = to_model_messages(
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "contents"},
        ]
    )
    response, request = messages
    assert isinstance(response, ModelResponse) and isinstance(request, ModelRequest)
    assert response.parts == [ToolCallPart("read_file", '{"path": "a"}', "c1")]
    result = request.parts[0]
    assert isinstance(result, ToolReturnPart)
    assert (result.tool_name, result.tool_call_id, result.content) == ("read_file", "c1", "contents")


def test_flat_tool_calls_with_text_are_accepted() -> None:
    [response] = to_model_messages(
        [{"role": "assistant", "content": "Checking.", "tool_calls": [{"id": "c", "name": "grep", "args": {"q": 1}}]}]
    )
    assert isinstance(response, ModelResponse)
    assert [type(part) for part in response.parts] == [TextPart, ToolCallPart]


def test_a_tool_result_finds_its_tool_name_in_the_history() -> None:
    [request] = to_model_messages([{"role": "tool", "tool_call_id": "a", "content": "r"}], history=[call("a")])
    assert isinstance(request, ModelRequest)
    assert request.parts[0].tool_name == "lookup"  # type: ignore[union-attr]


def test_an_explicit_tool_name_wins() -> None:
    [request] = to_model_messages([{"role": "tool", "tool_call_id": "a", "name": "mine", "content": {"ok": True}}])
    part = request.parts[0]
    assert isinstance(part, ToolReturnPart)
    assert (part.tool_name, part.content) == ("mine", {"ok": True})


def test_openai_text_items_in_user_content_become_text() -> None:
    [request] = to_model_messages([{"role": "user", "content": [{"type": "text", "text": "hi"}, "there"]}])
    assert request.parts[0].content == ["hi", "there"]  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("item", "fragment"),
    [
        ({"role": "robot", "content": "x"}, "has role 'robot'"),
        ({"role": "user", "content": ""}, "needs 'content'"),
        ({"role": "system", "content": 3}, "needs 'content' as a non-empty string"),
        ({"role": "assistant", "content": None}, "is empty"),
        ({"role": "assistant", "tool_calls": [{"name": "x"}]}, "without a string 'id' and 'name'"),
        ({"role": "assistant", "tool_calls": [{"id": "a", "name": "x", "args": 3}]}, "JSON string or a dict"),
        ({"role": "tool", "content": "r"}, "needs 'tool_call_id'"),
        ({"role": "tool", "tool_call_id": "zz", "content": "r"}, "give the tool's 'name'"),
        ({"role": "user", "content": [{"a": 1}]}, "cannot send"),
    ],
)
def test_unreadable_dicts_are_refused_with_their_index(item: dict[str, object], fragment: str) -> None:
    with pytest.raises(MessageFormatError, match=fragment) as caught:
        to_model_messages([{"role": "user", "content": "fine"}, item])
    assert caught.value.index == 1


def test_objects_that_are_neither_messages_nor_dicts_are_refused() -> None:
    with pytest.raises(MessageFormatError, match="item 0 is a str"):
        to_model_messages(["hello"])  # type: ignore[list-item]


def test_the_format_error_is_a_usage_error_that_survives_pickling() -> None:
    error = MessageFormatError("bad", index=4)
    restored = pickle.loads(pickle.dumps(error))
    assert isinstance(restored, UsageError)
    assert (restored.index, restored.code, str(restored)) == (4, "invalid_message", "bad")
