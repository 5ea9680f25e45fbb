"""`start_worker_thread` / `WorkerThread`: a Celery worker running inside this process.

``mamba run`` (the embedded main job) and the tests use it; production uses ``mamba worker``
(a ``celery worker`` process). It is Celery's own `WorkController`, not a re-implementation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from celery import Celery
from celery.worker import WorkController

from mamba_worker.agent import close_thread_event_loop

logger = logging.getLogger(__name__)


class WorkerThread:
    """A Celery worker (solo pool) consuming ``queues`` in a background thread.

    Args:
        app: The Celery app, with the step tasks registered.
        queues: Queues to consume.
        hostname: The worker's node name (shown in Flower).
    """

    def __init__(self, app: Celery, *, queues: Sequence[str], hostname: str = "mamba-embedded@%h") -> None:
        self._app = app
        self._worker: WorkController = app.WorkController(
            pool_cls="solo",
            concurrency=1,
            queues=list(queues),
            hostname=hostname,
            loglevel="WARNING",
            without_heartbeat=True,
            without_mingle=True,
            without_gossip=True,
            redirect_stdouts=False,
            # Celery installs signal handlers only in the main thread; this one is not.
        )
        self._thread = threading.Thread(target=self._run, name="mamba-worker", daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        # Celery looks tasks up in the thread's current app, else the process's default app, which
        # is whichever app a worker set up first in this process (possibly one with other tasks).
        self._app.set_current()
        try:
            self._worker.start()
        finally:
            close_thread_event_loop()

    def start(self) -> WorkerThread:
        """Start consuming."""
        self._thread.start()
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop after the current step (its message is then acknowledged or redelivered)."""
        self._worker.stop(in_sighandler=False)
        self._thread.join(timeout)
