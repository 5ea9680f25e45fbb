from __future__ import annotations

import asyncio
import contextvars
import pickle
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from mamba_worker.errors import CircuitBreaker, CircuitOpenError, CircuitState, ConfigurationError
from tests._support.wait import async_wait_until, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Boom(Exception):
    pass


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Boom), breaker:
            raise Boom("service failed")


def succeed(breaker: CircuitBreaker) -> None:
    with breaker:
        pass


def test_starts_closed_and_lets_calls_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", clock=clock)

    succeed(breaker)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0


def test_opens_at_the_failure_threshold(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=3, timeout=30.0, clock=clock)

    fail(breaker, 2)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_open_circuit_refuses_without_running_the_block(clock: FakeClock) -> None:
    breaker = CircuitBreaker("model-api", failure_threshold=1, timeout=30.0, clock=clock)
    fail(breaker)
    clock.advance(10.0)
    ran = False

    with pytest.raises(CircuitOpenError) as info, breaker:
        ran = True

    assert not ran
    assert info.value.name == "model-api"
    assert info.value.retry_in == pytest.approx(20.0)
    assert "model-api" in str(info.value)
    assert breaker.stats.rejected_calls == 1


def test_a_success_resets_the_consecutive_failures(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=3, clock=clock)

    fail(breaker, 2)
    succeed(breaker)
    fail(breaker, 2)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 2


def test_reads_half_open_once_the_timeout_has_passed(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=30.0, clock=clock)
    fail(breaker)

    clock.advance(29.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN


def test_successful_trial_closes_the_circuit(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=2, timeout=5.0, clock=clock)
    fail(breaker, 2)
    clock.advance(5.0)

    succeed(breaker)

    assert breaker.state is CircuitState.CLOSED
    assert breaker.failure_count == 0
    fail(breaker)  # the count starts again from zero
    assert breaker.state is CircuitState.CLOSED


def test_failed_trial_reopens_for_a_full_timeout(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(6.0)

    fail(breaker)

    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpenError) as info, breaker:
        pass
    assert info.value.retry_in == pytest.approx(5.0)
    assert breaker.stats.times_opened == 2


def test_success_threshold_needs_that_many_trials(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, success_threshold=2, clock=clock)
    fail(breaker)
    clock.advance(5.0)

    succeed(breaker)
    assert breaker.state is CircuitState.HALF_OPEN
    succeed(breaker)
    assert breaker.state is CircuitState.CLOSED


def test_only_one_trial_at_a_time(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)

    with breaker:
        with pytest.raises(CircuitOpenError) as info, breaker:
            pass
        assert info.value.retry_in == 0.0
    assert breaker.state is CircuitState.CLOSED


def test_excluded_exceptions_count_as_successes_and_propagate(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, excluded_exceptions=(KeyError,), clock=clock)

    with pytest.raises(KeyError), breaker:
        raise KeyError("not found")

    assert breaker.state is CircuitState.CLOSED
    assert breaker.stats.total_successes == 1


async def test_cancelled_trial_frees_the_trial_slot(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)
    entered = asyncio.Event()

    async def trial() -> None:
        async with breaker:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(trial())
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.stats.total_failures == 1  # the cancellation was not counted
    async with breaker:  # the next caller gets to be the trial
        pass
    assert breaker.state is CircuitState.CLOSED


async def test_trial_exited_in_another_context_still_settles(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)

    async def stream() -> AsyncIterator[int]:
        async with breaker:
            yield 1

    chunks = stream()
    assert await anext(chunks) == 1  # the trial is in flight
    # The event loop closes abandoned async generators from a task of its own, in another context.
    await asyncio.create_task(chunks.aclose(), context=contextvars.Context())  # type: ignore[arg-type]

    # An abandoned generator is no verdict on the service, but the trial slot must be free again.
    assert breaker.state is CircuitState.HALF_OPEN
    succeed(breaker)
    assert breaker.state is CircuitState.CLOSED


def test_reset_closes_and_keeps_totals(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, clock=clock)
    fail(breaker)

    breaker.reset()

    assert breaker.state is CircuitState.CLOSED
    succeed(breaker)
    assert breaker.stats.total_calls == 2


def test_stats_snapshot(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=2, clock=clock)
    succeed(breaker)
    fail(breaker, 2)
    with pytest.raises(CircuitOpenError), breaker:
        pass

    stats = breaker.stats
    assert (stats.name, stats.state, stats.failure_count) == ("svc", CircuitState.OPEN, 2)
    assert (stats.total_calls, stats.total_successes, stats.total_failures) == (3, 1, 2)
    assert (stats.rejected_calls, stats.times_opened) == (1, 1)


async def test_sync_and_async_use_share_one_state(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=2, clock=clock)

    fail(breaker)
    with pytest.raises(Boom):
        async with breaker:
            raise Boom

    assert breaker.state is CircuitState.OPEN


def test_nested_use_of_two_breakers_settles_each(clock: FakeClock) -> None:
    outer = CircuitBreaker("outer", failure_threshold=1, clock=clock)
    inner = CircuitBreaker("inner", failure_threshold=1, clock=clock)

    with pytest.raises(Boom), outer, inner:
        raise Boom

    assert outer.state is CircuitState.OPEN
    assert inner.state is CircuitState.OPEN


@pytest.mark.parametrize("kwargs", [{"failure_threshold": 0}, {"success_threshold": 0}, {"timeout": -1.0}])
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        CircuitBreaker("svc", **kwargs)  # type: ignore[arg-type]


def test_circuit_open_error_pickles() -> None:
    error = CircuitOpenError("open", name="svc", retry_in=3.0)

    copy = pickle.loads(pickle.dumps(error))

    assert (type(copy), copy.name, copy.retry_in, str(copy)) == (CircuitOpenError, "svc", 3.0, "open")


# --- concurrency -------------------------------------------------------------------------------


async def test_many_tasks_keep_counts_consistent(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=10_000, clock=clock)

    async def call(i: int) -> None:
        async with breaker:
            await asyncio.sleep(0)  # interleave the tasks inside the block
            if i % 3 == 0:
                raise Boom

    results = await asyncio.gather(*(call(i) for i in range(300)), return_exceptions=True)

    stats = breaker.stats
    assert sum(isinstance(r, Boom) for r in results) == 100
    assert (stats.total_calls, stats.total_successes, stats.total_failures) == (300, 200, 100)


def test_many_threads_keep_counts_consistent(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1_000_000, clock=clock)

    def work(worker: int) -> None:
        for i in range(500):
            try:
                with breaker:
                    if (worker + i) % 2:
                        raise Boom
            except Boom:
                pass

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(8)))

    stats = breaker.stats
    assert (stats.total_calls, stats.total_successes, stats.total_failures) == (4000, 2000, 2000)


def test_threads_failing_together_open_the_circuit_once(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=4, clock=clock)
    barrier = threading.Barrier(16)

    def work() -> None:
        try:
            with breaker:
                barrier.wait()  # all sixteen are inside before any fails
                raise Boom
        except Boom:
            pass

    with ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(work) for _ in range(16)]:
            future.result()

    stats = breaker.stats
    assert stats.state is CircuitState.OPEN
    assert (stats.times_opened, stats.total_failures) == (1, 16)


def test_only_one_thread_gets_the_half_open_trial(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)
    release = threading.Event()
    admitted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        try:
            with breaker:
                with lock:
                    admitted.append(i)
                release.wait(timeout=10)
        except CircuitOpenError:
            with lock:
                refused.append(i)

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(work, i) for i in range(12)]
        wait_until(lambda: len(admitted) + len(refused) == 12, what="every thread admitted or refused")
        release.set()
        for future in futures:
            future.result()

    assert len(admitted) == 1
    assert len(refused) == 11
    assert breaker.state is CircuitState.CLOSED


async def test_only_one_task_gets_the_half_open_trial(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", failure_threshold=1, timeout=5.0, clock=clock)
    fail(breaker)
    clock.advance(5.0)
    release = asyncio.Event()

    async def call() -> str:
        try:
            async with breaker:
                await release.wait()
                return "trial"
        except CircuitOpenError:
            return "refused"

    tasks = [asyncio.create_task(call()) for _ in range(50)]

    async def all_but_the_trial_refused() -> bool:
        return sum(task.done() for task in tasks) == 49

    await async_wait_until(all_but_the_trial_refused, what="49 refusals")
    release.set()
    results = await asyncio.gather(*tasks)

    assert results.count("trial") == 1
    assert results.count("refused") == 49
