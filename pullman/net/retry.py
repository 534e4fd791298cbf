"""Retrying transient failures: exponential backoff with jitter, Retry-After honoured.

Built on tenacity. Only :class:`~pullman.errors.TransientError` is retried; everything else
(404, TLS, disk full, a bad manifest) fails at once. Callers that make progress between
failures start a fresh :func:`retrying` call, so the budget counts consecutive failures only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from pullman.errors import LinkExpired, TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    initial: float = 0.5
    max: float = 30.0
    retry_after_max: float = 300.0

    def wait(self) -> Callable[[RetryCallState], float]:
        backoff = wait_exponential_jitter(
            multiplier=self.initial, max=self.max, jitter=self.initial
        )

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, LinkExpired):
                return 0.0  # a fresh link is ready at once
            if isinstance(exc, TransientError) and exc.retry_after is not None:
                return min(exc.retry_after, self.retry_after_max)
            return float(backoff(state))

        return wait


async def retrying(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    on_retry: Callable[[BaseException | None], None] | None = None,
) -> T:
    """``await fn()``, retrying transient errors per ``policy``; the last error is re-raised."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None:
            on_retry(state.outcome.exception() if state.outcome else None)

    async for attempt in AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy.wait(),
        retry=retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    ):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover
