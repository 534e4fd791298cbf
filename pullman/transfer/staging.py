"""The staging area of one file: partial data and its journal, side by side, then the commit.

Both live in a directory the layout chooses on the destination's filesystem, so the final step
is a rename. Order of durability: the data is fsynced before the journal slot that claims it is
written (and that slot fsynced), so the journal never claims bytes that are not on disk. The
journal file holds two fixed-size slots written alternately in place (see :meth:`Staging.
save_journal`): it is replaced by a rename only when it is created or must grow. ``OSError``
becomes :mod:`pullman.errors` through :func:`pullman.fsio.disk_errors`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import struct
import threading
import zlib
from collections.abc import Sequence
from pathlib import Path

from pullman.errors import StorageError
from pullman.fsio import FS, NOFOLLOW, disk_errors, fsync_dir
from pullman.transfer.journal import Journal

_MAGIC = b"PULLJRN1"
_HEADER = struct.Struct(">8sQII")  # magic, sequence, payload length, crc32
_SLOT = 64 << 10
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,200}")


class Staging:
    """``<dir>/<key>.part`` (data) and ``<dir>/<key>.journal`` (what of it is safe)."""

    def __init__(self, directory: Path, key: str) -> None:
        if not _KEY.fullmatch(key):
            raise ValueError(f"unsafe staging key {key!r}")
        self.directory = directory
        self.part = directory / f"{key}.part"
        self.journal_path = directory / f"{key}.journal"
        self.lock_path = directory / f"{key}.lock"
        self.fd: int | None = None
        self._lock_fd: int | None = None
        self._journal_fd: int | None = None
        self._slot_size = _SLOT
        self._seq = 0
        self._write_lock = threading.Lock()
        """One write at a time: concurrent writes to one file only fight over its inode lock
        (the kernel spins on it, burning CPU, and the page-cache copy is no faster)."""

    # -------------------------------------------------------------- journal
    #
    # The journal file holds two fixed-size slots written alternately in place, each with a
    # sequence number and a CRC: a torn write spoils one slot, never both, and a save needs no
    # new disk blocks, so progress can still be recorded when the disk has just filled up.

    def load_journal(self) -> Journal | None:
        """The newest intact journal slot, if its data file is there; else None."""
        try:
            raw = self.journal_path.read_bytes()
        except OSError:
            return None
        best: tuple[int, Journal] | None = None
        half = len(raw) // 2
        for slot in (raw[:half], raw[half:]):
            parsed = _parse_slot(slot)
            if parsed is not None and (best is None or parsed[0] > best[0]):
                best = parsed
        if best is None:
            return None
        self._seq = best[0]
        journal = best[1]
        try:
            if self.part.stat().st_size < journal.size:
                return None
        except OSError:
            return None
        return journal

    def save_journal(self, journal: Journal) -> None:
        """Fsync the data, then write the journal into the older slot and fsync it."""
        assert self.fd is not None
        payload = journal.to_bytes()
        with disk_errors(self.journal_path):
            FS.sync(self.fd)
            if self._journal_fd is None or len(payload) + _HEADER.size > self._slot_size:
                self._create_journal_file(len(payload))
            assert self._journal_fd is not None
            self._seq += 1
            header = _HEADER.pack(_MAGIC, self._seq, len(payload), zlib.crc32(payload))
            offset = (self._seq % 2) * self._slot_size
            os.pwrite(self._journal_fd, header + payload, offset)
            FS.sync(self._journal_fd)

    def _create_journal_file(self, payload_size: int) -> None:
        """A fresh two-slot journal file, replaced atomically (only when it must grow)."""
        slot = _SLOT
        while payload_size + _HEADER.size > slot:
            slot *= 2
        self._close_journal()
        tmp = self.journal_path.with_suffix(".journal.tmp")
        tmp.unlink(missing_ok=True)  # whatever is there (even a planted symlink) goes
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
        try:
            os.pwrite(fd, bytes(2 * slot), 0)  # real blocks, not a hole: saves never allocate
            FS.sync(fd)
            tmp.replace(self.journal_path)
            fsync_dir(self.directory)
        except BaseException:
            os.close(fd)
            raise
        self._journal_fd = fd
        self._slot_size = slot

    def _open_journal_file(self) -> bool:
        """Reopen an existing two-slot journal file for saving; False if there is none."""
        self._close_journal()
        try:
            fd = os.open(self.journal_path, os.O_RDWR | NOFOLLOW)
        except OSError:  # missing, or a symlink where a journal should be
            return False
        size = os.fstat(fd).st_size
        if size < 2 * _SLOT or size % 2:
            os.close(fd)
            return False
        self._journal_fd = fd
        self._slot_size = size // 2
        return True

    def _close_journal(self) -> None:
        if self._journal_fd is not None:
            fd, self._journal_fd = self._journal_fd, None
            os.close(fd)

    # -------------------------------------------------------------- lock

    def try_lock(self) -> bool:
        """Take the staging area for this process (another pullman may be fetching the file)."""
        if self._lock_fd is not None:
            return True
        with disk_errors(self.directory):
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The holder removes the lock file when it commits: a lock taken on a file that is
            # no longer at lock_path protects nothing, so start again on the current one.
            current = self.lock_path.stat()
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return False
        if os.fstat(fd).st_ino != current.st_ino:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self, *, remove: bool = False) -> None:
        """Release the staging area; ``remove`` the lock file too once the file is committed."""
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            if remove:
                self.lock_path.unlink(missing_ok=True)
            os.close(fd)  # closing releases the flock

    # -------------------------------------------------------------- data

    def open(self, size: int, *, fresh: bool, journaled: bool = True) -> None:
        """Open the data file (emptied if ``fresh``) at ``size``; reserve the journal's blocks
        unless the file keeps none (``journaled=False``: then an old journal goes, so it never
        claims bytes of a file that is no longer kept in step with it)."""
        with disk_errors(self.part, needed=size):
            self.directory.mkdir(parents=True, exist_ok=True)
            if self.part.is_symlink():
                self.part.unlink()  # never write through a link planted in the store
            flags = os.O_RDWR | os.O_CREAT | NOFOLLOW | (os.O_TRUNC if fresh else 0)
            if self.fd is not None:  # opened again to start over: the old fd is done with
                os.close(self.fd)
                self.fd = None
            self.fd = os.open(self.part, flags, 0o644)
            if os.fstat(self.fd).st_size != size:
                os.ftruncate(self.fd, size)
            if fresh:
                self._close_journal()
                self.journal_path.unlink(missing_ok=True)
                self._seq = 0
            if not journaled:
                self._close_journal()
                self.journal_path.unlink(missing_ok=True)
                return
            # Reserve the journal's blocks now, while there is room.
            if fresh or not self._open_journal_file():
                self._create_journal_file(0)

    def write(self, offset: int, buffers: Sequence[bytes | memoryview]) -> int:
        """Positional write of ``buffers`` at ``offset``; runs in a worker thread."""
        assert self.fd is not None
        total = sum(len(b) for b in buffers)
        written = 0
        with disk_errors(self.part, needed=total), self._write_lock:
            views = [memoryview(b) for b in buffers]
            while views:
                n = FS.pwritev(self.fd, views[:512], offset + written)
                if n <= 0:
                    raise OSError(errno.EIO, "write made no progress")
                written += n
                views = _skip(views, n)
        return written

    def read_into(self, offset: int, buffer: memoryview) -> int:
        """Read into a caller's buffer (reused, so hashing allocates nothing per block)."""
        assert self.fd is not None
        with disk_errors(self.part):
            return FS.preadv(self.fd, buffer, offset)

    def close(self) -> None:
        self._close_journal()
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)

    def discard(self) -> None:
        """Throw the partial data and its journal away."""
        self.close()
        self.part.unlink(missing_ok=True)
        self.journal_path.unlink(missing_ok=True)

    def commit(self, dest: Path) -> None:
        """Make the verified data appear at ``dest`` in one atomic step."""
        assert self.fd is not None
        with disk_errors(dest):
            FS.sync(self.fd)
            if os.fstat(self.fd).st_ino != self.part.lstat().st_ino:
                raise StorageError(
                    f"the partial file {self.part} was replaced while pullman wrote it",
                    hint="something else writes into pullman's staging area; nothing was committed",
                )
            self.close()
            dest.parent.mkdir(parents=True, exist_ok=True)
            self.part.replace(dest)
            fsync_dir(dest.parent)
            self.journal_path.unlink(missing_ok=True)


def _skip(views: list[memoryview], n: int) -> list[memoryview]:
    """Drop the first ``n`` bytes from a list of buffers (after a short write)."""
    out: list[memoryview] = []
    for view in views:
        if n >= len(view):
            n -= len(view)
            continue
        out.append(view[n:])
        n = 0
    return out


def _parse_slot(slot: bytes) -> tuple[int, Journal] | None:
    if len(slot) < _HEADER.size:
        return None
    magic, seq, length, crc = _HEADER.unpack_from(slot)
    payload = slot[_HEADER.size : _HEADER.size + length]
    if magic != _MAGIC or len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        return seq, Journal.from_bytes(payload)
    except ValueError:
        return None
