"""A plain directory: files at the paths the user chose, staged beside them.

A URL lands at ``-o PATH`` (a file, or a directory, existing or ending in ``/``, to put the URL's
file name in; the session fills in the default folder); ``--local-dir DIR`` puts a Hugging Face
repo's files under ``DIR`` at their repo paths, as ``hf download --local-dir`` does. Partial
data waits in ``.pullman-partial/`` next to the files (same file system: the commit is a
rename). Plain directories keep no models of their own: ``ls``, ``verify`` and ``gc`` look at
the stores.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.plan import Final, Plan, Release, Stamped, Store
from pullman.core.refs import Ref
from pullman.errors import UsageError
from pullman.layouts import common

STAGING = common.STAGING


def _names_dir(out: str) -> bool:
    return Path(out).expanduser().is_dir() or out.endswith(("/", os.sep))


def destination(out: str, filename: str) -> Path:
    """``-o PATH``: a file, or a directory (existing or ending in ``/``) to put ``filename`` in."""
    path = Path(out).expanduser()
    return (path / filename if _names_dir(out) else path).absolute()


def staging_dir(dest: Path) -> Path:
    """Partial data lives next to its destination, on the same filesystem (rename commits)."""
    return dest.parent / STAGING


class PlainLayout:
    store = Store.PLAIN

    def root(self, options: GetOptions) -> Path:
        if options.local_dir is not None:
            return Path(options.local_dir).expanduser().absolute()
        out = options.out or f".{os.sep}"
        path = Path(out).expanduser()
        return (path if _names_dir(out) else path.parent).absolute()

    def pinned(self, options: GetOptions) -> GetOptions:
        return options  # -o and --local-dir are made absolute when they are given

    def check_writable(self, root: Path) -> None:
        common.check_writable(root, "choose another directory (-o or --local-dir)")

    def place(self, release: Release, root: Path, options: GetOptions) -> Plan:
        if options.local_dir is None:
            return self._place_url(release, options)
        specs = tuple(
            f.spec(root / f.path, f.key or common.url_key(f.url, root / f.path))
            for f in release.files
        )
        return Plan(
            release.ref,
            specs,
            root,
            root / STAGING,
            release.title,
            tuple(_hub_metadata(release, root)),
            release.display,
            Store.PLAIN,
            ("saved to", root),
            itemized=True,
        )

    def _place_url(self, release: Release, options: GetOptions) -> Plan:
        """One file at ``-o`` or in the downloads folder; its staging area beside it."""
        if len(release.files) != 1:
            raise UsageError(
                f"{release.display} has {len(release.files)} files",
                hint="give --local-dir DIR to put them under one directory",
            )
        f = release.files[0]
        dest = destination(options.out or f".{os.sep}", f.path)
        spec = f.spec(dest, f.key or common.url_key(f.url, dest), name=dest.name)
        return Plan(
            release.ref,
            (spec,),
            dest.parent,
            staging_dir(dest),
            dest.name,
            (),
            release.display,
            Store.PLAIN,
            ("saved to", dest),
            itemized=True,
        )

    # Plain directories hold no models of their own.

    def entries(self, root: Path) -> list[StoreEntry]:
        return []

    def remove(self, root: Path, ref: Ref) -> Removal:
        raise UsageError(f"{ref} is not a model in a store", hint="delete the file itself")

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        return iter(())

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        return iter(())

    def staging_dirs(self, root: Path) -> list[Path]:
        return [root / STAGING]


def _hub_metadata(release: Release, root: Path) -> list[Final]:
    """For a Hub repo in ``--local-dir``: the files huggingface_hub keeps beside it
    (``.cache/huggingface/download/<path>.metadata``: commit, etag, time), so a later
    ``hf download --local-dir`` trusts these files instead of fetching them again."""
    if release.repo is None:
        return []
    download = root / ".cache" / "huggingface" / "download"
    commit = release.repo.commit
    return [
        Stamped(download / f"{f.path}.metadata", f"{commit}\n{f.digest.hex}\n".encode())
        for f in release.files
        if f.digest is not None
    ]
