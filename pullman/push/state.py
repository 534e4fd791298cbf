"""What pushes to a registry leave behind: unfinished uploads, and which repository has which blob.

One JSON file per registry origin in ``<state dir>/push/`` (0600 in the 0700 state directory;
an upload URL carries the registry's signed upload state, so it is kept like a credential and
never shown). ``uploads`` maps ``repo@digest`` to the upload URL the registry last answered and
how many bytes it held then: an interrupted push resumes from there. ``known`` maps a digest to
the repositories this pullman pushed it to (or found it in): the sources of cross-repository
mounts. Every change is a read-modify-write under an ``flock``, written atomically, so two
pushes to one registry do not lose each other's records. A damaged file is set aside and
treated as empty (the worst case is a blob uploaded again).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullman.fsio import disk_errors, write_atomic

log = logging.getLogger("pullman.push")
MAX_KNOWN = 64
"""Repositories remembered per blob (the most recent)."""


@dataclass(frozen=True)
class SavedUpload:
    url: str
    offset: int
    size: int


class PushState:
    def __init__(self, directory: Path, base: str) -> None:
        self.base = base
        key = hashlib.sha256(base.encode()).hexdigest()[:20]
        self.path = directory / f"{key}.json"
        self._lock = directory / f"{key}.lock"

    # ------------------------------------------------------------------ reading

    def upload(self, repo: str, digest: str) -> SavedUpload | None:
        entry = self._load()["uploads"].get(f"{repo}@{digest}")
        if not isinstance(entry, dict):
            return None
        url, offset, size = entry.get("url"), entry.get("offset"), entry.get("size")
        if not (isinstance(url, str) and isinstance(offset, int) and isinstance(size, int)):
            return None
        if not 0 <= offset <= size or not url.startswith(("http://", "https://")):
            return None
        return SavedUpload(url, offset, size)

    def repos_with(self, digest: str) -> list[str]:
        """The repositories known to hold ``digest``, most recent first."""
        repos = self._load()["known"].get(digest, [])
        return [r for r in reversed(repos) if isinstance(r, str)]

    # ------------------------------------------------------------------ changing

    def save_upload(self, repo: str, digest: str, url: str, offset: int, size: int) -> None:
        with self._change() as doc:
            doc["uploads"][f"{repo}@{digest}"] = {"url": url, "offset": offset, "size": size}

    def drop_upload(self, repo: str, digest: str) -> None:
        with self._change() as doc:
            doc["uploads"].pop(f"{repo}@{digest}", None)

    def remember(self, repo: str, digests: list[str]) -> None:
        """``repo`` holds ``digests`` (and any upload of them there is over)."""
        with self._change() as doc:
            for digest in digests:
                repos = [r for r in doc["known"].get(digest, []) if r != repo]
                doc["known"][digest] = [*repos, repo][-MAX_KNOWN:]
                doc["uploads"].pop(f"{repo}@{digest}", None)

    # ------------------------------------------------------------------ the file

    def _load(self) -> dict[str, Any]:
        empty: dict[str, Any] = {"registry": self.base, "uploads": {}, "known": {}}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return empty
        except OSError as exc:
            log.warning("cannot read the push state %s: %s", self.path, exc.strerror)
            return empty
        doc = _parsed(raw)
        if doc is None:
            aside = self.path.with_name(self.path.name + ".damaged")
            with contextlib.suppress(OSError):
                self.path.replace(aside)
            log.warning("the push state %s was damaged; moved aside to %s", self.path, aside)
            return empty
        return {**empty, **doc}

    @contextlib.contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        directory = self.path.parent
        with disk_errors(directory):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self._lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._load()
            yield doc
            write_atomic(self.path, json.dumps(doc, indent=1).encode(), mode=0o600)
        finally:
            os.close(fd)  # closing releases the flock


def _parsed(raw: bytes) -> dict[str, Any] | None:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    if not (isinstance(doc.get("uploads"), dict) and isinstance(doc.get("known"), dict)):
        return None
    return doc
