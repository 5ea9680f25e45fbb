"""`wait_until`: poll a predicate with a deadline, instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The predicate did not become truthy before the deadline."""


def wait_until(predicate: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02, what: str = "") -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what or predicate!r}")
        time.sleep(interval)  # the one polling loop tests may use (see test_conventions)


async def async_wait_until(
    predicate: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Async twin of `wait_until`."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise WaitTimeout(f"timed out after {timeout}s waiting for {what or predicate!r}")
        await asyncio.sleep(interval)
