"""Bytes as they land: a file being downloaded, readable while it downloads.

A :class:`Landing` is one file's view for readers in the same process (``pullman serve
--pull-through``): where its bytes are (the staging file while they arrive, its place in the
store once committed), which ranges are on disk, and a signal each time that grows. The engine
publishes into it (:class:`~pullman.transfer.engine.Transfer` and its workers, after each
positional write); :meth:`Landing.read` yields a range in bounded chunks, each as soon as its
bytes are written. A reader opens one descriptor and keeps it: the renames of a commit (and of a
held blob's move into ``blobs/``) keep the inode, so the same descriptor reads the committed
file, whatever happens to the names underneath.

:class:`Landings` is the registry: one landing per file (keyed by its digest, else its
destination), created when a plan is known and before any byte is fetched, so a reader that
comes early waits instead of missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import anyio

from pullman.core.plan import FileSpec, Plan
from pullman.errors import NetworkError, NotFound, PullmanError
from pullman.fsio import NOFOLLOW
from pullman.transfer.segments import SegmentMap, Span
from pullman.transfer.staging import Staging

log = logging.getLogger("pullman.transfer")

CHUNK = 1 << 20
"""Most bytes one read hands a reader: the memory a reader holds at once."""


def landing_key(spec: FileSpec) -> str:
    """What names a file among landings: its digest (``sha256:<hex>``), else where it lands."""
    return str(spec.digest) if spec.digest is not None else str(spec.final or spec.dest)


class LandingStats(NamedTuple):
    key: str
    state: str
    size: int | None
    written: int
    readers: int
    epoch: int


class Landing:
    """One file's bytes for readers: ``waiting`` (nothing staged yet), ``writing``, ``done``
    (committed, or found complete in the store), or ``failed`` (the run that was to fetch it
    ended; a later run may open it again)."""

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self.key = landing_key(spec)
        self.size = spec.size
        self.state = "waiting"
        self.error: PullmanError | None = None
        self.epoch = 0
        """Grows whenever the staged data is thrown away (a restart, a digest mismatch)."""
        self.readers = 0
        self._waiting: list[int] = []
        """Where each reader that waits for bytes is (the engine fetches there first)."""
        self._part: Path | None = None
        self._inode: int | None = None
        self._smap: SegmentMap | None = None
        self._changed = anyio.Event()

    # -------------------------------------------------------------- what the engine says

    def writing(self, part: Path, fd: int, smap: SegmentMap) -> None:
        """The staging file is open (``fd``) and ``smap`` tracks what of it is written."""
        self._part, self._inode, self._smap = part, os.fstat(fd).st_ino, smap
        self.size = smap.size
        self.state, self.error = "writing", None
        self._signal()

    def wrote(self) -> None:
        """More bytes are on disk (the segment map says which)."""
        self._signal()

    def restarted(self) -> None:
        """The staged data is thrown away and fetched again from its first byte."""
        self.epoch += 1
        self._signal()

    def committed(self) -> None:
        self.state = "done"
        self._signal()

    def stopped(self, error: PullmanError | None) -> None:
        """The run fetching it ended without committing it (``error``: why, if it failed)."""
        if self.state != "done":
            self.state = "failed" if error is not None else "waiting"
            self.error = error
            self._smap = None
        self._signal()

    def reopen(self) -> None:
        """A new run is about to fetch it: readers wait again rather than fail."""
        if self.state == "failed":
            self.state, self.error = "waiting", None

    def _signal(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    # -------------------------------------------------------------- what readers see

    def statistics(self) -> LandingStats:
        written = (self.size or 0) if self.state == "done" else 0
        if self._smap is not None and self.state == "writing":
            written = self._smap.done_bytes
        return LandingStats(self.key, self.state, self.size, written, self.readers, self.epoch)

    def available(self, pos: int) -> int:
        """Where the written bytes that begin at ``pos`` end (``pos``: none yet)."""
        if self.state == "done" and self.size is not None:
            return self.size
        if self.state != "writing" or self._smap is None:
            return pos
        return _covered_until(self._smap.done_ranges(), pos)

    def wanted(self) -> list[int]:
        """The offsets readers wait for, for the engine to claim first."""
        return list(self._waiting)

    async def changed(self) -> None:
        """Until the engine says something new (bytes written, a commit, a failure)."""
        await self._changed.wait()

    def complete_path(self) -> Path | None:
        """Where a complete copy is (the held copy or its place in the store), if anywhere."""
        for place in self.spec.places:
            try:
                st = place.lstat()
            except OSError:
                continue
            if place.is_file() and (self.size is None or st.st_size == self.size):
                return place
        return None

    async def read(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes ``[start, end)`` in chunks of at most :data:`CHUNK`, each once it is written.

        Raises the download's error if it fails before the range is complete, and
        :class:`~pullman.errors.NetworkError` if the data already handed out was thrown away
        (the reader has half a file: it must start again).
        """
        reader = _Reader(self, start, end)
        self.readers += 1
        try:
            async for chunk in reader.chunks():
                yield chunk
        finally:
            self.readers -= 1
            reader.close()


def publish(
    landing: Landing | None, staging: Staging, smap: SegmentMap, *, restarted: bool = False
) -> None:
    """Tell ``landing`` (if any) where a file's bytes are written now, and whether the data
    written before was thrown away."""
    if landing is None:
        return
    if restarted:
        landing.restarted()
    if staging.fd is not None:
        landing.writing(staging.part, staging.fd, smap)


@contextlib.contextmanager
def watching(landing: Landing | None) -> Iterator[None]:
    """Tell ``landing`` (if any) how the run inside ends: committed, or stopped (and why)."""
    try:
        yield
    except PullmanError as exc:
        if landing is not None:
            landing.stopped(exc)
        raise
    except BaseException:
        if landing is not None:
            landing.stopped(None)
        raise
    if landing is not None:
        landing.committed()


class _Reader:
    """One reader's descriptor and position (a small state object per reader)."""

    def __init__(self, landing: Landing, start: int, end: int | None) -> None:
        self.landing = landing
        self.pos = start
        self.end = end
        self.fd: int | None = None
        self.epoch = landing.epoch
        self.sent = False
        self.misses = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        landing = self.landing
        while self.end is None or self.pos < self.end:
            if self.fd is None:
                await anyio.to_thread.run_sync(self._open)
            end = self._end()
            if end is not None and self.pos >= end:
                return
            until = landing.available(self.pos) if self.fd is not None else self.pos
            if end is not None:
                until = min(until, end)
            if until > self.pos and self.fd is not None:
                chunk = await anyio.to_thread.run_sync(self._pread, self.fd, self.pos, until)
                self._check_epoch()
                if not chunk:
                    raise NetworkError(f"{landing.spec.name}: the file ends early on disk")
                self.pos += len(chunk)
                self.sent = True
                yield chunk
                continue
            await self._wait()

    def _end(self) -> int | None:
        size = self.landing.size
        if size is None:
            return self.end
        return size if self.end is None else min(self.end, size)

    async def _wait(self) -> None:
        """Nothing more to read yet: wait for the engine, or fail as it failed."""
        landing = self.landing
        if landing.state == "failed":
            assert landing.error is not None
            raise landing.error
        self._check_epoch()
        if landing.state == "done":  # no signal will come: look for the file again, or fail
            self.misses += 1
            if self.misses > 3:
                raise NotFound(f"{landing.spec.name}: the committed file is gone")
            return
        landing._waiting.append(self.pos)
        try:
            await landing.changed()  # no await since the last look: no signal is missed
        finally:
            landing._waiting.remove(self.pos)

    def _check_epoch(self) -> None:
        landing = self.landing
        if landing.epoch == self.epoch:
            return
        if self.sent:
            raise NetworkError(
                f"{landing.spec.name}: the download started over; the bytes sent are void",
                hint="ask again: the file is being fetched afresh",
            )
        self.epoch = landing.epoch

    def _open(self) -> None:
        """One descriptor for the whole read: the committed file, else the staging file."""
        landing = self.landing
        done = landing.complete_path()
        if done is not None:
            self.fd = _open_readonly(done)
            if self.fd is not None:
                landing.state = "done"
                landing.size = os.fstat(self.fd).st_size
            return
        part, inode = landing._part, landing._inode
        if landing.state != "writing" or part is None:
            return
        fd = _open_readonly(part)
        if fd is None:
            return  # renamed meanwhile (committed): the next look finds the committed file
        if os.fstat(fd).st_ino != inode:
            os.close(fd)  # not the file the engine writes (replaced): look again later
            return
        self.fd = fd

    @staticmethod
    def _pread(fd: int, pos: int, until: int) -> bytes:
        return os.pread(fd, min(CHUNK, until - pos), pos)

    def close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


def _open_readonly(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | NOFOLLOW)
    except OSError:
        return None


def _covered_until(done: list[Span], pos: int) -> int:
    for start, end in done:
        if start <= pos < end:
            return end
        if start > pos:
            break
    return pos


class Landings:
    """Every file a process is fetching or has lately fetched, for readers in that process.

    ``on_plan`` (optional) hears of each plan as soon as it is known, before its files are
    fetched (the pull-through answers a manifest request then).
    """

    def __init__(self, on_plan: Callable[[str, Plan], None] | None = None) -> None:
        self._by_key: dict[str, Landing] = {}
        self._on_plan = on_plan

    def __len__(self) -> int:
        return len(self._by_key)

    def get(self, key: str) -> Landing | None:
        return self._by_key.get(key)

    def statistics(self) -> list[LandingStats]:
        return [landing.statistics() for landing in self._by_key.values()]

    def planned(self, text: str, plan: Plan) -> None:
        """A plan is known: a landing for each of its files, before any byte is fetched."""
        for spec in plan.files:
            self.landing_for(spec).reopen()
        if self._on_plan is not None:
            self._on_plan(text, plan)

    def landing_for(self, spec: FileSpec) -> Landing:
        """The landing of ``spec``: the one there is, or a new one."""
        key = landing_key(spec)
        landing = self._by_key.get(key)
        if landing is None:
            landing = self._by_key[key] = Landing(spec)
        return landing

    def settled(self, plan: Plan, failure: PullmanError | None) -> None:
        """A plan's run ended (``failure``: why it failed). A file it never fetched is done if
        it is complete in the store (present, linked), else failed; after a success the done
        ones go (the store answers for them now), after a failure they stay (held blobs)."""
        for spec in plan.files:
            key = landing_key(spec)
            landing = self._by_key.get(key)
            if landing is None or landing.state == "writing":  # another plan is fetching it
                continue
            if landing.state == "waiting":
                if landing.complete_path() is not None:
                    landing.committed()
                else:
                    landing.stopped(failure or _not_fetched(spec))
            if failure is None and landing.state == "done" and landing.readers == 0:
                del self._by_key[key]


def _not_fetched(spec: FileSpec) -> PullmanError:
    return NetworkError(f"{spec.name}: the download ended without it")
