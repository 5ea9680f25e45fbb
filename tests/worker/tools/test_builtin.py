from __future__ import annotations

from typing import Any

import pytest
from pydantic_ai import Tool, ToolFailed
from pydantic_ai.toolsets import FunctionToolset

from mamba_worker.errors import UsageError
from mamba_worker.tools import (
    BUILTIN_TOOLS,
    IDEMPOTENT_METADATA_KEY,
    BashPolicy,
    SandboxRule,
    SandboxViolation,
    append_file,
    builtin_tools,
    builtin_toolset,
    is_idempotent,
    read_file,
    run_bash,
)
from mamba_worker.tools._builtin import describe_failure
from tests.worker.tools.conftest import Layout

EXPECTED_IDEMPOTENCY = {
    "read_file": True,
    "write_file": True,
    "append_file": False,
    "list_directory": True,
    "file_info": True,
    "delete_file": True,
    "move_file": False,
    "copy_file": True,
    "glob_search": True,
    "grep_search": True,
    "run_bash": False,
}


def test_all_eleven_tools_are_registered_with_their_idempotency() -> None:
    assert {name: tool.idempotent for name, tool in BUILTIN_TOOLS.items()} == EXPECTED_IDEMPOTENCY


@pytest.mark.parametrize("name", sorted(EXPECTED_IDEMPOTENCY))
def test_every_tool_is_a_pydantic_ai_tool_with_idempotency_metadata(name: str) -> None:
    tool = BUILTIN_TOOLS[name]

    assert isinstance(tool, Tool)
    assert tool.tool_def.metadata == {IDEMPOTENT_METADATA_KEY: EXPECTED_IDEMPOTENCY[name]}


@pytest.mark.parametrize("name", sorted(EXPECTED_IDEMPOTENCY))
def test_the_model_never_sees_operator_parameters(name: str) -> None:
    schema = BUILTIN_TOOLS[name].tool_def.parameters_json_schema

    assert not {"security", "policy", "max_output_chars"} & set(schema["properties"])
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("name", sorted(EXPECTED_IDEMPOTENCY))
def test_every_tool_describes_itself_and_its_parameters(name: str) -> None:
    definition = BUILTIN_TOOLS[name].tool_def

    assert definition.description
    assert all(spec.get("description") for spec in definition.parameters_json_schema["properties"].values())


def test_changing_tools_run_one_at_a_time_and_readers_in_parallel() -> None:
    sequential = {name for name, tool in BUILTIN_TOOLS.items() if tool.tool_def.sequential}

    assert sequential == {"write_file", "append_file", "delete_file", "move_file", "copy_file", "run_bash"}


def test_run_bash_timeout_has_a_ceiling_for_the_model() -> None:
    timeout = run_bash.tool_def.parameters_json_schema["properties"]["timeout"]

    assert (timeout["exclusiveMinimum"], timeout["maximum"]) == (0, 600)


def test_a_direct_call_raises_the_python_exception(tmp_path: Any) -> None:
    with pytest.raises(FileNotFoundError):
        read_file(tmp_path / "missing.txt")


def test_a_tool_looks_like_its_function() -> None:
    assert read_file.__name__ == "read_file"
    assert read_file.__doc__ is not None and read_file.__doc__.startswith("Read the whole content")


def test_bind_fixes_security_for_direct_calls_and_leaves_the_original_alone(layout: Layout) -> None:
    bound = read_file.bind(security=layout.security)

    assert bound is not read_file
    assert bound("inside.txt") == "hello from inside\n"
    with pytest.raises(SandboxViolation):
        bound("../outside/secret.txt")
    assert read_file.bound == {}
    assert "security" not in bound.tool_def.parameters_json_schema["properties"]


def test_bind_ignores_parameters_a_tool_does_not_have(layout: Layout) -> None:
    bound = read_file.bind(security=layout.security, policy=BashPolicy())

    assert set(bound.bound) == {"security"}


def test_builtin_tools_returns_fresh_bound_tools(layout: Layout) -> None:
    tools = builtin_tools(layout.security, bash_policy=BashPolicy(allowed_commands=["ls"]))

    assert [tool.name for tool in tools] == list(BUILTIN_TOOLS)
    assert all(tool is not BUILTIN_TOOLS[tool.name] for tool in tools)
    assert all(tool.bound["security"] is layout.security for tool in tools)
    assert [tool for tool in tools if tool.name == "run_bash"][0].bound["policy"].allowed_commands == {"ls"}


def test_builtin_tools_include_picks_tools(layout: Layout) -> None:
    tools = builtin_tools(layout.security, include=["grep_search", "read_file"])

    assert [tool.name for tool in tools] == ["grep_search", "read_file"]


def test_builtin_tools_rejects_unknown_names() -> None:
    with pytest.raises(UsageError, match="read_files"):
        builtin_tools(include=["read_files"])


def test_read_only_security_leaves_out_tools_that_could_only_fail(layout: Layout) -> None:
    security = layout.security.model_copy(update={"read_only": True})

    names = [tool.name for tool in builtin_tools(security)]
    with_policy = [tool.name for tool in builtin_tools(security, bash_policy=BashPolicy(allowed_commands=["ls"]))]

    assert names == ["read_file", "list_directory", "file_info", "glob_search", "grep_search"]
    assert with_policy == [*names, "run_bash"]


def test_builtin_toolset_is_a_function_toolset(layout: Layout) -> None:
    toolset = builtin_toolset(layout.security, include=["read_file"], id="files")

    assert isinstance(toolset, FunctionToolset)
    assert toolset.id == "files"
    assert list(toolset.tools) == ["read_file"]


def user_tool(x: int) -> int:
    """Double ``x``."""
    return 2 * x


@pytest.mark.parametrize(
    ("tool", "expected"),
    [
        ("read_file", True),
        ("append_file", False),
        ("not_a_builtin", None),
        (append_file, False),
        (read_file.python_function, True),
        (read_file.tool_def, True),
        (Tool(user_tool, metadata={"idempotent": True}), True),
        (Tool(user_tool, metadata={"idempotent": False}).tool_def, False),
        (Tool(user_tool), None),
        (user_tool, None),
    ],
)
def test_is_idempotent(tool: Any, expected: bool | None) -> None:
    assert is_idempotent(tool) is expected


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (FileNotFoundError(2, "No such file", "notes.txt"), "not found: notes.txt"),
        (PermissionError(13, "Permission denied", "/etc/shadow"), "permission denied: /etc/shadow"),
        (IsADirectoryError(21, "Is a directory", "src"), "is a directory: src"),
        (FileExistsError(17, "exists", "b.txt"), "already exists: b.txt"),
        (OSError(39, "Directory not empty", "a", None, "b"), "directory not empty: a -> b"),
        (
            SandboxViolation("'../x' resolves outside", path="../x", rule=SandboxRule.OUTSIDE_SANDBOX),
            "refused by the sandbox (outside_sandbox): '../x' resolves outside",
        ),
        (ValueError("the command is empty"), "the command is empty"),
        (RuntimeError("a bug"), None),
    ],
)
def test_describe_failure(error: Exception, message: str | None) -> None:
    assert describe_failure(error) == message


def test_the_agent_facing_call_turns_failures_into_tool_failed(layout: Layout) -> None:
    bound = read_file.bind(security=layout.security)

    with pytest.raises(ToolFailed) as caught:
        bound.function(path="missing.txt")  # type: ignore[call-arg]

    assert caught.value.message == "not found: missing.txt"
