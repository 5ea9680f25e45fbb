from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mamba_worker.prompts import (
    MissingVariableError,
    PromptManager,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSyntaxError,
)

Write = Callable[[str, str], Path]
MakeManager = Callable[..., PromptManager]


def test_template_exposes_name_version_source_and_file(write: Write, make_manager: MakeManager) -> None:
    path = write("v2/system/x.jinja2", "Hi {{ who }}")

    template = make_manager().get("system/x", "v2")

    assert (template.name, template.version, template.source) == ("system/x", "v2", "Hi {{ who }}")
    assert template.filename == str(path)


def test_variables_include_those_of_parents_but_not_locals(write: Write, make_manager: MakeManager) -> None:
    write("v1/base.jinja2", "{{ title }} {% block body %}{% endblock %} {% include 'v1/footer.jinja2' %}")
    write("v1/footer.jinja2", "{{ signature }}")
    write(
        "v1/child.jinja2",
        '{% extends "v1/base.jinja2" %}{% block body %}{% set local = 1 %}'
        "{% for item in items %}{{ item }}{{ local }}{% endfor %}{{ extra | default('') }}{% endblock %}",
    )

    assert make_manager().get("child").variables == {"title", "items", "extra", "signature"}


def test_non_strict_mode_renders_missing_variables_and_their_attributes_empty(make_manager: MakeManager) -> None:
    manager = make_manager(strict_mode=False)
    manager.register("t", "[{{ missing }}|{{ user.profile.email }}|{% for x in nothing %}{{ x }}{% endfor %}]")

    assert manager.render("t") == "[||]"


def test_strict_mode_error_names_the_template_and_the_variable(write: Write, make_manager: MakeManager) -> None:
    path = write("v1/system/x.jinja2", "Hello\n{{ name }} uses {{ language }}")

    with pytest.raises(MissingVariableError) as info:
        make_manager(strict_mode=True).render("system/x", name="Ann")

    error = info.value
    assert (error.name, error.version, error.variable, error.attribute) == ("system/x", "v1", "language", False)
    assert (error.filename, error.lineno) == (str(path), 2)
    assert "'system/x'" in str(error)
    assert "'language'" in str(error)


def test_strict_mode_error_points_at_the_parent_line_that_failed(write: Write, make_manager: MakeManager) -> None:
    base = write("v1/base.jinja2", "top\n\n{{ header }}\n{% block b %}{% endblock %}")
    write("v1/child.jinja2", '{% extends "v1/base.jinja2" %}{% block b %}ok{% endblock %}')

    with pytest.raises(MissingVariableError) as info:
        make_manager(strict_mode=True).render("child")

    assert (info.value.name, info.value.variable) == ("child", "header")
    assert (info.value.filename, info.value.lineno) == (str(base), 3)


def test_strict_mode_names_a_missing_attribute_of_a_passed_value(make_manager: MakeManager) -> None:
    manager = make_manager(strict_mode=True)
    manager.register("t", "{{ user.email }}")

    with pytest.raises(MissingVariableError) as info:
        manager.render("t", user={"name": "Ann"})

    assert (info.value.variable, info.value.attribute) == ("email", True)


def test_strict_mode_still_honours_default_and_is_defined(make_manager: MakeManager) -> None:
    manager = make_manager(strict_mode=True)
    manager.register("t", "{{ a | default('A') }}{% if b is defined %}B{% else %}-{% endif %}")

    assert manager.render("t") == "A-"


def test_strict_mode_values_that_are_passed_render_normally(make_manager: MakeManager) -> None:
    manager = make_manager(strict_mode=True)
    manager.register("t", "{{ a }} {{ b.c }}")

    assert manager.render("t", a=1, b={"c": 2}) == "1 2"


def test_calling_a_missing_variable_fails_in_non_strict_mode_too(make_manager: MakeManager) -> None:
    manager = make_manager(strict_mode=False)
    manager.register("t", "{{ missing() }}")

    with pytest.raises(MissingVariableError) as info:
        manager.render("t")

    assert info.value.variable == "missing"
    assert "strict_mode" not in str(info.value)


def test_an_exception_in_called_code_is_wrapped_without_its_message(make_manager: MakeManager) -> None:
    class Vault:
        def open(self) -> str:
            raise ValueError("password=hunter2")

    manager = make_manager()
    manager.register("t", "{{ vault.open() }}")

    with pytest.raises(TemplateRenderError) as info:
        manager.render("t", vault=Vault())

    assert "ValueError" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_syntax_error_in_a_file_names_the_file_and_line(write: Write, make_manager: MakeManager) -> None:
    path = write("v1/bad.jinja2", "line one\nline two {{ oops \n")

    with pytest.raises(TemplateSyntaxError) as info:
        make_manager().get("bad")

    assert (info.value.name, info.value.filename, info.value.lineno) == ("bad", str(path), 2)


def test_syntax_error_in_a_parent_names_the_parent_file(write: Write, make_manager: MakeManager) -> None:
    parent = write("v1/parent.jinja2", "{% block b %}{% endblock %}{% endif %}")
    write("v1/child.jinja2", '{% extends "v1/parent.jinja2" %}')

    with pytest.raises(TemplateSyntaxError) as info:
        make_manager().render("child")

    assert info.value.filename == str(parent)


def test_not_found_error_for_an_include_names_the_included_template(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("t", "{% include 'v2/partials/gone.jinja2' %}")

    with pytest.raises(TemplateNotFoundError) as info:
        manager.render("t")

    assert (info.value.name, info.value.version, info.value.needed_by) == ("partials/gone", "v2", "t")


def test_output_is_stripped_and_blank_runs_collapse_by_default(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("t", "\n\n  first\n\n\n   \n\nsecond\n\n")

    assert manager.render("t") == "first\n\nsecond"


def test_normalize_whitespace_off_keeps_the_text_as_rendered(make_manager: MakeManager) -> None:
    manager = make_manager(normalize_whitespace=False)
    manager.register("t", "\n first\n\n\nsecond \n")

    assert manager.render("t") == "\n first\n\n\nsecond "


def test_output_is_not_html_escaped(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("t", "{{ code }}")

    assert manager.render("t", code="if a < b and c > d: print('&')") == "if a < b and c > d: print('&')"


def test_a_template_variable_may_be_called_name(make_manager: MakeManager) -> None:
    manager = make_manager()
    manager.register("t", "{{ name }}/{{ template_name }}")

    assert manager.render("t", name="N", template_name="T") == "N/T"
