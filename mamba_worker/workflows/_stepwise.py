"""`StepWorkflow`: a workflow declared as named steps over a serialisable state.

This is the form the durable runtime runs one step at a time (each step a Celery task, the state
committed to SQL in between); `run` drives the very same steps in-process.

Example:
    ```python
    class Research(StepWorkflow[None, str, ResearchState]):
        name = "research"
        state_type = ResearchState
        initial_step = "plan"

        def initial_context(self, prompt: str) -> ResearchState:
            return ResearchState(topic=prompt)

        @step
        async def plan(self, state: ResearchState, ctx: StepContext) -> StepResult:
            ...
            return Next(step="search")
    ```
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Generic, assert_never

from pydantic import BaseModel
from typing_extensions import TypeVar

from mamba_worker.agent import Agent
from mamba_worker.workflows._base import Workflow
from mamba_worker.workflows._config import WorkflowConfig
from mamba_worker.workflows._hooks import WorkflowHooks
from mamba_worker.workflows._local import LocalStepContext
from mamba_worker.workflows._state import WorkflowState
from mamba_worker.workflows._step import Finish, Next, StepContext, StepEvent, StepResult
from mamba_worker.workflows.errors import MaxStepsExceededError, UnknownStepError, WorkflowError, WorkflowTimeoutError

DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=Any)
StateT = TypeVar("StateT", bound=BaseModel, default=BaseModel)

StepMethod = Callable[[Any, Any, StepContext], Awaitable[StepResult]]

_STEP_MARK = "__mamba_step__"


def step(method: StepMethod) -> StepMethod:
    """Mark an async method ``(self, state, ctx) -> StepResult`` as a step of its workflow."""
    if not inspect.iscoroutinefunction(method):
        raise TypeError(f"step {method.__name__!r} must be an async method")
    setattr(method, _STEP_MARK, True)
    return method


@functools.cache
def _step_names(cls: type) -> frozenset[str]:
    # Cached per class: `run_step` checks the name on every step, and a class's methods are fixed
    # once it is defined (walking them with `inspect` was a measurable share of a durable step).
    return frozenset(
        name for name, member in inspect.getmembers(cls, inspect.isfunction) if getattr(member, _STEP_MARK, False)
    )


def _summary(method: object) -> str:
    """The first line of ``method``'s docstring ("" without one)."""
    return (inspect.getdoc(method) or "").split("\n", 1)[0].strip() if method is not None else ""


class StepWorkflow(Workflow[DepsT, OutputT, StateT], Generic[DepsT, OutputT, StateT]):
    """Base class for workflows made of named steps.

    Subclasses set `state_type` (a pydantic model: the state must survive a trip through JSON),
    `initial_step`, implement `initial_context`, and mark step methods with `step`.

    Args:
        agent: Supplies the model and tools when the workflow runs in-process.
        config: Limits and switches.
        hooks: Callbacks.
    """

    state_type: ClassVar[type[BaseModel]]
    initial_step: ClassVar[str]
    journal_fields: ClassVar[tuple[str, ...]] = ()
    """List fields of the state that steps append to (a conversation, a log). The durable runtime
    stores each item of them once instead of the whole state after every step. Items must not be
    changed in place once a step has returned: replace an item or the list instead (a changed list
    is then rewritten whole); the runtime sees appends by the items' identity. Only with the
    default `dump_state` / `load_state`."""

    def __init__(
        self,
        agent: Agent[Any, Any] | None = None,
        *,
        config: WorkflowConfig | None = None,
        hooks: WorkflowHooks | None = None,
    ) -> None:
        super().__init__(config=config, hooks=hooks)
        self.agent = agent

    # -- the step contract (used by both drivers) ----------------------------------------

    @classmethod
    def step_names(cls) -> frozenset[str]:
        """Names of this workflow's steps."""
        return _step_names(cls)

    async def run_step(self, name: str, state: StateT, ctx: StepContext) -> StepResult:
        """Run the step called ``name`` on ``state``."""
        if name not in self.step_names():
            raise UnknownStepError(
                f"workflow {self.name!r} has no step {name!r}; its steps are {sorted(self.step_names())}"
            )
        method: Callable[[StateT, StepContext], Awaitable[StepResult]] = getattr(self, name)
        return await method(state, ctx)

    @abstractmethod
    def initial_context(self, prompt: str) -> StateT:
        """The workflow state a run of ``prompt`` starts from."""

    def dump_state(self, state: StateT) -> str:
        """Serialise a state to JSON (what the durable runtime stores)."""
        return state.model_dump_json()

    def load_state(self, data: str | bytes) -> StateT:
        """Rebuild a state from `dump_state`'s JSON."""
        loaded: StateT = self.state_type.model_validate_json(data)  # type: ignore[assignment]
        return loaded

    def step_context(self, state: WorkflowState[StateT]) -> LocalStepContext:
        """The in-process step context for a run (override to customise it)."""
        if self.agent is None:
            raise WorkflowError(f"workflow {self.name!r} needs an agent to run in-process")
        return LocalStepContext(self.agent, run_id=state.workflow_id)

    async def on_events(self, state: WorkflowState[StateT], events: list[StepEvent]) -> None:
        """Turn the events a step emitted into hook calls (ReAct maps them to its own hooks)."""

    # -- the in-process driver -----------------------------------------------------------

    def _create_initial_state(self, prompt: str) -> WorkflowState[StateT]:
        return WorkflowState(context=self.initial_context(prompt))

    async def _execute(self, prompt: str, state: WorkflowState[StateT], deps: DepsT | None = None) -> OutputT:
        context = state.context
        assert context is not None
        async with self.step_context(state) as ctx:
            name = self.initial_step
            await self._trigger("on_iteration_start", state, state.iteration_count + 1)
            while True:
                if state.current_step >= self._config.max_steps:
                    raise MaxStepsExceededError(f"workflow {self.name!r} reached max_steps={self._config.max_steps}")
                # The step method's docstring summary says what the step does (hooks show it).
                record = self._begin_step(state, name, _summary(getattr(self, name, None)))
                await self._trigger("on_step_start", state, record.step_number, name)
                try:
                    result = await asyncio.wait_for(
                        self.run_step(name, context, ctx), timeout=self._config.step_timeout_seconds
                    )
                except TimeoutError:
                    error: Exception = WorkflowTimeoutError(
                        f"step {name!r} did not finish within step_timeout_seconds={self._config.step_timeout_seconds}"
                    )
                    record.error = str(error)
                    await self._trigger("on_step_error", state, record, error)
                    raise error from None
                except Exception as caught:
                    record.error = f"{type(caught).__name__}: {caught}"
                    await self._trigger("on_step_error", state, record, caught)
                    raise
                finally:
                    events, ctx.events = ctx.events, []
                    await self.on_events(state, events)
                record.completed_at = record.started_at.now(record.started_at.tzinfo)
                await self._trigger("on_step_complete", state, record)
                match result:
                    case Next(step=next_name, iteration_done=done):
                        if done:
                            state.iteration_count += 1
                            await self._trigger("on_iteration_complete", state, state.iteration_count)
                            await self._trigger("on_iteration_start", state, state.iteration_count + 1)
                        name = next_name
                    case Finish(output=output, error=None):
                        return output  # type: ignore[no-any-return]
                    case Finish(error=message):
                        raise WorkflowError(str(message))
                    case _:
                        assert_never(result)
