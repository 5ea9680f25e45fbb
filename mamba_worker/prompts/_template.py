"""`PromptTemplate`: one compiled template, and the translation of Jinja2 failures into `PromptError`s."""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from mamba_worker.prompts._environment import NamedUndefinedError
from mamba_worker.prompts.errors import (
    MissingVariableError,
    PromptError,
    TemplateNotFoundError,
    TemplateRenderError,
    TemplateSecurityError,
    TemplateSyntaxError,
)

# Three or more line breaks with only blanks between them: what empty blocks leave behind.
_BLANK_RUN_RE = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def normalize_whitespace(text: str) -> str:
    """Strip a rendered prompt and collapse runs of blank lines into one blank line."""
    return _BLANK_RUN_RE.sub("\n\n", text).strip()


class PromptTemplate:
    """A compiled prompt template, ready to render.

    Obtain one from `PromptManager.get`; it stays valid while the manager lives, and renders
    in the manager's sandbox with its strict-mode setting.

    Example:
        ```python
        template = manager.get("system/assistant")
        template.variables  # frozenset({'name', 'role', 'expertise'})
        prompt = template.render(name="Helper", role="coding assistant")
        ```
    """

    def __init__(
        self,
        *,
        name: str,
        version: str,
        compiled: jinja2.Template,
        source: str,
        variables: frozenset[str],
        normalize: bool,
        searched: tuple[str, ...],
        extension: str,
        strict: bool,
    ) -> None:
        self._compiled = compiled
        self._normalize = normalize
        self._searched = searched
        self._extension = extension
        self._strict = strict
        self.name = name
        """The template name, such as ``system/assistant``."""
        self.version = version
        """The version folder it came from, such as ``v1``."""
        self.source = source
        """The template's own source text (not including templates it extends)."""
        self.filename = compiled.filename
        """The file it was loaded from, or ``<registered> ...`` for a registered template."""
        self.variables = variables
        """Variables the template, or a template it extends, includes or imports, may read."""

    def render(self, **variables: Any) -> str:
        """Render the template with ``variables``.

        The result is stripped, and runs of blank lines are collapsed into one when the
        manager's ``normalize_whitespace`` is on (the default), so empty blocks leave no gaps.

        Raises:
            MissingVariableError: Strict mode, and a variable the template reads was not passed.
            TemplateSecurityError: The template tried something the sandbox forbids.
            TemplateNotFoundError: A template this one extends or includes does not exist.
            TemplateSyntaxError: A template this one extends or includes is not valid Jinja2.
            TemplateRenderError: Anything else failed while rendering.
        """
        try:
            text = self._compiled.render(**variables)
        except Exception as exc:
            raise translate_error(
                exc,
                name=self.name,
                version=self.version,
                searched=self._searched,
                extension=self._extension,
                strict=self._strict,
            ) from exc
        return normalize_whitespace(text) if self._normalize else text

    def __repr__(self) -> str:
        return f"PromptTemplate(name={self.name!r}, version={self.version!r}, filename={self.filename!r})"


def _location(traceback: TracebackType | None) -> tuple[str | None, int | None]:
    # Jinja rewrites tracebacks so that frames inside templates carry the template's file name
    # and source line, and marks them with `__jinja_exception__` in their globals; the last such
    # frame is the innermost template line that failed (possibly in a parent template).
    filename: str | None = None
    lineno: int | None = None
    while traceback is not None:
        frame = traceback.tb_frame
        if "__jinja_exception__" in frame.f_globals:
            filename, lineno = frame.f_code.co_filename, traceback.tb_lineno
        traceback = traceback.tb_next
    return filename, lineno


def translate_error(
    exc: Exception, *, name: str, version: str, searched: Sequence[str], extension: str, strict: bool
) -> PromptError:
    """Turn an exception raised while loading or rendering ``name`` into the matching `PromptError`.

    Args:
        exc: The exception Jinja2 (or code a template called) raised.
        name: The template that was asked for.
        version: Its version.
        searched: The places templates are looked up in, for a not-found message.
        extension: The template file extension, to turn a Jinja2 path back into a name.
        strict: Whether the manager is in strict mode (changes only the advice in messages).
    """
    if isinstance(exc, PromptError):
        return exc
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return TemplateSyntaxError(
            name=name, filename=exc.filename or exc.name, lineno=exc.lineno, reason=exc.message or ""
        )
    if isinstance(exc, jinja2.TemplateNotFound):
        # Either the template itself or one it extends or includes is missing; name the missing
        # one, since that is the file to create.
        missing_version, _, missing_name = str(exc.name).partition("/")
        if (missing_version, missing_name) == (version, name + extension):
            return TemplateNotFoundError(name=name, version=version, searched=list(searched))
        return TemplateNotFoundError(
            name=missing_name.removesuffix(extension) or missing_version,
            version=missing_version if missing_name else "",
            searched=list(searched),
            needed_by=name,
        )
    filename, lineno = _location(exc.__traceback__)
    if isinstance(exc, NamedUndefinedError):
        return MissingVariableError(
            name=name,
            version=version,
            variable=exc.variable,
            attribute=exc.attribute,
            strict=strict,
            filename=filename,
            lineno=lineno,
            reason=str(exc),
        )
    if isinstance(exc, SecurityError):
        return TemplateSecurityError(name=name, version=version, filename=filename, lineno=lineno, reason=str(exc))
    if isinstance(exc, jinja2.TemplateError):
        reason = str(exc)
    else:
        # An exception from Python code the template called may quote variable values, which
        # may be secret: name only its type here; the original stays chained as the cause.
        reason = f"{type(exc).__name__} raised"
    return TemplateRenderError.for_failure(name=name, version=version, filename=filename, lineno=lineno, reason=reason)
