"""File-system I/O every part of pullman shares: durable writes, atomic replaces, safe opens,
hashing a file, and ``OSError`` translated into :mod:`pullman.errors` (storage errors).

- Every durability call goes through :data:`FS` (a :class:`FileSystem` for this platform): on
  macOS ``fsync`` leaves data in the drive's cache, so ``sync`` there is
  ``fcntl(F_FULLFSYNC)`` (Apple's documented way to reach the platter or flash), falling back to
  ``fsync`` where the file system refuses it; SQLite gets ``PRAGMA fullfsync`` and
  ``checkpoint_fullfsync``. Positional vector I/O falls back to one call per buffer where the
  platform has no ``pwritev``/``preadv``. The platform is injectable, so both branches are
  tested on Linux.
- Files pullman creates in a store are never reached through a symlink planted there
  (:data:`NOFOLLOW`), and temp names are unique per writer.
- :func:`write_atomic` / :func:`symlink_atomic`: a temp beside the target, synced, renamed over
  it, then the directory synced: a reader sees the old content or the new, never half.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pullman.core.digests import Hasher
from pullman.core.units import human
from pullman.errors import DiskFull, NotWritable, StorageError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""Files pullman creates in a store are never reached through a symlink planted there."""
HASH_READ = 8 << 20
_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


F_FULLFSYNC = getattr(fcntl, "F_FULLFSYNC", 51)
"""macOS's fcntl command that flushes the drive's own cache (51 in <sys/fcntl.h>)."""


FICLONE = 0x40049409
"""Linux's ioctl that makes a file share another's extents (``_IOW(0x94, 9, int)``)."""


def _clonefile(source: Path, dest: Path) -> None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    clonefile = getattr(libc, "clonefile", None)
    if clonefile is None:  # not macOS 10.12+
        raise OSError(errno.ENOTSUP, "clonefile is not available", str(dest))
    if clonefile(os.fsencode(source), os.fsencode(dest), 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(dest))


def _no_vector_io() -> bool:
    return not (hasattr(os, "pwritev") and hasattr(os, "preadv"))


@dataclass(frozen=True)
class FileSystem:
    """Durability and positional I/O as this platform needs them (see the module docstring)."""

    system: str = sys.platform
    fcntl: Callable[[int, int], object] = field(default=fcntl.fcntl, repr=False)
    fsync: Callable[[int], None] = field(default=os.fsync, repr=False)
    scalar_io: bool = field(default_factory=_no_vector_io)
    """Whether to write and read one buffer per call (no ``pwritev``/``preadv`` here)."""
    clonefile: Callable[[Path, Path], None] = field(default=_clonefile, repr=False)
    """macOS's ``clonefile(2)`` (APFS copy-on-write copies)."""

    @property
    def darwin(self) -> bool:
        return self.system == "darwin"

    def sync(self, fd: int) -> None:
        """Make the file's data durable: on the medium, not in a cache."""
        if self.darwin:
            try:
                self.fcntl(fd, F_FULLFSYNC)
            except OSError:  # not supported by this file system (SMB, some externals)
                self.fsync(fd)
            return
        self.fsync(fd)

    def sync_dir(self, directory: Path) -> None:
        """Make a directory's entries (a rename, a new file) durable."""
        fd = os.open(directory, os.O_RDONLY)
        try:
            self.sync(fd)
        finally:
            os.close(fd)

    def pwritev(self, fd: int, buffers: Sequence[memoryview], offset: int) -> int:
        if not self.scalar_io:
            return os.pwritev(fd, buffers, offset)
        written = 0
        for buffer in buffers:
            n = os.pwrite(fd, buffer, offset + written)
            written += n
            if n < len(buffer):
                break
        return written

    def preadv(self, fd: int, buffer: memoryview, offset: int) -> int:
        if not self.scalar_io:
            return os.preadv(fd, [buffer], offset)
        data = os.pread(fd, len(buffer), offset)
        buffer[: len(data)] = data
        return len(data)

    def clone(self, source: Path, dest: Path) -> None:
        """A copy-on-write copy of ``source`` at the new path ``dest`` (no data copied):
        ``clonefile`` on macOS (APFS), the ``FICLONE`` ioctl on Linux (btrfs, XFS, ...).
        ``OSError`` where the file system cannot, or the two are on different ones."""
        if self.darwin:
            self.clonefile(source, dest)
            return
        with source.open("rb") as src:
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
            try:
                fcntl.ioctl(fd, FICLONE, src.fileno())
                self.sync(fd)
            except OSError:
                os.close(fd)
                dest.unlink(missing_ok=True)
                raise
            os.close(fd)

    def sqlite_pragmas(self) -> list[str]:
        """What SQLite needs to be as durable as the rest (its own fsyncs stop at the cache)."""
        return ["PRAGMA fullfsync = ON", "PRAGMA checkpoint_fullfsync = ON"] if self.darwin else []


FS = FileSystem()
"""This process's file system calls."""


def free_space(path: Path) -> int:
    """Free bytes on the file system that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def storage_error(exc: OSError, path: Path, *, needed: int = 0) -> StorageError:
    """Translate an OSError from the disk into our tree, with what to do about it."""
    if exc.errno in _FULL:
        free = free_space(path)
        return DiskFull(
            f"disk full writing {path}",
            needed=needed,
            free=free,
            why=f"{human(needed)} more is needed, {human(free)} is free",
            hint="free some space (progress is kept) and run the same command again",
        )
    if exc.errno in _DENIED:
        return NotWritable(
            f"cannot write to {path}",
            why=exc.strerror or "permission denied",
            hint="choose a destination you can write to, or fix its owner and permissions",
        )
    return StorageError(f"disk error on {path}", why=exc.strerror or str(exc))


@contextlib.contextmanager
def disk_errors(path: Path, needed: int = 0) -> Iterator[None]:
    """``OSError`` raised inside becomes a :class:`~pullman.errors.StorageError` about ``path``."""
    try:
        yield
    except OSError as exc:
        raise storage_error(exc, path, needed=needed) from exc


def fsync_dir(directory: Path) -> None:
    FS.sync_dir(directory)


def temp_name(path: Path) -> Path:
    """A temp name beside ``path`` that no other writer (or planted link) can share."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.pullman-tmp")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, rename over ``path``, fsync dir."""
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
        try:
            os.write(fd, data)
            FS.sync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
        fsync_dir(path.parent)


def symlink_atomic(path: Path, target: str) -> None:
    """Create or replace a symlink in one step (a temp link renamed over the old one)."""
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(path)
        tmp.symlink_to(target)
        tmp.replace(path)
        fsync_dir(path.parent)


def inode(path: Path) -> tuple[int, int] | None:
    """``(device, inode)``: one file under every name it has (stores share files)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def hash_file(path: Path, hasher: Hasher) -> str:
    """Feed the whole file at ``path`` to ``hasher``; its hex digest (runs in a worker thread)."""
    with disk_errors(path), path.open("rb") as f:
        while block := f.read(HASH_READ):
            hasher.update(block)
    return hasher.hexdigest()


def inside(root: Path, path: Path, *, resolved_root: Path | None = None) -> bool:
    """Whether ``path`` stays under ``root`` once ``..`` and symlinks already there resolve
    (``resolved_root``: ``root.resolve()``, when the caller checks many paths at once)."""
    base = resolved_root if resolved_root is not None else root.resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return False
    return True


def _ours_to_give(root: Path, path: Path, st: os.stat_result) -> bool:
    """Whether root may chown ``path``: its directory still resolves inside ``root`` (a
    directory swapped for a symlink meanwhile is not followed out of the store) and it is not
    a second name of a file that lives elsewhere (a planted hard link)."""
    if not inside(root, path.parent):
        return False
    return not (stat.S_ISREG(st.st_mode) and st.st_nlink > 1)


def adopt(paths: Iterable[Path], root: Path, *, euid: int | None = None) -> int:
    """When run as root, give ``paths`` (files and directories pullman made under ``root``) to
    ``root``'s owner, so ``sudo pullman get`` leaves nothing the store's user cannot change.
    Returns how many were changed; does nothing for other users or a root-owned store."""
    if (os.geteuid() if euid is None else euid) != 0:
        return 0
    try:
        owner = root.stat()
    except OSError:
        return 0
    if owner.st_uid == 0:
        return 0
    changed = 0
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            st = path.lstat()
            if not _ours_to_give(root, path, st):
                continue
            if (st.st_uid, st.st_gid) != (owner.st_uid, owner.st_gid):
                with disk_errors(path):
                    os.lchown(path, owner.st_uid, owner.st_gid)
                changed += 1
    return changed
