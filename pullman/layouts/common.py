"""What every store layout needs: paths that stay inside the store, the final small writes in
order, and a writability check before any byte."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from pathlib import Path

from pullman.core.plan import Move, Plan, Stamped, Symlink, WriteFile
from pullman.errors import NotWritable, RemoteError, StorageError
from pullman.fsio import disk_errors, fsync_dir, inside, symlink_atomic, write_atomic

STAGING = ".pullman-partial"
"""pullman's staging directory inside a store (readers of every store ignore it)."""


def check_plan(plan: Plan) -> None:
    """Refuse, before anything is written, a plan that would write outside its store."""
    held = {x.source for x in plan.finals if isinstance(x, Move)}  # held in staging on purpose
    placed = [f.dest for f in plan.files if f.dest not in held]
    root, staging = plan.root.resolve(), plan.staging.resolve()  # once, not once a file
    for path in [*placed, *(x.path for x in plan.finals), *plan.early]:
        if not inside(plan.root, path, resolved_root=root):
            raise RemoteError(
                f"refusing to write {path}: it is outside {plan.root}",
                why="a name or digest from the server would escape the store",
                hint="the server is broken or hostile; nothing was written",
            )
    if not inside(plan.staging_root, plan.staging) or not all(
        inside(plan.staging, path, resolved_root=staging) for path in held
    ):
        raise StorageError(
            f"refusing to stage in {plan.staging}: it is outside {plan.staging_root}",
            why="the staging area (or a directory above it) is a link out of the store",
            hint="remove the link; pullman makes the directory itself",
        )
    for path in [*placed, *(x.path for x in plan.finals)]:
        if inside(plan.staging, path, resolved_root=staging):
            raise RemoteError(
                f"refusing to write {path}: it is inside pullman's staging area",
                why="a file name from the server collides with pullman's own partial files",
                hint="the server is broken or hostile; nothing was written",
            )


def apply_finals(plan: Plan) -> None:
    """Write the plan's small files and links, in order, after every blob verified."""
    for final in plan.finals:
        if isinstance(final, WriteFile):
            write_atomic(final.path, final.data)
        elif isinstance(final, Symlink):
            symlink_atomic(final.path, final.target)
        elif isinstance(final, Move):
            move_into_place(final.source, final.path, final.size)
        elif isinstance(final, Stamped):
            write_atomic(final.path, final.head + f"{time.time()}\n".encode())
        else:
            refresh(final.path, final.size)


def make_early(plan: Plan) -> None:
    """The directories a plan makes before it fetches anything."""
    for directory in plan.early:
        with disk_errors(directory):
            directory.mkdir(parents=True, exist_ok=True)


def _there(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False


def move_into_place(source: Path, path: Path, size: int) -> None:
    """Rename a held, verified file into place (done if another pullman already did)."""
    with disk_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            source.replace(path)
        except FileNotFoundError:
            if not _there(path, size):
                raise vanished(source) from None
            return
        fsync_dir(path.parent)


def refresh(path: Path, size: int) -> None:
    """A file the finals rely on must still be there; its mtime becomes now."""
    with disk_errors(path):
        if not _there(path, size):
            raise vanished(path)
        os.utime(path)


def vanished(path: Path) -> StorageError:
    return StorageError(
        f"{path} vanished before the model could be finished",
        why="something removed it while pullman worked (a server's start-up prune, a gc)",
        hint="run the same command again: it is fetched again, and the rest is kept",
    )


def undo_early(plan: Plan) -> None:
    """After a failure: the plan's early directories, its staging area and their parents, as
    far as they are empty (a repo that got nothing leaves nothing; one with progress stays)."""
    for start in (*plan.early, plan.staging):
        directory = start
        while directory != plan.root and inside(plan.root, directory):
            try:
                directory.rmdir()
            except OSError:  # not empty (progress, other revisions), or already gone
                if directory.exists():
                    break
            directory = directory.parent


def made_paths(plan: Plan) -> list[Path]:
    """What a plan creates under its root: files, their directories up to the root, the
    staging area and the staging files of the plan's keys (for :func:`pullman.fsio.adopt`)."""
    paths: dict[Path, None] = {}
    top = plan.staging_root
    for path in [*(f.dest for f in plan.files), *(x.path for x in plan.finals), plan.staging]:
        paths.setdefault(path)
        for parent in path.parents:
            if parent == top or not inside(top, parent):
                break
            paths.setdefault(parent)
    keys = {f.key for f in plan.files}
    if plan.staging.is_dir():
        for entry in plan.staging.iterdir():
            if entry.name.partition(".")[0] in keys:
                paths.setdefault(entry)
    return list(paths)


def url_key(url: str, dest: Path) -> str:
    """A staging key for a file without a digest: the same URL to the same path resumes."""
    return "url-" + hashlib.sha256(f"{url}\n{dest}".encode()).hexdigest()[:32]


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


def older_than(path: Path, min_age: float, now: float) -> bool:
    """Whether ``path`` was last modified at least ``min_age`` seconds before ``now``."""
    try:
        return now - path.stat().st_mtime >= min_age
    except OSError:
        return False


def unshared_size(path: Path) -> int:
    """What deleting this name frees: nothing while another name (another app's) holds it."""
    try:
        st = path.lstat()
    except OSError:
        return 0
    return st.st_size if st.st_nlink <= 1 else 0
