from __future__ import annotations

import pytest

from mamba_worker.durable._names import (
    ACT_TASK,
    COMPACT_TASK,
    OBSERVE_TASK,
    REACT_STEPS,
    THINK_TASK,
    event_channel,
    step_task_name,
)
from mamba_worker.errors import UsageError


def test_react_steps_have_short_task_names() -> None:
    assert [step_task_name("react", step) for step in REACT_STEPS] == [THINK_TASK, ACT_TASK, OBSERVE_TASK, COMPACT_TASK]
    assert THINK_TASK == "mamba.think"


def test_custom_workflow_steps_carry_the_workflow_name() -> None:
    assert step_task_name("research", "plan") == "mamba.research.plan"


@pytest.mark.parametrize(("workflow", "step"), [("re.search", "plan"), ("research", "pl an"), ("research", "")])
def test_names_that_would_make_task_names_ambiguous_are_refused(workflow: str, step: str) -> None:
    with pytest.raises(UsageError, match="task name"):
        step_task_name(workflow, step)


def test_event_channels_are_prefixed_per_run() -> None:
    assert event_channel("r1") == "mamba:events:r1"
