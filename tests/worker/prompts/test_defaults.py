# ruff: noqa: E501  (inline snapshots hold whole prompt lines)
from __future__ import annotations

from pathlib import Path

import pytest
from inline_snapshot import snapshot

from mamba_worker.prompts import MissingVariableError, PromptConfig, PromptManager
from mamba_worker.prompts._loader import bundled_templates_dir

DEFAULTS = ["base/base", "system/assistant", "system/coder", "workflow/react_iteration", "workflow/react_system"]
REPO_PROMPTS = Path(__file__).resolve().parents[3] / "prompts"


@pytest.fixture
def strict() -> PromptManager:
    return PromptManager(PromptConfig(strict_mode=True))


def test_bundled_defaults_come_from_the_top_level_prompts_folder_in_a_checkout() -> None:
    assert bundled_templates_dir() == REPO_PROMPTS


def test_a_plain_manager_finds_every_default_template() -> None:
    manager = PromptManager()

    assert manager.list_prompts() == DEFAULTS
    assert manager.list_versions("system/assistant") == ["v1", "v2"]


def test_include_defaults_off_hides_the_bundled_templates() -> None:
    assert PromptManager(PromptConfig(include_defaults=False)).list_prompts() == []


@pytest.mark.parametrize("name", ["base/base", "system/assistant", "system/coder", "workflow/react_system"])
def test_defaults_render_in_strict_mode_without_variables(strict: PromptManager, name: str) -> None:
    assert strict.render(name).startswith("You are")


def test_assistant_uses_name_role_and_expertise(strict: PromptManager) -> None:
    first_lines = strict.render("system/assistant", name="Helper", role="coding assistant", expertise="Python")

    assert first_lines.splitlines()[:2] == [
        "You are Helper, a coding assistant.",
        "You have deep expertise in Python: bring it to bear whenever it is relevant, and say so when a question"
        " falls outside it.",
    ]


@pytest.mark.parametrize(
    ("role", "opening"),
    [("expert", "You are an expert."), ("an expert in SQL", "You are an expert in SQL."), ("", "You are a helpful")],
)
def test_assistant_picks_the_article_for_the_role(strict: PromptManager, role: str, opening: str) -> None:
    assert strict.render("system/assistant", role=role).startswith(opening)


def test_assistant_v2_extends_v1_and_adds_the_audience(strict: PromptManager) -> None:
    v1 = strict.render("system/assistant", name="Helper")
    v2 = strict.render("system/assistant", version="v2", name="Helper", audience="new programmers")

    assert v2.startswith("You are Helper, a helpful AI assistant.")
    assert "Your audience is new programmers" in v2
    assert "Your audience" not in v1
    assert v1.split("Rules:")[1] == v2.split("Rules:")[1]


def test_coder_uses_the_language(strict: PromptManager) -> None:
    assert strict.render("system/coder").startswith("You are an expert Python developer.")
    assert strict.render("system/coder", language="Rust").startswith("You are an expert Rust developer.")


def test_react_system_lists_the_tools_and_the_final_answer_tool(strict: PromptManager) -> None:
    rendered = strict.render(
        "workflow/react_system",
        tools=[{"name": "read_file", "description": "Read a file. "}, {"name": "bash", "description": ""}],
        final_answer_tool_name="submit",
        reasoning_prefix="Reason: ",
        action_prefix="Do:",
        observation_prefix="Saw:",
        max_iterations=7,
    )

    assert rendered.split("Rules:")[0] == snapshot("""\
You are a methodical problem solver. You complete tasks by reasoning step by step and using tools to gather information and take actions, until you can give a final answer you are confident in.

Work in a loop of reasoning, acting and observing:
1. Reason: Think about what you know, what is still missing, and the single most useful next step. Keep it short and concrete.
2. Do: Call one tool to take that step, with exactly the arguments it expects.
3. Saw: The tool's result comes back to you. Check whether it answers your question, contradicts an earlier assumption, or reports an error, and adjust your plan.

Repeat until you can answer the task, then call `submit` with your complete final answer. The task ends only when you call `submit`: a plain text reply does not finish it.
You have at most 7 iterations, so make each one count. If you are about to run out, call `submit` with the best answer you have and say what remains uncertain.

Available tools:
- read_file: Read a file.
- bash
- submit: finish the task and give your final answer.

""")


def test_react_system_without_tools_has_no_tool_list(strict: PromptManager) -> None:
    assert "Available tools" not in strict.render("workflow/react_system")


def test_react_iteration_shows_the_recent_steps(strict: PromptManager) -> None:
    rendered = strict.render(
        "workflow/react_iteration",
        iteration=3,
        max_iterations=10,
        task="Find the bug in main.py",
        scratchpad=[
            {"entry_type": "thought", "content": "Read main.py first."},
            {"entry_type": "action", "content": "read_file(path='main.py')"},
            {"entry_type": "observation", "content": "No such file", "is_error": True},
            {"kind": "observation", "content": "def main(): ..."},
            "Thought: preformatted",
        ],
    )

    assert rendered == snapshot("""\
Iteration 3 of 10.

Task: Find the bug in main.py

Your most recent steps:
Thought: Read main.py first.
Action: read_file(path='main.py')
Observation: [error] No such file
Observation: def main(): ...
Thought: preformatted

Continue. Reflect on the latest observation, then take the next action, or call `final_answer` with your complete answer if you have enough information.\
""")


def test_react_iteration_accepts_a_preformatted_scratchpad(strict: PromptManager) -> None:
    rendered = strict.render("workflow/react_iteration", iteration=2, scratchpad="Thought: a\nAction: b\n")

    assert rendered.splitlines()[:5] == ["Iteration 2.", "", "Your most recent steps:", "Thought: a", "Action: b"]


def test_react_iteration_insists_on_the_final_answer_on_the_last_iteration(strict: PromptManager) -> None:
    rendered = strict.render("workflow/react_iteration", iteration=5, max_iterations=5, final_answer_tool_name="done")

    assert "This is your last iteration. Call `done` now" in rendered


def test_react_iteration_insists_on_acting_when_forced(strict: PromptManager) -> None:
    assert "Act now" in strict.render("workflow/react_iteration", iteration=4, force_action=True)


def test_react_iteration_requires_the_iteration_in_strict_mode(strict: PromptManager) -> None:
    with pytest.raises(MissingVariableError) as info:
        strict.render("workflow/react_iteration")

    assert (info.value.name, info.value.variable) == ("workflow/react_iteration", "iteration")


def test_default_templates_document_their_variables() -> None:
    for name in DEFAULTS:
        source = (REPO_PROMPTS / "v1" / f"{name}.jinja2").read_text()
        assert source.startswith("{#-"), name
        variables = PromptManager().get(name).variables
        header = source.split("-#}")[0]
        assert all(variable in header for variable in variables), (name, variables)
