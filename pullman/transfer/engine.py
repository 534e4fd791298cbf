"""The transfer engine: one file, over N time-boxed HTTP/1.1 connections, verified as it lands.

One task group per file holds:

- N **workers**: each owns one connection, claims pieces from the :class:`SegmentMap` (lowest
  free range first, then half of the largest range in flight), streams them, and writes with
  positional writes in worker threads. Each request runs in a cancel scope that the watchdog may
  cancel: that is a *recycle* (pull → stop → sleep), not a failure.
- the **watchdog**: ticks the :class:`Fleet` (the sans-IO recycle policy) every ``tick`` seconds.
- the **hasher**: feeds the contiguous finished prefix to the digest in a worker thread while
  data still arrives, so verification ends moments after the last byte.
- the **journal flusher**: fsyncs the data, then atomically replaces the journal, every
  ``journal_interval`` seconds or ``journal_bytes`` bytes; writers wait if it falls behind, which
  bounds what a crash can lose.

Real failures (connect errors, 5xx, resets, 429) are retried per worker with exponential backoff
and jitter (tenacity); the budget starts afresh whenever bytes arrive, ``Retry-After`` is
honoured, and errors that cannot heal (404, a TLS failure, a full disk) stop the file at once.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

import anyio

from pullman import http
from pullman.digests import Hasher
from pullman.errors import (
    DiskFull,
    IntegrityError,
    LinkExpired,
    NetworkError,
    ProtocolViolation,
    PullmanError,
    RemoteChanged,
    RemoteError,
    TransientError,
    collapse_groups,
)
from pullman.headers import parse_content_length, strong_etag
from pullman.limiter import Limiter
from pullman.plan import FileSpec
from pullman.retry import RetryPolicy, retrying
from pullman.transfer.journal import Journal
from pullman.transfer.meter import RateMeter
from pullman.transfer.recycle import Fleet, Reason, RecycleConfig
from pullman.transfer.resolve import Resolver, Target, content_range
from pullman.transfer.segments import Claim, SegmentMap
from pullman.transfer.slots import Slots
from pullman.transfer.staging import Staging, free_space, human

log = logging.getLogger("pullman.transfer")
T = TypeVar("T")

MiB = 1 << 20
HASH_BLOCK = 8 * MiB
HASH_SLICE = 64 * MiB  # at most this much hashed per thread call, so cancellation stays prompt
MEANINGFUL = 64 * 1024
"""Bytes a failed or recycled request must bring to count as progress."""


@dataclass(frozen=True)
class TransferConfig:
    connections: int = 8
    piece_size: int = 32 * MiB
    """Largest range one request asks for; small pieces keep the verified prefix moving."""
    min_piece: int = 1 * MiB
    """Steals stop when the largest range in flight is under twice this."""
    write_block: int = 1 * MiB
    journal_interval: float = 1.0
    journal_bytes: int = 0
    """Flush the journal after this many new bytes (0: 2 MiB per connection)."""
    retry_attempts: int = 8
    retry_initial: float = 0.5
    retry_max: float = 30.0
    retry_after_max: float = 300.0
    integrity_retries: int = 1
    tick: float = 0.1
    read_timeout: float = 120.0
    space_margin: int = 64 * MiB
    recycle: RecycleConfig = field(default_factory=RecycleConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.connections <= 64:
            raise ValueError("connections must be between 1 and 64")
        if self.piece_size < self.min_piece or self.min_piece < 1:
            raise ValueError("need 1 <= min_piece <= piece_size")
        if self.retry_attempts < 1:
            raise ValueError("retry_attempts must be >= 1")

    @property
    def flush_bytes(self) -> int:
        return self.journal_bytes or 2 * MiB * self.connections

    @property
    def metadata_deadline(self) -> float:
        """Seconds a small answer (a probe, a manifest, a listing page) may take in all."""
        return 2 * self.recycle.stall_timeout

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            self.retry_attempts, self.retry_initial, self.retry_max, self.retry_after_max
        )


class TransferStats(NamedTuple):
    name: str
    state: str
    size: int
    done: int
    verified: int
    fetched: int
    resumed: int
    rate: float
    connections: int
    recycles: int
    retries: int
    steals: int
    refreshes: int


@dataclass(frozen=True)
class Outcome:
    dest: Path
    size: int
    sha256: str | None
    digest: str
    verified: bool
    fetched: int
    resumed: int
    elapsed: float
    tail: float
    """Seconds from the last byte received to the committed file."""
    recycles: int
    retries: int
    discarded: int = 0
    """Bytes thrown away because they did not verify (then fetched again)."""
    reused: bool = False
    """Another process committed the file while this one waited for it: nothing fetched."""


class _StartOver(Exception):
    """Internal: the partial data is unusable (range ignored, file changed); fetch afresh."""

    def __init__(self, why: str, *, single_stream: bool) -> None:
        super().__init__(why)
        self.why = why
        self.single_stream = single_stream


@dataclass
class _Worker:
    conn: http.Connection
    conn_bytes: int = 0
    pending: Reason | None = None
    scope: anyio.CancelScope | None = None
    holding: bool = False
    """Whether this worker holds a connection slot (from opening its connection to closing it)."""
    clean: bool = True
    """Whether its last request ran at full speed to the end (no slow spell began)."""


class _Buffer:
    """Chunks received but not yet written."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, chunk: bytes) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)

    def take(self, n: int) -> list[bytes | memoryview]:
        """The first ``n`` bytes; the rest (past a moved end) is dropped."""
        out: list[bytes | memoryview] = []
        need = n
        for part in self.parts:
            if need <= 0:
                break
            if len(part) <= need:
                out.append(part)
                need -= len(part)
            else:
                out.append(memoryview(part)[:need])
                need = 0
        self.parts = []
        self.size = 0
        return out


class Transfer:
    """Downloads one :class:`FileSpec` into its staging area and commits it when it verifies."""

    def __init__(
        self,
        spec: FileSpec,
        staging_dir: Path,
        config: TransferConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        limiter: Limiter | None = None,
        slots: Slots | None = None,
    ) -> None:
        self.spec = spec
        self.config = config or TransferConfig()
        self._clock = clock
        self._sleep = sleep
        self._limiter = limiter
        # Connections open at once, shared with other files of the same run when given.
        self._slots: Slots = slots or anyio.CapacityLimiter(self.config.connections)
        self._staging = Staging(staging_dir, spec.key)
        self._resolver = Resolver(spec, deadline=self.config.metadata_deadline)
        self._fleet = Fleet(self.config.recycle)
        self._meter = RateMeter()
        self._smap = SegmentMap(spec.size or 0, min_piece=self.config.min_piece)
        self._workers: dict[int, _Worker] = {}
        self._state = "starting"
        self._ranged = True
        self._fetched = 0
        self._resumed = 0
        self._verified = 0
        self._retries = 0
        self._discarded = 0
        self._unflushed = 0
        self._last_byte_at = 0.0
        self._failure: PullmanError | _StartOver | None = None
        self._work_scope: anyio.CancelScope | None = None
        self._moved = anyio.Event()
        self._flush_wanted = anyio.Event()
        self._flushed = anyio.Event()
        self._flush_lock = anyio.Lock()
        self._target: Target | None = None
        self._digest_hex: str | None = None
        self._sha256_hex: str | None = None
        self._hash_buffer = bytearray()

    # ------------------------------------------------------------------ observability

    def statistics(self) -> TransferStats:
        now = self._clock()
        seg = self._smap.statistics()
        fleet = self._fleet.statistics()
        return TransferStats(
            name=self.spec.name,
            state=self._state,
            size=self._smap.size,
            done=seg.done,
            verified=self._verified,
            fetched=self._fetched,
            resumed=self._resumed,
            rate=self._meter.rate(now),
            connections=fleet.connections,
            recycles=fleet.recycles,
            retries=self._retries,
            steals=seg.steals,
            refreshes=self._resolver.refreshes,
        )

    # ------------------------------------------------------------------ the whole file

    async def run(self) -> Outcome:
        started = self._clock()
        try:
            await self._lock()
            if self._committed_meanwhile():
                return self._reused(started)
            target = await self._resolve()
            size = self._expected_size(target)
            self._prepare(target, size)
            attempts = 0
            while True:
                try:
                    await self._transfer_once()
                except _StartOver as restart:
                    attempts += 1
                    if attempts > self.config.retry_attempts:
                        raise RemoteChanged(
                            f"{self.spec.name}: gave up restarting the download",
                            why=restart.why,
                        ) from None
                    log.info("%s: starting over: %s", self.spec.name, restart.why)
                    await self._start_over(restart.single_stream)
                    continue
                if self._digest_ok():
                    break
                attempts = self._integrity_failed(attempts)
            self._state = "committing"
            await anyio.to_thread.run_sync(self._staging.commit, self.spec.dest)
            self._state = "done"
            now = self._clock()
            return Outcome(
                dest=self.spec.dest,
                size=self._smap.size,
                sha256=self._sha256_hex,
                digest=str(self.spec.digest) if self.spec.digest else f"sha256:{self._sha256_hex}",
                verified=self.spec.digest is not None,
                fetched=self._fetched,
                resumed=self._resumed,
                elapsed=now - started,
                tail=now - self._last_byte_at if self._last_byte_at else 0.0,
                recycles=self._fleet.statistics().recycles,
                retries=self._retries,
                discarded=self._discarded,
            )
        finally:
            if self._state != "done":
                self._state = "stopped"
            self._staging.close()
            # Nothing staged any more (committed or thrown away): the lock file can go too.
            self._staging.unlock(remove=not self._staging.part.exists())

    async def _lock(self) -> None:
        """One process per file: another pullman fetching the same file is waited for."""
        while not await anyio.to_thread.run_sync(self._staging.try_lock):
            if self._state != "waiting":
                log.info("%s: another pullman is fetching this file; waiting", self.spec.name)
            self._state = "waiting"
            await anyio.sleep(0.2)

    def _committed_meanwhile(self) -> bool:
        """Whether another process committed this content-addressed file while we waited."""
        spec = self.spec
        if self._state != "waiting" or not spec.content_addressed or spec.size is None:
            return False
        try:
            return spec.dest.stat().st_size == spec.size
        except OSError:
            return False

    def _reused(self, started: float) -> Outcome:
        self._state = "done"
        size = self.spec.size or 0
        self._smap = SegmentMap(size, [(0, size)])
        return Outcome(
            dest=self.spec.dest,
            size=size,
            sha256=self.spec.digest.hex
            if self.spec.digest and self.spec.digest.algorithm == "sha256"
            else None,
            digest=str(self.spec.digest),
            verified=True,
            fetched=0,
            resumed=0,
            elapsed=self._clock() - started,
            tail=0.0,
            recycles=0,
            retries=0,
            reused=True,
        )

    def _expected_size(self, target: Target) -> int:
        if target.size is None and self.spec.size is not None and not target.ranges:
            return self.spec.size  # a server without ranges or length: the plan knows the size
        if target.size is None:
            raise RemoteError(
                f"{http.redact(target.url)} did not say how large the file is",
                why="no Content-Length or Content-Range in its answer",
                hint="pullman needs a size to download safely; try the URL with another tool",
            )
        if self.spec.size is not None and self.spec.size != target.size:
            raise IntegrityError(
                f"{self.spec.name}: the server serves {target.size} bytes, "
                f"but {self.spec.size} were expected",
                hint="the source and its CDN disagree; try again later",
            )
        return target.size

    def _prepare(self, target: Target, size: int) -> None:
        self._target = target
        self._ranged = target.ranges
        digest = str(self.spec.digest) if self.spec.digest else None
        journal = self._staging.load_journal()
        resumable = (
            journal is not None
            and target.ranges
            and journal.matches(size, digest, target.etag, target.last_modified)
        )
        self._staging.open(size, fresh=not resumable)
        done = journal.done if resumable and journal is not None else ()
        self._smap = SegmentMap(size, done, min_piece=self.config.min_piece)
        self._resumed = self._smap.done_bytes
        if self._resumed:
            log.info("%s: resuming with %s already on disk", self.spec.name, human(self._resumed))
        self._check_space(size - self._resumed)

    def _check_space(self, remaining: int) -> None:
        if remaining and free_space(self._staging.directory) < remaining + self.config.space_margin:
            raise self._disk_full(before=True)

    def _disk_full(self, *, before: bool = False) -> DiskFull:
        """How much is still needed and how much is free, and that nothing is lost."""
        needed = self._smap.size - self._smap.done_bytes + self.config.space_margin
        free = free_space(self._staging.directory)
        kept = "" if before else f"; the {human(self._smap.done_bytes)} already fetched are kept"
        return DiskFull(
            f"not enough free space for {self.spec.name}" + kept,
            needed=needed,
            free=free,
            why=f"{human(needed)} more is needed (with a safety margin), {human(free)} is free "
            f"in {self._staging.directory}",
            hint="free some space and run the same command again, or download somewhere else",
        )

    def _digest_ok(self) -> bool:
        if self.spec.digest is None:
            return True
        return self._digest_hex == self.spec.digest.hex

    def _integrity_failed(self, attempts: int) -> int:
        """The bytes did not hash right: throw them away and fetch once more, then give up."""
        assert self.spec.digest is not None
        attempts += 1
        got = self._digest_hex
        if attempts > self.config.integrity_retries:
            self._staging.discard()
            raise IntegrityError(
                f"{self.spec.name}: downloaded data does not match its digest",
                why=f"expected {self.spec.digest}, got {self.spec.digest.algorithm}:{got}, "
                f"{attempts} times",
                hint="the server or something between you and it is corrupting data; "
                "try again later or from another network",
            )
        log.warning(
            "%s: digest mismatch (got %s); discarding and fetching again",
            self.spec.name,
            got,
        )
        self._discarded += self._smap.size
        self._staging.open(self._smap.size, fresh=True)
        self._smap.reset()
        self._verified = 0
        return attempts

    async def _resolve(self) -> Target:
        """The probe counts against the connection budget like any other connection."""

        async def probe() -> Target:
            async with self._slots:
                return await self._resolver.resolve()

        return await self._with_retries(probe)

    async def _start_over(self, single_stream: bool) -> None:
        target = await self._resolve()
        size = self._expected_size(target)
        if size != self._smap.size:
            raise RemoteChanged(f"{self.spec.name}: the file changed size on the server")
        self._target = target
        self._ranged = target.ranges and not single_stream
        self._staging.open(size, fresh=True)
        self._smap.reset()
        self._verified = 0

    # ------------------------------------------------------------------ one pass

    async def _transfer_once(self) -> None:
        self._failure = None
        self._state = "downloading"
        self._workers = {}
        size = self._smap.size
        wanted = max(1, -(-(size - self._smap.done_bytes) // self.config.min_piece))
        count = min(self.config.connections, wanted) if self._ranged else 1
        try:
            with collapse_groups():
                await self._run_tasks(count)
        finally:
            with anyio.CancelScope(shield=True):
                await self._final_flush()
        if self._failure is not None:
            raise self._failure

    async def _final_flush(self) -> None:
        """Record what is on disk before returning, whatever happened."""
        try:
            await self._flush()
        except DiskFull:
            # The journal keeps its last good state (it is replaced atomically); the error
            # worth showing is the one about space, with what is needed and free.
            log.warning("%s: could not update the journal: disk full", self.spec.name)
            if self._failure is None:
                raise self._disk_full() from None

    async def _run_tasks(self, count: int) -> None:
        cfg = self.config
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._flush_loop)
            tg.start_soon(self._watchdog)
            async with anyio.create_task_group() as work:
                self._work_scope = work.cancel_scope
                work.start_soon(self._hash_loop)
                for wid in range(count):
                    conn = http.Connection(
                        insecure=self.spec.insecure, read_timeout=cfg.read_timeout
                    )
                    self._workers[wid] = _Worker(conn)
                    work.start_soon(self._worker, wid)
            tg.cancel_scope.cancel()

    def _fail(self, error: PullmanError | _StartOver) -> None:
        if self._failure is None:
            self._failure = error
        if self._work_scope is not None:
            self._work_scope.cancel()

    # ------------------------------------------------------------------ workers

    async def _worker(self, wid: int) -> None:
        worker = self._workers[wid]
        try:
            while self._next_claim(wid, worker):
                await self._fetch_claim(wid, worker)
        except (PullmanError, _StartOver) as exc:
            self._fail(exc)
        finally:
            self._smap.release(wid)
            with anyio.CancelScope(shield=True):
                await self._drop_connection(worker)
            self._workers.pop(wid, None)
            if not self._workers and not self._smap.complete and self._failure is None:
                self._fail(NetworkError(f"{self.spec.name}: every connection stopped early"))

    def _next_claim(self, wid: int, worker: _Worker) -> bool:
        cfg = self.config
        if not self._ranged:
            return self._smap.claim(wid, max(1, self._smap.size)) is not None
        box = self._fleet.learner.box
        if cfg.recycle.learn and box - worker.conn_bytes < cfg.min_piece and worker.conn_bytes:
            # The connection spent its byte box on whole requests: recycle between requests.
            self._fleet.boundary(reached_box=True, last_clean=worker.clean)
            worker.pending = Reason.BYTE_BOX
            worker.conn_bytes = 0
        room = box - worker.conn_bytes if cfg.recycle.learn else cfg.piece_size
        seg = self._smap.statistics()
        # Spread what is left over every connection, so none sits idle waiting to steal.
        fair = -(-(seg.size - seg.done - seg.in_flight) // cfg.connections)
        max_len = max(cfg.min_piece, min(cfg.piece_size, room, fair))
        return self._smap.claim(wid, max_len) is not None

    async def _fetch_claim(self, wid: int, worker: _Worker) -> None:
        claim = self._smap.claim_of(wid)
        while claim is not None and claim.remaining > 0:
            await self._with_retries(lambda: self._request(wid, worker))
            claim = self._smap.claim_of(wid)
        self._smap.release(wid)

    async def _with_retries(self, fn: Callable[[], Awaitable[T]]) -> T:
        def note(exc: BaseException | None) -> None:
            self._retries += 1
            log.info("%s: retrying after: %s", self.spec.name, exc)

        return await retrying(fn, self.config.retry_policy, sleep=self._sleep, on_retry=note)

    async def _drop_connection(self, worker: _Worker) -> None:
        """Close the worker's connection and give its slot back to the shared budget."""
        await worker.conn.recycle()
        worker.conn_bytes = 0
        if worker.holding:
            worker.holding = False
            self._slots.release()

    async def _request(self, wid: int, worker: _Worker) -> None:
        """One GET for the rest of this worker's claim. Raises only if no byte arrived."""
        if worker.pending is not None:
            await self._drop_connection(worker)
            worker.pending = None
            await self._sleep(self.config.recycle.pause)
        target = self._resolver.current or self._target
        assert target is not None
        claim = self._smap.claim_of(wid)
        assert claim is not None
        if not self._ranged and claim.pos > 0:
            raise _StartOver(
                "the connection broke and the server cannot resume", single_stream=True
            )
        start, end = claim.pos, claim.end
        headers = target.request_headers(start, end) if self._ranged else target.request_headers()
        if not worker.holding:
            await self._slots.acquire()
            worker.holding = True
        got, error, finished, cancelled = await self._stream(wid, worker, target, headers, claim)
        if not finished:
            await self._drop_connection(worker)  # a half-read body cannot be reused
        # A request that ends badly counts as progress (and renews the retry budget) only if it
        # brought something worth having: a server that drips a few bytes per request and then
        # stalls would otherwise be retried for ever.
        worthwhile = got >= min(MEANINGFUL, end - start)
        if cancelled and not worthwhile:
            cfg = self.config.recycle
            raise NetworkError(
                f"{self.spec.name}: {'no' if got == 0 else 'hardly any'} data "
                f"for {cfg.stall_timeout:g} s",
                why="the connection stalled or dripped",
            )
        if error is not None and not worthwhile:
            raise error
        if error is None and got == 0 and claim.remaining > 0 and not cancelled:
            raise NetworkError(f"{http.redact(target.url)} sent no data")

    async def _stream(
        self, wid: int, worker: _Worker, target: Target, headers: dict[str, str], claim: Claim
    ) -> tuple[int, PullmanError | None, bool, bool]:
        """Stream one response into the claim: (bytes taken, error, body finished, recycled)."""
        start, end = claim.pos, claim.end
        got = 0
        buffer = _Buffer()
        error: PullmanError | None = None
        finished = False
        with anyio.CancelScope() as scope:
            worker.scope = scope
            watch = self._fleet.open(wid, self._clock(), worker.conn_bytes)
            try:
                async with worker.conn.stream(target.url, headers) as response:
                    self._check(response, target, start, end)
                    async for chunk in response.chunks():
                        now = self._clock()
                        watch.feed(now, len(chunk))
                        worker.conn_bytes += len(chunk)
                        self._fetched += len(chunk)
                        self._last_byte_at = now
                        room = self._smap.end_of(wid) - claim.pos - buffer.size
                        buffer.add(chunk if len(chunk) <= room else chunk[:room])
                        got += min(len(chunk), room)
                        if buffer.size >= self.config.write_block or len(buffer.parts) >= 256:
                            await self._write(wid, buffer)
                        if self._limiter is not None:
                            await self._limiter.acquire(len(chunk))
                        # All we want? Read on to the body's end when it ends here (the
                        # connection can then be reused); stop now if a steal moved our end or
                        # the server sends more than was asked.
                        full = claim.pos + buffer.size >= self._smap.end_of(wid)
                        if full and (self._smap.end_of(wid) < end or room < len(chunk)):
                            break
                    else:
                        finished = True
            except LinkExpired as exc:
                error = exc
                await self._resolver.refresh(target)
            except TransientError as exc:
                error = exc
            finally:
                worker.clean = not watch.slowing
                self._fleet.close(wid)
                worker.scope = None
                with anyio.CancelScope(shield=True):
                    await self._write(wid, buffer, wait=False)
        return got, error, finished, scope.cancelled_caught

    def _check(self, response: http.Response, target: Target, start: int, end: int) -> None:
        """Refuse any answer whose bytes would not be exactly ``[start, ...)`` of our file."""
        status = response.status
        h = response.headers
        url = response.url
        encoding = h.get("content-encoding", "identity").strip().lower()
        if status in (200, 206) and encoding not in ("", "identity"):
            raise ProtocolViolation(f"{http.redact(url)} sent {encoding}-encoded data")
        etag = strong_etag(h.get("etag"))
        if status in (200, 206) and target.etag and etag and etag != target.etag:
            raise _StartOver("the file changed on the server (new ETag)", single_stream=False)
        if status == 206:
            cr = content_range(url, h.get("content-range"))
            if cr.start != start:
                raise ProtocolViolation(
                    f"{http.redact(url)} answered bytes from {cr.start} when asked for {start}",
                    why="a wrong Content-Range; the data was not used",
                )
            if cr.total is not None and cr.total != self._smap.size:
                raise _StartOver("the file changed size on the server", single_stream=False)
            return
        if status == 200:
            length = parse_content_length(h.get("content-length"))
            if not self._ranged or (start == 0 and end == self._smap.size):
                if length is not None and length != self._smap.size:
                    raise _StartOver("the file changed size on the server", single_stream=False)
                return
            raise _StartOver("the server ignored the Range header", single_stream=True)
        if target.redirected and status in (401, 403, 404, 410):
            raise LinkExpired(f"{http.redact(url)} answered {status}: the CDN link expired")
        if status == 416:
            raise _StartOver("the server says the range is past the end", single_stream=False)
        raise http.error_for_status(status, url, h)

    async def _write(self, wid: int, buffer: _Buffer, *, wait: bool = True) -> None:
        if not buffer.size:
            return
        # Back-pressure first: writers wait while the journal lags too far behind the data.
        # (Not when saving what arrived before a stop: the flusher may be gone by then.)
        while wait and self._unflushed >= 2 * self.config.flush_bytes:
            self._flush_wanted.set()
            await self._flushed.wait()
        n = self._smap.reserve(wid, buffer.size)
        parts = buffer.take(n)
        if not n:
            return
        claim = self._smap.claim_of(wid)
        assert claim is not None
        try:
            written = await anyio.to_thread.run_sync(self._staging.write, claim.pos, parts)
        except DiskFull:
            self._smap.advance(wid, 0)
            raise self._disk_full() from None
        self._smap.advance(wid, written)
        self._unflushed += written
        self._meter.feed(self._clock(), self._fetched)
        if self._unflushed >= self.config.flush_bytes:
            self._flush_wanted.set()
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    # ------------------------------------------------------------------ watchdog

    async def _watchdog(self) -> None:
        while True:
            await anyio.sleep(self.config.tick)
            # Under a bandwidth cap connections are slow on purpose: judge stalls, not speed.
            judge_speed = self._limiter is None or not self._limiter.limited
            for wid, reason in self._fleet.tick(self._clock(), judge_speed=judge_speed):
                worker = self._workers.get(int(str(wid)))
                if worker is None:
                    continue
                worker.pending = reason
                log.debug("%s: recycling connection %s (%s)", self.spec.name, wid, reason.value)
                if worker.scope is not None:
                    worker.scope.cancel()

    # ------------------------------------------------------------------ hashing

    async def _hash_loop(self) -> None:
        size = self._smap.size
        digest = self.spec.digest
        main: Hasher = digest.hasher(size) if digest is not None else hashlib.sha256()
        # When the expected digest is not sha256 we still report the sha256 of the file.
        extra: Hasher | None = (
            hashlib.sha256() if digest is not None and digest.algorithm != "sha256" else None
        )
        pos = 0
        while pos < size:
            moved = self._moved
            prefix = self._smap.prefix
            if prefix <= pos:
                await moved.wait()
                continue
            upto = min(prefix, pos + HASH_SLICE)
            await anyio.to_thread.run_sync(self._hash_span, main, extra, pos, upto)
            pos = upto
            self._verified = pos
        self._digest_hex = main.hexdigest()
        self._sha256_hex = extra.hexdigest() if extra is not None else self._digest_hex
        self._state = "verifying"

    def _hash_span(self, main: Hasher, extra: Hasher | None, start: int, end: int) -> None:
        if not self._hash_buffer:  # one buffer per file, no larger than the file
            self._hash_buffer = bytearray(max(1, min(HASH_BLOCK, self._smap.size)))
        view = memoryview(self._hash_buffer)
        pos = start
        while pos < end:
            n = self._staging.read_into(pos, view[: min(len(view), end - pos)])
            if n <= 0:
                raise IntegrityError(f"{self.spec.name}: partial file shrank while hashing")
            main.update(view[:n])
            if extra is not None:
                extra.update(view[:n])
            pos += n

    # ------------------------------------------------------------------ journal

    async def _flush_loop(self) -> None:
        while True:
            with anyio.move_on_after(self.config.journal_interval):
                await self._flush_wanted.wait()
            try:
                await self._flush()
            except DiskFull:
                self._fail(self._disk_full())
                return
            except PullmanError as exc:
                self._fail(exc)
                return

    async def _flush(self) -> None:
        async with self._flush_lock:
            target = self._target
            if target is None or self._staging.fd is None:
                return
            pending = self._unflushed
            journal = Journal(
                size=self._smap.size,
                digest=str(self.spec.digest) if self.spec.digest else None,
                etag=target.etag,
                last_modified=target.last_modified,
                source=http.redact(self.spec.url),
                done=tuple(self._smap.done_ranges()),
            )
            if self._ranged:
                await anyio.to_thread.run_sync(self._staging.save_journal, journal)
            self._unflushed -= pending
            self._flush_wanted = anyio.Event()
            flushed, self._flushed = self._flushed, anyio.Event()
            flushed.set()
