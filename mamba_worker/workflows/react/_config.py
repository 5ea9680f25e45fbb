"""`ReActConfig`: every knob of the ReAct workflow."""

from __future__ import annotations

from pydantic import Field

from mamba_worker.config import CompactionConfig, TemplateConfig
from mamba_worker.workflows._config import WorkflowConfig


class ReActConfig(WorkflowConfig):
    """ReAct settings (extends `WorkflowConfig`)."""

    max_iterations: int = Field(default=15, ge=1)
    """Thought-action-observation cycles before the run gives up."""
    expose_reasoning: bool = True
    """Record the model's thoughts in the scratchpad."""
    reasoning_prefix: str = "Thought: "
    """Prefix of thoughts in the reasoning trace."""
    action_prefix: str = "Action: "
    """Prefix of actions in the reasoning trace."""
    observation_prefix: str = "Observation: "
    """Prefix of observations in the reasoning trace."""
    final_answer_tool_name: str = "final_answer"
    """The tool the model calls to finish; its ``answer`` argument is the run's output."""
    auto_compact_in_workflow: bool = True
    """Compact the history between iterations when it grows past the threshold."""
    compact_threshold_ratio: float = Field(default=0.8, gt=0, le=1)
    """Compact at this fraction of ``CompactionConfig.trigger_threshold_tokens``."""
    max_consecutive_thoughts: int = Field(default=3, ge=1)
    """After this many replies without a tool call, the model is told to act."""
    tool_retry_count: int = Field(default=2, ge=0)
    """Extra attempts for a tool call that raised."""
    system_prompt_template: TemplateConfig | None = Field(
        default_factory=lambda: TemplateConfig(name="workflow/react_system")
    )
    """Template of the ReAct system prompt (``None``: a built-in text)."""
    iteration_prompt_template: TemplateConfig | None = Field(
        default_factory=lambda: TemplateConfig(name="workflow/react_iteration")
    )
    """Template of the prompt added after each iteration (``None``: a built-in text)."""
    compaction: CompactionConfig | None = None
    """Compaction settings for the run; ``None`` uses the agent's (or the runtime's) settings."""
