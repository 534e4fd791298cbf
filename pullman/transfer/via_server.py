"""``--via-server``: the running Ollama server downloads the model, pullman recycles its stream.

The "pull → stop → sleep" strategy users apply by hand to Ollama's own downloader: the server's
NDJSON progress stream (``POST /api/pull``) is read; the pull is stopped (the stream is closed:
there is no cancel call, and the server stops downloading once nobody waits for it) and started
again after ``pause`` seconds when it has run ``recycle_after`` seconds (the time box), when no
``completed`` bytes arrived for ``stall_timeout`` seconds, or when it slowed below a share of its
own burst speed for ``slow_grace`` seconds (the CDN's crawl; a fresh pull gets a fresh burst).
The server keeps partial downloads, so each pull resumes. The verdicts come from the same
sans-IO :class:`~pullman.transfer.recycle.Watch` the engine uses, judged on a timer. Talking to
the server is :mod:`pullman.sources.ollama_server`'s job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from pullman.core.proxies import Proxies
from pullman.errors import NetworkError, TransientError, collapse_groups
from pullman.sources import ollama_server
from pullman.sources.ollama_server import ServerNotRunning, pull_progress
from pullman.transfer.recycle import Reason, RecycleConfig, Watch
from pullman.transfer.stats import TransferStats

if TYPE_CHECKING:
    from ollama import AsyncClient, ProgressResponse

log = logging.getLogger(__name__)

TICK = 0.1
"""Seconds between two judgements of the open stream."""
FAST_PHASES = ("verifying", "writing manifest", "removing")
"""Statuses after the download: no bytes move then, and stopping would only restart the work."""


@dataclass(frozen=True)
class ServerPullOutcome:
    model: str
    elapsed: float
    restarts: int
    """Pull streams stopped on purpose and started again (recycles)."""
    failures: int
    """Attempts that failed (error lines, HTTP errors, broken streams, stops without progress)."""
    total_bytes: int
    """The size of every layer of the model."""
    reasons: dict[str, int] = field(default_factory=dict)
    """Restarts by reason (``stall``, ``time box``, ``slow``)."""


@dataclass
class _Layer:
    digest: str
    total: int
    done: int
    resumed: int
    fetched: int = 0
    state: str = "downloading"
    recycles: int = 0
    retries: int = 0


@dataclass
class _Attempt:
    """One pull stream, from request to close."""

    watch: Watch
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    judging: bool = True
    open: bool = False
    seen: set[str] = field(default_factory=set)
    progress: int = 0
    stopped: Reason | None = None


class ServerPull:
    """Pull ``model`` through the running Ollama server, recycling its pull stream."""

    def __init__(
        self,
        model: str,
        *,
        host: str | None = None,
        proxies: Proxies | None = None,
        insecure: bool = False,
        recycle_after: float = 120.0,
        pause: float = 1.0,
        stall_timeout: float = 30.0,
        slow_grace: float = 10.0,
        max_failures: int = 8,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        if max_failures < 1:
            raise ValueError("max_failures must be >= 1")
        self.model = model
        self.host = host
        self.proxies = proxies
        self.insecure = insecure
        self.pause = pause
        self.stall_timeout = stall_timeout
        self.max_failures = max_failures
        self._clock = clock
        self._sleep = sleep
        # Progress lines come every 60 ms and sum Ollama's parallel parts, so short windows work;
        # the warm-up and window scale with the grace so short test knobs stay consistent.
        self.recycle = RecycleConfig(
            stall_timeout=stall_timeout,
            min_rate=0.0,  # a stall is "no completed bytes at all"
            request_seconds=recycle_after,
            rate_window=min(1.0, max(0.2, slow_grace / 2)),
            warmup=min(3.0, slow_grace),
            slow_grace=slow_grace,
            pause=pause,
            learn=False,  # no byte box: the server's parts are not ours to count
        )
        self._layers: dict[str, _Layer] = {}
        self._active: str | None = None
        self._attempt: _Attempt | None = None
        self._connected = False
        self._restarts = 0
        self._failures = 0
        self._reasons: dict[str, int] = {}

    # ------------------------------------------------------------------ public

    async def run(self) -> ServerPullOutcome:
        started = self._clock()
        connect = min(10.0, self.stall_timeout)
        client = ollama_server.connect(self.host, connect_timeout=connect, proxies=self.proxies)
        try:
            with collapse_groups():
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watchdog)
                    await self._pull_until_done(client)
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await client.close()  # type: ignore[no-untyped-call]
        return ServerPullOutcome(
            model=self.model,
            elapsed=self._clock() - started,
            restarts=self._restarts,
            failures=self._failures,
            total_bytes=sum(layer.total for layer in self._layers.values()),
            reasons=dict(self._reasons),
        )

    def statistics(self) -> list[TransferStats]:
        """One row per layer seen so far, for :class:`pullman.progress.ProgressView`."""
        attempt = self._attempt
        now = self._clock()
        rows = []
        for digest, layer in self._layers.items():
            active = attempt is not None and attempt.open and digest == self._active
            rate = attempt.watch.rate(now) if attempt is not None and active else 0.0
            rows.append(
                TransferStats(
                    name=f"{self.model} {digest.removeprefix('sha256:')[:12]}",
                    state=layer.state,
                    size=layer.total,
                    done=layer.done,
                    verified=layer.done if layer.state == "done" else 0,
                    fetched=layer.fetched,
                    resumed=layer.resumed,
                    rate=rate,
                    connections=1 if active else 0,
                    recycles=layer.recycles,
                    retries=layer.retries,
                    steals=0,
                    refreshes=0,
                )
            )
        return rows

    # ------------------------------------------------------------------ the loop

    async def _pull_until_done(self, client: AsyncClient) -> None:
        consecutive = 0  # failures in a row without progress
        while True:
            attempt = _Attempt(Watch(self.recycle, self._clock()))
            self._attempt = attempt
            error: TransientError | None = None
            try:
                if await self._one_stream(client, attempt):
                    return
            except ServerNotRunning as exc:
                if not self._connected:  # it never answered: say so now, not after 8 retries
                    raise
                error = exc
            except TransientError as exc:
                error = exc
            finally:
                attempt.open = False
            consecutive = 0 if attempt.progress else consecutive
            if error is None:  # stopped by the watchdog
                assert attempt.stopped is not None
                self._restarts += 1
                self._reasons[attempt.stopped.value] = (
                    self._reasons.get(attempt.stopped.value, 0) + 1
                )
                self._charge("recycles")
                log.info("%s: restarting the pull (%s)", self.model, attempt.stopped.value)
                if attempt.progress:
                    await self._sleep(self.pause)
                    continue
                error = NetworkError(
                    f"the Ollama server moved no bytes of {self.model} in {self.stall_timeout:g} s",
                    why=f"the pull was stopped for {attempt.stopped.value} without progress",
                )
            self._failures += 1
            consecutive += 1
            self._charge("retries")
            if consecutive >= self.max_failures:
                raise type(error)(
                    f"{error.what} (gave up after {consecutive} failed attempts)",
                    why=error.why,
                    hint=error.hint or "run the same command again; the server keeps what it has",
                ) from error
            log.info("%s: retrying the pull after: %s", self.model, error)
            await self._sleep(self._backoff(consecutive))

    def _backoff(self, failures: int) -> float:
        return min(30.0, max(self.pause, 0.5 * 2.0 ** (failures - 1)))

    def _charge(self, what: Literal["recycles", "retries"]) -> None:
        """Count a recycle or a retry against the layer that was downloading, if any."""
        layer = self._layers.get(self._active) if self._active else None
        if layer is not None:
            setattr(layer, what, getattr(layer, what) + 1)

    async def _one_stream(self, client: AsyncClient, attempt: _Attempt) -> bool:
        """Read one pull stream; True once the server said ``success``, False if stopped."""
        with attempt.scope:
            attempt.open = True
            try:
                async with pull_progress(client, self.model, self.host, self.insecure) as parts:
                    async for part in parts:
                        self._connected = True
                        if self._take(part, attempt):
                            return True
            except ServerNotRunning:
                raise
            except TransientError:
                self._connected = True
                raise
            raise NetworkError(
                f"the Ollama server ended the pull of {self.model} before it finished",
                why="the progress stream closed without a success or error line",
            )
        return False

    def _take(self, part: ProgressResponse, attempt: _Attempt) -> bool:
        """Account one progress line; True on ``success``."""
        status = part.status or ""
        if part.digest and part.total:
            self._progress(part.digest, part.total, part.completed or 0, attempt)
        elif status == "success":
            for layer in self._layers.values():
                layer.state = "done"
            return True
        elif status.startswith(FAST_PHASES):
            attempt.judging = False
            for layer in self._layers.values():
                layer.state = "verifying" if status.startswith("verifying") else layer.state
        return False

    def _progress(self, digest: str, total: int, completed: int, attempt: _Attempt) -> None:
        layer = self._layers.get(digest)
        first_in_stream = digest not in attempt.seen
        attempt.seen.add(digest)
        self._active = digest
        if layer is None:  # first sight: what the server has already is resumed, not fetched
            self._layers[digest] = _Layer(digest, total, completed, resumed=completed)
            attempt.watch.feed(self._clock(), 0)
            return
        delta = max(0, completed - layer.done)
        layer.total, layer.done = total, completed
        layer.fetched += delta
        attempt.progress += delta
        # Bytes that landed between two streams are not this stream's speed.
        attempt.watch.feed(self._clock(), 0 if first_in_stream else delta)

    async def _watchdog(self) -> None:
        while True:
            await anyio.sleep(TICK)
            attempt = self._attempt
            if attempt is None or not attempt.open or not attempt.judging:
                continue
            verdict = attempt.watch.verdict(self._clock(), (), self.recycle.request_bytes)
            if verdict.recycle and verdict.reason is not None:
                attempt.stopped = verdict.reason
                attempt.scope.cancel()
