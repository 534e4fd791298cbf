"""Retrying transient failures: exponential backoff with jitter, Retry-After honoured.

Built on tenacity. Only :class:`~pullman.errors.TransientError` is retried; everything else
(404, TLS, disk full, a bad manifest) fails at once. Callers that make progress between
failures start a fresh :func:`retrying` call, so the budget counts consecutive failures only.

A host this process never reached (:mod:`pullman.net.reach`) that cannot even be connected to
(:class:`~pullman.errors.Unreachable`: DNS, refused, proxy down) gets ``first_contact``
attempts with short waits: the user hears within seconds which host failed and why. Every
retry is logged (``-v``) and reported to ``on_retry`` with its number and wait.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

import anyio
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from pullman.errors import LinkExpired, TransientError, Unreachable
from pullman.net.reach import REACH

T = TypeVar("T")
log = logging.getLogger("pullman.retry")


class RetryNote(NamedTuple):
    """One retry about to happen: for progress lines (``retry 3/8 in 4 s: connection reset``)."""

    attempt: int
    """The attempt that failed (1-based)."""
    attempts: int
    """The most attempts this failure may get."""
    wait: float
    error: BaseException | None

    def __str__(self) -> str:
        wait = f"{self.wait:.1f}" if self.wait < 10 else f"{self.wait:.0f}"
        return f"retry {self.attempt}/{self.attempts} in {wait} s: {self.error}"


def _first_contact(exc: BaseException | None) -> bool:
    return isinstance(exc, Unreachable) and not REACH.seen(exc.url)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8
    initial: float = 0.5
    max: float = 30.0
    retry_after_max: float = 300.0
    first_contact: int = 3
    """Attempts for a host never reached in this process that cannot be connected to."""

    def limit(self, exc: BaseException | None) -> int:
        return min(self.attempts, self.first_contact) if _first_contact(exc) else self.attempts

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
            if _first_contact(exc):
                return self.initial * state.attempt_number
            return float(backoff(state))

        return wait

    def stop(self) -> Callable[[RetryCallState], bool]:
        def stop(state: RetryCallState) -> bool:
            exc = state.outcome.exception() if state.outcome else None
            return state.attempt_number >= self.limit(exc)

        return stop


async def retrying(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    on_retry: Callable[[RetryNote], None] | None = None,
) -> T:
    """``await fn()``, retrying transient errors per ``policy``; the last error is re-raised."""

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        note = RetryNote(state.attempt_number, policy.limit(exc), wait, exc)
        log.info("%s", note)
        if on_retry is not None:
            on_retry(note)

    async for attempt in AsyncRetrying(
        stop=policy.stop(),
        wait=policy.wait(),
        retry=retry_if_exception_type(TransientError),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    ):
        with attempt:
            return await fn()
    raise AssertionError("unreachable")  # pragma: no cover
