"""The ReAct workflow: think, act, observe, compact as steps over `ReActState`."""

from mamba_worker.workflows.react._config import ReActConfig
from mamba_worker.workflows.react._hooks import ReActHooks
from mamba_worker.workflows.react._state import ReActState, ScratchpadEntry
from mamba_worker.workflows.react._workflow import ReActWorkflow

__all__ = ["ReActConfig", "ReActHooks", "ReActState", "ReActWorkflow", "ScratchpadEntry"]
