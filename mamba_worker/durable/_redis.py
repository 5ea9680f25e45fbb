"""`RedisTransport`: kombu's Redis transport, with one client per channel instead of one per command.

kombu's Redis channel builds a new ``redis.Redis`` client around its connection pool for every
command it sends outside its polling loop (``Channel.conn_or_acquire``): the publish of each
step's successor, and in a worker the ``acks_late`` bookkeeping of each message, once when it is
delivered and once when it is acknowledged. With redis-py 8 that constructor is about a quarter
of a ``send_task`` (0.08 of 0.33 ms, measured on the benchmark machine), three times per step.

A ``redis.Redis`` client holds no connection of its own: every command borrows one from the pool
and returns it, and clients are safe to share between threads. So this channel keeps the first
client it builds and hands it out again, as long as the channel's pool is the same object (kombu
replaces the pool after a fork, and the client is rebuilt then). Everything else is kombu's.

`mamba_worker.durable._app.celery_app` selects it (Celery's ``broker_transport``) for
``redis://`` URLs; TLS, Unix sockets and Sentinel keep kombu's own transports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis

TRANSPORT = f"{__name__}:RedisTransport"
"""What Celery's ``broker_transport`` names to select `RedisTransport`."""


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel, reusing one client for the commands it sends outside its polling loop."""

    _shared_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        """The client to send commands with: ``client`` if given, else this channel's one."""
        if client:
            yield client
            return
        channel: Any = self  # kombu's stubs leave out the channel's pool and client factory
        shared = self._shared_client
        if shared is None or shared.connection_pool is not channel.pool:
            shared = self._shared_client = channel._create_client()
        yield shared


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with `RedisChannel`."""

    Channel = RedisChannel
