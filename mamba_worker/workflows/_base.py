"""`Workflow`: the base class of every workflow (the spec's extension point)."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from typing import Any, Generic

from typing_extensions import TypeVar

from mamba_worker.agent import run_blocking
from mamba_worker.workflows._config import WorkflowConfig
from mamba_worker.workflows._hooks import WorkflowHooks
from mamba_worker.workflows._state import WorkflowResult, WorkflowState, WorkflowStep
from mamba_worker.workflows.errors import WorkflowTimeoutError

DepsT = TypeVar("DepsT", default=None)
OutputT = TypeVar("OutputT", default=Any)
StateT = TypeVar("StateT", default=Any)


class Workflow(ABC, Generic[DepsT, OutputT, StateT]):
    """Base class for workflows. Subclasses define `name`, `_create_initial_state` and `_execute`.

    `run` adds the run-level concerns around `_execute`: the timeout, the hooks, the step
    records and turning errors into a failed `WorkflowResult`.

    Args:
        config: Limits and switches; defaults to `WorkflowConfig()`.
        hooks: Callbacks; ignored when ``config.enable_hooks`` is off.
    """

    def __init__(self, config: WorkflowConfig | None = None, *, hooks: WorkflowHooks | None = None) -> None:
        self._config = config if config is not None else WorkflowConfig()
        self._hooks = hooks if hooks is not None else WorkflowHooks()

    @property
    @abstractmethod
    def name(self) -> str:
        """The workflow's name (stable: the durable runtime routes steps by it)."""

    @property
    def config(self) -> WorkflowConfig:
        """The workflow's configuration."""
        return self._config

    @property
    def hooks(self) -> WorkflowHooks:
        """The workflow's hooks."""
        return self._hooks

    @abstractmethod
    def _create_initial_state(self, prompt: str) -> WorkflowState[StateT]:
        """Build the state a run of ``prompt`` starts from."""

    @abstractmethod
    async def _execute(self, prompt: str, state: WorkflowState[StateT], deps: DepsT | None = None) -> OutputT:
        """Do the work, updating ``state``; return the output or raise."""

    async def run(self, prompt: str, deps: DepsT | None = None) -> WorkflowResult[OutputT, StateT]:
        """Run the workflow on ``prompt``; never raises for a failure of the work itself."""
        state = self._create_initial_state(prompt)
        started = time.monotonic()
        await self._trigger("on_workflow_start", state)
        try:
            output = await asyncio.wait_for(self._execute(prompt, state, deps), timeout=self._config.timeout_seconds)
        except TimeoutError:
            error: Exception = WorkflowTimeoutError(
                f"workflow {self.name!r} did not finish within timeout_seconds={self._config.timeout_seconds}"
            )
            return await self._failed(state, error, started)
        except Exception as caught:
            return await self._failed(state, caught, started)
        state.is_completed = True
        result: WorkflowResult[OutputT, StateT] = WorkflowResult(
            success=True,
            output=output,
            state=state,
            total_steps=state.current_step,
            duration_seconds=time.monotonic() - started,
        )
        await self._trigger("on_workflow_complete", result)
        return result

    def run_sync(self, prompt: str, deps: DepsT | None = None) -> WorkflowResult[OutputT, StateT]:
        """Blocking twin of `run`."""
        return run_blocking(self.run(prompt, deps))

    # -- helpers for subclasses -------------------------------------------------------------

    def _begin_step(self, state: WorkflowState[StateT], step_type: str, description: str = "") -> WorkflowStep:
        """Count a step and (with ``track_state``) record it; pair with `_end_step`."""
        state.current_step += 1
        step = WorkflowStep(step_number=state.current_step, step_type=step_type, description=description)
        if self._config.track_state:
            state.steps.append(step)
        return step

    async def _trigger(self, hook: str, *args: Any) -> None:
        if self._config.enable_hooks:
            await self._hooks.trigger(hook, *args)

    async def _failed(
        self, state: WorkflowState[StateT], error: Exception, started: float
    ) -> WorkflowResult[OutputT, StateT]:
        state.is_failed = True
        await self._trigger("on_workflow_error", state, error)
        result: WorkflowResult[OutputT, StateT] = WorkflowResult(
            success=False,
            state=state,
            error=f"{type(error).__name__}: {error}",
            total_steps=state.current_step,
            duration_seconds=time.monotonic() - started,
        )
        await self._trigger("on_workflow_complete", result)
        return result
