"""`ErrorBody`: how an error travels on the wire, in events and in SQL."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ErrorBody(BaseModel):
    """A machine-readable code and a human-readable message.

    The code is the stable ``code`` of the `MambaError` that caused it (``run_not_found``,
    ``poison_message``, ...); ``mamba_client`` maps it back to its own exception class. The message
    never contains a secret.
    """

    model_config = ConfigDict(frozen=True)

    code: str
    """Stable, machine-readable error code."""
    message: str
    """What was wrong and, where possible, what to change."""
