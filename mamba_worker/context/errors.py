"""Errors raised by `mamba_worker.context`.

The tree::

    MambaError
    ├── ConfigurationError
    │   └── UsageError
    │       └── MessageFormatError      a message given to the context is not one it can read
    └── AgentError
        └── CompactionError             a compaction strategy could not finish (its model call failed)

A scoring model that answers with garbage is not an error: `ImportanceScoringStrategy` falls back
to recency and logs a warning.
"""

from __future__ import annotations

from mamba_worker.errors import AgentError, UsageError


class MessageFormatError(UsageError):
    """A message given to the context manager is neither a pydantic-ai message nor a readable dict.

    Attributes:
        index: Position of the offending item in the list that was passed.
    """

    code = "invalid_message"

    def __init__(self, message: str, *, index: int) -> None:
        super().__init__(message, index=index)
        self.index = index


class CompactionError(AgentError):
    """A compaction strategy could not finish, because the model it asked failed.

    The history is left as it was: strategies never change the messages they were given.

    Attributes:
        strategy: The strategy that failed (``"summarize_older"``, ...).
    """

    code = "compaction_failed"

    def __init__(self, message: str, *, strategy: str) -> None:
        super().__init__(message, strategy=strategy)
        self.strategy = strategy
