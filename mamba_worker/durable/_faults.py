"""Named fault points on the commit path, for crash tests (DBOS-style debug triggers).

They do nothing unless armed. A test arms one in a worker process through the environment
(``MAMBA_FAULTS=after_step_commit:kill`` kills the process right after the commit, before the
successor is sent), which makes each crash window reproducible instead of a matter of timing.
"""

from __future__ import annotations

import logging
import os
import signal
from enum import StrEnum

logger = logging.getLogger(__name__)

ENV_VAR = "MAMBA_FAULTS"


class FaultPoint(StrEnum):
    """Places on the step path where a crash matters."""

    AFTER_CLAIM = "after_claim"
    """The step is claimed (lease taken) but has not run."""
    BEFORE_STEP_COMMIT = "before_step_commit"
    """The step ran; its commit has not happened."""
    AFTER_STEP_SENT = "after_step_sent"
    """The step's commit is sent; its outcome has not been read (an inline successor may have started)."""
    AFTER_STEP_COMMIT = "after_step_commit"
    """The step is committed (its outcome read); its successor has not been sent."""
    AFTER_TOOL_STARTED = "after_tool_started"
    """A tool call is recorded as started; the tool has not run."""
    AFTER_TOOL_EXECUTED = "after_tool_executed"
    """A tool ran; its result is not recorded."""


def _armed(spec: str) -> dict[str, str]:
    armed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        point, _, action = item.partition(":")
        armed[point] = action or "kill"
    return armed


def fault(point: FaultPoint) -> None:
    """Trigger ``point`` if a test armed it: ``kill`` sends SIGKILL to this process, ``raise`` raises."""
    spec = os.environ.get(ENV_VAR)
    if not spec:  # every step passes several points: unarmed, this is all it costs
        return
    action = _armed(spec).get(point.value)
    if action is None:
        return
    logger.warning("fault point %s armed with %s: triggering", point.value, action)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise RuntimeError(f"fault injected at {point.value}")
