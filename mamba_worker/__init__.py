"""Mamba: a durable workflow engine for AI agents.

The top level re-exports the spec's names (``from mamba_worker import Agent, AgentSettings``).
It imports nothing from the durable runtime, the gateway or the CLI, so importing the library
never imports Celery.
"""

from mamba_worker.agent import Agent, AgentConfig
from mamba_worker.config import (
    AgentSettings,
    CompactionConfig,
    ErrorRecoveryConfig,
    LoggingConfig,
    ModelBackendSettings,
    PromptConfig,
    RuntimeSettings,
    TemplateConfig,
    TokenizerConfig,
)
from mamba_worker.errors import MambaError
from mamba_worker.workflows import (
    ReActConfig,
    ReActHooks,
    ReActWorkflow,
    StepWorkflow,
    Workflow,
    WorkflowConfig,
    WorkflowHooks,
    WorkflowResult,
    WorkflowState,
)

__all__ = [
    "Agent",
    "AgentConfig",
    "AgentSettings",
    "CompactionConfig",
    "ErrorRecoveryConfig",
    "LoggingConfig",
    "MambaError",
    "ModelBackendSettings",
    "PromptConfig",
    "ReActConfig",
    "ReActHooks",
    "ReActWorkflow",
    "RuntimeSettings",
    "StepWorkflow",
    "TemplateConfig",
    "TokenizerConfig",
    "Workflow",
    "WorkflowConfig",
    "WorkflowHooks",
    "WorkflowResult",
    "WorkflowState",
]
