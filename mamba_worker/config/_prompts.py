"""`PromptConfig` and `TemplateConfig`: where prompt templates live and how they render."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

# A version is one plain folder name: no separators, no leading dot (so never "..").
_VERSION_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")


class PromptConfig(BaseModel):
    """Prompt management settings (the ``prompts`` section, ``MAMBA_PROMPTS__*``)."""

    model_config = ConfigDict(extra="forbid")

    prompts_dir: Path | None = None
    """Folder of versioned templates (``v1/``, ``v2/``). ``None``: the bundled defaults only."""
    default_version: str = "v1"
    """Version used when a template is asked for without one."""
    file_extension: str = ".jinja2"
    """Extension of template files."""
    enable_caching: bool = True
    """Cache compiled templates."""
    strict_mode: bool = False
    """Raise on a missing template variable instead of rendering it empty."""
    include_defaults: bool = True
    """Also search the templates bundled with Mamba (after ``prompts_dir``, which overrides them)."""
    normalize_whitespace: bool = True
    """Strip rendered prompts and collapse runs of blank lines, so that empty blocks leave no gaps."""

    @field_validator("default_version")
    @classmethod
    def _plain_folder_name(cls, value: str) -> str:
        if not _VERSION_RE.fullmatch(value):
            raise ValueError(f"default_version must be a plain folder name such as 'v1', not {value!r}")
        return value

    @field_validator("file_extension")
    @classmethod
    def _dotted_extension(cls, value: str) -> str:
        if not re.fullmatch(r"\.[A-Za-z0-9_.\-]+", value):
            raise ValueError(f"file_extension must start with a dot, such as '.jinja2', not {value!r}")
        return value


class TemplateConfig(BaseModel):
    """A reference to a template plus the variables to render it with."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Template name, such as ``system/assistant``."""
    version: str | None = None
    """Version folder; ``None`` uses `PromptConfig.default_version`."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Variables passed to the template."""
