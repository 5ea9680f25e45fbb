"""`BuiltinTool`: one object that is both a plain Python function and a pydantic-ai `Tool`.

``read_file("config.json")`` calls the function and raises the usual Python exceptions.
``Agent(..., tools=[read_file])`` registers the same object as a tool, and then two things differ:

- The model never sees the operator's parameters (``security``, ``policy``, ``max_output_chars``):
  the agent-facing signature leaves them out, so the JSON schema does not offer them and the
  argument validator drops them if a model sends them anyway. `BuiltinTool.bind` fixes their values
  for the agent (and for direct calls).
- A failure the model can react to (file not found, permission denied, a sandbox refusal, a bad
  regular expression) becomes a failed tool result through pydantic-ai's `ToolFailed`: the model
  reads the message and the run goes on. `ToolFailed` was chosen over `ModelRetry` because these
  are answers, not malformed calls: they do not spend the tool's retry budget and carry no
  "fix your arguments" framing. Any other exception is a bug and still ends the run.

Each tool declares whether it is idempotent, in `BuiltinTool.idempotent` and in the tool
definition's ``metadata["idempotent"]``, which the durable runtime reads to decide what may be run
again after a crash.

The module-level tools (``read_file``, ...) are shared objects. pydantic-ai's `Agent` leaves them as
they are, but a `FunctionToolset` built with its own ``max_retries`` or ``metadata`` writes those onto
the tools it is given; use `builtin_tools` (fresh objects) in that case.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import typing
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from pydantic_ai import Tool, ToolFailed

from mamba_worker.errors import UsageError
from mamba_worker.tools.errors import SandboxViolation

if TYPE_CHECKING:
    from mamba_worker.tools._bash_policy import BashPolicy
    from mamba_worker.tools.filesystem._sandbox import FilesystemSecurity

__all__ = ["BuiltinTool", "IDEMPOTENT_METADATA_KEY", "builtin_tool", "describe_failure"]

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

IDEMPOTENT_METADATA_KEY = "idempotent"
"""Key of the tool definition's ``metadata`` that says whether running the tool twice is harmless."""

_OPERATOR_PARAMETERS = ("security", "policy", "max_output_chars")

# Python callers may pass `Path` objects; a model only ever sends strings, and a plain "string"
# schema reads better than a union with a "path" format.
_MODEL_FACING_TYPES: dict[Any, Any] = {str | os.PathLike[str]: str, str | os.PathLike[str] | None: str | None}


class BuiltinTool(Tool[Any], Generic[P, R]):
    """A built-in tool: call it like the function it wraps, or give it to an agent.

    Example:
        ```python
        content = read_file("config.json")                      # a plain call
        agent = Agent(model, tools=[read_file, run_bash])        # a tool for the model
        safe = read_file.bind(security=FilesystemSecurity(sandbox_mode=True, base_directory="/work"))
        ```

    Attributes:
        python_function: The function that does the work.
        idempotent: Whether running the tool twice with the same arguments leaves the same state
            as running it once (so the durable runtime may re-run it after a crash).
        mutates: Whether the tool changes anything (files, or anything a shell command can).
        operator_parameters: Parameters the model never sees; set them with `bind`.
    """

    def __init__(
        self,
        function: Callable[P, R],
        *,
        idempotent: bool,
        mutates: bool,
        bound: Mapping[str, Any] | None = None,
    ) -> None:
        signature = inspect.signature(function)
        self.python_function = function
        self.idempotent = idempotent
        self.mutates = mutates
        self.operator_parameters = frozenset(name for name in _OPERATOR_PARAMETERS if name in signature.parameters)
        self._bound: dict[str, Any] = dict(bound or {})
        super().__init__(
            _agent_function(function, hidden=self.operator_parameters, bound=self._bound),
            name=function.__name__,
            takes_ctx=False,
            docstring_format="google",
            require_parameter_descriptions=True,
            # A change must not overlap other calls of the same response: a later read sees it.
            sequential=mutates,
            metadata={IDEMPOTENT_METADATA_KEY: idempotent},
        )
        self.__doc__ = function.__doc__
        self.__name__ = function.__name__
        self.__qualname__ = function.__qualname__
        self.__module__ = function.__module__

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call the tool as a plain function; errors are raised, not turned into tool results."""
        if not self._bound:
            return self.python_function(*args, **kwargs)
        function = cast(Callable[..., R], self.python_function)
        return function(*args, **{**self._bound, **kwargs})

    def __repr__(self) -> str:
        bound = ", ".join(f"{name}=..." for name in sorted(self._bound))
        return f"<BuiltinTool {self.name}{f' ({bound})' if bound else ''}>"

    @property
    def bound(self) -> Mapping[str, Any]:
        """The operator parameters fixed by `bind`."""
        return dict(self._bound)

    def bind(
        self, *, security: FilesystemSecurity | None = None, policy: BashPolicy | None = None
    ) -> BuiltinTool[P, R]:
        """A new tool with operator parameters fixed, for the agent and for direct calls.

        Values for parameters this tool does not have are ignored, so one call shape fits every
        built-in tool (``tool.bind(security=s, policy=p)``); ``None`` leaves a parameter as it is.

        Args:
            security: The `FilesystemSecurity` every path goes through.
            policy: The `BashPolicy` for ``run_bash``.

        Returns:
            A fresh `BuiltinTool`; this one is unchanged.
        """
        values: dict[str, object] = {"security": security, "policy": policy}
        bound = dict(self._bound)
        bound.update(
            {name: value for name, value in values.items() if value is not None and name in self.operator_parameters}
        )
        return BuiltinTool(self.python_function, idempotent=self.idempotent, mutates=self.mutates, bound=bound)


def builtin_tool(*, idempotent: bool, mutates: bool) -> Callable[[Callable[P, R]], BuiltinTool[P, R]]:
    """Decorator that turns a tool function into a `BuiltinTool`.

    Args:
        idempotent: See `BuiltinTool.idempotent`.
        mutates: See `BuiltinTool.mutates`.
    """

    def decorate(function: Callable[P, R]) -> BuiltinTool[P, R]:
        return BuiltinTool(function, idempotent=idempotent, mutates=mutates)

    return decorate


def describe_failure(error: BaseException) -> str | None:
    """The message a model reads for a tool failure it can react to, or ``None`` for a bug.

    Args:
        error: What the tool raised.

    Returns:
        A short, readable message, or ``None`` when the error should end the run.
    """
    if isinstance(error, SandboxViolation):
        return f"refused by the sandbox ({error.rule.value}): {error.message}"
    if isinstance(error, OSError):
        return _describe_os_error(error)
    if isinstance(error, UnicodeDecodeError):
        return f"the file is not valid {error.encoding} text (byte {error.start}); it may be a binary file"
    if isinstance(error, re.error):
        return f"invalid regular expression {error.pattern!r}: {error.msg}"
    if isinstance(error, ValueError):
        return str(error)
    return None


_OS_ERROR_LABELS: tuple[tuple[type[OSError], str], ...] = (
    (FileNotFoundError, "not found"),
    (FileExistsError, "already exists"),
    (IsADirectoryError, "is a directory"),
    (NotADirectoryError, "not a directory"),
    (PermissionError, "permission denied"),
)


def _describe_os_error(error: OSError) -> str:
    label = next((text for kind, text in _OS_ERROR_LABELS if isinstance(error, kind)), None)
    label = label or (error.strerror or str(error)).lower()
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    return f"{label}: {' -> '.join(names)}" if names else label


def _agent_function(
    function: Callable[..., Any], *, hidden: frozenset[str], bound: Mapping[str, Any]
) -> Callable[..., Any]:
    """The function pydantic-ai calls: operator parameters hidden, readable failures as `ToolFailed`."""
    signature = inspect.signature(function)
    hints = typing.get_type_hints(function, include_extras=True)
    for name in hidden:
        if signature.parameters[name].default is inspect.Parameter.empty:
            raise UsageError(f"operator parameter {name!r} of {function.__name__} needs a default")
    visible = [
        parameter.replace(
            kind=inspect.Parameter.KEYWORD_ONLY,
            annotation=_MODEL_FACING_TYPES.get(hints[parameter.name], hints[parameter.name]),
        )
        for parameter in signature.parameters.values()
        if parameter.name not in hidden
    ]
    tool_name = function.__name__

    def call_tool(**arguments: Any) -> Any:
        try:
            return function(**arguments, **bound)
        except Exception as error:
            message = describe_failure(error)
            if message is None:
                raise
            logger.info("tool %s failed: %s", tool_name, message)
            raise ToolFailed(message) from error

    call_tool.__name__ = tool_name
    call_tool.__qualname__ = function.__qualname__
    call_tool.__module__ = function.__module__
    call_tool.__doc__ = function.__doc__
    call_tool.__annotations__ = {parameter.name: parameter.annotation for parameter in visible}
    call_tool.__annotations__["return"] = hints["return"]
    setattr(call_tool, "__signature__", signature.replace(parameters=visible, return_annotation=hints["return"]))  # noqa: B010
    return call_tool
