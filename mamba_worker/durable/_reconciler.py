"""`Reconciler`: re-sends what the broker never delivered and what a dead worker left behind.

SQL is the truth, the broker only a doorbell (DESIGN.md invariant 3). Each pass:

1. outbox rows never sent (the committing worker died between commit and send, or its send
   failed), older than ``dispatch_grace_seconds``, and retries whose back-off has passed;
2. running steps whose lease expired (their worker died: kill -9, OOM, node loss): put back to
   ``pending`` and sent again; the next claim is attempt + 1 (invariant 4);
3. steps sent but never claimed for ``redispatch_after`` seconds (the broker lost the message:
   Redis flushed or restarted empty, the embedded broker's file deleted).

Every re-send is recorded as a ``step.redispatched`` event. There is no single point of failure:
any number of reconcilers may run (a loop inside each worker, and/or Celery beat), because every
change is a conditional UPDATE and a duplicate message is harmless (only one claim can win).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from mamba_client.schemas import Event, RedispatchReason, StepRedispatched, StepStatus
from mamba_worker.durable._dispatch import Dispatcher
from mamba_worker.durable._events import EventPublisher
from mamba_worker.durable._runtime import Runtime
from mamba_worker.durable.store import (
    OutboxRow,
    append_events_txn,
    expire_lease_txn,
    load_step_txn,
    requeue_outbox_txn,
    utcnow,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReconcileReport:
    """What one pass re-sent."""

    unsent: int = 0
    expired_leases: int = 0
    lost_dispatches: int = 0

    @property
    def total(self) -> int:
        """Steps sent again."""
        return self.unsent + self.expired_leases + self.lost_dispatches


class Reconciler:
    """Finds lost doorbells and expired leases and rings again.

    Args:
        runtime: The runtime whose store and broker to reconcile.
        dispatcher: Sends the tasks (default: one over the runtime's app and store).
        publisher: Pushes the ``step.redispatched`` events live (default: Redis when the broker is Redis).
    """

    def __init__(
        self, runtime: Runtime, *, dispatcher: Dispatcher | None = None, publisher: EventPublisher | None = None
    ) -> None:
        self._rt = runtime
        self._dispatcher = dispatcher or Dispatcher(runtime.app, runtime.store)
        self._publisher = publisher or EventPublisher(runtime.runtime.broker_url.get_secret_value())

    def run_once(self) -> ReconcileReport:
        """One pass over the three kinds of loss."""
        settings = self._rt.runtime
        store = self._rt.store
        now = utcnow()
        unsent = 0
        for row in store.get_outbox_pending(
            older_than=now - timedelta(seconds=settings.dispatch_grace_seconds), now=now
        ):
            # A row with a back-off is a retry coming due; any other unsent row is a lost doorbell.
            self._resend(
                row, reason=RedispatchReason.RETRY if row.not_before is not None else RedispatchReason.LOST_DISPATCH
            )
            unsent += 1
        expired = sum(
            self._requeue(step.run_id, step.seq, RedispatchReason.LEASE_EXPIRED, now=now, expire_lease=True)
            for step in store.get_expired_leases(now=now)
        )
        lost = sum(
            self._requeue(row.run_id, row.seq, RedispatchReason.LOST_DISPATCH, now=now)
            for row in store.get_stalled_dispatches(
                dispatched_before=now - timedelta(seconds=settings.redispatch_after)
            )
        )
        report = ReconcileReport(unsent=unsent, expired_leases=expired, lost_dispatches=lost)
        if report.total:
            logger.info("reconciler re-sent %d steps (%s)", report.total, report)
        return report

    def _resend(self, row: OutboxRow, *, reason: RedispatchReason) -> None:
        with self._rt.store.session() as session, session.begin():
            step = load_step_txn(session, row.run_id, row.seq)
            events = self._record(session, row.run_id, row.seq, step.name, reason)
        self._publisher.publish(events)
        self._dispatcher.send(
            run_id=row.run_id, seq=row.seq, task_name=row.task_name, queue=row.queue, priority=row.priority
        )

    def _requeue(
        self, run_id: str, seq: int, reason: RedispatchReason, *, now: datetime, expire_lease: bool = False
    ) -> bool:
        """Make the step's message due again and send it; ``False`` if the step moved on meanwhile."""
        with self._rt.store.session() as session, session.begin():
            if expire_lease and not expire_lease_txn(session, run_id, seq, now=now):
                return False  # heartbeat or commit got there first
            step = load_step_txn(session, run_id, seq)
            outbox = session.get(OutboxRow, (run_id, seq))
            if outbox is None or step.status not in (StepStatus.PENDING, StepStatus.DISPATCHED):
                return False  # claimed (or finished) since the query: its worker has it
            requeue_outbox_txn(session, run_id, seq, now=now)
            events = self._record(session, run_id, seq, step.name, reason)
            task_name, queue, priority = outbox.task_name, outbox.queue, outbox.priority
        self._publisher.publish(events)
        self._dispatcher.send(run_id=run_id, seq=seq, task_name=task_name, queue=queue, priority=priority)
        return True

    @staticmethod
    def _record(session: Session, run_id: str, seq: int, step: str, reason: RedispatchReason) -> list[Event]:
        return append_events_txn(session, [StepRedispatched(run_id=run_id, step_seq=seq, step=step, reason=reason)])


class ReconcilerThread:
    """Runs `Reconciler.run_once` every ``reconciler_interval_seconds`` in a daemon thread.

    Started inside every worker (and by ``mamba run``), so reconciliation has no single point of
    failure. Database errors are logged and the loop goes on: a restarted PostgreSQL is picked
    up on the next pass.
    """

    def __init__(self, runtime: Runtime, *, interval: float | None = None) -> None:
        self._reconciler = Reconciler(runtime)
        self._interval = interval if interval is not None else runtime.runtime.reconciler_interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mamba-reconciler", daemon=True)

    def start(self) -> ReconcilerThread:
        """Start the loop."""
        self._thread.start()
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop the loop and wait for the current pass to end."""
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._reconciler.run_once()
            except DBAPIError as error:
                logger.warning("reconciler pass failed (database unavailable?): %s", error)
            except Exception:
                logger.exception("reconciler pass failed")
