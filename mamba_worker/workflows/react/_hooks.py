"""`ReActHooks`: the base hooks plus thought, action, observation and compaction."""

from __future__ import annotations

from dataclasses import dataclass

from mamba_worker.workflows._hooks import Hook, WorkflowHooks


@dataclass(kw_only=True)
class ReActHooks(WorkflowHooks):
    """Callbacks for a ReAct run (sync or async)."""

    on_thought: Hook | None = None
    """``(state, thought)``: the model reasoned."""
    on_action: Hook | None = None
    """``(state, tool_name, args)``: the model called a tool."""
    on_observation: Hook | None = None
    """``(state, observation, is_error)``: a tool result came back."""
    on_compaction: Hook | None = None
    """``(result)``: the history was compacted."""
