"""The file-system module's platform branches, both exercised here on Linux.

On macOS ``fsync`` leaves data in the drive's cache; pullman's durability calls use
``fcntl(F_FULLFSYNC)`` there (and SQLite's fullfsync pragmas). The platform is injected, the
calls recorded; the data path (positional writes and reads) runs for real in both modes.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest

from pullman.fsio import F_FULLFSYNC, FileSystem, adopt


class Calls:
    def __init__(self, fail_fcntl: bool = False) -> None:
        self.fcntl: list[tuple[int, int]] = []
        self.fsync: list[int] = []
        self.fail_fcntl = fail_fcntl

    def on_fcntl(self, fd: int, cmd: int) -> object:
        self.fcntl.append((fd, cmd))
        if self.fail_fcntl:
            raise OSError(errno.ENOTSUP, "not supported")
        return 0

    def on_fsync(self, fd: int) -> None:
        self.fsync.append(fd)


def test_darwin_syncs_with_f_fullfsync(tmp_path: Path) -> None:
    calls = Calls()
    fs = FileSystem("darwin", fcntl=calls.on_fcntl, fsync=calls.on_fsync)
    with (tmp_path / "f").open("wb") as f:
        fs.sync(f.fileno())
        assert calls.fcntl == [(f.fileno(), F_FULLFSYNC)] and calls.fsync == []


def test_darwin_falls_back_to_fsync_where_the_file_system_refuses(tmp_path: Path) -> None:
    calls = Calls(fail_fcntl=True)
    fs = FileSystem("darwin", fcntl=calls.on_fcntl, fsync=calls.on_fsync)
    fs.sync_dir(tmp_path)
    assert len(calls.fcntl) == 1 and len(calls.fsync) == 1


def test_linux_syncs_with_fsync(tmp_path: Path) -> None:
    calls = Calls()
    fs = FileSystem("linux", fcntl=calls.on_fcntl, fsync=calls.on_fsync)
    fs.sync_dir(tmp_path)
    assert calls.fcntl == [] and len(calls.fsync) == 1


@pytest.mark.parametrize("scalar", [False, True])
def test_positional_io_with_and_without_vector_calls(tmp_path: Path, scalar: bool) -> None:
    fs = FileSystem("darwin" if scalar else "linux", scalar_io=scalar)
    path = tmp_path / "data"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 16)
        parts = [memoryview(b"abcd"), memoryview(b"efgh")]
        assert fs.pwritev(fd, parts, 4) == 8
        buffer = bytearray(6)
        assert fs.preadv(fd, memoryview(buffer), 5) == 6
    finally:
        os.close(fd)
    assert path.read_bytes() == b"\0" * 4 + b"abcdefgh" + b"\0" * 4
    assert bytes(buffer) == b"bcdefg"


def test_sqlite_gets_fullfsync_on_darwin_only(tmp_path: Path) -> None:
    darwin, linux = FileSystem("darwin"), FileSystem("linux")
    assert linux.sqlite_pragmas() == []
    conn = sqlite3.connect(tmp_path / "x.db")
    try:
        for pragma in darwin.sqlite_pragmas():
            conn.execute(pragma)  # valid SQL SQLite accepts (a no-op off macOS)
        assert {p.split()[1] for p in darwin.sqlite_pragmas()} == {
            "fullfsync",
            "checkpoint_fullfsync",
        }
    finally:
        conn.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: chown is what is checked")
def test_adopt_never_follows_a_swapped_directory_or_a_hard_link_out_of_the_store(
    tmp_path: Path,
) -> None:
    """``sudo pullman get`` into another user's store: that user swaps a directory for a
    symlink (or plants a hard link) during the download; root chowns nothing outside."""
    store, outside = tmp_path / "models", tmp_path / "etc"
    (store / "blobs").mkdir(parents=True)
    outside.mkdir()
    os.chown(store, 65534, 65534)
    victim, mine = outside / "victim", store / "blobs" / "mine"
    victim.write_text("root's")
    mine.write_text("ours")
    planted = store / "planted"
    os.link(victim, planted)
    os.rename(store / "blobs", store / "old")  # the swap, after the plan was checked
    (store / "blobs").symlink_to(outside)
    (store / "old" / "mine").rename(store / "ours")
    paths = [store / "blobs" / "victim", planted, store / "ours"]
    assert adopt(paths, store) == 1  # only the file that is really the store's
    assert victim.stat().st_uid == 0
    assert (store / "ours").stat().st_uid == 65534


def test_darwin_clones_with_clonefile_and_linux_with_ficlone(tmp_path: Path) -> None:
    """Copy-on-write copies for sharing across file systems: ``clonefile`` on macOS (APFS); on
    Linux the ``FICLONE`` ioctl, which ext4 and tmpfs refuse (then pullman copies)."""
    source = tmp_path / "a"
    source.write_bytes(b"model bytes")
    cloned: list[tuple[Path, Path]] = []
    darwin = FileSystem("darwin", clonefile=lambda s, d: cloned.append((s, d)))
    darwin.clone(source, tmp_path / "b")
    assert cloned == [(source, tmp_path / "b")]
    linux = FileSystem("linux")
    try:
        linux.clone(source, tmp_path / "c")
    except OSError as exc:  # this file system shares no extents: nothing is left behind
        assert exc.errno in (errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV)
        assert not (tmp_path / "c").exists()
    else:  # btrfs, XFS: a real clone
        assert (tmp_path / "c").read_bytes() == b"model bytes"
