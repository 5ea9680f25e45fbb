"""The embedded broker: Celery messages in a SQLite file, for one machine and no servers.

Why this one (see also docs/DESIGN.md, "Embedded broker"):

- It is kombu's own SQLAlchemy transport, so workers, the reconciler and ``mamba run`` speak
  plain Celery to it: nothing home-made sits between Celery and its messages.
- A SQLite file works across processes on one machine (a ``celery worker`` in another terminal,
  ``mamba run`` in this one), which kombu's ``memory://`` cannot, and it needs nothing installed.
- It survives restarts of every process; and because SQL, not the broker, is the truth of a run,
  losing the file (``rm .mamba/broker.db``) loses no run: the reconciler sends the steps again.

Two things are adjusted for it, both through kombu's extension points: the polling interval
(kombu passes every transport option to ``create_engine``, so it cannot be set the usual way), and
a generous SQLite busy timeout, because several processes write the same file.

URLs look like ``mamba+sqlite:///.mamba/broker.db``; `register_embedded_transport` makes kombu
resolve the ``mamba`` scheme to `EmbeddedTransport`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SQLAlchemyChannel
from kombu.transport.sqlalchemy import Transport as SQLAlchemyTransport
from kombu.transport.sqlalchemy.models import metadata
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, OperationalError

SCHEME = "mamba"
"""URL scheme of the embedded broker: ``mamba+sqlite:///<file>``."""

DRAIN_SLICE_SECONDS = 0.2
"""The longest one wait for a message lasts before the worker loop looks at its state again."""

_OPTIONS_NOT_FOR_ENGINES = ("polling_interval", "visibility_timeout")


class EmbeddedChannel(SQLAlchemyChannel):
    """kombu's SQLAlchemy channel, with an engine tuned for several processes sharing one SQLite file."""

    def _engine_from_config(self) -> Engine:
        conninfo: Any = self.connection.client  # kombu is untyped here
        url = make_url(conninfo.hostname)
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options = {
            key: value
            for key, value in conninfo.transport_options.items()
            if key not in _OPTIONS_NOT_FOR_ENGINES
            and not key.startswith(("interval_", "max_retries", "retry_"))
            and key not in ("queue_tablename", "message_tablename", "callback", "errback")
        }
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **options)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            # WAL lets readers (polling workers) run while a producer writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        _create_tables(engine)
        return engine

    def _get_or_create(self, queue: str) -> Any:
        """kombu's, made safe across processes (its lock is per process).

        Two workers starting at once both find no row for their queue and both insert it; the
        loser's INSERT fails on the unique name, and the row it wanted now exists.
        """
        kombu: Any = super()  # kombu's channel is untyped here
        try:
            return kombu._get_or_create(queue)
        except IntegrityError:
            self.session.rollback()
            return kombu._get_or_create(queue)


def _create_tables(engine: Engine) -> None:
    """Create kombu's tables before kombu does, tolerating another process creating them meanwhile.

    kombu checks for the tables, then creates them; a process that checked before another one
    created them fails with "table ... already exists". Its second try finds them.
    """
    try:
        metadata.create_all(engine)
    except OperationalError as error:
        if "already exists" not in str(error):
            raise
        metadata.create_all(engine)


class EmbeddedTransport(SQLAlchemyTransport):
    """kombu transport for ``mamba+sqlite://`` URLs (see the module docstring)."""

    Channel = EmbeddedChannel
    polling_interval = 0.05
    driver_type = "sql"
    driver_name = "sqlite"

    def drain_events(self, connection: Any, timeout: float | None = None) -> None:  # type: ignore[override]
        """Wait for a message at most `DRAIN_SLICE_SECONDS` per call (when the caller gives a timeout).

        Celery's worker loop waits 2 s per call and checks whether it should stop only between
        calls, so stopping an in-process worker (``mamba run`` exiting) took up to 2 s; a shorter
        wait per call costs one loop turn per slice and nothing else.
        """
        # (kombu's stubs give the base and virtual transports different signatures: hence the ignore.)
        super().drain_events(connection, timeout=None if timeout is None else min(timeout, DRAIN_SLICE_SECONDS))


def register_embedded_transport() -> None:
    """Let kombu resolve ``mamba+...`` URLs to `EmbeddedTransport` (idempotent)."""
    TRANSPORT_ALIASES.setdefault(SCHEME, f"{__name__}:EmbeddedTransport")


def is_embedded(broker_url: str) -> bool:
    """Whether ``broker_url`` names the embedded broker."""
    return broker_url.startswith(SCHEME + "+")
