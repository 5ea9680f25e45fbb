"""The durable runtime: workflows as checkpointed Celery tasks with their state in SQL.

Layer 6: the only worker package besides ``cli`` that imports Celery. See DESIGN.md for the
invariants; the module names say where each one lives (`_commit`, `_lease`, `_reconciler`,
`_recording`, `_dispatch`).
"""

from mamba_worker.config import RuntimeSettings
from mamba_worker.durable._app import create_celery_app
from mamba_worker.durable._claim import StepOutcome
from mamba_worker.durable._embedded import EmbeddedRuntime
from mamba_worker.durable._executor import StepExecutor
from mamba_worker.durable._faults import FaultPoint
from mamba_worker.durable._reconciler import Reconciler, ReconcileReport, ReconcilerThread
from mamba_worker.durable._recording import ToolCallInfo, current_tool_call
from mamba_worker.durable._registry import (
    RegisteredTool,
    Registry,
    default_registry,
    register_model,
    register_tool,
    register_workflow,
)
from mamba_worker.durable._runtime import Runtime, get_runtime, set_runtime
from mamba_worker.durable._service import RunService, WaitTimeoutError
from mamba_worker.durable._tasks import register_tasks
from mamba_worker.durable._worker import WorkerThread

__all__ = [
    "EmbeddedRuntime",
    "FaultPoint",
    "ReconcileReport",
    "Reconciler",
    "ReconcilerThread",
    "RegisteredTool",
    "Registry",
    "RunService",
    "Runtime",
    "RuntimeSettings",
    "StepExecutor",
    "StepOutcome",
    "ToolCallInfo",
    "WaitTimeoutError",
    "WorkerThread",
    "create_celery_app",
    "current_tool_call",
    "default_registry",
    "get_runtime",
    "register_model",
    "register_tasks",
    "register_tool",
    "register_workflow",
    "set_runtime",
]
