"""`ThreadConnections`: each thread's own psycopg connection for `PgPipeline`'s statements.

Why not a pooled connection per statement: checking one out and back in (SQLAlchemy resets it with
a ``ROLLBACK``) cost about a tenth of an inline step, and any ``ROLLBACK`` empties psycopg's cache
of prepared statements, so the per-step CTEs were parsed and planned again. Per thread, because a
connection is not shared between threads mid-transaction; per process (the pid is checked),
because a forked child (a prefork pool process) must never use its parent's socket.

A connection may hold a write sent without waiting for its replies (`send_unsettled`,
`send_deferred`): the statements are on the socket, so the server commits them whatever happens
to this process, and their replies are read (`settle`) before the connection is used again. Each
keeps a `SentWrite` that says how it settled, whoever settled it.
"""

from __future__ import annotations

import os
import select
import threading
import weakref
from collections.abc import Sequence
from typing import Any, cast

import psycopg
from psycopg.waiting import Ready, Wait
from sqlalchemy import Engine

from mamba_worker.durable.store._pg_in_flight import ExecutionInFlight, PipelineInFlight, SentWrite

_Opened = list[tuple[int, "psycopg.Connection[Any]"]]

_INHERITED_WRITES: list[PipelineInFlight | ExecutionInFlight] = []
"""Writes in flight (`ThreadConnections.send_unsettled`, `send_deferred`) a forked child inherited: kept, never ended.

A write's pipeline is a generator-based context manager. Dropped, it is garbage-collected, which
closes the generator, which ends the pipeline: a Sync sent down the parent's socket and the
parent's replies read by the child, so the parent would then wait forever for replies that never
come. Kept here, a child never touches them (a prefork child leaves with ``os._exit``, without
collecting them either).
"""

_pid = os.getpid()
"""This process's pid, kept current across forks: `ThreadConnections._current` checks it on every
statement, without a system call each time."""


def _forked() -> None:
    global _pid  # the one place it changes
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class ThreadConnections:
    """The connections of one engine's database that `PgPipeline` keeps, one per thread.

    Each is checked out of the engine's pool once and detached from it (the pool forgets it and
    opens another when it needs one). `close` closes them; so does dropping this object.

    Args:
        engine: A ``postgresql+psycopg`` engine.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._held = threading.local()
        self._opened: _Opened = []
        """Every thread's connection, with the pid that opened it (a forked child inherits the list)."""
        self._lock = threading.Lock()
        self._generation = 0
        """Bumped when a connection is found dead: the others, opened before, are replaced on next use."""
        # Dropped without `close`, the connections are still closed (the callback holds the list,
        # not this object).
        weakref.finalize(self, _close_opened, self._opened, self._lock)

    def get(self) -> psycopg.Connection[Any]:
        """The calling thread's connection, opened on first use (or after `drop`, or in a new process).

        Raises:
            RuntimeError: The connection holds a write not yet settled (`settle` first).
        """
        held = self._current()
        if held is not None and not held.conn.closed:
            if held.unsettled is not None:
                # Its replies would read as the server ending the connection (`spoken_to`), and a
                # statement sent now would join the unsettled pipeline.
                raise RuntimeError("this thread's connection has a write in flight: settle it first")
            if held.generation != self._generation:
                # Another thread's connection died (a server restart kills them all): replace
                # this one before it fails a write of its own.
                self.drop(held.conn)
            elif held.spoken_to():
                # The server wrote to this idle connection: a restart's "terminating connection",
                # then its end. Replaced before a write fails on it (a step would retry, a submit
                # has none), with every other thread's and the pool's, as after a failed write.
                self.lost(held.conn)
                self._engine.dispose()
            else:
                return held.conn
        pooled = self._engine.raw_connection()
        conn = cast("psycopg.Connection[Any]", pooled.driver_connection)
        pooled.detach()
        held = self._held.held = _Held(conn, os.getpid(), self._generation)
        with self._lock:
            self._opened.append((held.pid, conn))
        # A thread that ends drops its locals: its connection is closed then, not left open until
        # `close` (threads come and go in some pools, and each would keep a server backend).
        weakref.finalize(held, _close_one, self._opened, self._lock, held.pid, conn)
        return conn

    def send_unsettled(self, conn: psycopg.Connection[Any], statements: Sequence[tuple[str, Any]]) -> SentWrite:
        """Send ``statements`` on ``conn`` (from `get`) in pipeline mode, without waiting for their replies.

        Returns once every byte is on the socket: from then on the server runs them even if this
        process dies, so a transaction among them (``BEGIN`` ... ``COMMIT``) is committed whatever
        happens here. Their replies, and any error, come from `settle`, which records them in the
        returned `SentWrite`.
        """
        held = self._owning(conn, "send_unsettled")
        if held.unsettled is not None:
            raise RuntimeError("this thread's connection has a write in flight: settle it first")
        pipeline = conn.pipeline()
        pipeline.__enter__()
        try:
            sent = SentWrite([self.execute(conn, statement, params) for statement, params in statements])
            # psycopg sends what fits in the socket; wait for the rest to be taken.
            while conn.pgconn.flush():
                select.select([], [conn.fileno()], [])
        except BaseException as error:
            pipeline.__exit__(type(error), error, error.__traceback__)
            raise
        held.unsettled = PipelineInFlight(pipeline, sent)
        return sent

    def send_deferred(self, conn: psycopg.Connection[Any], statement: str, params: Any) -> SentWrite:
        """Send one autocommitted statement on ``conn`` (from `get`) and return before its reply.

        Not in pipeline mode: the statement goes out with its Sync, as `execute` sends it, so the
        server commits it as soon as it has run it, and the client work is `execute`'s (a
        pipeline's, with the ``BEGIN`` and ``COMMIT`` that a write in one needs to commit before
        its Sync, costs about twice as much). Its reply, and its error, come from `settle`.

        psycopg has no public call that sends a statement and returns: this runs the generator
        behind `psycopg.Cursor.execute` up to its wait for the reply, and `settle` runs the rest
        (``tests/worker/durable/store/test_pg_connections.py`` pins that behaviour). On the
        connection's first use of the statement, psycopg first prepares it and waits for that: the
        statement itself then only goes out when `settle` runs (correct, but nothing is overlapped).
        """
        held = self._owning(conn, "send_deferred")
        if held.unsettled is not None:
            raise RuntimeError("this thread's connection has a write in flight: settle it first")
        cursor = self._cursor(held, conn, statement)
        execution = cursor._execute_gen(statement, params, prepare=True)
        try:
            waiting = next(execution)
            # Until the statement is on the socket psycopg waits to write; then it waits to read.
            while waiting != Wait.R:
                select.select([], [conn.fileno()], [])
                waiting = execution.send(Ready.W)
        except BaseException:
            # Stopped mid-statement: what the connection is in is unknown, so it is not used again.
            execution.close()
            self.drop(conn)
            raise
        sent = SentWrite([cursor])
        held.unsettled = ExecutionInFlight(conn, execution, waiting, sent)
        return sent

    def unsettled(self) -> psycopg.Connection[Any] | None:
        """This thread's connection if it holds a write sent without waiting (`send_unsettled`, `send_deferred`).

        Never a closed one: it is not written to again (`get` replaces it).
        """
        held = self._current()
        if held is None or held.unsettled is None or held.conn.closed:
            return None
        return held.conn

    def settle(self) -> None:
        """Read the replies of this thread's unsettled write, if any; its error, if it failed.

        The write's `SentWrite` records the outcome, for whoever waits for it later.

        Raises:
            psycopg.Error: A statement of that write failed (its transaction did not commit).
        """
        held = self._current()
        if held is None or held.unsettled is None:
            return
        in_flight, held.unsettled = held.unsettled, None
        if held.conn.closed:
            # Its outcome can no longer be read: a writer that waits for it fails (its step is
            # tried again); the thread's next statement goes to a new connection.
            in_flight.sent.failed(psycopg.OperationalError("the connection closed before the write's outcome was read"))
            return
        try:
            in_flight.finish()
        except psycopg.Error as error:
            in_flight.sent.failed(error)
            raise
        in_flight.sent.took_effect()

    def execute(self, conn: psycopg.Connection[Any], statement: str, params: Any = None) -> psycopg.Cursor[Any]:
        """Run ``statement`` on ``conn`` (from `get`), server-prepared, through a cursor kept for it.

        Why a cursor per statement: psycopg keeps a cursor's adapters (its ``Transformer``, with
        the dumpers it picked for each list's element type) only while the cursor runs the same
        query object again. A new cursor per statement picked a step commit's six list dumpers
        afresh every time: 63 µs of client CPU per such statement on the benchmark machine.

        A kept cursor holds its last result and parameters until the statement runs again:
        statements whose rows are large (a claim's, which carry the run's state) go through a
        cursor of their own.
        In pipeline mode, one statement text must not be queued twice before its first result is
        read: both would land on the same cursor.
        """
        held = self._owning(conn, "execute")
        return self._cursor(held, conn, statement).execute(statement, params, prepare=params is not None)

    @staticmethod
    def _cursor(held: _Held, conn: psycopg.Connection[Any], statement: str) -> psycopg.Cursor[Any]:
        """The cursor kept for ``statement`` on the thread's connection (`execute`)."""
        cursor = held.cursors.get(statement)
        if cursor is None:
            cursor = held.cursors[statement] = conn.cursor()
        return cursor

    def _current(self) -> _Held | None:
        """This thread's connection as held, if it has one in this process.

        A forked child inherits the forking thread's locals: the parent's connection is forgotten
        here (the child opens its own), and a write in flight on it is kept, never ended
        (`_INHERITED_WRITES`), so nothing of the child's ever reads or writes the parent's socket.
        """
        held: _Held | None = getattr(self._held, "held", None)
        if held is not None and held.pid != _pid:
            if held.unsettled is not None:
                _INHERITED_WRITES.append(held.unsettled)
            self._held.held = held = None
        return held

    def _owning(self, conn: psycopg.Connection[Any], method: str) -> _Held:
        """This thread's connection as held, which must be ``conn``."""
        held = self._current()
        if held is None or held.conn is not conn:
            raise ValueError(f"{method} takes this thread's connection, as `get` returned it")
        return held

    def lost(self, conn: psycopg.Connection[Any]) -> None:
        """``conn`` was found disconnected: drop it, and have every other thread replace its own too."""
        with self._lock:
            self._generation += 1
        self.drop(conn)

    def drop(self, conn: psycopg.Connection[Any]) -> None:
        """Forget and close this thread's connection; the thread opens a new one on its next use."""
        held = self._current()
        if held is not None and held.conn is conn:
            self._held.held = None
        _close_one(self._opened, self._lock, os.getpid(), conn)

    def close(self) -> None:
        """Close every connection this process opened.

        A forked child's list holds its parent's connections too: those are forgotten, not closed
        (closing sends a terminate message down the socket the parent still uses).
        """
        _close_opened(self._opened, self._lock)


class _Held:
    """One thread's connection, with the process and the generation it was opened in."""

    __slots__ = ("__weakref__", "_poller", "conn", "cursors", "generation", "pid", "unsettled")

    def __init__(self, conn: psycopg.Connection[Any], pid: int, generation: int) -> None:
        self.conn, self.pid, self.generation = conn, pid, generation
        self.cursors: dict[str, psycopg.Cursor[Any]] = {}
        """One cursor per statement text (`ThreadConnections.execute`); they end with the connection."""
        self.unsettled: PipelineInFlight | ExecutionInFlight | None = None
        """The write sent without waiting for its replies (`ThreadConnections.send_unsettled`,
        `ThreadConnections.send_deferred`), with its `SentWrite`; finishing it reads them."""
        # Built once: `spoken_to` runs before every statement. Where ``poll`` is missing (Windows), none.
        self._poller = select.poll() if hasattr(select, "poll") else None
        if self._poller is not None:
            self._poller.register(conn.fileno(), select.POLLIN)

    def spoken_to(self) -> bool:
        """Whether the server wrote to this idle connection: it never does unasked, but to end it.

        A poll of the socket with no wait (no round trip).
        """
        return self._poller is not None and bool(self._poller.poll(0))


def _close_one(opened: _Opened, lock: threading.Lock, pid: int, conn: psycopg.Connection[Any]) -> None:
    """Forget ``conn`` and close it, if this process opened it (a thread's connection, at its end)."""
    with lock:
        opened[:] = [(p, c) for p, c in opened if c is not conn]
    if pid == os.getpid() and not conn.closed:
        conn.close()


def _close_opened(opened: _Opened, lock: threading.Lock) -> None:
    """Close the connections in ``opened`` that this process opened; empty it."""
    with lock:
        taken = list(opened)
        opened.clear()
    for pid, conn in taken:
        if pid == os.getpid() and not conn.closed:
            conn.close()
