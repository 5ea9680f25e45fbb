"""`RuntimeSettings`: where the durable runtime keeps state and finds its broker."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class RuntimeSettings(BaseModel):
    """Durable runtime settings (the ``runtime`` section, ``MAMBA_RUNTIME__*``).

    URLs are `SecretStr` because they routinely carry passwords; they are shown masked.
    """

    model_config = ConfigDict(extra="forbid")

    database_url: SecretStr = SecretStr("sqlite:///.mamba/mamba.db")
    """SQLAlchemy URL of the state store. Default: a SQLite file under ``.mamba/`` in the working directory."""
    broker_url: SecretStr = SecretStr("sqla+sqlite:///.mamba/broker.db")
    """Celery broker URL. Default: an embedded broker (a SQLite file) that needs no server."""
    lease_seconds: float = Field(default=60.0, gt=0)
    """How long a running step's lease lasts before the reconciler may re-dispatch it."""
    heartbeat_seconds: float | None = Field(default=None, gt=0)
    """How often a running step extends its lease; ``None``: a third of ``lease_seconds``."""
    reconciler_interval_seconds: float = Field(default=10.0, gt=0)
    """How often the reconciler looks for lost doorbells and expired leases."""
    default_queue: str = "mamba"
    """Queue that steps go to unless a workflow routes them elsewhere."""
