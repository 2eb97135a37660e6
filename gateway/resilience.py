"""Retries with backoff and circuit breakers.

Retries use ``tenacity``: exponential backoff with full jitter, never shorter than the provider's
Retry-After, only for retryable failures (429, 5xx, timeouts, connection errors, malformed
answers), and never past the call's deadline — when the wait would cross it, the ladder moves on
to the next deployment instead of sleeping.

Circuit breakers live in a store shared by every process: Redis when ``REDIS_URL`` is set,
otherwise PostgreSQL (``gateway.breaker_store``). N consecutive failures open a deployment's
circuit for a cool-down; then one probe is let through; its success closes the circuit, its
failure opens it again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from django.conf import settings
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from gateway.errors import ProviderError

T = TypeVar("T")


class BreakerStore(Protocol):
    async def acquire(self, deployment: str) -> str:
        """'allow' (closed), 'probe' (this caller is the single half-open probe) or 'deny'."""

    async def record_failure(self, deployment: str, error: str = "") -> str: ...

    async def record_success(self, deployment: str) -> None: ...

    async def get_state(self, deployment: str) -> str: ...


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, ProviderError) and exc.retryable


def backoff_seconds(attempt_number: int) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2^(n-1))]."""
    ceiling = min(
        settings.SWITCHBOARD_RETRY_CAP_SECONDS,
        settings.SWITCHBOARD_RETRY_BASE_SECONDS * 2 ** (attempt_number - 1),
    )
    return random.uniform(0, ceiling)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    retry_after = getattr(exc, "retry_after", None) or 0.0
    return max(backoff_seconds(state.attempt_number), float(retry_after))


async def call_with_retries(
    attempt: Callable[[float, int], Awaitable[T]],
    *,
    max_retries: int,
    deadline: float,
    per_attempt_timeout: float,
) -> T:
    """Run ``attempt(timeout, retry_number)`` until it succeeds or retrying is pointless.

    ``deadline`` is a ``time.monotonic()`` instant; each attempt's timeout is capped by what is
    left of it. The last failure propagates.
    """

    def _stop(state: RetryCallState) -> bool:
        if state.attempt_number > max_retries:
            return True
        return time.monotonic() + (state.upcoming_sleep or 0) >= deadline - 0.05

    retrying = AsyncRetrying(
        retry=retry_if_exception(_retryable),
        wait=_wait,
        stop=_stop,
        reraise=True,
    )
    async for trial in retrying:
        with trial:
            remaining = deadline - time.monotonic()
            timeout = max(0.05, min(per_attempt_timeout, remaining))
            return await attempt(timeout, trial.retry_state.attempt_number - 1)
    raise AssertionError("unreachable: tenacity re-raises the last failure")


_store: BreakerStore | None = None


def get_breaker_store() -> BreakerStore:
    """The process's breaker store (Redis when configured, else PostgreSQL)."""
    global _store
    if _store is None:
        threshold = settings.SWITCHBOARD_CIRCUIT_FAILURES
        cooldown = settings.SWITCHBOARD_CIRCUIT_COOLDOWN_SECONDS
        if settings.REDIS_URL:
            from gateway.breaker_redis import RedisBreakerStore

            _store = RedisBreakerStore(settings.REDIS_URL, threshold=threshold, cooldown_s=cooldown)
        else:
            from gateway.breaker_store import PostgresBreakerStore

            _store = PostgresBreakerStore(threshold=threshold, cooldown_s=cooldown)
    return _store


def reset_breaker_store() -> None:
    """Forget the process's store (settings changed, e.g. in tests)."""
    global _store
    _store = None
