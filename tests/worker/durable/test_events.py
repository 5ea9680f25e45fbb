"""Events: every state change is an event in SQL, numbered without gaps, and pushed live on Redis
(``mamba:events:<run_id>``, and the settling one on ``mamba:settled:<run_id>``) after its commit
(invariant 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from mamba_client.schemas import RunStatus, SubmitRun
from mamba_worker.durable import Reconciler, RunService, WaitTimeoutError
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._names import event_channel, settled_channel
from tests._support.durable import Harness, RuntimeFactory, submit_refused
from tests._support.durable_workflows import Script, answer, call
from tests._support.wait import wait_until

on_redis = pytest.mark.parametrize("broker", ["redis"], indirect=True)


class Listener:
    """Collects the events published live for runs, from a pattern subscription."""

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._pubsub.psubscribe(event_channel("*"))
        wait_until(lambda: self._pubsub.get_message(timeout=0.05) is None and self._pubsub.subscribed, what="psub")
        self.received: list[dict[str, object]] = []

    def poll(self) -> None:
        while (message := self._pubsub.get_message(timeout=0.01)) is not None:
            self.received.append(json.loads(message["data"]))

    def seqs(self, run_id: str) -> list[int]:
        self.poll()
        return [int(str(event["seq"])) for event in self.received if event["run_id"] == run_id]

    def types(self, run_id: str) -> list[str]:
        self.poll()
        return [str(event["type"]) for event in self.received if event["run_id"] == run_id]

    def close(self) -> None:
        self._pubsub.close()
        self._client.close()


@pytest.fixture
def listener(factory: RuntimeFactory) -> Iterator[Listener]:
    assert factory.redis_url is not None
    listening = Listener(factory.redis_url)
    yield listening
    listening.close()


def _all_seqs(h: Harness, run_id: str) -> list[int]:
    return [event.seq for event in h.service.events(run_id)]


@on_redis
async def test_every_event_of_a_run_is_published_live_in_order(factory: RuntimeFactory, listener: Listener) -> None:
    script = Script([call("dt_add", {"a": 2, "b": 3}, call_id="c1"), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model), tools=["dt_add"])

    await h.drive(run_id)

    every = _all_seqs(h, run_id)
    assert every == list(range(1, len(every) + 1))
    wait_until(lambda: listener.seqs(run_id) == every, timeout=5, what="every event live")
    assert listener.types(run_id)[0] == "run.submitted"
    assert listener.types(run_id)[-1] == "run.succeeded"


@on_redis
async def test_a_finished_run_leaves_no_redis_key_of_its_own(factory: RuntimeFactory, listener: Listener) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    await h.drive(run_id)
    assert factory.redis_url is not None
    client = redis.Redis.from_url(factory.redis_url)
    try:
        keys = list(client.scan_iter(match=f"*{run_id}*"))
    finally:
        client.close()

    # Its events are in SQL and were published; nothing per run accumulates in Redis.
    wait_until(lambda: listener.seqs(run_id) == _all_seqs(h, run_id), timeout=5, what="every event live")
    assert keys == []


@on_redis
async def test_only_the_event_that_settles_a_run_is_published_on_its_settled_channel(
    factory: RuntimeFactory, listener: Listener
) -> None:
    assert factory.redis_url is not None
    client = redis.Redis.from_url(factory.redis_url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        pubsub.psubscribe(settled_channel("*"))
        wait_until(lambda: pubsub.get_message(timeout=0.05) is None and pubsub.subscribed, what="psub")
        h = factory.harness()
        run_id = h.submit(model="offline")
        await h.drive(run_id)
        wait_until(lambda: listener.types(run_id)[-1:] == ["run.succeeded"], timeout=5, what="the run's end live")
        settled = [json.loads(m["data"]) for m in iter(lambda: pubsub.get_message(timeout=0.2), None)]
    finally:
        pubsub.close()
        client.close()

    assert [(event["run_id"], event["type"]) for event in settled] == [(run_id, "run.succeeded")]


@on_redis
def test_a_cancel_is_published_live(factory: RuntimeFactory, listener: Listener) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")

    h.service.cancel(run_id)

    wait_until(lambda: "run.cancelled" in listener.types(run_id), timeout=5, what="run.cancelled live")


@on_redis
async def test_a_resume_is_published_live(factory: RuntimeFactory, listener: Listener) -> None:
    from pydantic_ai.exceptions import UnexpectedModelBehavior

    script = Script([UnexpectedModelBehavior("garbage"), answer("5")])
    h = factory.harness()
    run_id = h.submit(model=factory.model("scripted", script.model))
    await h.step(run_id)
    assert h.service.get(run_id).status == RunStatus.FAILED

    h.service.resume(run_id)

    wait_until(lambda: "run.resumed" in listener.types(run_id), timeout=5, what="run.resumed live")
    assert listener.seqs(run_id) == _all_seqs(h, run_id)


@on_redis
def test_a_redispatch_is_published_live(factory: RuntimeFactory, listener: Listener) -> None:
    h = factory.harness(dispatch_grace_seconds=0)
    run_id = submit_refused(h.runtime, SubmitRun(input="hi", model="offline"))  # its first step's row is unsent

    Reconciler(h.runtime, dispatcher=h.dispatcher).run_once()

    wait_until(lambda: "step.redispatched" in listener.types(run_id), timeout=5, what="step.redispatched live")


def _published_once(factory: RuntimeFactory, listener: Listener) -> tuple[Harness, str, EventPublisher, redis.Redis]:
    """A run, and a new publisher whose connection is open: it has published the run's events once."""
    assert factory.redis_url is not None
    h = factory.harness()
    run_id = h.submit(model="offline")
    publisher = EventPublisher(factory.redis_url)
    wait_until(lambda: listener.types(run_id) == ["run.submitted"], timeout=5, what="the submit's own publish")
    publisher.publish(h.service.events(run_id))
    wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 2, timeout=5, what="first publish")
    return h, run_id, publisher, redis.Redis.from_url(factory.redis_url)


@on_redis
def test_a_publish_does_not_wait_for_redis_to_reply(factory: RuntimeFactory, listener: Listener) -> None:
    h, run_id, publisher, admin = _published_once(factory, listener)

    # Redis holds every PUBLISH until unpaused: a publish that waited for its reply would block here.
    admin.execute_command("CLIENT", "PAUSE", "20000", "WRITE")
    try:
        publisher.publish(h.service.events(run_id))
        assert listener.types(run_id) == ["run.submitted"] * 2  # sent, not yet run
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 3, timeout=5, what="the paused publish")
    publisher.close()
    admin.close()


@on_redis
def test_a_publish_after_its_connection_was_killed_reconnects_and_is_delivered(
    factory: RuntimeFactory, listener: Listener
) -> None:
    h, run_id, publisher, admin = _published_once(factory, listener)

    # The publishing connections (this publisher's and the harness's), found by their last command.
    publishing = [client["id"] for client in admin.client_list() if client["cmd"] == "publish"]
    assert publishing
    for client_id in publishing:
        admin.client_kill_filter(_id=client_id)
    publisher.publish(h.service.events(run_id))  # the previous replies are lost with the socket

    wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 3, timeout=5, what="publish after the kill")
    publisher.close()
    admin.close()


@on_redis
def test_a_forked_child_publishes_on_a_connection_of_its_own(factory: RuntimeFactory, listener: Listener) -> None:
    import os

    assert factory.redis_url is not None
    h = factory.harness()
    run_id = h.submit(model="offline")
    events = h.service.events(run_id)
    publisher = EventPublisher(factory.redis_url)
    publisher.publish(events)  # the parent's connection, with a reply still unread
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's outcome is its exit status
        code = 1
        try:
            publisher.publish(events)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    publisher.publish(events)  # the parent's connection still reads its own replies

    # The submit's own publish, then the parent's, the child's and the parent's again.
    wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 4, timeout=5, what="every publish")
    publisher.close()


@on_redis
def test_a_thread_that_published_and_ended_gives_its_connection_back(
    factory: RuntimeFactory, listener: Listener
) -> None:
    import gc
    import threading

    h, run_id, publisher, admin = _published_once(factory, listener)

    def publishing() -> int:
        return sum(1 for client in admin.client_list() if client["cmd"] == "publish")

    before = publishing()
    while_alive: list[int] = []

    def publish_and_count() -> None:
        publisher.publish(h.service.events(run_id))
        while_alive.append(publishing())

    thread = threading.Thread(target=publish_and_count)
    thread.start()
    thread.join()
    gc.collect()  # the thread's locals, its sender among them, are gone with it

    try:
        assert while_alive == [before + 1]  # the thread's own connection
        wait_until(lambda: publishing() == before, timeout=5, what="the thread's connection closed")
        wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 3, timeout=5, what="the thread's publish")
    finally:
        publisher.close()
        admin.close()


@on_redis
def test_a_publish_that_cannot_be_sent_is_logged_and_the_next_one_gets_a_sound_connection(
    factory: RuntimeFactory, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.connection import AbstractConnection

    h, run_id, publisher, admin = _published_once(factory, listener)
    admin.close()

    def refuse(self: AbstractConnection, command: object, check_health: bool = True) -> None:
        raise redis.ConnectionError("connection refused")

    monkeypatch.setattr(AbstractConnection, "send_packed_command", refuse)
    publisher.publish(h.service.events(run_id))  # logged, not raised; the connection is dropped
    monkeypatch.undo()

    # The dropped connection went back to the pool, disconnected, and is lent to one user at a time.
    assert publisher._client is not None
    pool = publisher._client.connection_pool
    lent = [pool.get_connection(), pool.get_connection()]
    assert lent[0] is not lent[1]
    for conn in lent:
        pool.release(conn)
    publisher.publish(h.service.events(run_id))  # and publishing works again
    wait_until(lambda: listener.types(run_id) == ["run.submitted"] * 3, timeout=5, what="the publish after")
    publisher.close()


@on_redis
def test_publishing_to_an_unreachable_redis_loses_nothing_in_sql(factory: RuntimeFactory) -> None:
    publisher = EventPublisher("redis://127.0.0.1:1/0")  # nothing listens there
    h = factory.harness()
    run_id = h.submit(model="offline")

    publisher.publish(h.service.events(run_id))  # logged, not raised

    assert [e.type for e in h.service.events(run_id)] == ["run.submitted"]
    publisher.close()


def test_a_wait_falls_back_to_polling_when_redis_cannot_be_subscribed_to(factory: RuntimeFactory) -> None:
    h = factory.harness()
    run_id = h.submit(model="offline")
    publisher = EventPublisher("redis://127.0.0.1:1/0")  # nothing listens there
    service = RunService(h.runtime, publisher=publisher, dispatcher=h.dispatcher)

    with publisher.settle_notices(run_id) as notices:
        assert notices is None  # logged; the caller polls
    with pytest.raises(WaitTimeoutError):
        service.wait(run_id, timeout=0.2, poll_interval=0.05)
    publisher.close()


def test_no_publisher_is_used_for_a_broker_that_is_not_redis() -> None:
    assert EventPublisher("mamba+sqlite:///broker.db").enabled is False
    assert EventPublisher("amqp://guest@localhost//").enabled is False
    assert EventPublisher("redis://localhost:6379/0").enabled is True
