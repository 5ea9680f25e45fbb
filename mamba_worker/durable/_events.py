"""`EventPublisher`: pushes committed events live, after the commit (DESIGN.md invariant 10).

SQL holds every event (gap-free per-run ``seq``); this is only the fast path for watchers. Where
the broker is Redis, each event is published on ``mamba:events:<run_id>``. A subscriber that
reconnects reads what it missed from SQL (``RunStore.get_events(after_seq=...)``), so a lost
publish loses nothing. Events are not also kept in Redis (an earlier version appended them to a
stream per run): SQL is where missed events are read, and a key per run that nothing expires
grows with every run ever made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from mamba_client.schemas import Event
from mamba_worker.durable._names import event_channel

logger = logging.getLogger(__name__)


class EventPublisher:
    """Publishes events to Redis when the broker is Redis; otherwise does nothing.

    Args:
        broker_url: The Celery broker URL.
    """

    def __init__(self, broker_url: str) -> None:
        self._client: redis.Redis | None = None
        if broker_url.startswith(("redis://", "rediss://", "unix://")):
            self._client = redis.Redis.from_url(broker_url)

    @property
    def enabled(self) -> bool:
        """Whether events are published live."""
        return self._client is not None

    def publish(self, events: Sequence[Event], *, payloads: Sequence[str] | None = None) -> None:
        """Publish committed events; failures are logged, never raised (SQL already has them).

        ``payloads``: the events as already serialised for SQL (same order), to avoid doing it twice.
        """
        if self._client is None or not events:
            return
        if payloads is None:
            payloads = [event.model_dump_json() for event in events]
        try:
            pipe = self._client.pipeline(transaction=False)
            for event, payload in zip(events, payloads, strict=True):
                pipe.publish(event_channel(event.run_id), payload)
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("could not publish %d events live: %s", len(events), error)

    def close(self) -> None:
        """Close the Redis connection pool."""
        if self._client is not None:
            self._client.close()
