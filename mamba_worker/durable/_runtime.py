"""`Runtime`: what a worker process shares across steps (engine, Celery app, models, registry)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init
from pydantic_ai.models import Model
from sqlalchemy import Engine

from mamba_worker.backends import create_model
from mamba_worker.config import AgentSettings
from mamba_worker.durable._app import create_celery_app
from mamba_worker.durable._registry import Registry, default_registry
from mamba_worker.durable.store import RunStore, create_engine, upgrade_database
from mamba_worker.prompts import PromptManager
from mamba_worker.tokens import CostEstimator, TokenCounter
from mamba_worker.tools import FilesystemSecurity


class Runtime:
    """The durable runtime's long-lived objects, built once per process from settings.

    Models are cached by name: pydantic-ai models hold HTTP clients (and MCP sessions), which must
    not be rebuilt on every step. Nothing connects until first use.

    Args:
        settings: All settings; the ``runtime`` section chooses the database and broker.
        registry: Workflows and tools by name (default: the process-wide one).
        app: A Celery app to use instead of building one from the settings.
        migrate: Bring the database schema up to date on first use.
    """

    def __init__(
        self,
        settings: AgentSettings,
        *,
        registry: Registry | None = None,
        app: Celery | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.runtime = settings.runtime
        self.registry = registry or default_registry
        self.registry.import_modules(self.runtime.workflow_modules)
        self.app = app or create_celery_app(self.runtime)
        self.engine: Engine = create_engine(self.runtime.database_url)
        if migrate:
            upgrade_database(self.engine)
        self.store = RunStore(self.engine)
        self.prompts = PromptManager(settings.prompts)
        self.counter = TokenCounter(config=settings.tokenizer)
        self.costs = CostEstimator()
        self._pid = os.getpid()
        self.worker_id = _new_worker_id()
        self._models: dict[tuple[str, int], Model] = {}
        self._sandboxes: dict[Path | str, FilesystemSecurity] = {}
        self._lock = threading.Lock()

    def model(self, name: str | None) -> Model:
        """The model a run names (or the configured default), built once per worker thread.

        Per thread, not per process: a model's HTTP client belongs to the event loop that opened
        it, and each worker thread (threads pool) runs steps on its own long-lived loop.
        """
        name = name or self.settings.model_backend.model or ""
        key = (name, threading.get_ident())
        with self._lock:
            model = self._models.get(key)
            if model is None:
                factory = self.registry.model_factory(name)
                model = (
                    factory()
                    if factory is not None
                    else create_model(name or None, settings=self.settings.model_backend)
                )
                self._models[key] = model
            return model

    def sandbox(self) -> FilesystemSecurity:
        """The sandbox built-in tools run in (built once per base directory: every step asks)."""
        # Keyed by the directory's text: `Path.cwd()` on every step cost more than the rest of this.
        base = self.runtime.tool_sandbox or os.getcwd()
        sandbox = self._sandboxes.get(base)
        if sandbox is None:
            sandbox = self._sandboxes[base] = FilesystemSecurity(sandbox_mode=True, base_directory=Path(base))
        return sandbox

    def dispose(self) -> None:
        """Release database connections (at worker shutdown)."""
        self.store.close()
        self.engine.dispose()

    def after_fork(self) -> None:
        """In a forked child (a prefork pool process): forget what the parent's connections were.

        The parent built this runtime (and migrated, and reconciles) before forking; a socket both
        processes use interleaves their traffic (wrong rows, corrupt results). The pooled
        connections are forgotten here, not closed: the parent still uses them.

        Celery sends the same signal from the solo pool, in the process that built the runtime;
        there nothing was forked, and forgetting the pool would leak its open connections.
        """
        if os.getpid() == self._pid:
            return
        self._pid = os.getpid()
        self.engine.dispose(close=False)
        self._lock = threading.Lock()
        self._models = {}
        # Each child is a worker of its own: leases, events and `resume` name its own pid.
        self.worker_id = _new_worker_id()

    def __repr__(self) -> str:
        return f"Runtime(worker_id={self.worker_id!r})"


def _new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


_current: Runtime | None = None
_current_lock = threading.Lock()


def set_runtime(runtime: Runtime | None) -> None:
    """Make ``runtime`` the one this process's Celery tasks use."""
    global _current
    with _current_lock:
        _current = runtime


@worker_process_init.connect(weak=False)
def _after_fork(**_: Any) -> None:
    if _current is not None:
        _current.after_fork()


def get_runtime(**overrides: Any) -> Runtime:
    """This process's runtime, built from `AgentSettings()` on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = Runtime(AgentSettings(), **overrides)
        return _current
