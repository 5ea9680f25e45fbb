"""Errors raised by prompt management.

Every error here derives from `PromptError`, which derives from `MambaError`::

    MambaError
    └── PromptError                     anything that went wrong with a prompt template
        ├── InvalidTemplateNameError    the name or version is not a safe relative path
        ├── TemplateNotFoundError       no template of that name in that version, anywhere searched
        ├── TemplateSyntaxError         the template's source is not valid Jinja2 (file and line)
        └── TemplateRenderError         the template failed while rendering
            ├── MissingVariableError    strict mode: a variable the template reads was not passed
            └── TemplateSecurityError   the template tried something the sandbox forbids

Each keeps its attributes through pickling (the base's ``__reduce__``), and their messages
quote template names and variable names, never variable values (a value may be a secret).
"""

from __future__ import annotations

from mamba_worker.errors import MambaError

__all__ = [
    "InvalidTemplateNameError",
    "MissingVariableError",
    "PromptError",
    "TemplateNotFoundError",
    "TemplateRenderError",
    "TemplateSecurityError",
    "TemplateSyntaxError",
]


def _where(filename: str | None, lineno: int | None) -> str:
    if filename is None:
        return ""
    return f" ({filename}, line {lineno})" if lineno is not None else f" ({filename})"


class PromptError(MambaError):
    """Base class of every prompt-management error."""

    code = "prompt_error"


class InvalidTemplateNameError(PromptError):
    """A template name or version is not a plain relative path such as ``system/assistant``.

    Attributes:
        name: The name (or version) that was refused.
    """

    code = "invalid_template_name"

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message, name=name)
        self.name = name


class TemplateNotFoundError(PromptError):
    """No template has this name in this version, in any folder searched.

    Attributes:
        name: The template name asked for, such as ``system/assistant``.
        version: The version folder looked in, such as ``v1``.
        searched: The places looked in, in search order (folders, and ``<registered>`` for
            templates added with `PromptManager.register`).
        needed_by: When the missing template is one that another extends, includes or imports,
            the name of that other template; otherwise ``None``.
    """

    code = "template_not_found"

    def __init__(self, *, name: str, version: str, searched: list[str], needed_by: str | None = None) -> None:
        places = ", ".join(searched)
        wanted = f"Prompt template {name!r} (version {version!r})"
        if needed_by is not None:
            wanted += f", which {needed_by!r} extends, includes or imports,"
        message = (
            f"{wanted} was not found; looked in {places}. Create {version}/{name} with the configured file "
            "extension in your prompts_dir, register it with PromptManager.register(), or check the name and "
            "version."
        )
        super().__init__(message, name=name, version=version, searched=list(searched), needed_by=needed_by)
        self.name = name
        self.version = version
        self.searched = list(searched)
        self.needed_by = needed_by


class TemplateSyntaxError(PromptError):
    """A template's source is not valid Jinja2.

    Attributes:
        name: The template name asked for.
        filename: The file holding the bad syntax (it may be a template this one extends).
        lineno: The line of the bad syntax in that file.
        reason: Jinja2's description of the problem.
    """

    code = "template_syntax_error"

    def __init__(self, *, name: str, filename: str | None, lineno: int | None, reason: str) -> None:
        message = f"Prompt template {name!r} has a syntax error{_where(filename, lineno)}: {reason}. Fix the template."
        super().__init__(message, name=name, filename=filename, lineno=lineno, reason=reason)
        self.name = name
        self.filename = filename
        self.lineno = lineno
        self.reason = reason


class TemplateRenderError(PromptError):
    """A template failed while rendering.

    Attributes:
        name: The template name that was rendered.
        version: Its version.
        filename: The file where rendering failed, when known (it may be a parent template).
        lineno: The line in that file, when known.
        reason: What failed.
    """

    code = "template_render_error"

    def __init__(
        self,
        message: str,
        *,
        name: str,
        version: str,
        filename: str | None = None,
        lineno: int | None = None,
        reason: str,
    ) -> None:
        super().__init__(message, name=name, version=version, filename=filename, lineno=lineno, reason=reason)
        self.name = name
        self.version = version
        self.filename = filename
        self.lineno = lineno
        self.reason = reason

    @classmethod
    def for_failure(
        cls, *, name: str, version: str, filename: str | None, lineno: int | None, reason: str
    ) -> TemplateRenderError:
        """Build the error for a template that raised while rendering."""
        message = f"Prompt template {name!r} (version {version!r}) failed to render{_where(filename, lineno)}: {reason}"
        return cls(message, name=name, version=version, filename=filename, lineno=lineno, reason=reason)


class MissingVariableError(TemplateRenderError):
    """A variable the template reads was not passed (or a value passed lacks an attribute it reads).

    Raised in strict mode whenever a missing value is used; in non-strict mode only when a
    missing value is used in a way that cannot render as empty text (called, added to, ...).

    Attributes:
        variable: The missing variable (or attribute) name.
        attribute: ``True`` when ``variable`` is an attribute or key of a value that was passed,
            ``False`` when it is a top-level variable.
    """

    code = "missing_template_variable"

    def __init__(
        self,
        *,
        name: str,
        version: str,
        variable: str,
        attribute: bool = False,
        strict: bool = True,
        filename: str | None = None,
        lineno: int | None = None,
        reason: str,
    ) -> None:
        where = _where(filename, lineno)
        default = '{{ ... | default("...") }}'
        if attribute:
            message = (
                f"Prompt template {name!r} (version {version!r}) reads {variable!r}, which a value passed to it "
                f"does not have{where}: {reason}. Pass a value that has {variable!r}, or give it a default in the "
                f"template ({default})"
            )
        else:
            message = (
                f"Prompt template {name!r} (version {version!r}) needs the variable {variable!r}, which was not "
                f"passed{where}: {reason}. Pass {variable}=..., or give it a default in the template "
                f'({{{{ {variable} | default("...") }}}})'
            )
        message += ", or turn off strict_mode." if strict else "."
        super().__init__(message, name=name, version=version, filename=filename, lineno=lineno, reason=reason)
        self.variable = variable
        self.attribute = attribute
        self.details.update(variable=variable, attribute=attribute)


class TemplateSecurityError(TemplateRenderError):
    """The template tried something the sandbox forbids (private attributes, mutation, huge values).

    Templates may come from users, so they render in Jinja2's immutable sandbox; this error means
    the template must be changed, not the sandbox.
    """

    code = "template_security_error"

    def __init__(
        self, *, name: str, version: str, filename: str | None = None, lineno: int | None = None, reason: str
    ) -> None:
        message = (
            f"Prompt template {name!r} (version {version!r}) was stopped by the sandbox{_where(filename, lineno)}: "
            f"{reason}. Templates may only read public data they are given; remove that expression."
        )
        super().__init__(message, name=name, version=version, filename=filename, lineno=lineno, reason=reason)
