"""`create_celery_app`: the Celery application, configured for the durable runtime's invariants."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from mamba_client.schemas import MAX_PRIORITY, MIN_PRIORITY
from mamba_worker.config import RuntimeSettings
from mamba_worker.durable._broker import is_embedded, register_embedded_transport
from mamba_worker.durable._redis import ALIAS as REDIS_TRANSPORT
from mamba_worker.durable._redis import register_redis_transport
from mamba_worker.durable._routing import is_redis, routed_queues

APP_NAME = "mamba"


def create_celery_app(runtime: RuntimeSettings) -> Celery:
    """Build the Celery app for ``runtime``. Nothing connects until a task is sent or a worker starts.

    The settings are the ones DESIGN.md invariant 5 requires, each for a reason:

    - ``task_acks_late`` + ``task_reject_on_worker_lost``: a message is acknowledged only after its
      step ran, so a worker killed mid-step leaves the message to be delivered again. (SQL, not
      the message, decides whether the step runs again: the claim is a conditional UPDATE.)
    - ``worker_prefetch_multiplier = 1``: a worker holds one message at a time, so a long step does
      not hide short ones queued behind it.
    - visibility timeout above the longest lease: Redis must not re-deliver a message while its
      step's lease is still live; lease expiry, handled by the reconciler, bounds recovery instead.
    - JSON only, no result backend, ``ignore_result``: tasks carry ids, results live in SQL.
    - priorities (`mamba_worker.durable._routing` maps Mamba's 0-9 onto each broker): on Redis,
      one list per priority (``priority_steps`` 0-9, kombu's default separator, which Flower also
      assumes); on RabbitMQ, every queue Celery declares (the default one, the routed ones, and any
      a worker's ``-Q`` or a run names) gets ``x-max-priority=9`` (``task_queue_max_priority``),
      unless ``runtime.queue_priorities`` is off. The embedded broker has none.
    - ``task_queues``: the default queue and every queue ``runtime.routes`` names, so a plain
      ``celery -A mamba_worker worker`` (no ``-Q``) consumes them all.
    """
    broker_url = runtime.broker_url.get_secret_value()
    if is_embedded(broker_url):
        register_embedded_transport()
    app = Celery(APP_NAME, broker=broker_url, set_as_current=False)
    transport_options: dict[str, object] = {}
    if is_embedded(broker_url):
        transport_options["polling_interval"] = runtime.embedded_polling_seconds
    else:
        # Redis/SQS only; harmless elsewhere. Ten times the lease, and at least an hour.
        transport_options["visibility_timeout"] = max(3600, int(runtime.lease_seconds * 10))
    if is_redis(broker_url):
        # One Redis list per Mamba priority (kombu's default has four buckets: 0, 3, 6, 9). BRPOP reads
        # them lowest number first across all consumed queues; queue order within a priority stays
        # kombu's round robin (queue_order_strategy="priority" would let one queue starve the others).
        transport_options["priority_steps"] = list(range(MIN_PRIORITY, MAX_PRIORITY + 1))
    if broker_url.startswith("redis://"):
        # kombu's Redis transport, reusing one client per channel (`mamba_worker.durable._redis`).
        register_redis_transport()
        app.conf.broker_transport = REDIS_TRANSPORT
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_default_queue=runtime.default_queue,
        task_queues=[Queue(name) for name in routed_queues(runtime)],
        task_create_missing_queues=True,
        task_queue_max_priority=_queue_max_priority(runtime, broker_url),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=runtime.task_events,
        task_send_sent_event=runtime.task_events,
        worker_hijack_root_logger=False,
        worker_enable_remote_control=not is_embedded(broker_url),
        imports=list(runtime.workflow_modules),
        enable_utc=True,
    )
    return app


def _queue_max_priority(runtime: RuntimeSettings, broker_url: str) -> int | None:
    """``x-max-priority`` for declared queues: AMQP brokers only (Redis and the embedded broker ignore it)."""
    if not runtime.queue_priorities or is_embedded(broker_url) or is_redis(broker_url):
        return None
    return MAX_PRIORITY
