"""One physical copy: a file already verified somewhere on this machine is shared, not fetched.

Every file with a sha256 is looked up before it is downloaded: the files this run already
placed, the content-addressed stores (Ollama's ``blobs/sha256-<hex>``, the HF cache's LFS
``blobs/<sha256>``, whose names pullman trusts as it does when they are the destination), and
what the index recorded as verified (LM Studio's tree, plain directories). A copy of the right
size is then

1. hard-linked in (one inode, zero bytes copied), else
2. cloned where the file system shares extents (``FICLONE`` on btrfs/XFS, ``clonefile`` on
   APFS) when the stores sit on different file systems or a link is refused, else
3. copied, hashed as it goes, and used only if the digest matches.

Either way the new name appears by one rename from the destination's staging area, like a
download. Never a symlink (LM Studio does not follow them; ``rm`` in one app would break the
other). Removing the file from one store leaves the other names, and the bytes, in place.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pullman.core.digests import Digest
from pullman.core.plan import FileSpec
from pullman.errors import StorageError
from pullman.fsio import (
    FS,
    HASH_READ,
    NOFOLLOW,
    disk_errors,
    free_space,
    fsync_dir,
    hash_file,
    inode,
    storage_error,
)

log = logging.getLogger("pullman.copies")

Lookup = Callable[[str], Iterable[Path]]
"""Paths the index recorded as verified for a digest (``sha256:<hex>``)."""

_NO_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES}
"""Why a hard link can fail while a clone or copy still works: another file system, a
protected link (``fs.protected_hardlinks``: another user's file), too many links."""


@dataclass(frozen=True)
class Shared:
    """How a file came from another copy: ``linked``, ``cloned`` or ``copied``."""

    how: str
    source: Path


@dataclass
class Copies:
    """Where verified copies of a file may already be (see the module docstring)."""

    ollama_roots: tuple[Path, ...] = ()
    hf_caches: tuple[Path, ...] = ()
    lookup: Lookup | None = None
    placed: dict[str, Path] = field(default_factory=dict)
    """What this run verified and put in place, by digest (shared without hashing again)."""
    known: dict[str, Path] = field(default_factory=dict)
    """Where ``link`` read a file (``str(digest)``, git blob ids too): its first candidate."""
    enabled: bool = True
    """Off for ``verify --repair``: a bad file is bad under every name it has."""
    failure: StorageError | None = None
    """Why the last file could not be shared (a full disk during a cross-device copy, say)."""

    def remember(self, digest: Digest | None, path: Path) -> None:
        if digest is not None and digest.algorithm == "sha256":
            self.placed[digest.hex] = path

    def candidates(self, digest: Digest) -> Iterator[Path]:
        if str(digest) in self.known:
            yield self.known[str(digest)]
        if digest.algorithm != "sha256":
            return
        hex_digest = digest.hex
        if hex_digest in self.placed:
            yield self.placed[hex_digest]
        for root in self.ollama_roots:
            yield root / "blobs" / f"sha256-{hex_digest}"
        for cache in self.hf_caches:
            try:
                yield from sorted(cache.glob(f"*--*/blobs/{hex_digest}"))
            except OSError:  # a cache this user cannot read: nothing to share from there
                continue
        if self.lookup is not None:
            yield from self.lookup(str(digest))

    def find(self, spec: FileSpec) -> Iterator[Path]:
        """Regular files (not links) of ``spec``'s size, other than ``spec``'s own, that
        should hold its digest (:meth:`share` checks that they do)."""
        digest = spec.digest
        if not self.enabled or digest is None or spec.size is None:
            return
        mine = {inode(p) for p in spec.places} - {None}
        seen: set[tuple[int, int]] = set()
        for candidate in self.candidates(digest):
            try:
                st = candidate.lstat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size != spec.size:
                continue
            key = (st.st_dev, st.st_ino)
            if key not in seen and key not in mine:
                seen.add(key)
                yield candidate

    def any_of(self, specs: Iterable[FileSpec]) -> list[FileSpec]:
        """Those of ``specs`` with a copy somewhere (stat calls and an index query)."""
        return [spec for spec in specs if next(self.find(spec), None) is not None]

    def share(self, spec: FileSpec, staging: Path) -> Shared | None:
        """Put a copy of ``spec`` at ``spec.dest`` from the first one that has its digest;
        None if there is none (then it is downloaded). Runs in a worker thread."""
        self.failure = None
        for source in self.find(spec):
            trusted = spec.digest is not None and self.placed.get(spec.digest.hex) == source
            try:
                how = _materialize(source, spec, staging, trusted=trusted)
            except (OSError, StorageError) as exc:  # gone meanwhile, unreadable: the next one
                log.info("%s: could not share %s: %s", spec.name, source, exc)
                self.failure = exc if isinstance(exc, StorageError) else storage_error(exc, source)
                continue
            if how is not None:
                self.remember(spec.digest, spec.final or spec.dest)
                log.info("%s: %s from %s, 0 bytes fetched", spec.name, how, source)
                return Shared(how, source)
        return None


def _materialize(source: Path, spec: FileSpec, staging: Path, *, trusted: bool) -> str | None:
    """Link, clone or copy ``source`` into the staging area, check it has the digest (unless
    this run verified it), then rename it to ``spec.dest``; None if it is not the file."""
    with disk_errors(staging):
        staging.mkdir(parents=True, exist_ok=True)
    tmp = staging / f"{spec.key}.{os.getpid()}-{secrets.token_hex(4)}.share"
    try:
        how = _link_or_clone(source, tmp)
        if how is not None and not trusted and not _holds(tmp, spec):
            log.warning("%s: %s does not match its digest; not used", spec.name, source)
            return None
        how = how or _copy_checked(source, tmp, spec)
        if how is None:
            return None
        with disk_errors(spec.dest):
            spec.dest.parent.mkdir(parents=True, exist_ok=True)
            tmp.replace(spec.dest)
            fsync_dir(spec.dest.parent)
        return how
    finally:
        tmp.unlink(missing_ok=True)


def _holds(path: Path, spec: FileSpec) -> bool:
    """Whether the file has ``spec``'s digest (a local read: a recorded copy may have been
    edited in place since, or be a same-size impostor)."""
    assert spec.digest is not None
    return hash_file(path, spec.digest.hasher(spec.size or 0)) == spec.digest.hex


def _link_or_clone(source: Path, tmp: Path) -> str | None:
    try:
        os.link(source, tmp, follow_symlinks=False)
    except OSError as exc:
        if exc.errno not in _NO_LINK:
            raise
    else:
        return "linked"
    try:
        FS.clone(source, tmp)
    except OSError:
        return None
    return "cloned"


def _copy_checked(source: Path, tmp: Path, spec: FileSpec) -> str | None:
    """A plain copy, hashed on the way: used only if it has the digest (else None)."""
    assert spec.digest is not None
    hasher = spec.digest.hasher(spec.size or 0)
    if free_space(tmp.parent) < (spec.size or 0):  # before a byte: a full copy needs the room
        raise storage_error(OSError(errno.ENOSPC, "no space"), tmp, needed=spec.size or 0)
    with disk_errors(tmp, needed=spec.size or 0), source.open("rb") as src:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
        try:
            while block := src.read(HASH_READ):
                hasher.update(block)
                view = memoryview(block)
                while view:
                    view = view[os.write(fd, view) :]
            FS.sync(fd)
        finally:
            os.close(fd)
    if hasher.hexdigest() != spec.digest.hex:
        log.warning("%s: %s does not match its digest; not used", spec.name, source)
        return None
    log.warning(
        "%s: copied from %s (another file system, no hard link or clone)", spec.name, source
    )
    return "copied"
