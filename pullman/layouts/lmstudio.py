"""LM Studio's models directory, exactly as LM Studio scans it.

::

    <models>/<publisher>/<repo>/<file>.gguf      exactly two folder levels (else ignored)
    <models>/<publisher>/<repo>/mmproj-*.gguf    a projector beside the model gives it vision
    <models>/../.pullman-partial/                pullman's staging area, outside LM Studio's tree

LM Studio shows ``.part`` files in its tree as downloads in progress, so partial data stays in
the staging area beside the models directory (same file system: a rename commits). Verified
files wait there too and move into the model's folder together at the end, so LM Studio never
sees half a model (a split GGUF's first part, an MLX repo's ``config.json`` alone). Names:
:mod:`pullman.core.lmstudio_names`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.lmstudio_names import MODEL_FILE, file_names, folder, owned
from pullman.core.plan import FileSpec, Final, Move, Plan, Release, Store
from pullman.core.refs import Ref
from pullman.core.units import human
from pullman.errors import NotFound, NotWritable, UsageError
from pullman.fsio import disk_errors, inside
from pullman.layouts import common
from pullman.layouts.lmstudio_home import models_dir

STAGING = common.STAGING


def staging_dir(root: Path) -> Path:
    """Beside the models directory, never inside LM Studio's tree."""
    return root.parent / STAGING


def _specs(release: Release, target: Path, staging: Path) -> tuple[list[FileSpec], list[Final]]:
    named = file_names(release)
    if not named:
        raise UsageError(
            f"{release.display} has no model file LM Studio can load",
            why="LM Studio loads GGUF files (and MLX repos); this has none",
            hint="choose a GGUF file or quantisation, e.g. hf://org/repo:Q4_K_M",
        )
    seen: dict[str, str] = {}
    specs: list[FileSpec] = []
    finals: list[Final] = []
    for f, name in named:
        if name.casefold() in seen:
            raise UsageError(
                f"{release.display}: {f.path} and {seen[name.casefold()]} would both be {name}",
                why="LM Studio wants a model's files side by side in one folder",
                hint="pick one of them with --include",
            )
        seen[name.casefold()] = f.path
        final = target / name
        key = f.key or (f"sha256-{f.digest.hex}" if f.digest else common.url_key(f.url, final))
        held = staging / key
        specs.append(f.spec(held, key, name=name, final=final))
        finals.append(Move(held, final, f.size or 0))
    return specs, finals


def check_writable(root: Path) -> None:
    """LM Studio must be there (its home, at least), and its folder writable."""
    if not root.exists() and not root.parent.exists():
        raise NotFound(
            f"LM Studio's models directory {root} does not exist",
            why=f"neither it nor {root.parent} is there: LM Studio seems not to be installed",
            hint="start LM Studio once, or name its models folder with --lmstudio-dir DIR "
            "(or [stores] lmstudio in pullman.toml)",
        )
    hint = "choose LM Studio's models folder with --lmstudio-dir, or fix its permissions"
    for directory in (root, staging_dir(root)):
        if directory.exists() and not os.access(directory, os.W_OK):
            raise NotWritable(f"cannot write to {directory}", why="permission denied", hint=hint)
        common.check_writable(directory, hint=hint)


class LmStudioLayout:
    store = Store.LMSTUDIO

    def root(self, options: GetOptions) -> Path:
        return models_dir(options.lmstudio_dir)

    def pinned(self, options: GetOptions) -> GetOptions:
        return replace(options, lmstudio_dir=str(self.root(options)))

    def check_writable(self, root: Path) -> None:
        check_writable(root)

    def place(self, release: Release, root: Path, options: GetOptions) -> Plan:
        """The model's files side by side in ``<publisher>/<repo>/``, moved in together."""
        publisher, repo = folder(release)
        target = root / publisher / repo
        specs, finals = _specs(release, target, staging_dir(root))
        return Plan(
            release.ref,
            tuple(specs),
            root,
            staging_dir(root),
            release.title,
            tuple(finals),
            release.display,
            Store.LMSTUDIO,
            ("saved to", target),
            home=root.parent,
        )

    def entries(self, root: Path) -> list[StoreEntry]:
        return [_entry(root, d) for d in _model_dirs(root)]

    def remove(self, root: Path, ref: Ref) -> Removal:
        publisher, repo = folder(ref)
        target = root / publisher / repo
        if not target.is_dir() or not _two_deep(root, target):
            raise NotFound(
                f"no model {publisher}/{repo} in {root}",
                hint="`pullman ls` shows what LM Studio has",
            )
        return _remove(root, target, ref)

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        return iter(())  # LM Studio keeps no digests: the index knows what pullman put there

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        """Verified files held for a model that was never finished (the user's own files in
        LM Studio's tree are never garbage)."""
        staging = staging_dir(root)
        for held in sorted(staging.iterdir()) if staging.is_dir() else []:
            if "." not in held.name and held.is_file() and common.older_than(held, min_age, now):
                yield Garbage("held", held, common.unshared_size(held))

    def staging_dirs(self, root: Path) -> list[Path]:
        return [staging_dir(root)]


def _two_deep(root: Path, target: Path) -> bool:
    """Whether ``target`` is exactly ``<root>/<publisher>/<repo>``, links resolved."""
    return inside(root, target) and target.resolve().parent.parent == root.resolve()


def _model_dirs(root: Path) -> list[Path]:
    """``<publisher>/<repo>`` folders holding a GGUF file, or an MLX model's ``config.json``;
    one this user cannot read is left out."""
    found = []
    try:
        candidates = sorted(root.glob("*/*")) if root.is_dir() else []
    except OSError:
        return []
    for directory in candidates:
        if directory.name.startswith(".") or directory.parent.name.startswith("."):
            continue
        try:
            if directory.is_dir() and (
                any(p.suffix.lower() == MODEL_FILE for p in directory.iterdir())
                or (directory / "config.json").is_file()
            ):
                found.append(directory)
        except OSError:  # a folder closed to this user
            continue
    return found


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())


def _entry(root: Path, directory: Path) -> StoreEntry:
    name = "/".join(directory.relative_to(root).parts)
    try:
        files = _files(directory)
        size = sum(p.stat().st_size for p in files)
    except OSError:
        return StoreEntry(name, Store.LMSTUDIO, directory, 0, "unreadable")
    details = {"files": [str(p.relative_to(directory)) for p in files]}
    return StoreEntry(
        name, Store.LMSTUDIO, directory, size, "complete", "", details, files=tuple(files)
    )


def _remove(root: Path, target: Path, ref: Ref) -> Removal:
    """The files ``ref`` put in the model's folder; the folders too once they are empty.
    Bytes another app shares (a hard link in the HF cache or Ollama's store) are not freed."""
    names = [str(p.relative_to(target)) for p in _files(target)]
    mine = owned(names, ref)
    name = "/".join(target.relative_to(root).parts)
    if not mine:
        raise NotFound(f"{ref} has no files in {target}", hint="`pullman ls` lists them")
    freed = 0
    with disk_errors(target):
        for rel in mine:
            path = target / rel
            freed += common.unshared_size(path)
            path.unlink()
        for directory in sorted((p for p in target.rglob("*") if p.is_dir()), reverse=True):
            if not any(directory.iterdir()):
                directory.rmdir()
        for directory in (target, target.parent):
            if directory != root and directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
    summary = f"removed {name} from LM Studio: {len(mine)} files, {human(freed)} freed"
    removed = [str(target / rel) for rel in mine]
    return Removal(name, freed, summary, {"path": str(target), "removed": removed})
