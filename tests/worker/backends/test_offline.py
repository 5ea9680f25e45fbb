from __future__ import annotations

import pytest
from pydantic_ai import Agent
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models import override_allow_model_requests

from mamba_worker.backends import OfflineModel


def _agent_with_add() -> Agent[None, str]:
    agent = Agent(OfflineModel())

    @agent.tool_plain
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    return agent


async def test_answers_two_plus_two() -> None:
    result = await Agent(OfflineModel()).run("What is 2 + 2?")

    assert result.output == "2 + 2 = 4"


async def test_needs_no_permission_for_model_requests() -> None:
    # The suite forbids real model requests; the offline model is not one.
    with override_allow_model_requests(False):
        result = await Agent(OfflineModel()).run("What is 6 * 7?")

    assert result.output == "6 * 7 = 42"


async def test_anything_else_gets_the_help_text_naming_the_setting() -> None:
    result = await Agent(OfflineModel()).run("Write me a poem about the sea")

    assert "offline model" in result.output
    assert "MAMBA_MODEL_BACKEND__MODEL=" in result.output


async def test_reports_usage_from_text_length() -> None:
    result = await Agent(OfflineModel()).run("What is 2 + 2?")

    usage = result.usage
    assert usage.requests == 1
    assert usage.input_tokens >= 1
    assert usage.output_tokens == max(1, len("2 + 2 = 4") // 4)


def test_model_name_is_offline() -> None:
    assert OfflineModel().model_name == "offline"


async def test_tool_command_calls_the_tool_and_reports_its_result() -> None:
    result = await _agent_with_add().run('/tool add {"a": 2, "b": 3}')

    calls = [
        p for m in result.all_messages() if isinstance(m, ModelResponse) for p in m.parts if isinstance(p, ToolCallPart)
    ]
    assert [(c.tool_name, c.args_as_dict()) for c in calls] == [("add", {"a": 2, "b": 3})]
    assert result.output == "The tool 'add' returned: 5"


async def test_never_calls_a_tool_without_the_command() -> None:
    result = await _agent_with_add().run("Please add 2 and 3 with your tool")

    assert len(result.all_messages()) == 2  # the prompt and one text answer


async def test_tool_command_for_an_unknown_tool_lists_the_tools() -> None:
    result = await _agent_with_add().run("/tool multiply {}")

    assert result.output == "There is no tool named 'multiply'. Tools available: add."


async def test_tool_command_with_bad_json_says_so() -> None:
    result = await _agent_with_add().run("/tool add {not json")

    assert "not valid JSON" in result.output


async def test_tool_call_ids_are_deterministic() -> None:
    first = await _agent_with_add().run('/tool add {"a": 1, "b": 1}')
    second = await _agent_with_add().run('/tool add {"a": 1, "b": 1}')

    def ids(result: object) -> list[str]:
        return [
            p.tool_call_id
            for m in result.all_messages()  # type: ignore[attr-defined]
            if isinstance(m, ModelResponse)
            for p in m.parts
            if isinstance(p, ToolCallPart)
        ]

    assert ids(first) == ids(second) != []


async def test_streams_the_answer() -> None:
    async with Agent(OfflineModel()).run_stream("What is 10 / 4?") as stream:
        deltas = [delta async for delta in stream.stream_text(delta=True, debounce_by=None)]

    assert "".join(deltas) == "10 / 4 = 2.5"
    assert len(deltas) > 1


async def test_streams_a_tool_call() -> None:
    async with _agent_with_add().run_stream('/tool add {"a": 4, "b": 4}') as stream:
        output = await stream.get_output()

    assert output == "The tool 'add' returned: 8"


@pytest.mark.parametrize(("output_type", "expected"), [(int, 42), (float, 42.0)])
async def test_fills_a_numeric_structured_output(output_type: type[float], expected: float) -> None:
    agent: Agent[None, float] = Agent(OfflineModel(), output_type=output_type)

    result = await agent.run("What is 6 * 7?")

    assert result.output == expected
