"""`EmbeddedRuntime`: the whole durable runtime inside one process, for ``mamba run``.

SQLite for state, the embedded broker, an in-process Celery worker and a reconciler thread: the
same code paths as a scaled deployment (the same tasks, commits, leases and reconciler), with
nothing to install. Kill the process at any moment and ``mamba resume RUN_ID`` continues.
"""

from __future__ import annotations

from types import TracebackType

from mamba_worker.config import AgentSettings
from mamba_worker.durable._reconciler import Reconciler, ReconcilerThread
from mamba_worker.durable._routing import routed_queues
from mamba_worker.durable._runtime import Runtime, set_runtime
from mamba_worker.durable._service import RunService
from mamba_worker.durable._tasks import register_tasks
from mamba_worker.durable._worker import WorkerThread


class EmbeddedRuntime:
    """Runtime + in-process worker + reconciler; use as a context manager.

    Example:
        ```python
        with EmbeddedRuntime(AgentSettings()) as embedded:
            run = embedded.service.submit(SubmitRun(input="What is 2 + 2?", model="offline"))
            print(embedded.service.wait(run.id).output)
        ```
    """

    def __init__(self, settings: AgentSettings, *, runtime: Runtime | None = None) -> None:
        self.runtime = runtime or Runtime(settings)
        set_runtime(self.runtime)
        register_tasks(
            self.runtime.app,
            step_names={name: self.runtime.registry.steps_of(name) for name in self.runtime.registry.workflow_names()},
        )
        self.service = RunService(self.runtime)
        registry = self.runtime.registry
        # One process runs everything: it consumes every queue a workflow may be routed to.
        queues = routed_queues(self.runtime.runtime, [registry.route_of(name) for name in registry.workflow_names()])
        self._worker = WorkerThread(self.runtime.app, queues=queues)
        self._reconciler = ReconcilerThread(self.runtime)

    def start(self) -> EmbeddedRuntime:
        """Start the worker and the reconciler (one pass first: a resumed run's lost doorbells ring now)."""
        Reconciler(self.runtime).run_once()
        self._worker.start()
        self._reconciler.start()
        return self

    def stop(self) -> None:
        """Stop the worker and the reconciler, and release the database."""
        self._reconciler.stop()
        self._worker.stop()
        set_runtime(None)
        self.runtime.dispose()

    def __enter__(self) -> EmbeddedRuntime:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
