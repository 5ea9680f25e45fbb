"""`CircuitBreaker`: stop calling a failing service for a while, then let one trial call through.

States::

    CLOSED --(failure_threshold consecutive failures)--> OPEN
    OPEN --(timeout seconds pass; the next caller becomes the trial)--> HALF_OPEN
    HALF_OPEN --(success_threshold trial successes)--> CLOSED
    HALF_OPEN --(a trial fails)--> OPEN

One core serves ``with breaker:`` and ``async with breaker:``. It is guarded by a
`threading.Lock`, never held across an ``await``, so one breaker can be shared by asyncio tasks on
any number of event loops and by threads at the same time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from types import TracebackType

from mamba_worker.errors._exceptions import CircuitOpenError, ConfigurationError

logger = logging.getLogger(__name__)


class CircuitState(StrEnum):
    """The state of a `CircuitBreaker`."""

    CLOSED = "closed"
    """Calls go through; consecutive failures are counted."""
    OPEN = "open"
    """Calls are refused with `CircuitOpenError` until the timeout has passed."""
    HALF_OPEN = "half_open"
    """One trial call at a time goes through; its outcome closes or re-opens the circuit."""


@dataclass(frozen=True, kw_only=True)
class CircuitBreakerStats:
    """A consistent snapshot of a breaker's counters (all taken under its lock)."""

    name: str
    """The breaker's name."""
    state: CircuitState
    """The state at the time of the snapshot."""
    failure_count: int
    """Consecutive failures counted in the closed state."""
    total_calls: int
    """Calls let through (trials included)."""
    total_successes: int
    """Calls that finished without an exception (or with an excluded one)."""
    total_failures: int
    """Calls that raised a counted exception."""
    rejected_calls: int
    """Calls refused with `CircuitOpenError`."""
    times_opened: int
    """How often the circuit went to OPEN."""


# Which breakers the current task or thread is inside, innermost last, with whether each entry is the
# half-open trial. A context variable, because one breaker object is entered by many tasks and threads
# at once, and each exit must settle its own entry.
_ENTRIES: ContextVar[tuple[tuple[CircuitBreaker, bool], ...]] = ContextVar("mamba_circuit_entries", default=())


class CircuitBreaker:
    """Refuses calls to a failing service until it has had time to recover.

    Example:
        ```python
        breaker = CircuitBreaker("model-api", failure_threshold=5, timeout=30.0)
        async with breaker:
            result = await model.complete(messages)
        ```

    An exception raised inside the block counts as a failure unless it is one of
    ``excluded_exceptions`` (which count as successes: the service answered). Cancellation and
    other `BaseException`s that are not `Exception`s count as neither.
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        timeout: float = 30.0,
        *,
        success_threshold: int = 1,
        excluded_exceptions: tuple[type[BaseException], ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Create a closed breaker.

        Args:
            name: Names the protected service in errors and logs.
            failure_threshold: Consecutive failures that open the circuit.
            timeout: Seconds the circuit stays open before a trial call is let through.
            success_threshold: Consecutive successful trials that close a half-open circuit.
            excluded_exceptions: Exceptions that do not count as failures.
            clock: Monotonic seconds; tests inject a fake one.

        Raises:
            ConfigurationError: A threshold is below 1 or the timeout is negative.
        """
        if failure_threshold < 1 or success_threshold < 1:
            raise ConfigurationError(
                f"CircuitBreaker {name!r}: failure_threshold and success_threshold must be at least 1, got "
                f"{failure_threshold!r} and {success_threshold!r}."
            )
        if timeout < 0:
            raise ConfigurationError(f"CircuitBreaker {name!r}: timeout must be >= 0 seconds, got {timeout!r}.")
        self.name = name
        self.failure_threshold = failure_threshold
        self.timeout = timeout
        self.success_threshold = success_threshold
        self.excluded_exceptions = excluded_exceptions
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failure_count = 0
        self._trial_successes = 0
        self._trial_in_flight = False
        self._opened_at = 0.0
        self._total_calls = 0
        self._total_successes = 0
        self._total_failures = 0
        self._rejected_calls = 0
        self._times_opened = 0

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self.state.value!r})"

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose timeout has passed reads as half-open."""
        with self._lock:
            return self._effective_state()

    @property
    def failure_count(self) -> int:
        """Consecutive failures counted since the circuit last closed or succeeded."""
        with self._lock:
            return self._failure_count

    @property
    def stats(self) -> CircuitBreakerStats:
        """A snapshot of the counters."""
        with self._lock:
            return CircuitBreakerStats(
                name=self.name,
                state=self._effective_state(),
                failure_count=self._failure_count,
                total_calls=self._total_calls,
                total_successes=self._total_successes,
                total_failures=self._total_failures,
                rejected_calls=self._rejected_calls,
                times_opened=self._times_opened,
            )

    def reset(self) -> None:
        """Close the circuit and forget the failures (the totals in `stats` are kept)."""
        with self._lock:
            self._close()

    # --- the core: admit a call, then settle it -------------------------------------------------

    def _timeout_passed(self) -> bool:
        return self._clock() - self._opened_at >= self.timeout

    def _effective_state(self) -> CircuitState:
        if self._state is CircuitState.OPEN and self._timeout_passed():
            return CircuitState.HALF_OPEN
        return self._state

    def _admit(self) -> bool:
        """Let a call through or raise `CircuitOpenError`; return whether the call is the trial."""
        with self._lock:
            if self._state is CircuitState.OPEN and self._timeout_passed():
                self._state = CircuitState.HALF_OPEN
                self._trial_successes = 0
                self._trial_in_flight = False
            if self._state is CircuitState.CLOSED:
                self._total_calls += 1
                return False
            if self._state is CircuitState.HALF_OPEN and not self._trial_in_flight:
                # Exactly one caller probes the service; everyone else keeps being refused.
                self._trial_in_flight = True
                self._total_calls += 1
                return True
            if self._state is CircuitState.HALF_OPEN:
                retry_in = 0.0
                reason = "a trial call is in progress"
            else:
                retry_in = max(0.0, self.timeout - (self._clock() - self._opened_at))
                reason = "the service kept failing"
            self._rejected_calls += 1
        raise CircuitOpenError(
            f"Circuit {self.name!r} is open ({reason}); the call was not attempted. Retry in {retry_in:.1f}s.",
            name=self.name,
            retry_in=retry_in,
        )

    def _settle(self, *, is_trial: bool | None, error: BaseException | None) -> None:
        if is_trial is None:
            # Unknown: settle as the trial if one is in flight. Wrongly freeing the slot lets one
            # extra trial through; wrongly keeping it would leave the circuit half-open for ever.
            with self._lock:
                is_trial = self._state is CircuitState.HALF_OPEN and self._trial_in_flight
        if error is not None and not isinstance(error, Exception):
            # Cancelled or interrupted: says nothing about the service, but frees the trial slot so
            # that the next caller can probe instead of the circuit staying half-open for ever.
            if is_trial:
                with self._lock:
                    self._trial_in_flight = False
            return
        failed = error is not None and not isinstance(error, self.excluded_exceptions)
        with self._lock:
            before = self._state
            if failed:
                self._total_failures += 1
                self._record_failure(is_trial=is_trial)
            else:
                self._total_successes += 1
                self._record_success(is_trial=is_trial)
            after = self._state
            failures = self._failure_count
        if before is not after:
            # Logged outside the lock: handlers may do I/O.
            logger.warning(
                "circuit %r went from %s to %s (%d consecutive failures)", self.name, before, after, failures
            )

    def _record_failure(self, *, is_trial: bool) -> None:
        if is_trial:
            self._trial_in_flight = False
            self._open()
            return
        self._failure_count += 1
        # A call let through while closed that fails after the circuit opened changes nothing more.
        if self._state is CircuitState.CLOSED and self._failure_count >= self.failure_threshold:
            self._open()

    def _record_success(self, *, is_trial: bool) -> None:
        if is_trial:
            self._trial_in_flight = False
            self._trial_successes += 1
            if self._trial_successes >= self.success_threshold:
                self._close()
            return
        if self._state is CircuitState.CLOSED:
            self._failure_count = 0
        # A late success from before the circuit opened is no evidence of recovery: the trial decides.

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._trial_successes = 0
        self._times_opened += 1

    def _close(self) -> None:
        self._state = CircuitState.CLOSED
        self._failure_count = 0
        self._trial_successes = 0
        self._trial_in_flight = False

    # --- the two shells --------------------------------------------------------------------------

    def _enter(self) -> None:
        is_trial = self._admit()
        _ENTRIES.set((*_ENTRIES.get(), (self, is_trial)))

    def _exit(self, error: BaseException | None) -> None:
        entries = _ENTRIES.get()
        # Context managers nest, so our entry is the innermost one for this breaker.
        mine = [i for i, (breaker, _) in enumerate(entries) if breaker is self]
        if mine:
            index = mine[-1]
            is_trial: bool | None = entries[index][1]
            _ENTRIES.set(entries[:index] + entries[index + 1 :])
        else:
            # Exited in another context than it was entered in (an async generator closed by the
            # event loop's finaliser task, say), so we cannot tell whether this was the trial.
            is_trial = None
        self._settle(is_trial=is_trial, error=error)

    def __enter__(self) -> CircuitBreaker:
        self._enter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> CircuitBreaker:
        self._enter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._exit(exc)
