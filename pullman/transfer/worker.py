"""One connection of a file's transfer: it claims pieces, streams them, and writes them.

A worker owns one HTTP/1.1 connection. It claims pieces from the :class:`SegmentMap` (lowest free
range first, then half of the largest range in flight), sends one ranged GET for the rest of its
claim, checks the answer (:mod:`pullman.transfer.check`) and writes what arrives with positional
writes in worker threads. Each request runs in a cancel scope the watchdog may cancel: that is a
*recycle* (pull → stop → sleep), not a failure. Real failures are retried with backoff; the
budget starts afresh whenever a request brought something worth having.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio

from pullman.core.urls import redact
from pullman.errors import DiskFull, LinkExpired, NetworkError, PullmanError, TransientError
from pullman.net.client import Connection, Response
from pullman.transfer.check import Asked, StartOver, check_response
from pullman.transfer.flusher import JournalFlusher
from pullman.transfer.hashing import PrefixHasher
from pullman.transfer.recycle import Reason, Watch
from pullman.transfer.resolve import Target
from pullman.transfer.segments import Claim
from pullman.transfer.shared import Shared

log = logging.getLogger("pullman.transfer")
T = TypeVar("T")

MEANINGFUL = 64 * 1024
"""Bytes a failed or recycled request must bring to count as progress."""


@dataclass(frozen=True)
class StreamOutcome:
    """How one response ended."""

    got: int
    """Bytes of it taken into the claim."""
    error: PullmanError | None
    """A transient error that ended it (after ``got`` bytes), if any."""
    finished: bool
    """Its body was read to the end: the connection can carry the next request."""
    recycled: bool
    """The watchdog stopped it (a recycle, not an error)."""


LIMITED_STEP = 64 * 1024
"""Bytes read at a time while a bandwidth cap is in force (the cap is paid per read)."""


class Block:
    """One connection's write block: the body lands here (from the socket, when the connection
    allows it) and is written and hashed from here, so it is never copied in Python."""

    def __init__(self, capacity: int) -> None:
        self.data = bytearray(capacity)
        self.size = 0

    @property
    def free(self) -> int:
        return len(self.data) - self.size

    def spare(self, most: int) -> memoryview:
        """The next ``most`` free bytes (fewer if the block has fewer)."""
        return memoryview(self.data)[self.size : self.size + most]

    def take(self, n: int) -> list[bytes | memoryview]:
        """The first ``n`` bytes (the rest, past a moved end, is dropped); the block is empty
        again once they are written (the caller writes before it reads more)."""
        out: list[bytes | memoryview] = [memoryview(self.data)[:n]] if n > 0 else []
        self.size = 0
        return out


Fail = Callable[[PullmanError | StartOver], None]
DiskFullError = Callable[[], DiskFull]


class Worker:
    def __init__(
        self,
        wid: int,
        shared: Shared,
        flusher: JournalFlusher,
        hasher: PrefixHasher,
        disk_full: DiskFullError,
    ) -> None:
        self.wid = wid
        self.shared = shared
        cfg = shared.config
        self.conn = Connection(
            insecure=shared.spec.insecure, read_timeout=cfg.read_timeout, proxies=cfg.proxies
        )
        self.conn_bytes = 0
        """Bytes this connection carried since it opened (for the byte box)."""
        self.pending: Reason | None = None
        """A recycle the watchdog asked for: done before the next request."""
        self.scope: anyio.CancelScope | None = None
        self.holding = False
        """Whether it holds a connection slot (from opening its connection to closing it)."""
        self.clean = True
        """Whether its last request ran at full speed to the end (no slow spell began)."""
        self.taken = 0
        """Bytes the current response brought into the claim."""
        self.reused = False
        """The next request goes over a kept-alive connection that already spent a byte box."""
        self._flusher = flusher
        self._hasher = hasher
        self._disk_full = disk_full
        self._block = Block(cfg.block)
        self.watch: Watch | None = None
        """The watch of the request in flight: told when writing holds the connection back."""

    def recycle(self, reason: Reason) -> None:
        """Stop the request in flight (if any); the next one opens a fresh connection."""
        self.pending = reason
        if self.scope is not None:
            self.scope.cancel()

    async def run(self) -> None:
        """Claim and fetch pieces until none is left; errors propagate to the crew."""
        smap = self.shared.smap
        try:
            while self._next_claim():
                claim = smap.claim_of(self.wid)
                while claim is not None and claim.remaining > 0:
                    await self.shared.with_retries(self._request)
                    claim = smap.claim_of(self.wid)
                smap.release(self.wid)
        finally:
            smap.release(self.wid)
            self.shared.fleet.learner.left(self.wid)
            with anyio.CancelScope(shield=True):
                await self.drop_connection()

    def _next_claim(self) -> bool:
        sh, cfg = self.shared, self.shared.config
        if not sh.ranged:
            return sh.smap.claim(self.wid, max(1, sh.smap.size)) is not None
        room = self._room()
        seg = sh.smap.statistics()
        # Spread what is left over every connection, so none sits idle waiting to steal.
        fair = -(-(seg.size - seg.done - seg.in_flight) // cfg.connections)
        max_len = max(cfg.min_piece, min(cfg.piece_size, room, fair))
        wanted = sh.landing.wanted() if sh.landing is not None else ()
        return sh.smap.claim(self.wid, max_len, wanted=wanted) is not None

    def _room(self) -> int:
        """Bytes the next request on this connection may ask for: the rest of its byte box.
        A connection that spent its box on whole requests carries the next one if a new request
        gets a new burst (or that is not known yet); else it is recycled first."""
        sh, cfg = self.shared, self.shared.config
        if not cfg.recycle.learn:
            return cfg.piece_size
        if sh.fleet.fresh_each_request and self.conn_bytes and self.pending is None:
            sh.fleet.count(Reason.BYTE_BOX)
            self.pending, self.conn_bytes = Reason.BYTE_BOX, 0
        box = sh.fleet.learner.box_for(self.wid)
        if box - self.conn_bytes < cfg.min_piece and self.conn_bytes:
            if sh.fleet.at_box(self.wid, clean=self.clean):  # counts a recycle if not
                self.reused = True
            else:
                self.pending = Reason.BYTE_BOX
            self.conn_bytes = 0
            box = sh.fleet.learner.box_for(self.wid)
        return box - self.conn_bytes

    async def drop_connection(self) -> None:
        """Close the connection and give its slot back to the shared budget."""
        await self.conn.recycle()
        self.conn_bytes = 0
        self.reused = False
        if self.holding:
            self.holding = False
            self.shared.slots.release()

    async def _request(self) -> None:
        """One GET for the rest of this worker's claim. Raises only if no byte arrived."""
        sh = self.shared
        # A claim can outgrow the byte box (a recycle mid-claim, a box learned since): each
        # request asks for no more than the box's rest, so it ends before the burst does and its
        # connection can carry the next request.
        room = self._room() if sh.ranged else 0
        if self.pending is not None:
            await self.drop_connection()
            self.pending = None
            await sh.backoff(sh.config.recycle.pause)
        target = sh.current_target
        claim = sh.smap.claim_of(self.wid)
        assert claim is not None
        if not sh.ranged and claim.pos > 0:
            raise StartOver("the connection broke and the server cannot resume", single_stream=True)
        start, end = claim.pos, claim.end
        if sh.ranged:
            end = min(end, start + max(room, sh.config.min_piece))
        headers = target.request_headers(start, end) if sh.ranged else target.request_headers()
        if not self.holding:
            await sh.slots.acquire()
            self.holding = True
        outcome = await self._stream(target, headers, claim, end)
        if not outcome.finished:
            await self.drop_connection()  # a half-read body cannot be reused
        self._judge(outcome, target, end - start, claim)

    def _judge(self, outcome: StreamOutcome, target: Target, asked: int, claim: Claim) -> None:
        """Raise if the request was a failure worth a retry (it brought too little)."""
        # A request that ends badly counts as progress (and renews the retry budget) only if it
        # brought something worth having: a server that drips a few bytes per request and then
        # stalls would otherwise be retried for ever.
        worthwhile = outcome.got >= min(MEANINGFUL, asked)
        if outcome.recycled and not worthwhile:
            stall = self.shared.config.recycle.stall_timeout
            raise NetworkError(
                f"{self.shared.spec.name}: {'no' if outcome.got == 0 else 'hardly any'} data "
                f"for {stall:g} s",
                why="the connection stalled or dripped",
            )
        if outcome.error is not None and not worthwhile:
            raise outcome.error
        if outcome.error is None and not outcome.recycled and outcome.got == 0 and claim.remaining:
            raise NetworkError(f"{redact(target.url)} sent no data")

    async def _stream(
        self, target: Target, headers: dict[str, str], claim: Claim, end: int
    ) -> StreamOutcome:
        """Stream one response (for the claim's bytes up to ``end``) into the claim."""
        sh = self.shared
        block = self._block
        self.taken = 0
        error: PullmanError | None = None
        finished = False
        with anyio.CancelScope() as scope:
            self.scope = scope
            watch = sh.fleet.open(self.wid, sh.clock.now(), self.conn_bytes, reused=self.reused)
            self.watch = watch

            def landed(n: int) -> None:
                now = sh.clock.now()
                watch.feed(now, n)
                block.size += n
                self.taken += n
                self.conn_bytes += n
                sh.fetched += n
                sh.last_byte_at = now
                sh.note = ""

            try:
                async with self.conn.stream(target.url, headers, bulk=sh.ranged) as response:
                    asked = Asked(
                        claim.pos, end, sh.smap.size, sh.ranged, target.etag, target.redirected
                    )
                    check_response(response.status, response.headers, response.url, asked)
                    finished = await self._read_body(response, claim, end, landed)
            except LinkExpired as exc:
                error = exc
                await sh.resolver.refresh(target)
            except TransientError as exc:
                error = exc
            finally:
                self.clean = not watch.slowing
                sh.fleet.close(self.wid)
                self.watch = None
                self.scope = None
                with anyio.CancelScope(shield=True):
                    await self.write(block, wait=False)
        return StreamOutcome(self.taken, error, finished, scope.cancelled_caught)

    async def _read_body(
        self, response: Response, claim: Claim, end: int, landed: Callable[[int], None]
    ) -> bool:
        """Read into the block, writing it out whenever it is full; whether the body was read
        to its end. ``landed`` counts the bytes as they arrive (also when reading fails)."""
        sh, block = self.shared, self._block
        while True:
            limited = sh.limiter is not None and sh.limiter.limited  # a cap can come at any time
            step = LIMITED_STEP if limited else len(block.data)
            claim_end = sh.smap.end_of(self.wid)
            room = claim_end - claim.pos - block.size
            if room <= 0:
                # All we want. If a steal moved our end, stop now; if the body ends here too,
                # finish reading it (an empty read), so the connection can carry the next one.
                return claim_end >= end and await response.fill(block.spare(0), landed) == 0
            if not block.free:
                await self.write(block)
                continue
            got = await response.fill(block.spare(min(room, step)), landed)
            if got == 0:
                return True
            if not block.free:
                await self.write(block)
            if limited and sh.limiter is not None:
                await sh.limiter.acquire(got)

    async def write(self, buffer: Block, *, wait: bool = True) -> None:
        """Write what the block holds at the claim's position and advance the claim."""
        if not buffer.size:
            return
        watch, clock = self.watch, self.shared.clock
        if watch is not None:  # not reading while we wait: not the server's doing
            watch.hold(clock.now())
        try:
            await self._write(buffer, wait=wait)
        finally:
            if watch is not None:
                watch.release(clock.now())

    async def _write(self, buffer: Block, *, wait: bool) -> None:
        sh = self.shared
        # Back-pressure first: writers wait while the journal lags too far behind the data.
        # (Not when saving what arrived before a stop: the flusher may be gone by then.)
        if wait:
            await self._flusher.room()
        n = sh.smap.reserve(self.wid, buffer.size)
        parts = buffer.take(n)
        if not n:
            return
        claim = sh.smap.claim_of(self.wid)
        assert claim is not None
        try:
            written = await anyio.to_thread.run_sync(self._write_and_hash, claim.pos, parts)
        except DiskFull:
            sh.smap.advance(self.wid, 0)
            raise self._disk_full() from None
        sh.smap.advance(self.wid, written)
        if sh.landing is not None:
            sh.landing.wrote()
        self._flusher.wrote(written)
        sh.meter.feed(sh.clock.now(), sh.fetched)
        self._hasher.advanced()

    def _write_and_hash(self, offset: int, parts: list[bytes | memoryview]) -> int:
        """In a worker thread: write, then hash from these very buffers when they continue the
        digest (no read-back). Only bytes that reached the file are hashed."""
        written = self.shared.staging.write(offset, parts)
        self._hasher.feed(offset, parts, written)
        return written
