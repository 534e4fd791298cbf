"""Layouts: where verified files land, in which order, and what ``ls``/``rm``/``verify``/``gc``
see in a store. One module per kind of store, one :class:`Layout` protocol, one dispatcher.

A layout turns a source's :class:`~pullman.core.plan.Release` into a
:class:`~pullman.core.plan.Plan` for one store root (:meth:`Layout.place`): the destination of
every file, the staging area beside them (same file system: a rename commits), and the small
files written last, in order (a manifest, snapshot links, a ref), so a reader never sees half a
model. A new destination is one module with a class that follows the protocol, plus a line in
:func:`_layouts` and a member of :class:`~pullman.core.plan.Store`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.plan import Plan, Release, Store
from pullman.core.refs import Ref


class Layout(Protocol):
    store: Store

    def root(self, options: GetOptions) -> Path:
        """The store's root directory for these options (flags, then environment, then default)."""
        ...

    def pinned(self, options: GetOptions) -> GetOptions:
        """The options with this store's location settled now, from this process's flags and
        environment (a queued job runs later, in the daemon, with another environment)."""
        ...

    def check_writable(self, root: Path) -> None:
        """A clear :class:`~pullman.errors.NotWritable` before any byte, if it cannot be written."""
        ...

    def place(self, release: Release, root: Path, options: GetOptions) -> Plan:
        """Where each file of ``release`` lands under ``root``, and what is written after them."""
        ...

    def entries(self, root: Path) -> list[StoreEntry]:
        """The models in the store, as its readers see them (``ls``, ``doctor``)."""
        ...

    def remove(self, root: Path, ref: Ref) -> Removal:
        """Remove a model and the blobs nothing else in the store uses (``rm``)."""
        ...

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        """Every blob the store's models use, with its digest (``verify``; ``ref``: one model)."""
        ...

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        """Blobs no model in the store uses, untouched for ``min_age`` seconds (``gc``)."""
        ...

    def staging_dirs(self, root: Path) -> list[Path]:
        """Where pullman keeps partial downloads for this store (``gc``, ``doctor``)."""
        ...


@functools.cache
def _layouts() -> dict[Store, Layout]:
    from pullman.layouts.hf_cache import HfCacheLayout
    from pullman.layouts.lmstudio import LmStudioLayout
    from pullman.layouts.ollama import OllamaLayout
    from pullman.layouts.plain import PlainLayout

    return {
        Store.PLAIN: PlainLayout(),
        Store.OLLAMA: OllamaLayout(),
        Store.HF_CACHE: HfCacheLayout(),
        Store.LMSTUDIO: LmStudioLayout(),
    }


def layout_for(what: Store | Plan) -> Layout:
    """The layout of a store, or of the store a plan lands in."""
    store = what.store if isinstance(what, Plan) else what
    return _layouts()[store]


def pin(options: GetOptions) -> GetOptions:
    """The options with every store's location settled now (see :meth:`Layout.pinned`)."""
    for layout in _layouts().values():
        options = layout.pinned(options)
    return options


def stores() -> list[Layout]:
    """Every layout that keeps models of its own (``ls``, ``verify``, ``gc``, ``doctor``)."""
    return [layout for store, layout in _layouts().items() if store is not Store.PLAIN]
