"""Every settings model, as data: `AgentSettings` and its sections.

Layer 1: imports only `mamba_worker.errors` (so that a bad setting raises a `MambaError`) and the
wire types settings share with clients (`mamba_client.schemas.Priority`).
Capabilities re-export the models the spec imports from them (``mamba_worker.context`` re-exports
`CompactionConfig`, ``mamba_worker.prompts`` re-exports `PromptConfig` and `TemplateConfig`).
"""

from mamba_worker.config._compaction import CompactionConfig, CompactionStrategyName
from mamba_worker.config._logging import LoggingConfig
from mamba_worker.config._model_backend import ModelBackendSettings
from mamba_worker.config._prompts import PromptConfig, TemplateConfig
from mamba_worker.config._recovery import ErrorRecoveryConfig
from mamba_worker.config._runtime import InDoubtPolicy, RuntimeSettings, WorkflowRoute
from mamba_worker.config._settings import AgentSettings
from mamba_worker.config._tokenizer import TokenizerConfig

__all__ = [
    "AgentSettings",
    "CompactionConfig",
    "CompactionStrategyName",
    "ErrorRecoveryConfig",
    "InDoubtPolicy",
    "LoggingConfig",
    "ModelBackendSettings",
    "PromptConfig",
    "RuntimeSettings",
    "TemplateConfig",
    "TokenizerConfig",
    "WorkflowRoute",
]
