"""File-system I/O every part of pullman shares: durable writes, atomic replaces, safe opens,
hashing a file, and ``OSError`` translated into :mod:`pullman.errors` (storage errors).

- Files pullman creates in a store are never reached through a symlink planted there
  (:data:`NOFOLLOW`), and temp names are unique per writer.
- :func:`write_atomic` / :func:`symlink_atomic`: a temp beside the target, fsynced, renamed over
  it, then the directory fsynced: a reader sees the old content or the new, never half.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from pullman.core.digests import Hasher
from pullman.core.units import human
from pullman.errors import DiskFull, NotWritable, StorageError

NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
"""Files pullman creates in a store are never reached through a symlink planted there."""
HASH_READ = 8 << 20
_FULL = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}


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
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
            os.fsync(fd)
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


def hash_file(path: Path, hasher: Hasher) -> str:
    """Feed the whole file at ``path`` to ``hasher``; its hex digest (runs in a worker thread)."""
    with disk_errors(path), path.open("rb") as f:
        while block := f.read(HASH_READ):
            hasher.update(block)
    return hasher.hexdigest()
