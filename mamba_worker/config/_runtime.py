"""`RuntimeSettings`: where the durable runtime keeps state and finds its broker."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from mamba_client.schemas import Priority

InDoubtPolicy = Literal["wait", "rerun", "fail"]
"""What a re-run does with a non-idempotent tool call a crash left started (it may have run): ``wait``
(the run stops, ``waiting``, until a person decides), ``rerun`` (run it again), ``fail`` (the run fails,
resumable). The runtime's ``in_doubt_policy`` is the default; ``register_tool(in_doubt=...)`` sets a tool's own."""


class WorkflowRoute(BaseModel):
    """Where a workflow's runs send their step messages, and how urgently (``runtime.routes``).

    A field left ``None`` falls through to the next source: the workflow's own default
    (``@register_workflow(queue=..., priority=...)``), then the runtime's default queue / no priority.
    A run's own ``SubmitRun.queue`` / ``SubmitRun.priority`` beats both.

    Example:
        ```toml
        [runtime.routes.research]
        queue = "research"
        priority = 7
        ```
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: str | None = Field(default=None, min_length=1, max_length=200)
    """Celery queue of the workflow's steps (workers consume it with ``mamba worker -Q <queue>``)."""
    priority: Priority | None = None
    """Priority of the workflow's step messages: 0 (least urgent) to 9 (most urgent)."""


class RuntimeSettings(BaseModel):
    """Durable runtime settings (the ``runtime`` section, ``MAMBA_RUNTIME__*``).

    URLs are `SecretStr` because they routinely carry passwords; they are shown masked.
    """

    model_config = ConfigDict(extra="forbid")

    database_url: SecretStr = SecretStr("sqlite:///.mamba/mamba.db")
    """SQLAlchemy URL of the state store. Default: a SQLite file under ``.mamba/`` in the working directory."""
    broker_url: SecretStr = SecretStr("mamba+sqlite:///.mamba/broker.db")
    """Celery broker URL. Default: the embedded broker (a SQLite file) that needs no server and works
    across processes on one machine. ``redis://...`` and ``amqp://...`` work by URL."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """How long a running step's lease lasts before the reconciler may re-dispatch it."""
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    """How often a running step extends its lease; ``None``: a third of ``lease_seconds``."""
    reconciler_interval_seconds: float = Field(default=10.0, gt=0)
    """How often the reconciler looks for lost doorbells and expired leases."""
    default_queue: str = "mamba"
    """Queue that steps go to unless a workflow routes them elsewhere."""
    routes: dict[str, WorkflowRoute] = Field(default_factory=dict)
    """Queue and priority per workflow name. Keys are names or glob patterns (``"research"``,
    ``"batch_*"``, ``"*"``), as in Celery's ``task_routes``: an exact name wins, else the first
    matching pattern in the order given. Env: ``MAMBA_RUNTIME__ROUTES='{"research": {"queue": "research"}}'``."""
    queue_priorities: bool = True
    """Declare queues with priorities: ``x-max-priority=9`` on RabbitMQ (Redis and the embedded broker
    need no declaration). RabbitMQ refuses to redeclare a queue with other arguments
    (``PRECONDITION_FAILED``): a queue an older Mamba declared without it must be deleted (once
    drained) before priorities work, or set this to ``False`` to keep it and forgo priorities there."""
    max_step_attempts: int = Field(default=5, ge=1)
    """Attempts a step gets (crashes and transient failures included) before the run fails."""
    retry_backoff_seconds: float = Field(default=1.0, ge=0)
    """First wait before a step that failed transiently is tried again (doubles per attempt)."""
    dispatch_grace_seconds: float = Field(default=5.0, ge=0)
    """The reconciler sends an outbox message the committing worker has not sent after this long."""
    redispatch_after_seconds: float | None = Field(default=None, gt=0)
    """A sent step no worker has claimed after this long is sent again; ``None``: ``lease_seconds``."""
    workflow_modules: list[str] = Field(default_factory=list)
    """Modules workers import at start-up to register custom workflows and tools."""
    tool_sandbox: Path | None = None
    """Directory built-in file tools and ``run_bash`` are confined to in workers (default: the working directory)."""
    in_doubt_policy: InDoubtPolicy = "wait"
    """A re-run's choice for a non-idempotent tool call that may have run: wait for a person, rerun, or fail."""
    task_events: bool = False
    """Send Celery task events (what Flower shows); costs a little per step."""
    embedded_polling_seconds: float = Field(default=0.05, gt=0)
    """How often workers poll the embedded broker for messages."""
    inline_steps: list[str] = Field(default_factory=list)
    """Steps a worker runs right after their predecessor commits, in the same task, instead of
    sending them through the broker: step names (``"observe"``), ``"<workflow>.<step>"``, or ``"*"``
    for every step. Each still commits as its own step, under its own lease. Default: none, so every
    step is its own Celery task (what Flower shows); inlining saves a broker hop and a claim per step."""
    max_inline_steps: int = Field(default=100, ge=1)
    """Successors one task may run inline before it hands the run back to the broker (fairness
    between runs)."""
    max_inline_seconds: float = Field(default=300.0, gt=0)
    """A chain of inline steps also hands back to the broker once it has run this long, so one
    delivery never outlives the broker's visibility timeout (an hour, or ten leases, on Redis)."""
    state_cache_mb: float = Field(default=64.0, ge=0)
    """Megabytes of run state (its message histories, counted as stored JSON) a worker process keeps
    after committing a step, so that its next claim of a step of the same run reads and parses only
    what later steps added. Least recently used runs go first; ``0`` turns it off. The objects take
    a few times their JSON in memory."""

    @field_validator("routes")
    @classmethod
    def _route_keys(cls, routes: dict[str, WorkflowRoute]) -> dict[str, WorkflowRoute]:
        blank = [key for key in routes if not key.strip()]
        if blank:
            raise ValueError("a route's key must be a workflow name or a glob pattern such as 'research' or '*'")
        return routes

    @property
    def heartbeat_interval(self) -> float:
        """Seconds between lease extensions."""
        return self.heartbeat_seconds if self.heartbeat_seconds is not None else self.lease_seconds / 3

    @property
    def redispatch_after(self) -> float:
        """Seconds after which an unclaimed sent step is sent again."""
        return self.redispatch_after_seconds if self.redispatch_after_seconds is not None else self.lease_seconds
