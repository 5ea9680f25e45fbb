"""``celery -A mamba_worker worker``: the Celery app of this process's settings, with every step task.

Celery looks for ``mamba_worker.celery`` when given ``-A mamba_worker``. Building the app does not
connect anywhere; the worker connects when it starts. ``mamba worker`` wraps this with defaults.
"""

from mamba_worker.durable import ReconcilerThread, get_runtime, register_tasks
from mamba_worker.observability import register_model_secrets, setup_logging

_runtime = get_runtime()
setup_logging(_runtime.settings.logging)
register_model_secrets(_runtime.settings)
app = _runtime.app
register_tasks(app, step_names={name: _runtime.registry.steps_of(name) for name in _runtime.registry.workflow_names()})


def _start_reconciler(**_: object) -> None:
    # Every worker process reconciles too: no single point of failure (DESIGN.md invariant 3).
    ReconcilerThread(get_runtime()).start()


from celery.signals import worker_ready  # noqa: E402

worker_ready.connect(_start_reconciler, weak=False)

__all__ = ["app"]
