from __future__ import annotations

import asyncio
import inspect
import logging

import httpx
import pytest
import tenacity
from pydantic_ai.exceptions import ModelHTTPError, ModelRateLimitError, ModelRequestRejectedError

from mamba_worker.errors import (
    RETRY_LEVEL_PRESETS,
    AuthenticationError,
    ConfigurationError,
    ModelBackendError,
    RateLimitError,
    UsageError,
    create_retry_decorator,
    is_transient_error,
)


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def backend_error() -> ModelBackendError:
    return ModelBackendError("backend down", status_code=503)


def test_sync_function_is_retried_with_exponential_waits() -> None:
    waits: list[float] = []
    flaky = Flaky(backend_error(), backend_error())
    call = create_retry_decorator(max_attempts=3, base_wait=1.0, jitter=0, sleep=waits.append)(flaky)

    assert call() == "ok"
    assert flaky.calls == 3
    assert waits == [1.0, 2.0]


async def test_async_function_is_retried_and_stays_a_coroutine_function() -> None:
    waits: list[float] = []
    flaky = Flaky(backend_error(), backend_error())

    @create_retry_decorator(max_attempts=3, base_wait=0.5, jitter=0, sleep=waits.append)
    async def call() -> str:
        await asyncio.sleep(0)
        return flaky()

    assert inspect.iscoroutinefunction(call)
    assert await call() == "ok"
    assert waits == [0.5, 1.0]


async def test_async_sleep_is_awaited() -> None:
    waits: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)

    flaky = Flaky(backend_error())

    @create_retry_decorator(max_attempts=2, base_wait=3.0, jitter=0, sleep=fake_sleep)
    async def call() -> str:
        return flaky()

    assert await call() == "ok"
    assert waits == [3.0]


def test_last_error_is_reraised_after_the_last_attempt() -> None:
    errors = [ModelBackendError(f"failure {i}") for i in range(3)]
    flaky = Flaky(*errors)
    call = create_retry_decorator(max_attempts=3, base_wait=0, sleep=lambda _: None)(flaky)

    with pytest.raises(ModelBackendError) as info:
        call()
    assert info.value is errors[2]
    assert flaky.calls == 3


def test_reraise_false_raises_tenacity_retry_error() -> None:
    flaky = Flaky(backend_error(), backend_error())
    call = create_retry_decorator(max_attempts=2, base_wait=0, reraise=False, sleep=lambda _: None)(flaky)

    with pytest.raises(tenacity.RetryError):
        call()


def test_waits_are_capped_by_max_wait() -> None:
    waits: list[float] = []
    flaky = Flaky(*(backend_error() for _ in range(3)))
    call = create_retry_decorator(4, 10.0, max_wait=15.0, jitter=0, sleep=waits.append)(flaky)

    call()
    assert waits == [10.0, 15.0, 15.0]


def test_jitter_adds_at_most_its_fraction_and_never_passes_max_wait() -> None:
    waits: list[float] = []
    flaky = Flaky(*(backend_error() for _ in range(5)))
    call = create_retry_decorator(6, 1.0, max_wait=10.0, jitter=0.5, sleep=waits.append)(flaky)

    call()
    computed = [1.0, 2.0, 4.0, 8.0, 10.0]
    for wait, base in zip(waits, computed, strict=True):
        assert base <= wait <= min(10.0, base * 1.5)


def test_retry_after_longer_than_the_computed_wait_is_honoured() -> None:
    waits: list[float] = []
    flaky = Flaky(RateLimitError("slow down", retry_after=7.5), RateLimitError("slow down", retry_after=0.1))
    call = create_retry_decorator(3, 1.0, max_wait=5.0, jitter=0, sleep=waits.append)(flaky)

    call()
    # 7.5 beats the computed 1.0 (and is not capped by max_wait); 0.1 loses to the computed 2.0.
    assert waits == [7.5, 2.0]


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("bad setting"),
        UsageError("wrong call"),
        AuthenticationError("bad key", status_code=401),
        ModelBackendError("bad request", status_code=400),
    ],
)
def test_permanent_errors_are_never_retried_even_when_listed(error: Exception) -> None:
    flaky = Flaky(error)
    call = create_retry_decorator(5, 0, retry_on=(Exception,), sleep=lambda _: None)(flaky)

    with pytest.raises(type(error)):
        call()
    assert flaky.calls == 1


def test_errors_outside_the_default_set_are_not_retried() -> None:
    flaky = Flaky(ValueError("a bug"))
    call = create_retry_decorator(5, 0, sleep=lambda _: None)(flaky)

    with pytest.raises(ValueError):
        call()
    assert flaky.calls == 1


def test_retry_on_replaces_the_default_set() -> None:
    flaky = Flaky(ValueError("flaky parser"), ValueError("flaky parser"))
    call = create_retry_decorator(3, 0, retry_on=(ValueError,), sleep=lambda _: None)(flaky)

    assert call() == "ok"

    other = Flaky(backend_error())
    call_other = create_retry_decorator(3, 0, retry_on=(ValueError,), sleep=lambda _: None)(other)
    with pytest.raises(ModelBackendError):
        call_other()
    assert other.calls == 1


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (RateLimitError("429"), True),
        (ModelBackendError("no status"), True),
        (ModelBackendError("gateway", status_code=502), True),
        (ModelBackendError("timeout", status_code=408), True),
        (ModelBackendError("not found", status_code=404), False),
        (ConnectionResetError("reset"), True),
        (TimeoutError("slow"), True),
        (httpx.ConnectError("refused"), True),
        (httpx.ReadTimeout("slow"), True),
        (httpx.UnsupportedProtocol("ftp"), False),
        (ModelHTTPError.for_category(ModelRateLimitError, status_code=429, model_name="m"), True),
        (ModelHTTPError(500, "m"), True),
        (ModelHTTPError.for_category(ModelRequestRejectedError, status_code=400, model_name="m"), False),
        (ModelHTTPError(404, "m"), False),
        (ValueError("bug"), False),
    ],
)
def test_is_transient_error(error: BaseException, transient: bool) -> None:
    assert is_transient_error(error) is transient


def test_httpx_status_error_is_transient_only_for_retryable_statuses() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    unavailable = httpx.HTTPStatusError("503", request=request, response=httpx.Response(503, request=request))
    forbidden = httpx.HTTPStatusError("403", request=request, response=httpx.Response(403, request=request))

    assert is_transient_error(unavailable)
    assert not is_transient_error(forbidden)


def test_retry_level_supplies_the_values_not_passed() -> None:
    aggressive = RETRY_LEVEL_PRESETS[3]
    waits: list[float] = []
    flaky = Flaky(*(backend_error() for _ in range(20)))
    call = create_retry_decorator(retry_level=3, jitter=0, sleep=waits.append)(flaky)

    with pytest.raises(ModelBackendError):
        call()
    assert flaky.calls == aggressive.max_attempts
    assert waits[0] == aggressive.base_wait
    assert max(waits) == aggressive.max_wait


def test_explicit_arguments_win_over_the_retry_level() -> None:
    waits: list[float] = []
    flaky = Flaky(*(backend_error() for _ in range(20)))
    call = create_retry_decorator(2, retry_level=1, jitter=0, sleep=waits.append)(flaky)

    with pytest.raises(ModelBackendError):
        call()
    assert flaky.calls == 2
    assert waits == [RETRY_LEVEL_PRESETS[1].base_wait]


def test_presets_go_from_conservative_to_aggressive() -> None:
    conservative, balanced, aggressive = (RETRY_LEVEL_PRESETS[level] for level in (1, 2, 3))

    assert conservative.max_attempts < balanced.max_attempts < aggressive.max_attempts
    assert conservative.base_wait > balanced.base_wait > aggressive.base_wait


def test_default_is_the_balanced_preset() -> None:
    waits: list[float] = []
    flaky = Flaky(*(backend_error() for _ in range(20)))
    call = create_retry_decorator(jitter=0, sleep=waits.append)(flaky)

    with pytest.raises(ModelBackendError):
        call()
    assert flaky.calls == 3
    assert waits == [1.0, 2.0]


@pytest.mark.parametrize(
    "kwargs",
    [{"retry_level": 4}, {"max_attempts": 0}, {"base_wait": -1.0}, {"max_wait": 0.0}, {"jitter": 2.0}],
)
def test_bad_arguments_raise_configuration_error(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        create_retry_decorator(**kwargs)  # type: ignore[arg-type]


def test_on_retry_sees_attempt_error_and_wait(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[int, BaseException, float]] = []
    first, second = backend_error(), backend_error()
    flaky = Flaky(first, second)
    call = create_retry_decorator(
        3, 1.0, jitter=0, sleep=lambda _: None, on_retry=lambda n, e, w: seen.append((n, e, w))
    )(flaky)

    with caplog.at_level(logging.WARNING, logger="mamba_worker.errors"):
        call()

    assert seen == [(1, first, 1.0), (2, second, 2.0)]
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "ModelBackendError" in caplog.records[0].getMessage()


def test_decorated_function_keeps_its_name_and_arguments() -> None:
    @create_retry_decorator(2, 0, sleep=lambda _: None)
    def add(a: int, *, b: int) -> int:
        """Add two numbers."""
        return a + b

    assert add.__name__ == "add"
    assert add.__doc__ == "Add two numbers."
    assert add(1, b=2) == 3


def test_async_sleep_with_a_sync_function_is_refused() -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    decorate = create_retry_decorator(2, 0, sleep=fake_sleep)
    with pytest.raises(ConfigurationError, match="async sleep"):
        decorate(Flaky(backend_error()))
