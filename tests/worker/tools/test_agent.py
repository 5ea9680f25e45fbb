"""The built-in tools inside a real pydantic-ai agent run (FunctionModel plays the model)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from mamba_worker.tools import builtin_tools, read_file, run_bash
from tests.worker.tools.conftest import Layout


class ScriptedModel:
    """Calls the given tools one response at a time, then answers with what it saw."""

    def __init__(self, calls: Sequence[tuple[str, dict[str, Any]]]) -> None:
        self.calls = list(calls)
        self.returns: list[ToolReturnPart] = []
        self.seen_tools: list[str] = []
        self.seen_parameters: dict[str, set[str]] = {}

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.seen_tools = [tool.name for tool in info.function_tools]
        self.seen_parameters = {t.name: set(t.parameters_json_schema["properties"]) for t in info.function_tools}
        last = messages[-1]
        if isinstance(last, ModelRequest):
            self.returns += [part for part in last.parts if isinstance(part, ToolReturnPart)]
        if self.calls:
            name, args = self.calls.pop(0)
            return ModelResponse(parts=[ToolCallPart(tool_name=name, args=args)])
        return ModelResponse(parts=[TextPart("done")])

    def model(self) -> FunctionModel:
        return FunctionModel(self)


def test_the_model_reads_a_file_and_gets_its_content(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("remember the milk")
    script = ScriptedModel([("read_file", {"path": str(tmp_path / "notes.txt")})])

    result = Agent(script.model(), tools=[read_file]).run_sync("read my notes")

    assert result.output == "done"
    assert [(r.outcome, r.content) for r in script.returns] == [("success", "remember the milk")]


def test_a_missing_file_reaches_the_model_as_a_readable_failure(tmp_path: Path) -> None:
    missing = str(tmp_path / "notes.txt")
    script = ScriptedModel([("read_file", {"path": missing})])

    result = Agent(script.model(), tools=[read_file]).run_sync("read my notes")

    assert result.output == "done"
    assert [(r.outcome, r.content) for r in script.returns] == [("failed", f"not found: {missing}")]


def test_the_model_never_sees_security_or_policy(layout: Layout) -> None:
    script = ScriptedModel([])

    Agent(script.model(), tools=builtin_tools(layout.security)).run_sync("hi")

    assert len(script.seen_tools) == 11
    assert not any({"security", "policy", "max_output_chars"} & params for params in script.seen_parameters.values())


def test_a_sandbox_escape_by_the_model_is_refused_and_reported(layout: Layout) -> None:
    before = layout.digest_outside()
    script = ScriptedModel(
        [
            ("write_file", {"path": "../outside/secret.txt", "content": "pwned"}),
            ("read_file", {"path": "link_to_outside_file.txt"}),
            ("read_file", {"path": "inside.txt"}),
        ]
    )

    Agent(script.model(), tools=builtin_tools(layout.security)).run_sync("go")

    outcomes = [(r.tool_name, r.outcome) for r in script.returns]
    assert outcomes == [("write_file", "failed"), ("read_file", "failed"), ("read_file", "success")]
    assert str(script.returns[0].content).startswith("refused by the sandbox (outside_sandbox):")
    assert script.returns[2].content == "hello from inside\n"
    assert layout.digest_outside() == before


def test_a_model_that_sends_its_own_security_cannot_lift_the_sandbox(layout: Layout) -> None:
    before = layout.digest_outside()
    unsafe = {"sandbox_mode": False, "base_directory": str(layout.outside)}
    script = ScriptedModel([("read_file", {"path": str(layout.outside / "secret.txt"), "security": unsafe})])

    Agent(script.model(), tools=builtin_tools(layout.security)).run_sync("go")

    [returned] = script.returns
    assert returned.outcome == "retried"  # the argument validator rejects the unknown parameter
    assert "security" in str(returned.content)
    assert "TOP SECRET" not in str(returned.content)
    assert layout.digest_outside() == before


def test_a_timeout_reaches_the_model_as_a_result(tmp_path: Path) -> None:
    script = ScriptedModel([("run_bash", {"command": "sleep 300", "timeout": 0.3})])

    Agent(script.model(), tools=[run_bash]).run_sync("go")

    [returned] = script.returns
    assert returned.outcome == "success"
    assert returned.content.timed_out
