"""`create_retry_decorator`: tenacity retries with exponential back-off, for sync and async callables.

This module sits in the lowest layer, so it reads no settings: callers pass plain numbers (from
`ErrorRecoveryConfig`, for instance) or pick one of the three `retry_level` presets.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import tenacity
from pydantic import BaseModel, ConfigDict, Field

from mamba_worker.errors._exceptions import AuthenticationError, ConfigurationError, ModelBackendError

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

SleepFunc = Callable[[float], Awaitable[None] | None]
"""A sleep: takes seconds; may return an awaitable (it is awaited when the wrapped function is async)."""

OnRetry = Callable[[int, BaseException, float], object]
"""Called before each back-off with the attempt that failed (1-based), its exception and the wait in seconds."""


class RetryPreset(BaseModel):
    """The attempts and waits one `retry_level` stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(ge=1)
    """Attempts in total, the first one included."""
    base_wait: float = Field(ge=0)
    """Wait before the second attempt, in seconds; it doubles for each later attempt."""
    max_wait: float = Field(gt=0)
    """Longest computed wait, in seconds."""


RETRY_LEVEL_PRESETS: dict[int, RetryPreset] = {
    # Conservative: give a struggling backend room to recover and spend few extra requests.
    1: RetryPreset(max_attempts=2, base_wait=2.0, max_wait=120.0),
    # Balanced: the defaults of `create_retry_decorator`.
    2: RetryPreset(max_attempts=3, base_wait=1.0, max_wait=60.0),
    # Aggressive: many quick attempts, for flaky networks in front of a healthy backend.
    3: RetryPreset(max_attempts=6, base_wait=0.5, max_wait=5.0),
}
"""`retry_level` -> preset: 1 conservative, 2 balanced (the default), 3 aggressive."""

# A failed request with one of these 4xx statuses may succeed when sent again unchanged.
_RETRYABLE_CLIENT_STATUSES = frozenset({408, 409, 425, 429})
# Never worth a second attempt, whatever `retry_on` says: the same call fails the same way.
_NEVER_RETRY: tuple[type[BaseException], ...] = (ConfigurationError, AuthenticationError)
# pydantic-ai's transient categories (its permanent ones, such as ModelRequestRejectedError, are left out).
_PYDANTIC_AI_TRANSIENT = (
    "ModelRateLimitError",
    "ModelUnavailableError",
    "ModelServerError",
    "ModelConnectionError",
    "ModelRequestTimeout",
)
_HTTPX_TRANSIENT = ("TimeoutException", "NetworkError", "RemoteProtocolError")


def _loaded_types(module: str, names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    # An exception of a library's class can only exist once that library is imported, so looking in
    # sys.modules classifies its errors without making every `import mamba_worker` pay for importing it.
    loaded = sys.modules.get(module)
    if loaded is None:
        return ()
    return tuple(getattr(loaded, name) for name in names if isinstance(getattr(loaded, name, None), type))


def _is_retryable_status(status: object) -> bool:
    if not isinstance(status, int):
        return True  # no status: a transport failure, worth another attempt
    return status >= 500 or status in _RETRYABLE_CLIENT_STATUSES


def is_permanent_error(error: BaseException) -> bool:
    """Whether `error` will certainly happen again if the same call is repeated.

    True for `ConfigurationError` (and `UsageError`), `AuthenticationError`, and a `ModelBackendError`
    whose ``status_code`` is a 4xx other than 408, 409, 425 or 429. No retry decorator made here ever
    retries these.
    """
    if isinstance(error, _NEVER_RETRY):
        return True
    if isinstance(error, ModelBackendError):
        return not _is_retryable_status(error.status_code)
    return False


def is_transient_error(error: BaseException) -> bool:
    """Whether `error` is a failure that may go away if the call is repeated (the default `retry_on`).

    Transient are: `ModelBackendError` (`RateLimitError` included) unless `is_permanent_error`;
    the built-in `ConnectionError` and `TimeoutError`; httpx timeouts, network and protocol errors,
    and `httpx.HTTPStatusError` with a 5xx/408/409/425/429 status; and pydantic-ai's rate-limit,
    unavailable, server, connection and request-timeout errors, or its `ModelHTTPError` with one of
    those statuses.
    """
    if is_permanent_error(error):
        return False
    if isinstance(error, ModelBackendError | ConnectionError | TimeoutError):
        return True
    if isinstance(error, _loaded_types("httpx", _HTTPX_TRANSIENT)):
        return True
    if isinstance(error, _loaded_types("pydantic_ai.exceptions", _PYDANTIC_AI_TRANSIENT)):
        return True
    status_errors = _loaded_types("httpx", ("HTTPStatusError",)) + _loaded_types(
        "pydantic_ai.exceptions", ("ModelHTTPError",)
    )
    if isinstance(error, status_errors):
        response = getattr(error, "response", None)
        status = getattr(error, "status_code", None) or getattr(response, "status_code", None)
        return isinstance(status, int) and _is_retryable_status(status)
    return False


class _BackoffWait:
    """Exponential back-off with jitter that honours a server's ``retry_after``."""

    def __init__(self, *, base_wait: float, max_wait: float, jitter: float) -> None:
        self.base_wait = base_wait
        self.max_wait = max_wait
        self.jitter = jitter

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        attempt = retry_state.attempt_number
        computed = min(self.max_wait, self.base_wait * 2.0 ** (attempt - 1))
        # Additive jitter spreads out callers that failed together, and never exceeds max_wait.
        wait = min(self.max_wait, computed + random.uniform(0, self.jitter * computed))
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        retry_after = getattr(error, "retry_after", None)
        # Deliberately not capped by max_wait: retrying before the server's deadline only fails again.
        if isinstance(retry_after, int | float) and retry_after > wait:
            return float(retry_after)
        return wait


def create_retry_decorator(
    max_attempts: int | None = None,
    base_wait: float | None = None,
    *,
    max_wait: float | None = None,
    retry_level: int | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    jitter: float = 0.25,
    reraise: bool = True,
    on_retry: OnRetry | None = None,
    sleep: SleepFunc | None = None,
) -> Callable[[F], F]:
    """Build a decorator that retries a sync or async function on transient failures.

    Waits grow exponentially (``base_wait * 2 ** (attempt - 1)``, capped at ``max_wait``) plus up to
    ``jitter`` times that much at random (still capped at ``max_wait``). When the error carries a
    ``retry_after`` (`RateLimitError`, pydantic-ai's `ModelAPIError`) larger than that, the wait is
    ``retry_after``. Errors for which `is_permanent_error` holds are never retried.

    Example:
        ```python
        @create_retry_decorator(max_attempts=3, base_wait=1.0)
        async def call_api() -> str: ...
        ```

    Args:
        max_attempts: Attempts in total, the first one included. Default: from ``retry_level``'s
            preset, else 3.
        base_wait: Seconds before the second attempt. Default: from the preset, else 1.0.
        max_wait: Longest computed wait in seconds. Default: from the preset, else 60.0.
        retry_level: 1 (conservative), 2 (balanced) or 3 (aggressive); see `RETRY_LEVEL_PRESETS`.
            Supplies the values of the three arguments above that are not passed.
        retry_on: Exception types to retry. Default: whatever `is_transient_error` accepts.
        jitter: Random extra wait, as a fraction of the computed wait (0 turns jitter off).
        reraise: After the last attempt, raise the function's own exception (True) or tenacity's
            ``RetryError`` (False).
        on_retry: Called before each back-off with the failed attempt's number, its exception and
            the seconds about to be waited.
        sleep: Replaces the sleep between attempts (``time.sleep`` for sync functions,
            ``asyncio.sleep`` for async ones). Tests inject one that records instead of sleeping.

    Returns:
        A decorator; the decorated function keeps its signature and sync/async nature.

    Raises:
        ConfigurationError: ``retry_level`` is not 1, 2 or 3, or a number is out of range.
    """
    if retry_level is not None and retry_level not in RETRY_LEVEL_PRESETS:
        raise ConfigurationError(f"retry_level must be 1, 2 or 3, got {retry_level!r}.")
    preset = RETRY_LEVEL_PRESETS[retry_level if retry_level is not None else 2]
    attempts = preset.max_attempts if max_attempts is None else max_attempts
    first_wait = preset.base_wait if base_wait is None else base_wait
    longest_wait = preset.max_wait if max_wait is None else max_wait
    if attempts < 1:
        raise ConfigurationError(f"max_attempts must be at least 1, got {attempts!r}.")
    if first_wait < 0 or longest_wait <= 0:
        raise ConfigurationError(
            f"base_wait must be >= 0 and max_wait > 0, got base_wait={first_wait!r}, max_wait={longest_wait!r}."
        )
    if not 0 <= jitter <= 1:
        raise ConfigurationError(f"jitter must be between 0 and 1, got {jitter!r}.")

    def should_retry(error: BaseException) -> bool:
        if is_permanent_error(error):
            return False
        return is_transient_error(error) if retry_on is None else isinstance(error, retry_on)

    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        wait = retry_state.upcoming_sleep
        if error is None:  # pragma: no cover - we only retry on exceptions
            return
        logger.warning(
            "attempt %d of %d of %s failed with %s; retrying in %.2fs",
            retry_state.attempt_number,
            attempts,
            getattr(retry_state.fn, "__qualname__", retry_state.fn),
            type(error).__name__,
            wait,
        )
        if on_retry is not None:
            on_retry(retry_state.attempt_number, error, wait)

    options: dict[str, Any] = {
        "stop": tenacity.stop_after_attempt(attempts),
        "wait": _BackoffWait(base_wait=first_wait, max_wait=longest_wait, jitter=jitter),
        "retry": tenacity.retry_if_exception(should_retry),
        "reraise": reraise,
        "before_sleep": before_sleep,
    }

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):
            return cast(F, tenacity.AsyncRetrying(sleep=_async_sleep(sleep), **options).wraps(func))
        if sleep is not None and inspect.iscoroutinefunction(sleep):
            raise ConfigurationError(
                f"an async sleep cannot pause the sync function {getattr(func, '__qualname__', func)!r}; "
                "pass a sync sleep."
            )
        return cast(F, tenacity.Retrying(sleep=_sync_sleep(sleep), **options).wraps(func))

    return decorator


def _sync_sleep(sleep: SleepFunc | None) -> Callable[[float], None]:
    if sleep is None:
        return time.sleep

    def run(seconds: float) -> None:
        result = sleep(seconds)
        if inspect.isawaitable(result):
            # A coroutine cannot be awaited from a sync function; close it instead of leaking a warning.
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise ConfigurationError("an async sleep was passed to retry a sync function; pass a sync sleep.")

    return run


def _async_sleep(sleep: SleepFunc | None) -> Callable[[float], Awaitable[None]]:
    async def run(seconds: float) -> None:
        if sleep is None:
            await asyncio.sleep(seconds)
            return
        result = sleep(seconds)
        if inspect.isawaitable(result):
            await result

    return run
