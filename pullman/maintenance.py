"""Keeping the stores honest: ``verify`` (re-hash), ``gc`` (leftovers), ``doctor`` (rebuild index).

Every store is content-addressed, so a blob is checked against its own name (each layout says
which blobs its models use, :meth:`~pullman.layouts.Layout.blobs`): no network and no index is
needed to tell a bad blob. What is store-specific lives in the layouts; this module runs the
checks over every store.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pullman.core.digests import parse_prefixed
from pullman.core.inventory import BlobCheck, Garbage
from pullman.core.jobs import GetOptions, Job
from pullman.core.plan import Store
from pullman.errors import PullmanError
from pullman.fsio import disk_errors, hash_file
from pullman.index import FileRecord, Index, ItemState
from pullman.layouts import Layout, common, plain, stores
from pullman.layouts.common import older_than, unshared_size
from pullman.sources import parse, source_for
from pullman.sources.routes import route

# ------------------------------------------------------------------------------- verify


def check_blob(check: BlobCheck) -> BlobCheck:
    """Re-hash one blob (runs in a worker thread: it reads the whole file)."""
    try:
        size = check.path.stat().st_size
    except FileNotFoundError:
        return check.checked("missing")
    if check.size is not None and size != check.size:
        return check.checked("wrong size")
    actual = hash_file(check.path, check.digest.hasher(size))
    return check.checked("ok" if actual == check.digest.hex else "corrupt")


def inodes(paths: Iterable[Path]) -> list[tuple[int, int, int]]:
    """``(device, inode, size)`` of each file that is there."""
    found = []
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            continue
        found.append((st.st_dev, st.st_ino, st.st_size))
    return found


def recorded_checks(index: Index, layout: Layout, root: Path, ref: str | None) -> list[BlobCheck]:
    """What pullman recorded as verified in a store that keeps no digests itself (LM Studio):
    each such file, to re-hash against the digest it had (``ref``: one model's)."""
    checks = []
    for model in index.models(root):
        if ref is not None and model.ref != ref:
            continue
        for f in model.files:
            digest = parse_prefixed(f.digest) if f.digest else None
            path = root / f.path
            if digest is not None and f.state == "verified" and path.exists():
                checks.append(BlobCheck(model.ref, path, digest, f.size, to=layout.store.value))
    return checks  # a file gone from LM Studio was removed there: LM Studio is the truth


def forget_gone(index: Index, root: Path) -> list[str]:
    """Forget the models of a store whose files are all gone (``rm``, or the app deleted
    them itself); their names."""
    gone = []
    for model in index.models(root):
        paths = [root / f.path for f in model.files]
        if paths and not any(p.exists() for p in paths):
            index.remove_model(model.ref, root)
            gone.append(model.ref)
    return gone


# ------------------------------------------------------------------------------- gc


def _locked(lock: Path) -> bool:
    """Whether a live pullman holds this staging lock right now."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def partials(staging_dirs: Iterable[Path], min_age: float, now: float) -> Iterator[Garbage]:
    """Partial downloads nobody is working on, untouched for ``min_age`` seconds."""
    for directory in staging_dirs:
        if not directory.is_dir():
            continue
        for part in sorted(directory.glob("*.part")):
            key = part.name.removesuffix(".part")
            group = [p for p in directory.glob(f"{key}.*") if p.is_file()]
            if _locked(directory / f"{key}.lock"):
                continue
            if not all(older_than(p, min_age, now) for p in group):
                continue
            size = sum(p.stat().st_size for p in group)
            yield Garbage("partial", part, size)
        for share in sorted(directory.glob("*.share")):  # a link left by a killed run
            if older_than(share, min_age, now):
                yield Garbage("leftover", share, unshared_size(share))


def remove(items: Iterable[Garbage]) -> int:
    freed = 0
    for item in items:
        with disk_errors(item.path):
            if item.kind == "partial":
                key = item.path.name.removesuffix(".part")
                for path in item.path.parent.glob(f"{key}.*"):
                    path.unlink(missing_ok=True)
                freed += item.size
            else:
                freed += unshared_size(item.path)
                item.path.unlink(missing_ok=True)
    return freed


Roots = list[tuple[Layout, Path]]
"""Each store with a root: ``(layout, root)``."""


def staging_dirs(roots: Roots, jobs: Iterable[Job] = (), more: Iterable[Path] = ()) -> list[Path]:
    """Every staging area: each store's, ``more``, and those next to files jobs put in plain
    directories (``-o``, ``--local-dir``, ``--to DIR``)."""
    dirs = [d for layout, root in roots for d in layout.staging_dirs(root)]
    extra: set[Path] = set(more)
    for job in jobs:
        for store, options in destinations(job):
            own = _plain_staging(store, options)
            if own is not None:
                extra.add(own)
    return dirs + sorted(extra - set(dirs))


def destinations(job: Job) -> list[tuple[Store, GetOptions]]:
    """Each store a job lands in (one per ``--to``), with the options it lands there with."""
    options = job.request.get
    try:
        ref = parse(job.ref, insecure=options.insecure)
        found = []
        for to in options.to or (None,):
            routed = route(ref, to, options)
            source = source_for(routed.ref)
            found.append((routed.store or source.store(routed.ref, routed.options), routed.options))
    except PullmanError:  # a ref or --to it cannot take: the job fails when it runs
        return []
    return found


def _plain_staging(store: Store, options: GetOptions) -> Path | None:
    """The staging area of a download into a plain directory: ``-o`` (a file, or a
    directory), ``--local-dir``, or a URL into the directory it was started in."""
    if options.local_dir is not None or options.out is not None:
        return plain.PlainLayout().root(options) / common.STAGING
    if options.cwd is not None and store is Store.PLAIN:
        return Path(options.cwd) / common.STAGING
    return None


def garbage(
    roots: Roots, jobs: list[Job], min_age: float, now: float, more: Iterable[Path] = ()
) -> list[Garbage]:
    """Abandoned partial downloads and unused blobs of every store.

    A store (or plain directory) that an unfinished job (queued, waiting, running, paused)
    downloads into is left alone: its partial files and held or unreferenced blobs are that
    job's progress, however old.
    """
    unfinished = [job for job in jobs if not job.finished]
    busy = busy_dirs(roots, unfinished)
    dirs = [d for d in staging_dirs(roots, jobs, more) if d not in busy]
    found = list(partials(dirs, min_age, now))
    for layout, root in roots:
        if root not in busy:
            found += layout.unreferenced(root, min_age, now)
    return found


def busy_dirs(roots: Roots, unfinished: Iterable[Job]) -> set[Path]:
    """Store roots, and their staging areas, that unfinished jobs download into."""
    busy: set[Path] = set()
    for job in unfinished:
        for store, options in destinations(job):
            for layout, root in roots:
                if layout.store is store and layout.root(options) == root:
                    busy.update([root, *layout.staging_dirs(root)])
        busy.update(staging_dirs([], [job]))  # -o / --local-dir / --to DIR
    return busy


# ------------------------------------------------------------------------------- doctor


@dataclass(frozen=True)
class Rebuilt:
    models: int
    incomplete: int
    unreadable: int


def rebuild_index(index: Index, roots: Roots) -> Rebuilt:
    """Describe in the index what the stores hold (the stores are the truth)."""
    models = incomplete = unreadable = 0
    for layout, root in roots:
        for entry in layout.entries(root):
            if entry.state in ("unreadable", "damaged"):
                unreadable += 1
                continue
            files = [FileRecord(path=p, digest=d) for p, d in entry.blobs] or None
            state: ItemState = "complete" if entry.state == "complete" else "partial"
            incomplete += state != "complete"
            index.upsert_model(
                entry.name,
                layout.store.index_source,
                root,
                title=entry.name,
                size=entry.size,
                state=state,
                files=files,
            )
            models += 1
    return Rebuilt(models, incomplete, unreadable)


def roots(options: GetOptions) -> Roots:
    """Every store layout paired with its root for these options."""
    return [(layout, layout.root(options)) for layout in stores()]
