"""Stable names outside the code: Celery task names, queues, Redis keys and channels.

A rename here is a breaking change (queued messages, Flower dashboards and subscribers use these
strings), so every such name is built here and never spelled inline. Event ``type`` strings are
part of the wire contract and live with the event models (`mamba_client.schemas.EVENT_TYPES`).
"""

from __future__ import annotations

import re

from mamba_worker.errors import UsageError

TASK_PREFIX = "mamba"
"""First part of every Celery task name."""

REACT_WORKFLOW = "react"
"""The built-in ReAct workflow's name; its steps get the short task names."""

THINK_TASK = "mamba.think"
"""ReAct: one model request."""
ACT_TASK = "mamba.act"
"""ReAct: execute the tool calls of the last response."""
OBSERVE_TASK = "mamba.observe"
"""ReAct: append tool returns and apply the termination rules."""
COMPACT_TASK = "mamba.compact"
"""ReAct: compact the message history."""

RECONCILE_TASK = "mamba.reconcile"
"""The reconciler's periodic task (Celery beat), for deployments that run it from beat."""

REACT_STEPS: tuple[str, ...] = ("think", "act", "observe", "compact")
"""The ReAct workflow's step names, in cycle order."""

DEFAULT_QUEUE = "mamba"
"""Queue that steps go to unless the run or the settings name another."""

REDIS_PREFIX = "mamba:"
"""Prefix of every Redis key and channel Mamba uses."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def step_task_name(workflow: str, step: str) -> str:
    """The Celery task name of a workflow's step.

    ReAct steps are ``mamba.<step>`` (``mamba.think``); a custom workflow's are
    ``mamba.<workflow>.<step>``, so Flower shows which workflow and step every task is.

    Raises:
        UsageError: ``workflow`` or ``step`` is not an identifier (a dot would make names ambiguous).

    Example:
        >>> step_task_name("react", "think"), step_task_name("research", "plan")
        ('mamba.think', 'mamba.research.plan')
    """
    for kind, value in (("workflow", workflow), ("step", step)):
        if not _NAME.match(value):
            raise UsageError(
                f"{kind} name {value!r} cannot be part of a task name: use letters, digits and underscores, "
                "not starting with a digit"
            )
    if workflow == REACT_WORKFLOW:
        return f"{TASK_PREFIX}.{step}"
    return f"{TASK_PREFIX}.{workflow}.{step}"


def event_channel(run_id: str) -> str:
    """The Redis pub/sub channel on which a run's events are published live after each commit."""
    return f"{REDIS_PREFIX}events:{run_id}"


def settled_channel(run_id: str) -> str:
    """The Redis pub/sub channel on which a run's settling event is published too (for waiters).

    Settling: succeeded, failed, cancelled or waiting for a person.
    """
    return f"{REDIS_PREFIX}settled:{run_id}"


def cancel_channel() -> str:
    """The Redis pub/sub channel on which run ids are announced when a cancel is requested."""
    return f"{REDIS_PREFIX}cancel"
