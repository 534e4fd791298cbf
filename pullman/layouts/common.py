"""What every store layout needs: paths that stay inside the store, and atomic small writes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pullman.errors import NotWritable, RemoteError
from pullman.plan import Plan, Symlink, WriteFile
from pullman.transfer.staging import NOFOLLOW, disk_errors, fsync_dir


def inside(root: Path, path: Path) -> bool:
    """Whether ``path`` stays under ``root`` once ``..`` and symlinks already there resolve."""
    base = root.resolve()
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return False
    return True


def check_plan(plan: Plan) -> None:
    """Refuse, before anything is written, a plan that would write outside its store."""
    for path in [*(f.dest for f in plan.files), *(x.path for x in plan.finals), plan.staging]:
        if not inside(plan.root, path):
            raise RemoteError(
                f"refusing to write {path}: it is outside {plan.root}",
                why="a name or digest from the server would escape the store",
                hint="the server is broken or hostile; nothing was written",
            )
    for path in [*(f.dest for f in plan.files), *(x.path for x in plan.finals)]:
        if inside(plan.staging, path):
            raise RemoteError(
                f"refusing to write {path}: it is inside pullman's staging area",
                why="a file name from the server collides with pullman's own partial files",
                hint="the server is broken or hostile; nothing was written",
            )


def _temp_name(path: Path) -> Path:
    """A temp name beside ``path`` that no other writer (or planted link) can share."""
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.pullman-tmp")


def write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync, rename over ``path``, fsync dir."""
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_name(path)
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
        tmp = _temp_name(path)
        tmp.symlink_to(target)
        tmp.replace(path)
        fsync_dir(path.parent)


def apply_finals(plan: Plan) -> None:
    """Write the plan's small files and links, in order, after every blob verified."""
    for final in plan.finals:
        if isinstance(final, WriteFile):
            write_atomic(final.path, final.data)
        elif isinstance(final, Symlink):
            symlink_atomic(final.path, final.target)


def check_writable(root: Path, hint: str) -> None:
    """A clear error, before any download, when ``root`` cannot be created or written."""
    try:
        with disk_errors(root):
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".pullman-write-test-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"")
            probe.unlink()
    except NotWritable as exc:
        raise NotWritable(f"cannot write to {root}", why=exc.why, hint=hint) from None
