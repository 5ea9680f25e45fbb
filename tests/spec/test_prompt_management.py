"""Spec README, "Prompt Management": system prompts, the versioned template folder, PromptManager,
and the ReAct templates, as written.

Substitutions: ``"gpt-4o"`` is served by the fake OpenAI server (see ``conftest.py``);
``./prompts`` is built in a temporary working directory from the spec's tree, with the spec's
``base.jinja2`` and ``coder.jinja2`` verbatim.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests._support.openai_server import OpenAIServer

SPEC_BASE = """\
{% block persona %}You are a helpful AI assistant.{% endblock %}
{% block instructions %}{% endblock %}
{% block constraints %}{% endblock %}"""

SPEC_CODER = """\
{% extends "v1/base/base.jinja2" %}
{% block persona %}
You are an expert {{ language | default("Python") }} developer.
{% endblock %}
{% block instructions %}
Help the user write clean, efficient code.
{% endblock %}"""


def _system_message(server: OpenAIServer) -> str:
    first = server.last_body["messages"][0]
    assert first["role"] == "system"
    return str(first["content"])


def test_system_prompt_options(settings_env: OpenAIServer, capsys: pytest.CaptureFixture[str]) -> None:
    from mamba_worker import Agent
    from mamba_worker.prompts import PromptManager, TemplateConfig

    # Option 1: String prompt (backward compatible)
    agent = Agent("gpt-4o", system_prompt="You are a helpful assistant.")
    agent.run_sync("Hi")
    assert _system_message(settings_env) == "You are a helpful assistant."

    # Option 2: Template config (loads from file)
    agent = Agent(
        "gpt-4o",
        system_prompt=TemplateConfig(
            name="system/assistant",
            variables={"name": "Code Helper", "expertise": "Python"},
        ),
    )
    agent.run_sync("Hi")
    assert _system_message(settings_env).startswith("You are Code Helper, a helpful AI assistant.")
    assert "expertise in Python" in _system_message(settings_env)

    # Option 3: Pre-render template
    manager = PromptManager()
    prompt = manager.render("system/assistant", name="Code Helper")
    agent = Agent("gpt-4o", system_prompt=prompt)
    agent.run_sync("Hi")
    assert _system_message(settings_env) == prompt

    # Runtime prompt switching
    agent.set_system_prompt(
        TemplateConfig(
            name="system/coder",
            variables={"language": "Python"},
        )
    )
    # Get current prompt
    print(agent.get_system_prompt())

    assert capsys.readouterr().out.startswith("You are an expert Python developer.")
    agent.run_sync("And now?")
    assert _system_message(settings_env).startswith("You are an expert Python developer.")


@pytest.fixture
def prompts_tree(in_tmp_cwd: Path) -> Path:
    """The spec's ``prompts/`` tree, with its base and coder templates verbatim."""
    root = in_tmp_cwd / "prompts"
    files = {
        "v1/base/base.jinja2": SPEC_BASE,
        "v1/system/assistant.jinja2": (
            '{% extends "v1/base/base.jinja2" %}\n{% block persona %}You are {{ name }}, a {{ role }}.{% endblock %}'
        ),
        "v1/system/coder.jinja2": SPEC_CODER,
        "v1/workflow/react.jinja2": "Think, act, observe.",
        "v2/system/assistant.jinja2": "You are {{ name }} (v2).",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_prompt_manager(prompts_tree: Path) -> None:
    from mamba_worker.prompts import PromptConfig, PromptManager

    # Configure prompts directory
    config = PromptConfig(
        prompts_dir="./prompts",
        default_version="v1",
        enable_caching=True,
        strict_mode=False,  # Raise on missing variables
    )
    manager = PromptManager(config)
    # Load and render template
    template = manager.get("system/assistant")
    prompt = template.render(name="Helper", role="coding assistant")
    assert prompt == "You are Helper, a coding assistant."
    # Or render directly
    prompt = manager.render("system/assistant", name="Helper")
    assert prompt == "You are Helper, a ."  # strict_mode=False: the missing `role` renders empty
    # List available templates
    templates = manager.list_prompts(category="system")
    versions = manager.list_versions("system/assistant")
    assert {"system/assistant", "system/coder"} <= set(templates)
    assert all(name.startswith("system/") for name in templates)
    assert versions == ["v1", "v2"]
    # Register templates programmatically (useful for testing)
    manager.register("test/greeting", "Hello, {{ name }}!")
    result = manager.render("test/greeting", name="World")
    assert result == "Hello, World!"


def test_spec_child_template_extends_the_base(prompts_tree: Path) -> None:
    from mamba_worker.prompts import PromptConfig, PromptManager

    manager = PromptManager(PromptConfig(prompts_dir="./prompts", default_version="v1"))
    assert manager.render("system/coder", language="Rust") == (
        "You are an expert Rust developer.\n\nHelp the user write clean, efficient code."
    )
    assert manager.render("system/assistant", version="v2", name="Helper") == "You are Helper (v2)."


def test_strict_mode_raises_on_missing_variables(prompts_tree: Path) -> None:
    from mamba_worker.prompts import MissingVariableError, PromptConfig, PromptManager

    manager = PromptManager(PromptConfig(prompts_dir="./prompts", strict_mode=True))
    with pytest.raises(MissingVariableError, match="role"):
        manager.render("system/assistant", name="Helper")


async def test_react_workflow_templates(in_tmp_cwd: Path) -> None:
    from mamba_worker import Agent
    from mamba_worker.prompts import TemplateConfig
    from mamba_worker.workflows import ReActConfig, ReActWorkflow

    agent = Agent("offline")
    config = ReActConfig(
        system_prompt_template=TemplateConfig(name="workflow/react_system"),
        iteration_prompt_template=TemplateConfig(name="workflow/react_iteration"),
    )
    workflow = ReActWorkflow(agent, config=config)

    result = await workflow.run("What is 6 + 7?")
    assert result.success and result.output == "6 + 7 = 13"
    system = result.state.context.messages[0].parts[0].content
    assert "final_answer" in system  # rendered from workflow/react_system
