"""Prompt management: versioned Jinja2 templates with inheritance, rendered in a sandbox.

Owns `PromptManager` and `PromptTemplate`, the sandboxed environment templates render in, the
lookup of versioned template folders (the user's ``prompts_dir`` over the defaults bundled from
the repository's top-level ``prompts/``), and the `PromptError` tree in
`mamba_worker.prompts.errors`. Re-exports `PromptConfig` and `TemplateConfig` from
`mamba_worker.config`, where they live as data.

Layer 2: imports only `mamba_worker.config` and `mamba_worker.errors`, never its siblings
(tools, mcp, tokens, backends, observability) or anything above.
"""

from mamba_worker.config import PromptConfig, TemplateConfig
from mamba_worker.prompts._manager import PromptManager
from mamba_worker.prompts._template import PromptTemplate
from mamba_worker.prompts.errors import (
    InvalidTemplateNameError,
    MissingVariableError,
    PromptError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

__all__ = [
    "InvalidTemplateNameError",
    "MissingVariableError",
    "PromptConfig",
    "PromptError",
    "PromptManager",
    "PromptTemplate",
    "TemplateConfig",
    "TemplateNotFoundError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
]
