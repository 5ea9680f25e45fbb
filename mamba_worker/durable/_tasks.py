"""The Celery task shells: one thin task per step name, all running `StepExecutor.execute`.

Every step of every registered workflow has its own task name (``mamba.think``,
``mamba.research.plan``), so Flower shows what each run is doing; the body is the same. Tasks take
ids only (``run_id``, ``seq``).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, Task
from celery.signals import task_unknown, worker_process_shutdown

from mamba_worker.agent import close_thread_event_loop, run_blocking
from mamba_worker.durable._claim import StepOutcome
from mamba_worker.durable._executor import StepExecutor
from mamba_worker.durable._names import RECONCILE_TASK, step_task_name
from mamba_worker.durable._runtime import Runtime, get_runtime

logger = logging.getLogger(__name__)

_executors: dict[int, StepExecutor] = {}


def executor_for(runtime: Runtime) -> StepExecutor:
    """The executor of ``runtime`` (one per runtime, reused across tasks)."""
    executor = _executors.get(id(runtime))
    if executor is None:
        executor = _executors[id(runtime)] = StepExecutor(runtime)
    return executor


def run_step_message(args: Any) -> StepOutcome:
    """Validate a step message's arguments and execute the step (the body of every step task)."""
    if not (
        isinstance(args, list | tuple) and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int)
    ):
        # A malformed payload: logged and acknowledged; retrying it could never succeed.
        logger.error("discarding a malformed step message: args=%r (expected [run_id, seq])", args)
        return StepOutcome.POISON
    runtime = get_runtime()
    # The thread's long-lived loop: model HTTP clients and MCP sessions survive across tasks.
    return run_blocking(executor_for(runtime).execute(args[0], args[1]))


def register_tasks(app: Celery, *, step_names: dict[str, frozenset[str]]) -> list[str]:
    """Register a task for every step of every workflow, and the reconcile task; returns the names."""
    names: list[str] = []

    def step_task(self: Task, *args: Any) -> str:  # type: ignore[type-arg]
        return run_step_message(list(args)).value

    for workflow, steps in sorted(step_names.items()):
        for step in sorted(steps):
            name = step_task_name(workflow, step)
            if name not in app.tasks:
                app.task(name=name, bind=True, acks_late=True, ignore_result=True)(step_task)
            names.append(name)

    def reconcile_task(self: Task) -> int:  # type: ignore[type-arg]
        from mamba_worker.durable._reconciler import Reconciler

        return Reconciler(get_runtime()).run_once().total

    if RECONCILE_TASK not in app.tasks:
        app.task(name=RECONCILE_TASK, bind=True, ignore_result=True)(reconcile_task)
    names.append(RECONCILE_TASK)
    return names


@task_unknown.connect
def _on_unknown_task(
    sender: Any = None, name: str | None = None, id: str | None = None, message: Any = None, exc: Any = None, **_: Any
) -> None:
    """A message for a task this worker does not know (a workflow removed or not deployed here)."""
    logger.error("received a message for unknown task %r (id %s); it is acknowledged and recorded", name, id)
    try:
        args = message.payload[0] if message is not None else None
    except (AttributeError, IndexError, TypeError):
        args = None
    if isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], int):
        executor_for(get_runtime()).reject_unknown_task(args[0], args[1], task_name=str(name))


@worker_process_shutdown.connect
def _on_shutdown(**_: Any) -> None:
    close_thread_event_loop()
