"""`PromptConfig` and `TemplateConfig`: where prompt templates live and how they render."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


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


class TemplateConfig(BaseModel):
    """A reference to a template plus the variables to render it with."""

    model_config = ConfigDict(extra="forbid")

    name: str
    """Template name, such as ``system/assistant``."""
    version: str | None = None
    """Version folder; ``None`` uses `PromptConfig.default_version`."""
    variables: dict[str, Any] = Field(default_factory=dict)
    """Variables passed to the template."""
