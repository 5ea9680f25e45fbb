"""The Redis transport's shared client: selected for ``redis://`` only, one client per pool."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from kombu.transport.redis import Transport as KombuRedisTransport
from pydantic import SecretStr

from mamba_worker.config import RuntimeSettings
from mamba_worker.durable import create_celery_app
from mamba_worker.durable._redis import RedisChannel, RedisTransport
from tests._support.durable import drop_redis_queue


def _transport(broker_url: str) -> type:
    app = create_celery_app(RuntimeSettings(broker_url=SecretStr(broker_url)))
    try:
        return app.connection_for_write().get_transport_cls()  # type: ignore[no-any-return]
    finally:
        app.close()


def test_a_redis_url_selects_the_shared_client_transport() -> None:
    assert _transport("redis://127.0.0.1:6379/3") is RedisTransport


def test_the_connection_still_shows_its_redis_url() -> None:
    # What Flower reads the broker's kind from (and what a worker's banner shows).
    app = create_celery_app(RuntimeSettings(broker_url=SecretStr("redis://:sesame@127.0.0.1:6379/3")))
    try:
        connection = app.connection_for_write()
        assert connection.as_uri() == "redis://:**@127.0.0.1:6379/3"
        assert connection.as_uri(include_password=True) == "redis://:sesame@127.0.0.1:6379/3"
    finally:
        app.close()


@pytest.mark.parametrize("scheme", ["rediss://127.0.0.1:6380/0", "redis+socket:///tmp/redis.sock"])
def test_tls_and_socket_urls_keep_kombus_transport(scheme: str) -> None:
    assert _transport(scheme) is KombuRedisTransport


def test_other_brokers_keep_their_transports(tmp_path: Path) -> None:
    assert not issubclass(_transport("amqp://guest:guest@127.0.0.1:5672//"), KombuRedisTransport)
    assert not issubclass(_transport(f"mamba+sqlite:///{tmp_path / 'b.db'}"), KombuRedisTransport)


@pytest.fixture
def redis_app(redis_url: str) -> Iterator[tuple[Celery, str]]:
    """A Celery app over the test Redis, publishing to a queue of the test's own (deleted after)."""
    queue = f"mamba-redis-{uuid.uuid4().hex[:10]}"
    app = create_celery_app(RuntimeSettings(broker_url=SecretStr(redis_url), default_queue=queue))
    try:
        yield app, queue
    finally:
        with app.connection_for_write() as connection:
            drop_redis_queue(connection.default_channel.client, queue)
        app.close()


def test_every_publish_goes_through_one_client(redis_app: tuple[Celery, str], monkeypatch: pytest.MonkeyPatch) -> None:
    app, queue = redis_app
    used: list[Any] = []  # kept alive, so that two clients never share an id
    original = RedisChannel.conn_or_acquire

    @contextmanager
    def recorded(self: RedisChannel, client: Any = None) -> Iterator[Any]:
        with original(self, client) as acquired:
            used.append(acquired)
            yield acquired

    monkeypatch.setattr(RedisChannel, "conn_or_acquire", recorded)
    sent = [app.send_task("mamba.test", args=[i], queue=queue).id for i in range(5)]
    monkeypatch.undo()

    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(app.amqp.queues[queue], no_ack=True)
        try:
            received = [simple.get(timeout=5).headers["id"] for _ in sent]
        finally:
            simple.close()
    assert len(used) >= len(sent)
    assert len({id(client) for client in used}) == 1
    assert sorted(received) == sorted(sent)


def test_a_replaced_pool_gets_a_new_client(redis_app: tuple[Celery, str]) -> None:
    app, _ = redis_app
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as again:
            assert again is first
        channel._disconnect_pools()  # what kombu does in a forked child
        with channel.conn_or_acquire() as after:
            assert after is not first
            assert after.connection_pool is channel.pool
            assert after.ping()
