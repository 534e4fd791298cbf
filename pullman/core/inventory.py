"""What a store holds, as its layout reports it: models (``ls``), removals (``rm``), blobs to
re-hash (``verify``) and leftovers (``gc``). Pure values, whatever the store."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pullman.core.digests import Digest
from pullman.core.plan import Store


@dataclass(frozen=True)
class StoreEntry:
    """One model (or repo) in a store."""

    name: str
    store: Store
    path: Path
    size: int
    state: str
    """``complete``, ``incomplete`` (files missing or short), ``unreadable`` or ``damaged``."""
    note: str = ""
    """Shown after the state (``3 missing``, the revisions)."""
    details: Mapping[str, Any] = field(default_factory=dict)
    """Store-specific fields for ``--json`` (``missing_blobs``, ``revisions``)."""
    blobs: tuple[tuple[str, str], ...] = ()
    """``(path relative to the store root, digest)`` of each file, where the store knows them."""
    files: tuple[Path, ...] = ()
    """Every data file it uses (``ls`` counts the bytes it shares with other stores)."""

    def to_json(self) -> dict[str, Any]:
        doc = {"name": self.name, "store": self.store.value, "size": self.size}
        doc.update(state=self.state, **self.details, path=str(self.path))
        return doc


@dataclass(frozen=True)
class Sharing:
    """What one store entry shares with other stores (the same files, hard-linked)."""

    shared_with: tuple[str, ...] = ()
    """The other stores (``hf``, ``lmstudio``, ``ollama``) that see some of its bytes."""
    shared_bytes: int = 0
    """How many of its bytes another store sees too."""


def sharing(
    entries: list[tuple[StoreEntry, list[tuple[int, int, int]]]],
) -> tuple[list[Sharing], int]:
    """Per entry, what it shares; and the bytes saved on disk overall (a file seen by ``k``
    stores saves ``k - 1`` copies). ``entries``: each with its files' ``(dev, ino, size)``."""
    stores_of: dict[tuple[int, int], set[str]] = {}
    size_of: dict[tuple[int, int], int] = {}
    for entry, files in entries:
        for dev, ino, size in files:
            stores_of.setdefault((dev, ino), set()).add(entry.store.value)
            size_of[(dev, ino)] = size
    shares = []
    for entry, files in entries:
        inodes = {(dev, ino) for dev, ino, _ in files}
        others = {s for i in inodes for s in stores_of[i]} - {entry.store.value}
        shared = sum(size_of[i] for i in inodes if len(stores_of[i]) > 1)
        shares.append(Sharing(tuple(sorted(others)), shared))
    saved = sum(size_of[i] * (len(s) - 1) for i, s in stores_of.items())
    return shares, saved


@dataclass(frozen=True)
class Removal:
    """What ``rm`` removed from a store."""

    name: str
    freed: int
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.details, "freed": self.freed}


@dataclass(frozen=True)
class BlobCheck:
    owner: str
    """The model or repo (as a ref) the blob belongs to."""
    path: Path
    digest: Digest
    size: int | None
    state: str = "unchecked"
    """``ok``, ``missing``, ``wrong size`` or ``corrupt``."""
    to: str | None = None
    """For ``--repair``: the ``--to`` that puts it back, when not the owner's own store."""

    @property
    def bad(self) -> bool:
        return self.state not in ("ok", "unchecked")

    def checked(self, state: str) -> BlobCheck:
        return replace(self, state=state)


@dataclass(frozen=True)
class Garbage:
    kind: str
    """``partial`` (an abandoned download) or ``unreferenced`` (a blob nothing uses)."""
    path: Path
    size: int
