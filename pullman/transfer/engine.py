"""The transfer engine: one file, over N time-boxed HTTP/1.1 connections, verified as it lands.

:class:`Transfer` runs a file's life: take its staging lock (one process per file), resolve where
its bytes are (:mod:`pullman.transfer.resolve`), resume from the journal or start fresh, check
free space, then run passes (:class:`~pullman.transfer.crew.Crew`) until the data is complete and
hashes to its digest: a pass that finds the partial data unusable starts over, a digest mismatch
throws the data away and fetches it once more. The verified file is then committed by an atomic
rename.

Real failures (connect errors, 5xx, resets, 429) are retried per connection with exponential
backoff and jitter; the budget starts afresh whenever bytes arrive, ``Retry-After`` is honoured,
and errors that cannot heal (404, a TLS failure, a full disk) stop the file at once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio

from pullman.core.clock import SYSTEM_CLOCK, Clock, Sleep
from pullman.core.hosts import HostMemory
from pullman.core.plan import FileSpec
from pullman.core.units import human
from pullman.core.urls import redact
from pullman.errors import DiskFull, IntegrityError, RemoteChanged, RemoteError
from pullman.fsio import free_space
from pullman.transfer.check import StartOver
from pullman.transfer.config import TransferConfig
from pullman.transfer.crew import Crew
from pullman.transfer.flusher import JournalFlusher
from pullman.transfer.hashing import PrefixHasher
from pullman.transfer.journal import Journal
from pullman.transfer.landing import Landing, publish, watching
from pullman.transfer.limiter import Limiter
from pullman.transfer.recycle import Fleet
from pullman.transfer.resolve import Resolver, Target
from pullman.transfer.segments import SegmentMap
from pullman.transfer.shared import Shared
from pullman.transfer.slots import Slots
from pullman.transfer.staging import Staging
from pullman.transfer.stats import Outcome, TransferStats
from pullman.transfer.whole import land_whole

log = logging.getLogger("pullman.transfer")

LOCK_POLL = 0.2
"""Seconds between two looks at a staging lock another process holds."""


class Transfer:
    """Downloads one :class:`FileSpec` into its staging area and commits it when it verifies.

    ``clock`` drives every timer (the watchdog's tick, the lock poll); ``sleep`` the deliberate
    waits (backoff between retries, the pause after a recycle), ``clock.sleep`` by default.
    ``landing`` hears of every write, restart and the commit (readers stream the file).
    """

    def __init__(
        self,
        spec: FileSpec,
        staging_dir: Path,
        config: TransferConfig | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        sleep: Sleep | None = None,
        limiter: Limiter | None = None,
        slots: Slots | None = None,
        landing: Landing | None = None,
        memory: HostMemory | None = None,
    ) -> None:
        """``memory``: what earlier downloads learned about each host (the index's)."""
        self.spec = spec
        self._memory = memory
        self.config = cfg = config or TransferConfig()
        self._state = "starting"
        self._resumed = 0
        self._discarded = 0
        self.shared = Shared(
            spec=spec,
            config=cfg,
            clock=clock,
            backoff=sleep or clock.sleep,
            staging=Staging(staging_dir, spec.key),
            resolver=Resolver(spec, deadline=cfg.metadata_deadline, proxies=cfg.proxies),
            # Connections open at once, shared with other files of the same run when given.
            slots=slots or anyio.CapacityLimiter(cfg.connections),
            limiter=limiter,
            fleet=Fleet(cfg.recycle),
            smap=SegmentMap(spec.size or 0, min_piece=cfg.min_piece),
            landing=landing,
        )
        self._hasher = self._new_hasher()
        self._flusher = JournalFlusher(
            cfg.journal_interval, cfg.flush_bytes, self._journal, self._save_journal
        )

    # ------------------------------------------------------------------ observability

    def statistics(self) -> TransferStats:
        sh = self.shared
        seg = sh.smap.statistics()
        fleet = sh.fleet.statistics()
        return TransferStats(
            name=self.spec.name,
            state=self._state,
            size=sh.smap.size,
            done=seg.done,
            verified=self._hasher.verified,
            fetched=sh.fetched,
            resumed=self._resumed,
            rate=sh.meter.rate(sh.clock.now()),
            connections=fleet.connections,
            recycles=fleet.recycles,
            retries=sh.retries,
            steals=seg.steals,
            refreshes=sh.resolver.refreshes,
            note=sh.note,
        )

    # ------------------------------------------------------------------ the whole file

    async def run(self) -> Outcome:
        started = self.shared.clock.now()
        staging = self.shared.staging
        try:
            with watching(self.shared.landing):
                await self._lock()
                if self._committed_meanwhile():
                    return self._reused(started)
                target = await self._resolve()
                await recall(self._memory, self.shared.fleet, target.url)
                self._prepare(target, self._expected_size(target))
                await self._until_verified()
                self._state = "committing"
                await anyio.to_thread.run_sync(staging.commit, self.spec.dest)
                self._state = "done"
                if self.shared.ranged:
                    await remember(self._memory, self.shared.fleet, self.shared.current_target.url)
                return self._outcome(started)
        finally:
            if self._state != "done":
                self._state = "stopped"
            staging.close()
            # Nothing staged any more (committed or thrown away): the lock file can go too.
            staging.unlock(remove=not staging.part.exists())

    async def _until_verified(self) -> None:
        """Passes until the data is complete and verified; start over or refetch as needed."""
        restarts = mismatches = 0  # counted apart: a restart does not use up a refetch
        while True:
            try:
                await self._one_pass()
            except StartOver as restart:
                restarts += 1
                if restarts > self.config.retry_attempts:
                    raise RemoteChanged(
                        f"{self.spec.name}: gave up restarting the download", why=restart.why
                    ) from None
                log.info("%s: starting over: %s", self.spec.name, restart.why)
                await self._start_over(restart.single_stream)
                continue
            if self._hasher.matches():
                return
            mismatches = self._integrity_failed(mismatches)
            # The copy behind this link is bad (a corrupt CDN edge object, say): ask the
            # source again for a fresh link rather than fetch the same bad bytes twice.
            await self._retarget(single_stream=not self.shared.ranged)

    def _outcome(self, started: float) -> Outcome:
        sh = self.shared
        now = sh.clock.now()
        hashed = self._hasher
        return Outcome(
            dest=self.spec.dest,
            size=sh.smap.size,
            sha256=hashed.sha256_hex,
            digest=str(self.spec.digest) if self.spec.digest else f"sha256:{hashed.sha256_hex}",
            verified=self.spec.digest is not None,
            fetched=sh.fetched,
            resumed=self._resumed,
            elapsed=now - started,
            tail=now - sh.last_byte_at if sh.last_byte_at else 0.0,
            recycles=sh.fleet.statistics().recycles,
            retries=sh.retries,
            discarded=self._discarded,
        )

    async def _lock(self) -> None:
        """One process per file: another pullman fetching the same file is waited for."""
        staging = self.shared.staging
        while not await anyio.to_thread.run_sync(staging.try_lock):
            if self._state != "waiting":
                log.info("%s: another pullman is fetching this file; waiting", self.spec.name)
            self._state = "waiting"
            await self.shared.clock.sleep(LOCK_POLL)

    def _committed_meanwhile(self) -> bool:
        """Whether another process committed this content-addressed file while we waited."""
        return self._state == "waiting" and committed_elsewhere(self.spec)

    def _reused(self, started: float) -> Outcome:
        self._state = "done"
        size = self.spec.size or 0
        self.shared.smap = SegmentMap(size, [(0, size)])
        return reused_outcome(self.spec, self.shared.clock.now() - started)

    def _expected_size(self, target: Target) -> int:
        return expected_size(self.spec, target)

    def _prepare(self, target: Target, size: int) -> None:
        sh = self.shared
        sh.target = target
        sh.ranged = target.ranges
        digest = str(self.spec.digest) if self.spec.digest else None
        journal = sh.staging.load_journal()
        resumable = (
            journal is not None
            and target.ranges
            and journal.matches(size, digest, target.etag, target.last_modified)
        )
        sh.staging.open(size, fresh=not resumable, journaled=self._journaled(size))
        done = journal.done if resumable and journal is not None else ()
        sh.smap = SegmentMap(size, done, min_piece=self.config.min_piece)
        publish(sh.landing, sh.staging, sh.smap)
        self._hasher = self._new_hasher()
        self._resumed = sh.smap.done_bytes
        if self._resumed:
            log.info("%s: resuming with %s already on disk", self.spec.name, human(self._resumed))
        self._check_space(size - self._resumed)

    def _check_space(self, remaining: int) -> None:
        directory = self.shared.staging.directory
        if remaining and free_space(directory) < remaining + self.config.space_margin:
            raise self._disk_full(before=True)

    def _disk_full(self, *, before: bool = False) -> DiskFull:
        smap = self.shared.smap
        needed = smap.size - smap.done_bytes + self.config.space_margin
        kept = 0 if before else smap.done_bytes
        return disk_full(self.spec.name, needed, kept, self.shared.staging.directory)

    def _integrity_failed(self, attempts: int) -> int:
        """The bytes did not hash right: throw them away and fetch once more, then give up."""
        expected = self.spec.digest
        assert expected is not None
        attempts += 1
        got = self._hasher.digest_hex
        sh = self.shared
        if attempts > self.config.integrity_retries:
            sh.staging.discard()
            raise IntegrityError(
                f"{self.spec.name}: downloaded data does not match its digest",
                why=f"expected {expected}, got {expected.algorithm}:{got}, {attempts} times",
                hint="the server or something between you and it is corrupting data; "
                "try again later or from another network",
            )
        log.warning(
            "%s: digest mismatch (got %s); discarding and fetching again from a fresh link",
            self.spec.name,
            got,
        )
        self._discarded += sh.smap.size
        self._restart_data(sh.smap.size)
        return attempts

    async def _resolve(self) -> Target:
        """The probe counts against the connection budget like any other connection."""
        sh = self.shared

        async def probe() -> Target:
            async with sh.slots:
                return await sh.resolver.resolve()

        return await sh.with_retries(probe)

    async def _start_over(self, single_stream: bool) -> None:
        await self._retarget(single_stream=single_stream)
        self._restart_data(self.shared.smap.size)

    async def _retarget(self, *, single_stream: bool) -> None:
        """Resolve the file afresh through its source URL (a new redirect, a new CDN link)."""
        target = await self._resolve()
        size = self._expected_size(target)
        sh = self.shared
        if size != sh.smap.size:
            raise RemoteChanged(f"{self.spec.name}: the file changed size on the server")
        sh.target = target
        sh.ranged = target.ranges and not single_stream

    def _restart_data(self, size: int) -> None:
        """Throw the partial data away: the file is fetched again from its first byte."""
        sh = self.shared
        sh.staging.open(size, fresh=True, journaled=self._journaled(size))
        sh.smap.reset()
        self._hasher.reset()
        self._flusher.forget()
        publish(sh.landing, sh.staging, sh.smap, restarted=True)

    # ------------------------------------------------------------------ one pass

    async def _one_pass(self) -> None:
        sh = self.shared
        self._state = "downloading"
        self._hasher = self._new_hasher()
        body = sh.target.body if sh.target is not None else None
        if body is not None and not sh.smap.done_bytes and len(body) == sh.smap.size:
            self._state = "verifying"
            await land_whole(sh, self._hasher, body, self.config.min_piece)
            return
        wanted = max(1, -(-(sh.smap.size - sh.smap.done_bytes) // self.config.min_piece))
        count = min(self.config.connections, wanted) if sh.ranged else 1
        crew = Crew(sh, self._flusher, self._hasher, self._disk_full, self._hashed)
        await crew.run(count)

    def _hashed(self) -> None:
        self._state = "verifying"

    def _new_hasher(self) -> PrefixHasher:
        sh = self.shared
        return PrefixHasher(self.spec.name, sh.smap.size, self.spec.digest, sh.staging.read_into)

    def _journal(self) -> Journal | None:
        sh = self.shared
        if sh.target is None or sh.staging.fd is None:
            return None
        return Journal(
            size=sh.smap.size,
            digest=str(self.spec.digest) if self.spec.digest else None,
            etag=sh.target.etag,
            last_modified=sh.target.last_modified,
            source=redact(self.spec.url),
            done=tuple(sh.smap.done_ranges()),
        )

    def _journaled(self, size: int) -> bool:
        """Without ranges a partial file cannot be resumed anyway; a small one is refetched."""
        return self.shared.ranged and size >= self.config.journal_from

    def _save_journal(self, journal: Journal) -> None:
        if self._journaled(journal.size):
            self.shared.staging.save_journal(journal)


def committed_elsewhere(spec: FileSpec) -> bool:
    """Whether a content-addressed file is already in one of its places, whole."""
    if not spec.content_addressed or spec.size is None:
        return False
    for place in spec.places:
        try:
            if place.stat().st_size == spec.size:
                return True
        except OSError:
            continue
    return False


def reused_outcome(spec: FileSpec, elapsed: float) -> Outcome:
    """The outcome of a file another process committed while this one waited for it."""
    digest = spec.digest
    return Outcome(
        dest=spec.dest,
        size=spec.size or 0,
        sha256=digest.hex if digest and digest.algorithm == "sha256" else None,
        digest=str(digest),
        verified=True,
        fetched=0,
        resumed=0,
        elapsed=elapsed,
        tail=0.0,
        recycles=0,
        retries=0,
        reused=True,
    )


async def recall(memory: HostMemory | None, fleet: Fleet, url: str) -> None:
    """Start tuned: the byte box, keep-alive and recycling lessons of the data's host."""
    if memory is not None:
        lessons = await anyio.to_thread.run_sync(memory.recall, url)
        if lessons is not None:
            fleet.teach(lessons)


async def remember(memory: HostMemory | None, fleet: Fleet, url: str) -> None:
    if memory is not None:
        await anyio.to_thread.run_sync(memory.learn, url, fleet.lessons())


def expected_size(spec: FileSpec, target: Target) -> int:
    """The size to download: the server's, which must agree with the source's when it has one."""
    if target.size is None and spec.size is not None and not target.ranges:
        return spec.size  # a server without ranges or length: the plan knows the size
    if target.size is None:
        raise RemoteError(
            f"{redact(target.url)} did not say how large the file is",
            why="no Content-Length or Content-Range in its answer",
            hint="pullman needs a size to download safely; try the URL with another tool",
        )
    if spec.size is not None and spec.size != target.size:
        raise IntegrityError(
            f"{spec.name}: the server serves {target.size} bytes, but {spec.size} were expected",
            hint="the source and its CDN disagree; try again later",
        )
    return target.size


def disk_full(name: str, needed: int, kept: int, directory: Path) -> DiskFull:
    """How much is still needed and how much is free, and that nothing is lost."""
    free = free_space(directory)
    return DiskFull(
        f"not enough free space for {name}"
        + (f"; the {human(kept)} already fetched are kept" if kept else ""),
        needed=needed,
        free=free,
        why=f"{human(needed)} more is needed (with a safety margin), {human(free)} is free "
        f"in {directory}",
        hint="free some space and run the same command again, or download somewhere else",
    )
