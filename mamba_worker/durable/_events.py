"""`EventPublisher`: pushes committed events live, after the commit (DESIGN.md invariant 10).

SQL holds every event (gap-free per-run ``seq``); this is only the fast path for watchers. Where
the broker is Redis, each event is published on ``mamba:events:<run_id>``, and the event that
settles a run (succeeded, failed, cancelled, waiting) on ``mamba:settled:<run_id>`` too, so a
waiter (`RunService.wait`) wakes once, not on every step. A subscriber that
reconnects reads what it missed from SQL (``RunStore.get_events(after_seq=...)``), so a lost
publish loses nothing. Events are not also kept in Redis (an earlier version appended them to a
stream per run): SQL is where missed events are read, and a key per run that nothing expires
grows with every run ever made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from mamba_client.schemas import Event, RunCancelled, RunFailed, RunSucceeded, RunWaiting
from mamba_worker.durable._names import event_channel, settled_channel

logger = logging.getLogger(__name__)

SETTLING_EVENTS = (RunSucceeded, RunFailed, RunCancelled, RunWaiting)
"""The events after which a run does nothing until someone acts (`RunService.wait` returns)."""


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
                if isinstance(event, SETTLING_EVENTS):
                    pipe.publish(settled_channel(event.run_id), payload)
            pipe.execute()
        except redis.RedisError as error:
            logger.warning("could not publish %d events live: %s", len(events), error)

    @contextmanager
    def settle_notices(self, run_id: str) -> Iterator[SettleNotices | None]:
        """Notices of run ``run_id`` settling, subscribed for the ``with`` block (``None``: not on Redis).

        Subscribe before reading the run's status: a settle between the read and the subscription
        would otherwise be missed.
        """
        if self._client is None:
            yield None
            return
        pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(settled_channel(run_id))
        except redis.RedisError as error:
            logger.warning("could not subscribe to run %s's settling, polling instead: %s", run_id, error)
            pubsub.close()
            yield None
            return
        try:
            yield SettleNotices(pubsub)
        finally:
            pubsub.close()

    def close(self) -> None:
        """Close the Redis connection pool."""
        if self._client is not None:
            self._client.close()


class SettleNotices:
    """A subscription to one run's settling (`EventPublisher.settle_notices`)."""

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the run to settle; whether a notice came.

        A notice can be lost (Redis restarted, the subscription dropped): the caller reads SQL
        after each wait, so a lost notice costs at most one ``timeout``.
        """
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                # Subscription confirmations come back as None too: keep waiting for a message.
                if self._pubsub.get_message(timeout=left) is not None:
                    return True
        except redis.RedisError as error:
            logger.warning("lost the settle subscription: %s", error)
            time.sleep(max(0.0, deadline - time.monotonic()))
        return False
