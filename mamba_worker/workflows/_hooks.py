"""`WorkflowHooks`: optional callbacks at each point of a workflow's life (sync or async)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

logger = logging.getLogger(__name__)

Hook = Callable[..., Any]


@dataclass(kw_only=True)
class WorkflowHooks:
    """Callbacks a workflow calls as it runs. Each may be a plain function or a coroutine function.

    A hook that raises is logged and ignored: observing a run must never break it.
    """

    on_workflow_start: Hook | None = None
    """``(state)``: the run begins."""
    on_workflow_complete: Hook | None = None
    """``(result)``: the run ended (successfully or not)."""
    on_workflow_error: Hook | None = None
    """``(state, error)``: the run failed."""
    on_step_start: Hook | None = None
    """``(state, step_number, step_type)``: a step begins."""
    on_step_complete: Hook | None = None
    """``(state, step)``: a step finished; ``step`` is its `WorkflowStep`."""
    on_step_error: Hook | None = None
    """``(state, step, error)``: a step failed."""
    on_iteration_start: Hook | None = None
    """``(state, iteration)``: an iteration begins."""
    on_iteration_complete: Hook | None = None
    """``(state, iteration)``: an iteration finished."""

    async def trigger(self, name: str, *args: Any) -> None:
        """Call hook ``name`` with ``args`` if it is set, awaiting it when it is async."""
        # A workflow may fire hooks this class does not have (ReAct's on_thought on plain
        # WorkflowHooks): those are simply not set.
        hook: Hook | None = getattr(self, name, None) if name in {f.name for f in fields(self)} else None
        if hook is None:
            return
        try:
            outcome = hook(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            logger.exception("workflow hook %s raised; ignoring it", name)
