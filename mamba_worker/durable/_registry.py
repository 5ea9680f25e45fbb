"""`Registry`: the workflows and tools a worker can run, by the names runs refer to them by.

A run stores names (``workflow="react"``, ``tools=["read_file"]``), never code; every worker
process rebuilds the same objects from the same names. Custom workflows and tools are registered
by importing the modules listed in ``runtime.workflow_modules`` (``register_workflow`` and
``register_tool`` run at import time). A workflow may carry a default queue and priority
(``@register_workflow(queue=..., priority=...)``); ``runtime.routes`` overrides them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from pydantic_ai import Tool
from pydantic_ai.models import Model

from mamba_client.schemas import RunOptions
from mamba_worker.config import InDoubtPolicy, WorkflowRoute
from mamba_worker.errors import ConfigurationError
from mamba_worker.prompts import PromptManager
from mamba_worker.tools import BUILTIN_TOOLS, FilesystemSecurity, builtin_tools, is_idempotent
from mamba_worker.workflows import ReActConfig, ReActWorkflow, StepWorkflow, WorkflowConfig

__all__ = [
    "ModelFactory",
    "Registry",
    "RegisteredTool",
    "WorkflowFactory",
    "default_registry",
    "register_model",
    "register_tool",
    "register_workflow",
]

WorkflowFactory = Callable[[RunOptions, PromptManager], StepWorkflow[Any, Any, Any]]
"""Builds a workflow for a run from the run's options."""

ModelFactory = Callable[[], Model]
"""Builds a model a run may name (called once per worker process)."""

W = TypeVar("W", bound=type[StepWorkflow[Any, Any, Any]])
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class _RegisteredWorkflow:
    factory: WorkflowFactory
    steps: frozenset[str]
    route: WorkflowRoute | None


@dataclass(frozen=True, kw_only=True)
class RegisteredTool:
    """A tool a run may name."""

    name: str
    """The name runs use."""
    tool: Tool[Any]
    """The pydantic-ai tool."""
    idempotent: bool
    """Safe to run twice with the same arguments (decides what a crashed step may re-run)."""
    in_doubt: InDoubtPolicy | None = None
    """This tool's policy for a call a crash left in doubt; ``None``: the runtime's ``in_doubt_policy``."""


class Registry:
    """Workflows and tools by name. Thread-safe; the default one is `default_registry`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workflows: dict[str, _RegisteredWorkflow] = {
            "react": _RegisteredWorkflow(factory=_react, steps=_REACT_STEPS, route=None)
        }
        self._tools: dict[str, RegisteredTool] = {}
        self._models: dict[str, ModelFactory] = {}

    # -- workflows ------------------------------------------------------------------------

    def add_workflow(
        self, name: str, factory: WorkflowFactory, *, steps: Iterable[str], route: WorkflowRoute | None = None
    ) -> None:
        """Register ``factory`` under ``name``; ``steps`` are its step names (for task names).

        ``route``: the workflow's default queue and priority (``runtime.routes`` and the run's own win).
        """
        with self._lock:
            self._workflows[name] = _RegisteredWorkflow(factory=factory, steps=frozenset(steps), route=route)

    def workflow_names(self) -> list[str]:
        """Registered workflow names."""
        return sorted(self._workflows)

    def steps_of(self, name: str) -> frozenset[str]:
        """The step names of workflow ``name``."""
        return self._get_workflow(name).steps

    def route_of(self, name: str) -> WorkflowRoute | None:
        """The default queue and priority workflow ``name`` was registered with, if any."""
        return self._get_workflow(name).route

    def build_workflow(self, name: str, options: RunOptions, prompts: PromptManager) -> StepWorkflow[Any, Any, Any]:
        """A new instance of workflow ``name`` for a run with ``options``."""
        return self._get_workflow(name).factory(options, prompts)

    def _get_workflow(self, name: str) -> _RegisteredWorkflow:
        try:
            return self._workflows[name]
        except KeyError:
            raise ConfigurationError(
                f"no workflow named {name!r} is registered in this worker; registered: {self.workflow_names()}. "
                "Add the module that registers it to MAMBA_RUNTIME__WORKFLOW_MODULES."
            ) from None

    # -- tools ----------------------------------------------------------------------------

    def add_tool(self, tool: RegisteredTool) -> None:
        """Register ``tool`` (a later registration of the same name replaces the earlier one)."""
        with self._lock:
            self._tools[tool.name] = tool

    def tool_names(self) -> list[str]:
        """Registered tool names, built-ins included."""
        return sorted({*self._tools, *BUILTIN_TOOLS})

    def tools_for(self, names: Iterable[str], *, sandbox: FilesystemSecurity) -> list[RegisteredTool]:
        """The tools a run named, built-ins bound to ``sandbox``.

        Raises:
            ConfigurationError: A name is not registered in this worker.
        """
        names = list(names)
        unknown = sorted(set(names) - set(self.tool_names()))
        if unknown:
            raise ConfigurationError(f"unknown tools {unknown}; this worker has {self.tool_names()}")
        found: list[RegisteredTool] = []
        builtin_names = [name for name in names if name not in self._tools]
        for tool in builtin_tools(sandbox, include=builtin_names) if builtin_names else []:
            found.append(RegisteredTool(name=tool.name, tool=tool, idempotent=bool(is_idempotent(tool))))
        found.extend(self._tools[name] for name in names if name in self._tools)
        return found

    # -- models ---------------------------------------------------------------------------

    def add_model(self, name: str, factory: ModelFactory) -> None:
        """Make ``name`` resolve to ``factory()`` instead of `create_model` (scripted or in-house models)."""
        with self._lock:
            self._models[name] = factory

    def model_factory(self, name: str) -> ModelFactory | None:
        """The factory registered for model ``name``, if any."""
        return self._models.get(name)

    def import_modules(self, modules: Iterable[str]) -> None:
        """Import the modules that register custom workflows and tools.

        Raises:
            ConfigurationError: A module cannot be imported.
        """
        for module in modules:
            try:
                importlib.import_module(module)
            except ImportError as error:
                raise ConfigurationError(
                    f"cannot import workflow module {module!r} (MAMBA_RUNTIME__WORKFLOW_MODULES): {error}"
                ) from error


@overload
def register_workflow(cls: W, *, queue: str | None = None, priority: int | None = None) -> W: ...


@overload
def register_workflow(
    cls: None = None, *, queue: str | None = None, priority: int | None = None
) -> Callable[[W], W]: ...


def register_workflow(
    cls: W | None = None, *, queue: str | None = None, priority: int | None = None
) -> W | Callable[[W], W]:
    """Class decorator: make a `StepWorkflow` subclass runnable by name in the durable runtime.

    The class must be constructible as ``cls(config=WorkflowConfig(...))`` (no agent: in a worker the
    model and tools come from the run).

    Args:
        cls: The workflow class (when used as ``@register_workflow`` without arguments).
        queue: Default queue of the workflow's steps; ``runtime.routes`` and ``SubmitRun.queue`` win.
        priority: Default priority, 0 (least urgent) to 9 (most urgent); overridden the same way.

    Raises:
        ConfigurationError: ``queue`` or ``priority`` is out of range.

    Example:
        ```python
        @register_workflow(queue="research", priority=7)
        class Research(StepWorkflow[...]): ...
        ```
    """
    route = _route(queue=queue, priority=priority)

    def decorate(workflow_cls: W) -> W:
        def factory(options: RunOptions, prompts: PromptManager) -> StepWorkflow[Any, Any, Any]:
            return workflow_cls(config=WorkflowConfig(**_limits(options)))

        # The name is an instance property (the spec's Workflow API); a throwaway instance reads it.
        name = workflow_cls(config=WorkflowConfig()).name
        default_registry.add_workflow(name, factory, steps=workflow_cls.step_names(), route=route)
        return workflow_cls

    return decorate(cls) if cls is not None else decorate


def _route(*, queue: str | None, priority: int | None) -> WorkflowRoute | None:
    if queue is None and priority is None:
        return None
    try:
        return WorkflowRoute(queue=queue, priority=priority)
    except ValueError as error:  # pydantic's ValidationError
        raise ConfigurationError(f"invalid workflow route (queue={queue!r}, priority={priority!r}): {error}") from None


@overload
def register_tool(
    func: F, *, name: str | None = None, idempotent: bool = False, in_doubt: InDoubtPolicy | None = None
) -> F: ...


@overload
def register_tool(
    func: None = None, *, name: str | None = None, idempotent: bool = False, in_doubt: InDoubtPolicy | None = None
) -> Callable[[F], F]: ...


def register_tool(
    func: F | None = None, *, name: str | None = None, idempotent: bool = False, in_doubt: InDoubtPolicy | None = None
) -> F | Callable[[F], F]:
    """Decorator: make a function callable as a tool by runs that name it.

    ``idempotent=False`` (the default) is the safe choice: after a crash in the middle of the call,
    the run waits for a decision instead of running it again. ``in_doubt`` sets what happens then
    for this tool (``"wait"``, ``"rerun"`` or ``"fail"``; default: the runtime's ``in_doubt_policy``).

    Example:
        ```python
        @register_tool(idempotent=True)
        def lookup(word: str) -> str:
            ...
        ```
    """

    def decorate(function: F) -> F:
        tool_name = name or function.__name__
        default_registry.add_tool(
            RegisteredTool(
                name=tool_name, tool=Tool(function, name=tool_name), idempotent=idempotent, in_doubt=in_doubt
            )
        )
        return function

    return decorate(func) if func is not None else decorate


def register_model(name: str, factory: ModelFactory) -> None:
    """Let runs name a model built by ``factory`` (a pydantic-ai `Model`), in every worker importing this call.

    Put it in a module listed in ``runtime.workflow_modules``, like workflows and tools: runs store
    the name, and each worker process builds the model once. Deterministic scripted models
    (pydantic-ai ``FunctionModel``) make crash tests and replays reproducible.

    Example:
        ```python
        register_model("scripted", lambda: FunctionModel(my_script))
        ```
    """
    default_registry.add_model(name, factory)


_REACT_STEPS = ReActWorkflow.step_names()


def _limits(options: RunOptions) -> dict[str, Any]:
    fields = {
        "max_iterations": options.max_iterations,
        "max_steps": options.max_steps,
        "timeout_seconds": options.timeout_seconds,
        "step_timeout_seconds": options.step_timeout_seconds,
    }
    return {key: value for key, value in fields.items() if value is not None}


def _react(options: RunOptions, prompts: PromptManager) -> StepWorkflow[Any, Any, Any]:
    return ReActWorkflow(config=ReActConfig(**_limits(options)), prompt_manager=prompts)


default_registry = Registry()
"""The registry workers use unless given another."""
