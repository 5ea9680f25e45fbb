"""`Dispatcher`: rings a step's doorbell (sends its Celery task) and records that it did."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from celery import Celery

from mamba_worker.durable._routing import broker_priority
from mamba_worker.durable.store import RunStore, mark_dispatched_txn, requeue_outbox_txn, utcnow

logger = logging.getLogger(__name__)


class Dispatcher:
    """Sends step tasks by name (it never imports the task functions) and stamps the outbox.

    Priorities are on Mamba's scale (0 to 9, higher is more urgent, ``None`` as 0) and mapped onto
    the app's broker here (`broker_priority`); the embedded broker gets none.

    Args:
        app: The Celery app (its producer pool is reused: never one connection per publish).
        store: Where the outbox lives.
    """

    def __init__(self, app: Celery, store: RunStore) -> None:
        self._app = app
        self._store = store
        self._broker_url = str(app.conf.broker_url or "")

    def send(
        self,
        *,
        run_id: str,
        seq: int,
        task_name: str,
        queue: str,
        priority: int | None = None,
        countdown: float | None = None,
    ) -> str:
        """Send the task of step ``seq`` and mark its outbox row dispatched; returns the task id.

        The message goes out before the stamp. A crash between the two leaves the row
        undispatched, so the reconciler sends it again; the second message is harmless because
        only one worker can claim the step. The other order could lose the message for good.

        ``countdown`` (a retry's back-off) delays delivery by that many seconds (Celery's ETA);
        the row is stamped as dispatched at the moment it becomes due, so the reconciler's
        "sent but never claimed" clock starts then, not now.
        """
        task_id = new_task_id(run_id, seq)
        self.publish(
            run_id=run_id,
            seq=seq,
            task_name=task_name,
            queue=queue,
            task_id=task_id,
            priority=priority,
            countdown=countdown,
        )
        due = utcnow() + timedelta(seconds=countdown or 0.0)
        with self._store.session() as session, session.begin():
            mark_dispatched_txn(session, run_id, seq, task_id=task_id, now=due)
        return task_id

    def send_stamped(
        self, *, run_id: str, seq: int, task_name: str, queue: str, task_id: str, priority: int | None = None
    ) -> None:
        """Send the task of a step whose outbox row its commit stamped as sent under ``task_id``.

        A crash before the send leaves the row looking sent while nobody claims the step: the
        reconciler re-sends it after ``redispatch_after``. A send the broker refuses is told apart:
        the row is made due again, so the reconciler sends it after its short grace instead of a
        lease later, and the broker's error is raised.
        """
        try:
            self.publish(run_id=run_id, seq=seq, task_name=task_name, queue=queue, task_id=task_id, priority=priority)
        except Exception:
            try:
                with self._store.session() as session, session.begin():
                    requeue_outbox_txn(session, run_id, seq)
            except Exception:
                logger.exception("could not mark step %s of run %s unsent; it is re-sent after a lease", seq, run_id)
            raise

    def publish(
        self,
        *,
        run_id: str,
        seq: int,
        task_name: str,
        queue: str,
        task_id: str,
        priority: int | None = None,
        countdown: float | None = None,
    ) -> None:
        """Send the task only: for an outbox row already stamped in the committing transaction."""
        # Only ids travel: the state is in SQL, so messages stay tiny and never go stale.
        self._app.send_task(
            task_name,
            args=[run_id, seq],
            queue=queue,
            task_id=task_id,
            ignore_result=True,
            priority=broker_priority(self._broker_url, priority),
            countdown=countdown,
        )
        logger.debug("dispatched %s for run %s step %s on %s (priority %s)", task_name, run_id, seq, queue, priority)


def new_task_id(run_id: str, seq: int) -> str:
    """A Celery task id for one message of a step (unique per send, readable in Flower)."""
    return f"{run_id}:{seq}:{uuid.uuid4().hex[:8]}"
