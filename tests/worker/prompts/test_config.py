from __future__ import annotations

import pytest
from pydantic import ValidationError

from mamba_worker.config import AgentSettings
from mamba_worker.prompts import PromptConfig


@pytest.mark.parametrize("version", ["../v1", "v1/x", ".v1", ""])
def test_default_version_must_be_a_plain_folder_name(version: str) -> None:
    with pytest.raises(ValidationError, match="default_version"):
        PromptConfig(default_version=version)


@pytest.mark.parametrize("extension", ["jinja2", ".", "../x", ".a/b"])
def test_file_extension_must_start_with_a_dot(extension: str) -> None:
    with pytest.raises(ValidationError, match="file_extension"):
        PromptConfig(file_extension=extension)


def test_prompts_section_reads_from_the_environment(monkeypatch: pytest.MonkeyPatch, in_tmp_cwd: object) -> None:
    monkeypatch.setenv("MAMBA_PROMPTS__STRICT_MODE", "true")
    monkeypatch.setenv("MAMBA_PROMPTS__DEFAULT_VERSION", "v2")

    prompts = AgentSettings().prompts

    assert (prompts.strict_mode, prompts.default_version) == (True, "v2")


def test_a_custom_extension_finds_templates(tmp_path: object) -> None:
    from pathlib import Path

    from mamba_worker.prompts import PromptManager

    root = Path(str(tmp_path))
    (root / "v1").mkdir()
    (root / "v1" / "greet.j2").write_text("hi {{ who }}")
    (root / "v1" / "ignored.jinja2").write_text("")
    manager = PromptManager(PromptConfig(prompts_dir=root, file_extension=".j2", include_defaults=False))

    assert manager.list_prompts() == ["greet"]
    assert manager.render("greet", who="you") == "hi you"
