"""Workflows: the `Workflow` base, step-wise workflows and the step contract, and ReAct.

Layer 5: may import agent and below; never durable or cli. The durable runtime implements
`StepContext` and drives `StepWorkflow` steps; this package knows nothing of it.
"""

from mamba_worker.workflows._base import Workflow
from mamba_worker.workflows._config import WorkflowConfig
from mamba_worker.workflows._hooks import WorkflowHooks
from mamba_worker.workflows._local import LocalStepContext
from mamba_worker.workflows._state import WorkflowResult, WorkflowState, WorkflowStep
from mamba_worker.workflows._step import (
    ActionEvent,
    CompactionEvent,
    Finish,
    Next,
    ObservationEvent,
    StepContext,
    StepEvent,
    StepResult,
    ThoughtEvent,
    ToolOutcome,
)
from mamba_worker.workflows._stepwise import StepWorkflow, step
from mamba_worker.workflows._toolbox import FetchedTools, StepToolbox, ToolboxStepContext, execute_tool_call
from mamba_worker.workflows.errors import MaxStepsExceededError, UnknownStepError, WorkflowError, WorkflowTimeoutError
from mamba_worker.workflows.react import ReActConfig, ReActHooks, ReActState, ReActWorkflow, ScratchpadEntry

__all__ = [
    "ActionEvent",
    "CompactionEvent",
    "FetchedTools",
    "Finish",
    "LocalStepContext",
    "MaxStepsExceededError",
    "Next",
    "ObservationEvent",
    "ReActConfig",
    "ReActHooks",
    "ReActState",
    "ReActWorkflow",
    "ScratchpadEntry",
    "StepContext",
    "StepEvent",
    "StepResult",
    "StepToolbox",
    "StepWorkflow",
    "ThoughtEvent",
    "ToolOutcome",
    "ToolboxStepContext",
    "UnknownStepError",
    "Workflow",
    "WorkflowConfig",
    "WorkflowError",
    "WorkflowHooks",
    "WorkflowResult",
    "WorkflowState",
    "WorkflowStep",
    "WorkflowTimeoutError",
    "execute_tool_call",
    "step",
]
