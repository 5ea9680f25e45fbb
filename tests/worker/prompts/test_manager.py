from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mamba_worker.prompts import (
    InvalidTemplateNameError,
    PromptConfig,
    PromptManager,
    TemplateConfig,
    TemplateNotFoundError,
    TemplateSyntaxError,
)

# The spec's example base and child templates, verbatim.
SPEC_BASE = """{% block persona %}You are a helpful AI assistant.{% endblock %}
{% block instructions %}{% endblock %}
{% block constraints %}{% endblock %}"""
SPEC_CODER = """{% extends "v1/base/base.jinja2" %}
{% block persona %}
You are an expert {{ language | default("Python") }} developer.
{% endblock %}
{% block instructions %}
Help the user write clean, efficient code.
{% endblock %}"""

Write = Callable[[str, str], Path]
MakeManager = Callable[..., PromptManager]


@pytest.fixture
def spec_dir(in_tmp_cwd: Path) -> Path:
    """A ./prompts folder laid out as in the spec, in a temporary working directory."""
    root = in_tmp_cwd / "prompts"
    files = {
        "v1/base/base.jinja2": SPEC_BASE,
        "v1/system/coder.jinja2": SPEC_CODER,
        "v1/system/assistant.jinja2": '{% extends "v1/base/base.jinja2" %}'
        "{% block persona %}You are {{ name }}, a {{ role | default('helpful assistant') }}.{% endblock %}",
        "v1/workflow/react.jinja2": "Use tools.",
        "v2/system/assistant.jinja2": "v2 {{ name }}",
    }
    for relative, source in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(source)
    return root


def test_spec_example_renders_from_a_relative_prompts_dir(spec_dir: Path) -> None:
    config = PromptConfig(
        prompts_dir="./prompts",  # type: ignore[arg-type]  # pydantic turns the str into a Path
        default_version="v1",
        enable_caching=True,
        strict_mode=False,  # Raise on missing variables
    )
    manager = PromptManager(config)

    template = manager.get("system/assistant")
    assert template.render(name="Helper", role="coding assistant") == "You are Helper, a coding assistant."
    assert manager.render("system/assistant", name="Helper") == "You are Helper, a helpful assistant."


def test_spec_example_lists_templates_and_versions(spec_dir: Path) -> None:
    manager = PromptManager(PromptConfig(prompts_dir="./prompts", include_defaults=False))  # type: ignore[arg-type]

    assert manager.list_prompts(category="system") == ["system/assistant", "system/coder"]
    assert manager.list_versions("system/assistant") == ["v1", "v2"]


def test_spec_example_register_renders_a_template_from_text() -> None:
    manager = PromptManager()
    manager.register("test/greeting", "Hello, {{ name }}!")

    assert manager.render("test/greeting", name="World") == "Hello, World!"


def test_spec_child_template_extends_the_base_by_its_versioned_path(spec_dir: Path) -> None:
    manager = PromptManager(PromptConfig(prompts_dir=spec_dir))

    assert manager.render("system/coder") == (
        "You are an expert Python developer.\n\nHelp the user write clean, efficient code."
    )
    assert manager.render("system/coder", language="Go").startswith("You are an expert Go developer.")


def test_render_config_uses_name_version_and_variables(spec_dir: Path) -> None:
    manager = PromptManager(PromptConfig(prompts_dir=spec_dir))

    config = TemplateConfig(name="system/assistant", version="v2", variables={"name": "Code Helper"})

    assert manager.render_config(config) == "v2 Code Helper"


def test_version_picks_the_folder_and_default_version_applies_without_one(
    write: Write, make_manager: MakeManager
) -> None:
    write("v1/greet.jinja2", "one")
    write("v2/greet.jinja2", "two")

    assert make_manager().render("greet") == "one"
    assert make_manager().render("greet", version="v2") == "two"
    assert make_manager(default_version="v2").render("greet") == "two"


def test_a_v2_template_extends_a_v1_template_and_calls_super(write: Write, make_manager: MakeManager) -> None:
    write("v1/base.jinja2", "{% block a %}A1{% endblock %}|{% block b %}B1{% endblock %}")
    write("v1/child.jinja2", '{% extends "v1/base.jinja2" %}{% block a %}A-child{% endblock %}')
    write("v2/child.jinja2", '{% extends "v1/child.jinja2" %}{% block b %}{{ super() }}+B2{% endblock %}')

    assert make_manager().render("child", version="v2") == "A-child|B1+B2"


def test_a_user_file_overrides_the_bundled_template_of_the_same_name(write: Write, make_manager: MakeManager) -> None:
    write("v1/system/assistant.jinja2", "mine")

    assert make_manager(include_defaults=True).render("system/assistant") == "mine"


def test_a_user_template_extends_a_bundled_base(write: Write, make_manager: MakeManager) -> None:
    write("v1/system/pirate.jinja2", '{% extends "v1/base/base.jinja2" %}{% block constraints %}Arr.{% endblock %}')

    rendered = make_manager(include_defaults=True).render("system/pirate")

    assert rendered == "You are a helpful AI assistant.\n\nArr."


def test_list_prompts_filters_by_category_and_version(write: Write, make_manager: MakeManager) -> None:
    write("v1/system/a.jinja2", "")
    write("v1/system/b.jinja2", "")
    write("v1/workflow/react/step.jinja2", "")
    write("v1/notes.txt", "not a template")
    write("v2/system/c.jinja2", "")
    manager = make_manager()

    assert manager.list_prompts() == ["system/a", "system/b", "workflow/react/step"]
    assert manager.list_prompts(category="system") == ["system/a", "system/b"]
    assert manager.list_prompts("workflow/react") == ["workflow/react/step"]
    assert manager.list_prompts(version="v2") == ["system/c"]
    assert manager.list_prompts(category="missing") == []


def test_list_versions_orders_by_number_not_text(write: Write, make_manager: MakeManager) -> None:
    for version in ("v10", "v2", "v1", "v1.5", "draft"):
        write(f"{version}/x.jinja2", version)
    write("v3/other.jinja2", "")

    assert make_manager().list_versions("x") == ["v1", "v1.5", "v2", "v10", "draft"]


def test_list_prompts_and_versions_include_registered_templates(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("test/greeting", "hi")
    manager.register("test/greeting", "hi v3", version="v3")

    assert manager.list_prompts(category="test") == ["test/greeting"]
    assert manager.list_versions("test/greeting") == ["v1", "v3"]
    assert manager.exists("test/greeting", version="v3")
    assert not manager.exists("test/greeting", version="v2")


def test_registered_template_overrides_a_file(write: Write, make_manager: MakeManager) -> None:
    write("v1/greet.jinja2", "from file")
    manager = make_manager()
    assert manager.render("greet") == "from file"

    manager.register("greet", "registered")

    assert manager.render("greet") == "registered"


def test_registering_a_parent_is_seen_by_a_cached_child(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("base", "[{% block body %}{% endblock %}]")
    manager.register("child", '{% extends "v1/base.jinja2" %}{% block body %}x{% endblock %}')
    assert manager.render("child") == "[x]"

    manager.register("base", "<{% block body %}{% endblock %}>")

    assert manager.render("child") == "<x>"


def test_register_rejects_invalid_syntax_at_once(make_manager: MakeManager) -> None:
    manager = make_manager()

    with pytest.raises(TemplateSyntaxError) as info:
        manager.register("broken", "ok\n{% if %}")

    assert info.value.lineno == 2
    assert not manager.exists("broken")


def test_a_cached_template_is_not_reread_until_clear_cache(write: Write, make_manager: MakeManager) -> None:
    path = write("v1/greet.jinja2", "old")
    manager = make_manager(enable_caching=True)
    assert manager.render("greet") == "old"

    path.write_text("new")
    assert manager.render("greet") == "old"

    manager.clear_cache()
    assert manager.render("greet") == "new"


def test_a_cached_parent_is_not_reread_until_clear_cache(write: Write, make_manager: MakeManager) -> None:
    base = write("v1/base.jinja2", "old {% block b %}{% endblock %}")
    write("v1/child.jinja2", '{% extends "v1/base.jinja2" %}{% block b %}x{% endblock %}')
    manager = make_manager(enable_caching=True)
    assert manager.render("child") == "old x"

    base.write_text("new {% block b %}{% endblock %}")
    assert manager.render("child") == "old x"

    manager.clear_cache()
    assert manager.render("child") == "new x"


def test_without_caching_every_get_reads_the_file(write: Write, make_manager: MakeManager) -> None:
    path = write("v1/greet.jinja2", "old")
    manager = make_manager(enable_caching=False)
    assert manager.render("greet") == "old"

    path.write_text("new")

    assert manager.render("greet") == "new"


def test_caching_returns_the_same_template_object(write: Write, make_manager: MakeManager) -> None:
    write("v1/greet.jinja2", "hi")

    cached = make_manager(enable_caching=True)
    uncached = make_manager(enable_caching=False)

    assert cached.get("greet") is cached.get("greet")
    assert uncached.get("greet") is not uncached.get("greet")


def test_missing_template_error_names_it_and_where_it_looked(prompts_dir: Path, make_manager: MakeManager) -> None:
    with pytest.raises(TemplateNotFoundError) as info:
        make_manager().get("system/nope", version="v3")

    error = info.value
    assert (error.name, error.version, error.needed_by) == ("system/nope", "v3", None)
    assert error.searched == ["<registered>", str(prompts_dir.resolve())]
    assert "'system/nope'" in str(error)
    assert str(prompts_dir.resolve()) in str(error)


def test_missing_parent_error_names_the_parent(write: Write, make_manager: MakeManager) -> None:
    write("v1/child.jinja2", '{% extends "v1/base/gone.jinja2" %}')

    with pytest.raises(TemplateNotFoundError) as info:
        make_manager().render("child")

    assert (info.value.name, info.value.version, info.value.needed_by) == ("base/gone", "v1", "child")


@pytest.mark.parametrize("name", ["../secret", "/etc/passwd", "a//b", ".hidden", "a/../b", "a\\b", ""])
def test_names_that_escape_the_folder_are_refused(make_manager: MakeManager, name: str) -> None:
    with pytest.raises(InvalidTemplateNameError):
        make_manager().get(name)


def test_versions_that_escape_the_folder_are_refused(make_manager: MakeManager) -> None:
    with pytest.raises(InvalidTemplateNameError):
        make_manager().get("x", version="../v1")


def test_a_missing_prompts_dir_leaves_the_bundled_templates(tmp_path: Path) -> None:
    manager = PromptManager(PromptConfig(prompts_dir=tmp_path / "absent"))

    assert "system/assistant" in manager.list_prompts()
    assert str(tmp_path / "absent") not in manager.search_path
