"""Where each event loop left unclosed by its thread was made (a test-session diagnostic).

An event loop that nobody closes is finalized by the garbage collector in whichever test happens
to run then, and its "unclosed event loop" and self-pipe socket warnings fail that test (about
one full run in four failed so, in a different test each time). This records the thread, the test
and the call stack that made every loop, and the session's summary lists each loop found unclosed
after its thread was done with it (collected mid-run, or still open at the end, when
tests/conftest.py closes it): a new leak names its maker on the first run that has it. The first
one it named: pydantic-graph's ``run_until_complete`` (pydantic-ai's own ``run_sync``) in sync
tests, now closed after each test by tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import threading
import traceback
from dataclasses import dataclass


@dataclass(frozen=True)
class LoopOrigin:
    """Who made a loop."""

    thread: str
    test: str
    stack: str


current_test = ["(outside a test)"]
"""The test running now (set by tests/conftest.py)."""

collected_unclosed: list[tuple[str, LoopOrigin]] = []
"""(when it was found: the test it was collected in, or the session's end; where it was made),
for each loop found unclosed after its thread was done with it."""

_ORIGIN = "_mamba_test_origin"


def install() -> None:
    """Record the origin of every loop made from now on, and notice any collected unclosed."""
    made = asyncio.BaseEventLoop.__init__
    finalize = asyncio.BaseEventLoop.__del__

    def __init__(self: asyncio.BaseEventLoop, *args: object, **kwargs: object) -> None:
        made(self, *args, **kwargs)
        stack = "".join(traceback.format_stack(limit=12)[:-1])
        setattr(self, _ORIGIN, LoopOrigin(threading.current_thread().name, current_test[0], stack))

    def __del__(self: asyncio.BaseEventLoop) -> None:
        if not self.is_closed() and (origin := getattr(self, _ORIGIN, None)) is not None:
            collected_unclosed.append((f"collected unclosed during {current_test[0]}", origin))
        finalize(self)

    asyncio.BaseEventLoop.__init__ = __init__  # type: ignore[method-assign,assignment]
    asyncio.BaseEventLoop.__del__ = __del__  # type: ignore[method-assign]


def left_open(loop: asyncio.AbstractEventLoop) -> None:
    """Note a loop still open at the end of the session, which tests/conftest.py then closes."""
    if (origin := getattr(loop, _ORIGIN, None)) is not None:
        collected_unclosed.append(("still open at the end of the session", origin))


def report() -> list[str]:
    """The summary's lines (none when every loop was closed before it was collected)."""
    lines: list[str] = []
    for collected_in, origin in collected_unclosed:
        lines.append(f"{collected_in}: made in thread {origin.thread!r} during {origin.test}:")
        lines.append(origin.stack)
    return lines
