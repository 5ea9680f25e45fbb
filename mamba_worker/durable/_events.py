"""`EventPublisher`: pushes committed events live, after the commit (DESIGN.md invariant 10).

SQL holds every event (gap-free per-run ``seq``); this is only the fast path for watchers. Where
the broker is Redis, each event is published on ``mamba:events:<run_id>``, and the event that
settles a run (succeeded, failed, cancelled, waiting) on ``mamba:settled:<run_id>`` too, so a
waiter (`RunService.wait`) wakes once, not on every step. A subscriber that
reconnects reads what it missed from SQL (``RunStore.get_events(after_seq=...)``), so a lost
publish loses nothing. A publish does not wait for Redis's replies (`_ReplyDeferringSender`).
Events are not also kept in Redis (an earlier version appended them to a
stream per run): SQL is where missed events are read, and a key per run that nothing expires
grows with every run ever made.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import redis

from mamba_client.schemas import Event, RunCancelled, RunFailed, RunSucceeded, RunWaiting
from mamba_worker.durable._names import event_channel, settled_channel

logger = logging.getLogger(__name__)

SETTLING_EVENTS = (RunSucceeded, RunFailed, RunCancelled, RunWaiting)
"""The events that leave a run in a settled status (`RunStatus.is_settled`: `RunService.wait` returns)."""


class EventPublisher:
    """Publishes events to Redis when the broker is Redis; otherwise does nothing.

    Args:
        broker_url: The Celery broker URL.
    """

    def __init__(self, broker_url: str) -> None:
        self._client: redis.Redis | None = None
        if broker_url.startswith(("redis://", "rediss://", "unix://")):
            self._client = redis.Redis.from_url(broker_url)
            # Dropped without `close` (an executor made for one test, say), the publishing
            # connections, which live outside the pool's idle list, are still closed.
            weakref.finalize(self, self._client.close)
        self._senders = threading.local()
        self._generation = 0
        """Bumped by `close`: a thread's sender made before it belongs to a disconnected pool."""

    @property
    def enabled(self) -> bool:
        """Whether events are published live."""
        return self._client is not None

    def publish(self, events: Sequence[Event], *, payloads: Sequence[str] | None = None) -> None:
        """Publish committed events; failures are logged, never raised (SQL already has them).

        ``payloads``: the events as already serialised for SQL (same order), to avoid doing it twice.
        The commands are sent without waiting for Redis's replies (see `_ReplyDeferringSender`).
        """
        if self._client is None or not events:
            return
        if payloads is None:
            payloads = [event.model_dump_json() for event in events]
        commands: list[tuple[str, str, str]] = []
        for event, payload in zip(events, payloads, strict=True):
            commands.append(("PUBLISH", event_channel(event.run_id), payload))
            if isinstance(event, SETTLING_EVENTS):
                commands.append(("PUBLISH", settled_channel(event.run_id), payload))
        sender: _ReplyDeferringSender | None = getattr(self._senders, "sender", None)
        try:
            if sender is None or not sender.usable(self._generation):
                sender = self._senders.sender = _ReplyDeferringSender(self._client, generation=self._generation)
            sender.send(commands)
        except redis.RedisError as error:
            logger.warning("could not publish %d events live: %s", len(events), error)
            if sender is not None:
                sender.discard()
            self._senders.sender = None

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
        """Close the Redis connection pool (every thread's publishing connection with it)."""
        if self._client is not None:
            self._generation += 1
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


class _ReplyDeferringSender:
    """One thread's Redis connection for `EventPublisher.publish`, which never waits for a reply.

    A publish's replies (subscriber counts) tell the publisher nothing it acts on, and waiting for
    them was a round trip on every step's critical path. So a publish only sends its commands; the
    replies are read at the start of the next publish, by when they have long arrived, so errors
    still surface (one publish late) and the socket's buffer never fills. Redis runs what it has
    received whether or not the reply is read. The connection stays out of the pool (a pooled
    connection must have no unread replies); `EventPublisher.close` disconnects it with the pool,
    and a forked child opens its own instead of writing on its parent's socket.
    """

    def __init__(self, client: redis.Redis, *, generation: int) -> None:
        self._pool = client.connection_pool
        self._conn = self._pool.get_connection()
        self._pid = os.getpid()
        self._generation = generation
        self._unread = 0
        # A thread that ends drops its sender with its locals: the connection then goes back to the
        # pool (disconnected, as its unread replies cannot follow it), instead of staying checked
        # out for good (a leak per thread, where threads come and go).
        self._give_back = weakref.finalize(self, _give_back, self._pool, self._conn)

    def usable(self, generation: int) -> bool:
        """Whether it is still open (not closed with its pool since) and this process's own.

        A forked child must not share its parent's socket.
        """
        return self._generation == generation and self._pid == os.getpid()

    def send(self, commands: Sequence[tuple[str, str, str]]) -> None:
        """Read the previous publish's replies, then send ``commands`` without waiting for theirs."""
        conn = self._conn
        try:
            while self._unread:
                self._unread -= 1
                try:
                    conn.read_response()
                except redis.ResponseError as error:
                    logger.warning("Redis refused a live event: %s", error)
            # Anything more to read is the server closing the connection (a restart, an idle
            # timeout): a write would still succeed locally, and be lost, so reconnect first.
            if conn.can_read(timeout=0):
                conn.read_response()
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # What the previous publish sent may be lost (SQL has it); send this one afresh.
            logger.warning("lost the live events connection, reconnecting: %s", error)
            conn.disconnect()  # type: ignore[no-untyped-call]
            self._unread = 0
        packed = conn.pack_commands(commands)  # type: ignore[no-untyped-call]
        # The client's own retry policy (reconnect and resend on a connection error), as a pipeline has.
        conn.retry.call_with_retry(
            lambda: conn.send_packed_command(packed),  # type: ignore[no-untyped-call]
            lambda _error: conn.disconnect(),  # type: ignore[no-untyped-call]
        )
        self._unread = len(commands)

    def discard(self) -> None:
        """Drop the connection after an error (its unread replies can no longer be trusted)."""
        self._give_back()  # the finalizer's work, done now and only once


def _give_back(pool: redis.ConnectionPool, conn: redis.connection.AbstractConnection) -> None:
    """Disconnect ``conn`` and return it to ``pool``; in a forked child, leave the parent's socket alone."""
    if pool.pid == os.getpid():
        conn.disconnect()  # type: ignore[no-untyped-call]
        pool.release(conn)  # type: ignore[arg-type]
