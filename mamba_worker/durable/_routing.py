"""Queues and priorities: which queue a run's steps go to, how urgently, and what that means per broker.

A run's route is resolved once, at submit, field by field (queue and priority separately), first
match wins:

1. the run's own ``SubmitRun.queue`` / ``SubmitRun.priority``;
2. the settings' route for the workflow (``runtime.routes``: an exact name, else the first matching
   glob pattern, as in Celery's ``task_routes``);
3. the workflow's own default (``@register_workflow(queue=..., priority=...)``);
4. ``runtime.default_queue`` / no priority.

The result is stored on the run and copied into every outbox row, so a resume, a retry and every
re-send by the reconciler use the same queue and priority as the first send.

Priorities use one scale, `mamba_client.schemas.Priority`: 0 (least urgent) to 9 (most urgent), and
a message without one counts as 0. `broker_priority` maps it onto each broker:

- RabbitMQ: as is (AMQP's own scale; queues are declared with ``x-max-priority=9``, see `_app`).
- Redis: kombu keeps one list per priority step and reads the lowest number first, and a message
  without a priority lands in the most urgent list (kombu's ``default_priority = 0``). So the
  runtime sends ``9 - priority``, and 9 when there is none, to keep "no priority" the least urgent
  as on RabbitMQ.
- The embedded broker (kombu's SQLAlchemy transport) has no priorities: messages are read in the
  order they were sent, and the priority is not sent at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from mamba_client.schemas import MAX_PRIORITY, SubmitRun
from mamba_worker.config import RuntimeSettings, WorkflowRoute
from mamba_worker.durable._broker import is_embedded

_REDIS_SCHEMES = ("redis://", "rediss://", "redis+socket://", "sentinel://", "sentinels://")


@dataclass(frozen=True, kw_only=True)
class ResolvedRoute:
    """A run's queue and priority, as stored on the run."""

    queue: str
    """The queue its step messages go to."""
    priority: int | None
    """Their priority on Mamba's scale (0 to 9); ``None``: none (treated as 0)."""


def settings_route(routes: dict[str, WorkflowRoute], workflow: str) -> WorkflowRoute | None:
    """The settings' route of ``workflow``: its exact name, else the first matching glob pattern."""
    exact = routes.get(workflow)
    if exact is not None:
        return exact
    for pattern, route in routes.items():
        if fnmatchcase(workflow, pattern):
            return route
    return None


def resolve_route(
    request: SubmitRun, *, runtime: RuntimeSettings, workflow_default: WorkflowRoute | None = None
) -> ResolvedRoute:
    """The queue and priority of a run submitted as ``request`` (see the module docstring for the order).

    Args:
        request: What was submitted (its ``queue``/``priority`` win).
        runtime: The runtime settings (``routes``, ``default_queue``).
        workflow_default: The workflow's own default route, from its registration.
    """
    candidates = [
        WorkflowRoute(queue=request.queue, priority=request.priority),
        settings_route(runtime.routes, request.workflow),
        workflow_default,
    ]
    routes = [route for route in candidates if route is not None]
    queue = next((route.queue for route in routes if route.queue is not None), runtime.default_queue)
    priority = next((route.priority for route in routes if route.priority is not None), None)
    return ResolvedRoute(queue=queue, priority=priority)


def routed_queues(runtime: RuntimeSettings, workflow_defaults: list[WorkflowRoute | None] | None = None) -> list[str]:
    """Every queue the settings (and the given workflow defaults) route to, the default queue first."""
    queues = [runtime.default_queue]
    sources = [*runtime.routes.values(), *(workflow_defaults or [])]
    for route in sources:
        if route is not None and route.queue is not None and route.queue not in queues:
            queues.append(route.queue)
    return queues


def is_redis(broker_url: str) -> bool:
    """Whether ``broker_url`` names a Redis broker (kombu's Redis or Sentinel transport)."""
    return broker_url.startswith(_REDIS_SCHEMES)


def broker_priority(broker_url: str, priority: int | None) -> int | None:
    """The message priority to hand Celery for a Mamba ``priority`` on the broker of ``broker_url``.

    Example:
        >>> broker_priority("redis://localhost", 9), broker_priority("redis://localhost", None)
        (0, 9)
        >>> broker_priority("amqp://localhost", 9), broker_priority("mamba+sqlite:///b.db", 9)
        (9, None)
    """
    if is_embedded(broker_url):
        return None  # no priorities there: do not pretend
    if is_redis(broker_url):
        return MAX_PRIORITY - (priority or 0)
    return priority
