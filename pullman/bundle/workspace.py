"""An import's own staging files: where bundle bytes wait, verified, until the commit.

Each store's staging area (same file system as the store: the commit is a rename) gets one
directory per running import, ``<staging>/import-<pid>-<random>/``, holding a ``lock`` file
this process keeps locked, and the blobs as they stream in. Nothing else writes there: a
concurrent ``get`` of the same blob stages under its own names, and ``gc`` removes only the
staging area's own partial files. What an import made and did not commit goes when it ends;
one killed outright leaves its directory unlocked, and the next import removes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from pathlib import Path

from pullman.fsio import NOFOLLOW, disk_errors, inside

PREFIX = "import-"


class Workspace:
    """Temp files in the staging areas of one import, and the directories it had to make."""

    def __init__(self) -> None:
        self._dirs: dict[Path, tuple[Path, int]] = {}
        self._made: list[Path] = []
        self._count = 0

    def claim(self, root: Path, directory: Path) -> None:
        """Note which of ``directory`` and its parents up to ``root`` do not exist yet: a
        failed import removes them again (if they are still empty)."""
        for path in [directory, *directory.parents]:
            if path.exists() or not inside(root, path):
                break
            if path not in self._made:
                self._made.append(path)

    def temp(self, staging: Path) -> Path:
        """A fresh file name in this import's directory inside ``staging``."""
        own = self._dir(staging)
        self._count += 1
        return own / f"{self._count}.part"

    def _dir(self, staging: Path) -> Path:
        """This import's directory in ``staging``: locked before it gets its name, so a sweep
        by another import never takes it for a dead one's."""
        if staging in self._dirs:
            return self._dirs[staging][0]
        token = f"{os.getpid()}-{secrets.token_hex(6)}"
        with disk_errors(staging):
            staging.mkdir(parents=True, exist_ok=True)
            sweep(staging)
            unnamed = staging / f".{PREFIX}{token}"
            unnamed.mkdir(mode=0o700)
            fd = os.open(unnamed / "lock", os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o600)
            own = staging / f"{PREFIX}{token}"
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                unnamed.rename(own)
            except OSError:
                os.close(fd)
                shutil.rmtree(unnamed, ignore_errors=True)
                raise
        self._dirs[staging] = (own, fd)
        return own

    def close(self, *, failed: bool) -> None:
        """Remove this import's directories (and, after a failure, what it had to make)."""
        for own, fd in self._dirs.values():
            shutil.rmtree(own, ignore_errors=True)
            os.close(fd)
        self._dirs.clear()
        if failed:
            for path in sorted(self._made, key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):  # not empty: someone else uses it now
                    path.rmdir()


def sweep(staging: Path) -> None:
    """Remove what imports that were killed left in ``staging`` (their lock is free)."""
    for stale in staging.glob(f"{PREFIX}*"):
        if not stale.is_dir() or stale.is_symlink():
            continue
        try:
            fd = os.open(stale / "lock", os.O_RDWR | NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live import
        finally:
            os.close(fd)
        shutil.rmtree(stale, ignore_errors=True)
