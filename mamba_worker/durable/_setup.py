"""`RunSetup`: what a run's steps are built from, built once per task.

A step task builds the run's workflow, its state journal, its tools and its model settings from
the run's row. With ``inline_steps`` one task runs a chain of the run's steps, and the row does
not change between them, so the chain builds these once: on every step they cost 0.06 ms of an
inline step's 2.2 on the benchmark machine (an Intel Xeon; `bench/durable_parts.py`). The in-process
`ReActWorkflow.run` also uses one workflow object and one toolbox (its tools fetched once) for all
its steps, so reusing them is what steps already expect; what does change per step (the step, its
attempt, its lease, its ledgers, the model that records to them) is built per step, by the executor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic_ai.settings import ModelSettings
from pydantic_ai.toolsets import FunctionToolset

from mamba_worker.config import CompactionConfig
from mamba_worker.durable._context import model_settings_for
from mamba_worker.durable._journal import StateJournal
from mamba_worker.durable._registry import RegisteredTool
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.store import RunRow
from mamba_worker.workflows import FetchedTools, StepWorkflow


@dataclass(frozen=True, kw_only=True, slots=True)
class RunSetup:
    """The parts of a run that its steps share."""

    workflow: StepWorkflow[Any, Any, Any]
    """The run's workflow, built with its options and the worker's prompts."""
    journal: StateJournal
    """Splits the workflow's states into head and chunks, and joins them back."""
    tools: list[RegisteredTool]
    """The tools the run named, built-ins bound to the worker's sandbox."""
    compaction: CompactionConfig
    """The workflow's own compaction settings, else the worker's."""
    compaction_ratio: float
    """Fraction of the compaction threshold at which to compact."""
    model_settings: ModelSettings | None
    """The run's model settings (``None``: the model's defaults)."""
    toolset: FunctionToolset[Any]
    """The toolset of `tools`."""
    fetched: FetchedTools
    """The tools as fetched from `toolset` by the chain's first step that asked (once per chain)."""

    @classmethod
    def build(cls, runtime: Runtime, run: RunRow) -> RunSetup:
        """Build the parts of ``run``.

        Raises:
            ConfigurationError: The workflow or a tool is not registered in this worker, or the
                workflow's state cannot be journalled.
        """
        workflow = runtime.registry.build_workflow(run.workflow, run.options, runtime.prompts)
        react = getattr(workflow, "react_config", None)
        tools = runtime.registry.tools_for(run.tools, sandbox=runtime.sandbox())
        return cls(
            workflow=workflow,
            journal=StateJournal(workflow),
            tools=tools,
            compaction=getattr(react, "compaction", None) or runtime.settings.context,
            compaction_ratio=getattr(react, "compact_threshold_ratio", 1.0),
            model_settings=model_settings_for(run.options),
            toolset=FunctionToolset([tool.tool for tool in tools]),
            fetched=FetchedTools(),
        )
