"""The sandboxed Jinja2 environment prompts render in, and its undefined-variable policies.

Templates may come from users (a ``prompts_dir`` they edit, `PromptManager.register` with text
from a request), so they render in Jinja2's `ImmutableSandboxedEnvironment`: no private
attributes, no mutation of the values passed in. Mamba tightens it in two ways. An unsafe
attribute raises at once instead of turning into a silent empty value, so an attempt to escape
is reported, not hidden. And repetition and power operators are bounded, so a template cannot
exhaust memory or CPU with ``"x" * 10**12``.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, NoReturn, cast

from jinja2 import BaseLoader, ChainableUndefined, StrictUndefined, Undefined
from jinja2.exceptions import SecurityError, TemplateRuntimeError, UndefinedError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

# The longest string or sequence `*` may build, and the most bits `**` may produce. Prompts are
# far below both; anything above is a mistake or an attack.
MAX_REPEAT_LENGTH = 1_000_000
MAX_POWER_BITS = 4_096


class NamedUndefinedError(UndefinedError):
    """An `UndefinedError` that remembers which variable (or attribute) was missing."""

    def __init__(self, message: str | None = None, *, variable: str, attribute: bool) -> None:
        super().__init__(message)
        self.variable = variable
        self.attribute = attribute
        """Whether ``variable`` is an attribute or key of a value, rather than a top-level variable."""


def _exception_naming(name: object, obj: Any) -> type[TemplateRuntimeError]:
    # Jinja raises `self._undefined_exception(message)`; a partial carries the name along.
    partial = functools.partial(NamedUndefinedError, variable=str(name), attribute=obj is not missing)
    return cast("type[TemplateRuntimeError]", partial)


class StrictPromptUndefined(StrictUndefined):
    """Strict mode: printing, iterating or testing a missing variable raises `NamedUndefinedError`.

    ``default(...)`` and ``is defined`` still work, so templates can declare optional variables.
    """

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        super().__init__(hint, obj, name, _exception_naming(name, obj) if exc is UndefinedError else exc)


class LenientPromptUndefined(ChainableUndefined):
    """Non-strict mode: a missing variable, and any attribute of it, renders as empty text."""

    __slots__ = ()

    def __init__(
        self,
        hint: str | None = None,
        obj: Any = missing,
        name: str | None = None,
        exc: type[TemplateRuntimeError] = UndefinedError,
    ) -> None:
        super().__init__(hint, obj, name, _exception_naming(name, obj) if exc is UndefinedError else exc)


def _too_long(sequence: object, times: object) -> bool:
    return (
        isinstance(sequence, str | bytes | list | tuple)
        and isinstance(times, int)
        and len(sequence) * times > MAX_REPEAT_LENGTH
    )


class PromptSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with unsafe access raised at once and bounded ``*`` and ``**``."""

    intercepted_binops = frozenset({"*", "**"})

    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        """Refuse access to an unsafe attribute by raising, rather than rendering it empty."""
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed")

    def call_binop(self, context: Context, operator_: str, left: Any, right: Any) -> Any:
        """Apply ``*`` or ``**`` after checking that the result stays small."""
        if operator_ == "*" and (_too_long(left, right) or _too_long(right, left)):
            raise SecurityError(f"'*' would build a value longer than {MAX_REPEAT_LENGTH} items")
        if (
            operator_ == "**"
            and isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and right * abs(left).bit_length() > MAX_POWER_BITS
        ):
            raise SecurityError(f"'**' would build a number larger than {MAX_POWER_BITS} bits")
        return operator.mul(left, right) if operator_ == "*" else operator.pow(left, right)


def create_environment(*, loader: BaseLoader, strict: bool, caching: bool) -> PromptSandbox:
    """Build the environment a `PromptManager` renders with.

    Args:
        loader: Where templates come from (registered ones first, then folders).
        strict: Whether a missing variable raises (`StrictPromptUndefined`) or renders empty.
        caching: Whether compiled templates are kept. Files are never re-checked while cached
            (``auto_reload`` is off): `PromptManager.clear_cache` is the way to pick up edits.
    """
    undefined: type[Undefined] = StrictPromptUndefined if strict else LenientPromptUndefined
    return PromptSandbox(
        loader=loader,
        undefined=undefined,
        # Prompts are plain text for a model, not HTML: escaping would corrupt them.
        autoescape=False,
        keep_trailing_newline=False,
        auto_reload=False,
        cache_size=400 if caching else 0,
    )
