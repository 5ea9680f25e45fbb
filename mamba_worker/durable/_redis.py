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

`mamba_worker.durable._app.create_celery_app` selects it for ``redis://`` URLs (Celery's
``broker_transport``, as the alias `ALIAS`); TLS, Unix sockets and Sentinel keep kombu's own
transports. kombu shows a connection's URL with its transport's name as the scheme, and Flower
reads the broker's kind from that scheme, so the alias is registered to show as ``redis``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from kombu import connection as kombu_connection
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

ALIAS = "mamba-redis"
"""The transport name Celery's ``broker_transport`` gives to select `RedisTransport`."""


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


def register_redis_transport() -> None:
    """Let kombu resolve `ALIAS` to `RedisTransport`, and show its URLs as ``redis://`` (idempotent)."""
    TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:RedisTransport")
    shown: dict[str, str] = cast(Any, kombu_connection).resolve_aliases  # not in kombu's stubs
    shown.setdefault(ALIAS, "redis")
