from __future__ import annotations

import asyncio
from collections.abc import Iterator

import hypothesis  # noqa: F401  (see below)
import pytest
from pydantic_ai import models

from tests._support import loop_origins
from tests._support.services import POSTGRES, POSTGRES_URL, RABBITMQ, RABBITMQ_URL, REDIS, REDIS_URL, require

# hypothesis is imported here, at start-up, not lazily by its pytest plugin's terminal summary: on
# CPython 3.11.7 that late import (its modules are assertion-rewritten, so ast.parse runs) failed
# about one run in three of tests/worker/durable alone with "SystemError: AST constructor recursion
# depth mismatch", raised inside CPython's AST constructor (not reproduced with the early import).

# No test may reach a real model API by accident.
models.ALLOW_MODEL_REQUESTS = False

loop_origins.install()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    loop_origins.current_test[0] = nodeid


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = loop_origins.report()
    if lines:
        terminalreporter.section("event loops left unclosed by their threads (tests/_support/loop_origins.py)")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(autouse=True, scope="session")
def _close_event_loops() -> Iterator[None]:
    """Close the main thread's reusable loop (run_sync's) before pytest checks for leaked resources."""
    yield
    import asyncio
    import warnings

    from mamba_worker.agent import close_thread_event_loop

    close_thread_event_loop()
    # pydantic-ai's own run_sync leaves a loop set on the main thread; close it too.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop_policy().get_event_loop()
        except RuntimeError:
            loop = None  # none set on the main thread: still close the leftovers below
    if loop is not None and not loop.is_running() and not loop.is_closed():
        loop.close()
    # Loops of threads that ended without closing theirs (library helper threads): close them
    # here, so the leak check at exit reports real leaks only. (This used to be skipped whenever
    # the main thread had no loop set, which is why pyproject.toml had to ignore the warning.)
    import gc

    for leftover in [obj for obj in gc.get_objects() if isinstance(obj, asyncio.AbstractEventLoop)]:
        if not leftover.is_running() and not leftover.is_closed():
            if leftover is not loop:
                loop_origins.left_open(leftover)
            try:
                leftover.close()
            except (ValueError, OSError):
                # Half collected already: its self-pipe sockets were finalized (fd -1) before the
                # loop itself; nothing is left to close.
                pass


@pytest.fixture(autouse=True)
def _close_the_loop_a_sync_test_left_set(request: pytest.FixtureRequest) -> Iterator[None]:
    """Close the main thread's loop that a sync test left set (pydantic-ai's own ``run_sync``).

    pydantic-graph's ``run_until_complete`` makes a loop and sets it on the main thread when none
    is set, and never closes it. A later async test (pytest-asyncio) sets its own, so that loop
    was orphaned, still open, and the garbage collector finalized it in whichever test it ran
    in: an "unclosed event loop" warning in a random test, about one full run in four
    (`tests/_support/loop_origins.py` found the maker). Async tests are pytest-asyncio's to manage.
    """
    import inspect

    before = _main_thread_loop()
    yield
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        return
    after = _main_thread_loop()
    if after is not None and after is not before and not after.is_running() and not after.is_closed():
        after.close()
        asyncio.set_event_loop(None)


def _main_thread_loop() -> asyncio.AbstractEventLoop | None:
    """The loop set on this thread, without making one (``get_event_loop`` would, on 3.11)."""
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ~/mamba.env, .env, config.toml and MAMBA_* variables out of tests."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    import os

    for name in list(os.environ):
        if name.startswith("MAMBA_") and name not in {"MAMBA_REQUIRE_SERVICES"} and not name.startswith("MAMBA_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture
def in_tmp_cwd(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    """Run the test with an empty temporary working directory."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def postgres_url() -> str:
    require(POSTGRES)
    return POSTGRES_URL


@pytest.fixture
def redis_url() -> str:
    require(REDIS)
    return REDIS_URL


@pytest.fixture
def rabbitmq_url() -> str:
    require(RABBITMQ)
    return RABBITMQ_URL
