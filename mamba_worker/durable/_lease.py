"""`StepLease`: the lease a running step holds, and the heartbeat that keeps it alive.

Claiming (`claim_step_txn`) gives the step a lease until ``now + lease_seconds``. While the step
works (a model call may take minutes), a heartbeat extends it every ``heartbeat_interval``. If the
worker dies, the heartbeat stops, the lease expires and the reconciler re-dispatches the step:
recovery is bounded by the lease, not by the broker's visibility timeout.

If a heartbeat finds the lease taken over (another worker claimed the step after it expired,
say after a long GC pause), the step is cancelled here at once: its commit would fail anyway,
and stopping early avoids running tools twice in parallel. A heartbeat that finds the run
cancelled stops the step too (DESIGN.md invariant 7: a cancel is prompt, not "after the model
call"); its commit would be refused anyway.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from sqlalchemy.exc import DBAPIError

from mamba_worker.durable.errors import LeaseLostError, RunCancelledError
from mamba_worker.durable.store import RunStore, heartbeat_txn, load_run_txn

logger = logging.getLogger(__name__)


class StepLease:
    """The lease of one attempt of one step.

    Args:
        store: Where the lease lives.
        run_id: The run.
        seq: The step.
        owner: This worker's id.
        attempt: The attempt the claim returned.
        lease_seconds: Length of the lease.
        heartbeat_interval: Seconds between extensions.
    """

    def __init__(
        self,
        store: RunStore,
        *,
        run_id: str,
        seq: int,
        owner: str,
        attempt: int,
        lease_seconds: float,
        heartbeat_interval: float,
    ) -> None:
        self._store = store
        self.run_id = run_id
        self.seq = seq
        self.owner = owner
        self.attempt = attempt
        self._lease_seconds = lease_seconds
        self._interval = heartbeat_interval
        self.lost = False
        self.cancel_requested = False

    def extend(self) -> bool:
        """Extend the lease now; ``False`` when another attempt took it over. Notes a cancel of the run."""
        with self._store.session() as session, session.begin():
            held = heartbeat_txn(
                session,
                self.run_id,
                self.seq,
                owner=self.owner,
                attempt=self.attempt,
                lease_seconds=self._lease_seconds,
            )
            if held:
                self.cancel_requested = load_run_txn(session, self.run_id).cancel_requested
            return held

    @asynccontextmanager
    async def kept_alive(self) -> AsyncIterator[None]:
        """Heartbeat while the block runs; stop the block if the lease is lost or the run cancelled.

        Raises:
            LeaseLostError: Another attempt took the step over.
            RunCancelledError: The run was cancelled.
        """
        current = asyncio.current_task()
        assert current is not None, "kept_alive needs a running task"
        beat = asyncio.create_task(self._beat(current), name=f"lease:{self.run_id}:{self.seq}")
        try:
            yield
        except asyncio.CancelledError:
            if self.lost:
                raise LeaseLostError(
                    f"step {self.seq} of run {self.run_id!r} lost its lease to another attempt",
                    run_id=self.run_id,
                    seq=self.seq,
                    owner=self.owner,
                ) from None
            if self.cancel_requested:
                raise RunCancelledError(
                    f"run {self.run_id!r} was cancelled while step {self.seq} ran", run_id=self.run_id
                ) from None
            raise
        finally:
            beat.cancel()
            with suppress(asyncio.CancelledError):
                await beat

    async def _beat(self, holder: asyncio.Task[object]) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                # A short synchronous UPDATE; run it off the loop so a slow database does not
                # stall the step's own I/O.
                held = await asyncio.to_thread(self.extend)
            except DBAPIError as error:
                # The database is away (restart, failover). Keep beating: if it is back before
                # the lease ends nothing is lost; if not, the step's commit fails its owner check.
                logger.warning("lease heartbeat for run %s step %s failed: %s", self.run_id, self.seq, error)
                continue
            if not held:
                logger.error("run %s step %s: lease taken over; cancelling this attempt", self.run_id, self.seq)
                self.lost = True
                holder.cancel()
                return
            if self.cancel_requested:
                logger.info("run %s was cancelled: stopping step %s", self.run_id, self.seq)
                holder.cancel()
                return
