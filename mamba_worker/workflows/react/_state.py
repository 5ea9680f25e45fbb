"""`ReActState` and `ScratchpadEntry`: the serialisable state of a ReAct run."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_ai.messages import ModelMessage


class ScratchpadEntry(BaseModel):
    """One line of the reasoning trace."""

    entry_type: Literal["thought", "action", "observation"]
    """What kind of entry this is."""
    content: str
    """The thought, the action (tool and arguments) or the observation."""
    iteration: int = 0
    """The iteration it belongs to (0-based)."""
    tool_name: str | None = None
    """The tool, for actions and observations."""
    tool_args: dict[str, Any] | None = None
    """The arguments, for actions."""
    is_error: bool = False
    """The observation is an error."""
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    """When it happened."""


class ReActState(BaseModel):
    """Everything a ReAct run needs to continue from where it stopped (it round-trips through JSON)."""

    task: str
    """The user's task."""
    system_prompt: str = ""
    """The agent's own system prompt, put before the ReAct instructions."""
    messages: list[ModelMessage] = Field(default_factory=list)
    """The conversation with the model (pydantic-ai messages)."""
    scratchpad: list[ScratchpadEntry] = Field(default_factory=list)
    """Thoughts, actions and observations."""
    iteration: int = 0
    """Completed iterations."""
    consecutive_thoughts: int = 0
    """Model replies in a row without a tool call."""
    final_answer: str | None = None
    """The answer, once the model gave it."""
    compaction_count: int = 0
    """How often the history was compacted."""
