"""Priorities on real brokers: messages published with no consumer come out most urgent first.

One scale for users (0 least urgent, 9 most urgent, none as 0); Redis and RabbitMQ each get it in
their own terms (`mamba_worker.durable._routing.broker_priority`). The embedded broker has none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from pydantic import SecretStr

from mamba_worker.config import RuntimeSettings
from mamba_worker.durable import create_celery_app
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable.store import RunStore, create_engine
from tests._support.durable import drop_redis_queue
from tests._support.wait import wait_until

# Published in this order; none of them is consumed until all are in the queue.
PUBLISHED: list[tuple[str, int | None]] = [("none", None), ("low-a", 1), ("low-b", 1), ("mid", 5), ("urgent", 8)]
EXPECTED = ["urgent", "mid", "low-a", "low-b", "none"]


@pytest.fixture(params=["redis", "rabbitmq"])
def priority_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Celery, Dispatcher, str]]:
    """A Celery app over a real broker, a `Dispatcher` over it, and a queue of the test's own (deleted after)."""
    broker_url = str(request.getfixturevalue(f"{request.param}_url"))
    queue = f"mamba-prio-{uuid.uuid4().hex[:10]}"
    app = create_celery_app(RuntimeSettings(broker_url=SecretStr(broker_url), default_queue=queue))
    engine = create_engine(f"sqlite:///{tmp_path / 'unused.db'}")  # publish never touches the store
    try:
        yield app, Dispatcher(app, RunStore(engine)), queue
    finally:
        with app.connection_for_write() as connection:
            channel: Any = connection.default_channel
            app.amqp.queues[queue](channel).delete()
            if request.param == "rabbitmq":
                channel.exchange_delete(queue)
            else:
                drop_redis_queue(channel.client, queue)
        engine.dispose()
        app.close()


def _consume_in_order(app: Celery, queue: str, count: int) -> list[str]:
    """The task ids of the next ``count`` messages of ``queue``, in the order the broker hands them out."""
    with app.connection_for_read() as connection:
        simple = connection.SimpleQueue(app.amqp.queues[queue], no_ack=True)
        try:
            wait_until(lambda: simple.qsize() == count, timeout=10, what=f"{count} messages in {queue}")
            return [str(simple.get(timeout=5).headers["id"]) for _ in range(count)]
        finally:
            simple.close()


def test_the_most_urgent_message_is_consumed_first(priority_app: tuple[Celery, Dispatcher, str]) -> None:
    app, dispatcher, queue = priority_app
    for task_id, priority in PUBLISHED:
        dispatcher.publish(run_id="r", seq=1, task_name="mamba.think", queue=queue, task_id=task_id, priority=priority)

    assert _consume_in_order(app, queue, len(PUBLISHED)) == EXPECTED


def test_without_priorities_messages_keep_their_order(priority_app: tuple[Celery, Dispatcher, str]) -> None:
    app, dispatcher, queue = priority_app
    for task_id in ("first", "second", "third"):
        dispatcher.publish(run_id="r", seq=1, task_name="mamba.think", queue=queue, task_id=task_id)

    assert _consume_in_order(app, queue, 3) == ["first", "second", "third"]


def test_rabbitmq_queues_are_declared_with_max_priority(rabbitmq_url: str) -> None:
    on = create_celery_app(RuntimeSettings(broker_url=SecretStr(rabbitmq_url), default_queue="q", routes={}))
    off = create_celery_app(
        RuntimeSettings(broker_url=SecretStr(rabbitmq_url), default_queue="q", queue_priorities=False)
    )

    assert on.amqp.queues["q"].queue_arguments == {"x-max-priority": 9}
    assert on.amqp.queues["routed-by-a-run"].queue_arguments == {"x-max-priority": 9}  # created when named
    assert not off.amqp.queues["q"].queue_arguments


def test_redis_and_the_embedded_broker_declare_no_queue_arguments(redis_url: str, tmp_path: Path) -> None:
    redis_app = create_celery_app(RuntimeSettings(broker_url=SecretStr(redis_url), default_queue="q"))
    embedded = create_celery_app(
        RuntimeSettings(broker_url=SecretStr(f"mamba+sqlite:///{tmp_path / 'b.db'}"), default_queue="q")
    )

    assert not redis_app.amqp.queues["q"].queue_arguments
    assert redis_app.conf.broker_transport_options["priority_steps"] == list(range(10))
    assert not embedded.amqp.queues["q"].queue_arguments
    assert "priority_steps" not in embedded.conf.broker_transport_options
