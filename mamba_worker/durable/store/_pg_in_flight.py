"""Writes in flight on a `ThreadConnections` connection: how each is finished, and how it settled."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import AbstractContextManager
from typing import Any

import psycopg
from psycopg.waiting import Wait


class SentWrite:
    """One write sent without waiting (`ThreadConnections.send_unsettled`, `send_deferred`), and how it settled."""

    __slots__ = ("cursors", "error", "rows", "settled")

    def __init__(self, cursors: list[psycopg.Cursor[Any]]) -> None:
        self.cursors = cursors
        """One per statement sent, in order."""
        self.settled = False
        """Whether its replies were read (by whichever use of the connection came first)."""
        self.error: psycopg.Error | None = None
        """Its error, if it failed (the write did not take effect)."""
        self.rows: list[list[tuple[Any, ...]]] = []
        """Once settled without error: the rows of each statement that returns rows, in order.

        Taken from the cursors as the write settles: a cursor is kept per statement text, and the
        next run of the same statement on the thread would replace them."""

    def took_effect(self) -> None:
        """Settled without error: keep the statements' rows."""
        self.settled = True
        self.rows = [cursor.fetchall() for cursor in self.cursors if cursor.description is not None]

    def failed(self, error: psycopg.Error) -> None:
        """Settled with ``error``."""
        self.settled, self.error = True, error


class PipelineInFlight:
    """Writes in flight in pipeline mode (`ThreadConnections.send_unsettled`)."""

    __slots__ = ("pipeline", "sent")

    def __init__(self, pipeline: AbstractContextManager[psycopg.Pipeline], sent: SentWrite) -> None:
        self.pipeline, self.sent = pipeline, sent

    def finish(self) -> None:
        """Send a Sync and read every reply (psycopg's pipeline exit)."""
        self.pipeline.__exit__(None, None, None)


class ExecutionInFlight:
    """A statement in flight outside pipeline mode (`ThreadConnections.send_deferred`)."""

    __slots__ = ("_conn", "_execution", "_waiting", "sent")

    def __init__(
        self, conn: psycopg.Connection[Any], execution: Generator[Any, Any, Any], waiting: Wait, sent: SentWrite
    ) -> None:
        self._conn, self._execution, self._waiting, self.sent = conn, execution, waiting, sent

    def finish(self) -> None:
        """Run the rest of psycopg's execution: wait for the reply and hand its rows to the cursor."""
        self._conn.wait(_resumed(self._execution, self._waiting))


def _resumed(execution: Generator[Any, Any, Any], waiting: Wait) -> Generator[Any, Any, Any]:
    """``execution`` from where it waits with ``waiting``, for `psycopg.Connection.wait` to drive."""
    ready = yield waiting
    while True:
        try:
            waiting = execution.send(ready)
        except StopIteration as stop:
            return stop.value
        ready = yield waiting
