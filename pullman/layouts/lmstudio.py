"""LM Studio's models directory, exactly as LM Studio scans it.

::

    <models>/<publisher>/<repo>/<file>.gguf      exactly two folder levels (else ignored)
    <models>/<publisher>/<repo>/mmproj-*.gguf    a projector beside the model gives it vision
    <models>/../.pullman-partial/                pullman's staging area, outside LM Studio's tree

LM Studio shows ``.part`` files in its tree as downloads in progress, so partial data stays in
the staging area beside the models directory (same file system: a rename commits) and each
file appears whole, under its final name, in one rename. A Hugging Face repo lands as
``<org>/<repo>/`` with its GGUF files side by side (an MLX repo without GGUF files keeps its
own paths); an Ollama model as ``<namespace>/<model>/<model>-<tag>.gguf`` (``ollama/`` for
Ollama's library, ``<org>/<repo>/`` for ``hf.co`` names) with its projector as ``mmproj-``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.plan import FileSpec, Plan, Release, RemoteFile, Store
from pullman.core.refs import HF_HOSTS, HfRef, OllamaRef, Ref, UrlRef
from pullman.core.units import human
from pullman.errors import NotFound, NotWritable, UsageError
from pullman.fsio import disk_errors, inside
from pullman.layouts import common
from pullman.layouts.lmstudio_home import models_dir

STAGING = common.STAGING
MODEL_FILE = ".gguf"
_OLLAMA_ROLES = ("model", "projector")


def staging_dir(root: Path) -> Path:
    """Beside the models directory, never inside LM Studio's tree."""
    return root.parent / STAGING


def folder(ref: Ref | Release) -> tuple[str, str]:
    """``(publisher, repo)``: the two folder levels a model lives under."""
    if isinstance(ref, Release):
        if ref.repo is not None:
            return _split(ref.repo.repo_id)
        if ref.model is not None:
            host, namespace, model, _ = ref.model.parts
            return _ollama_folder(host, namespace, model)
        return _url_folder(ref.ref)
    if isinstance(ref, HfRef):
        return _split(ref.repo_id)
    if isinstance(ref, OllamaRef):
        return _ollama_folder(ref.host, ref.namespace, ref.model)
    return _url_folder(ref.url)


def _split(repo_id: str) -> tuple[str, str]:
    publisher, _, repo = repo_id.partition("/")
    return publisher, repo


def _ollama_folder(host: str, namespace: str, model: str) -> tuple[str, str]:
    if host.lower() in HF_HOSTS:
        return namespace, model
    return ("ollama" if namespace == "library" else namespace), model


def _url_folder(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    host = "".join(c if c.isalnum() or c in ".-_" else "-" for c in parts.hostname or "web")
    stem = PurePosixPath(parts.path).name.removesuffix(MODEL_FILE) or "model"
    return host, stem


def _names(release: Release) -> list[tuple[RemoteFile, str]]:
    """Which files of the release LM Studio gets, under which names in the model's folder."""
    if release.model is not None:
        _, _, model, tag = release.model.parts
        chosen = [f for f in release.files if f.role in _OLLAMA_ROLES]
        named = []
        for n, f in enumerate(sorted(chosen, key=lambda f: _OLLAMA_ROLES.index(f.role))):
            prefix = "mmproj-" if f.role == "projector" else ""
            extra = f"-{n}" if n and f.role == "model" else ""
            named.append((f, f"{prefix}{model}-{tag}{extra}{MODEL_FILE}"))
        return named
    ggufs = [f for f in release.files if f.path.lower().endswith(MODEL_FILE)]
    if ggufs:
        return [(f, PurePosixPath(f.path).name) for f in ggufs]  # side by side, flat
    if release.repo is not None:
        return [(f, f.path) for f in release.files]  # an MLX model: the repo's own tree
    return []


def _specs(release: Release, target: Path) -> tuple[FileSpec, ...]:
    named = _names(release)
    if not named:
        raise UsageError(
            f"{release.display} has no model file LM Studio can load",
            why="LM Studio loads GGUF files (and MLX repos); this has none",
            hint="choose a GGUF file or quantisation, e.g. hf://org/repo:Q4_K_M",
        )
    seen: dict[str, str] = {}
    specs = []
    for f, name in named:
        if name.casefold() in seen:
            raise UsageError(
                f"{release.display}: {f.path} and {seen[name.casefold()]} would both be {name}",
                why="LM Studio wants a model's files side by side in one folder",
                hint="pick one of them with --include",
            )
        seen[name.casefold()] = f.path
        dest = target / name
        key = f.key or (f"sha256-{f.digest.hex}" if f.digest else common.url_key(f.url, dest))
        specs.append(f.spec(dest, key, name=name))
    return tuple(specs)


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
        """The model's files side by side in ``<publisher>/<repo>/``, each renamed in whole."""
        publisher, repo = folder(release)
        target = root / publisher / repo
        return Plan(
            release.ref,
            _specs(release, target),
            root,
            staging_dir(root),
            release.title,
            (),
            release.display,
            Store.LMSTUDIO,
            ("saved to", target),
            home=root.parent,
        )

    def entries(self, root: Path) -> list[StoreEntry]:
        return [_entry(root, d) for d in _model_dirs(root)]

    def remove(self, root: Path, ref: Ref) -> Removal:
        if isinstance(ref, UrlRef) and not ref.url.lower().endswith(MODEL_FILE):
            raise UsageError(f"{ref.url} is not a model in LM Studio", hint="e.g. hf://org/repo")
        publisher, repo = folder(ref)
        target = root / publisher / repo
        if not target.is_dir() or not inside(root, target):
            raise NotFound(
                f"no model {publisher}/{repo} in {root}",
                hint="`pullman ls` shows what LM Studio has",
            )
        return _remove_dir(root, target)

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        return iter(())  # LM Studio keeps no digests: the index knows what pullman put there

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        return iter(())  # every file in LM Studio's tree is the user's

    def staging_dirs(self, root: Path) -> list[Path]:
        return [staging_dir(root)]


def _model_dirs(root: Path) -> list[Path]:
    """``<publisher>/<repo>`` folders holding a GGUF file, or an MLX model's ``config.json``."""
    if not root.is_dir():
        return []
    found = []
    for directory in sorted(root.glob("*/*")):
        if directory.name.startswith(".") or directory.parent.name.startswith("."):
            continue
        if directory.is_dir() and (
            any(p.suffix.lower() == MODEL_FILE for p in directory.iterdir())
            or (directory / "config.json").is_file()
        ):
            found.append(directory)
    return found


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())


def _entry(root: Path, directory: Path) -> StoreEntry:
    files = _files(directory)
    size = sum(p.stat().st_size for p in files)
    name = "/".join(directory.relative_to(root).parts)
    details = {"files": [str(p.relative_to(directory)) for p in files]}
    return StoreEntry(
        name, Store.LMSTUDIO, directory, size, "complete", "", details, files=tuple(files)
    )


def _remove_dir(root: Path, target: Path) -> Removal:
    """The model's folder and what is in it; the publisher's folder too once it is empty.
    Bytes another app shares (a hard link in the HF cache or Ollama's store) are not freed."""
    freed = 0
    removed = []
    with disk_errors(target):
        for path in sorted(target.rglob("*"), reverse=True):
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
                continue
            st = path.lstat()
            freed += st.st_size if st.st_nlink == 1 else 0
            path.unlink()
            removed.append(str(path))
        target.rmdir()
        if target.parent != root and not any(target.parent.iterdir()):
            target.parent.rmdir()
    name = "/".join(target.relative_to(root).parts)
    summary = f"removed {name} from LM Studio: {len(removed)} files, {human(freed)} freed"
    return Removal(name, freed, summary, {"path": str(target), "removed": removed})
