"""``mamba worker``: a Celery worker for Mamba's step tasks, with the runtime's defaults."""

from __future__ import annotations

import click

from mamba_worker.config import AgentSettings
from mamba_worker.durable._broker import is_embedded


@click.command(name="worker", context_settings={"ignore_unknown_options": True})
@click.option(
    "-Q",
    "--queues",
    default=None,
    help="Comma-separated queues to consume, e.g. those runtime.routes names (default: the runtime's default queue).",
)
@click.option(
    "-P", "--pool", default=None, help="Pool: solo (default on Redis and the embedded broker), threads, prefork."
)
@click.option("-c", "--concurrency", type=int, default=None, help="Concurrent steps (threads/prefork pools).")
@click.option("-E", "--events", is_flag=True, help="Send task events (for Flower).")
@click.option("-l", "--loglevel", default="INFO", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    queues: str | None,
    pool: str | None,
    concurrency: int | None,
    events: bool,
    loglevel: str,
    celery_args: tuple[str, ...],
) -> None:
    """Run ``celery -A mamba_worker worker`` with sane defaults; extra arguments go to Celery."""
    runtime = AgentSettings().runtime
    broker = runtime.broker_url.get_secret_value()
    # DESIGN.md: on Redis, solo costs least CPU per hop; RabbitMQ with solo stalls on deferred acks.
    chosen_pool = pool or ("threads" if broker.startswith("amqp") else "solo")
    argv = ["worker", "-P", chosen_pool, "-l", loglevel, "-Q", queues or runtime.default_queue]
    if concurrency is not None:
        argv += ["-c", str(concurrency)]
    if events:
        argv.append("-E")
    if is_embedded(broker):
        argv += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    from mamba_worker.celery import app  # builds the app and registers the tasks

    app.worker_main(argv=[*argv, *celery_args])
