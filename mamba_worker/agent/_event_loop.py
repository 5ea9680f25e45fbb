"""`run_blocking`: run a coroutine from sync code on this thread's long-lived event loop.

Sync entry points (``Agent.run_sync``, Celery task bodies) must not create a fresh loop per call:
pydantic-ai's HTTP clients and MCP sessions hold connections bound to the loop that opened them,
and a new loop every call would rebuild them every call (or break them). So each thread keeps one
loop for its lifetime and reuses it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from mamba_worker.errors import UsageError

T = TypeVar("T")

_local = threading.local()


class _ThreadLoop:
    """Owns one thread's loop, and closes it when the thread's locals are dropped.

    Why: a thread that ends (a Celery pool thread, a test's in-process worker) never calls
    `close_thread_event_loop`, and its loop would otherwise be collected unclosed, with its
    self-pipe sockets open (a ResourceWarning, and two file descriptors until collected).
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        if not self.loop.is_closed() and not self.loop.is_running():
            self.loop.close()


def thread_event_loop() -> asyncio.AbstractEventLoop:
    """This thread's reusable event loop, created on first use (or after it was closed)."""
    owner: _ThreadLoop | None = getattr(_local, "owner", None)
    if owner is None or owner.loop.is_closed():
        owner = _ThreadLoop()
        _local.owner = owner
    return owner.loop


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on this thread's loop and return its result.

    Raises:
        UsageError: when called from inside a running event loop (use ``await`` there).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coro.close()
        raise UsageError("A blocking call (run_sync) was made inside a running event loop; use `await agent.run(...)`.")
    return thread_event_loop().run_until_complete(coro)


def close_thread_event_loop() -> None:
    """Close this thread's loop (at shutdown), after letting pending async generators finish."""
    owner: _ThreadLoop | None = getattr(_local, "owner", None)
    if owner is None or owner.loop.is_closed():
        return
    try:
        owner.loop.run_until_complete(owner.loop.shutdown_asyncgens())
    finally:
        owner.loop.close()
        _local.owner = None
