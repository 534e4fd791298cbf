"""The Hugging Face cache, exactly as transformers, llama.cpp, vLLM and huggingface_hub read it.

::

    <cache>/models--<org>--<name>/               (datasets--... for datasets)
        blobs/<etag>                             sha256 for LFS files, git blob sha1 for small ones
        snapshots/<commit>/<path>                relative symlinks to ../../blobs/<etag>
        refs/<revision>                          the 40-char commit, no trailing newline
        .pullman-partial/                        pullman's staging area (ignored by readers)
        .pullman-access                          ``public``, ``private`` or ``gated``: what the
                                                 Hub said when pullman downloaded it (serve)

Blobs are renamed into place after they verify, then the snapshot links, then the ref: a reader
never sees a link to a missing blob or a ref to a missing snapshot. ``--local-dir`` instead
writes plain files under a directory of the user's choosing.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pullman.core.digests import Digest, from_blob_name
from pullman.core.inventory import BlobCheck, Garbage, Removal, StoreEntry
from pullman.core.jobs import GetOptions
from pullman.core.names import check_commit, check_repo_path, is_commit
from pullman.core.plan import FileSpec, Final, Plan, Release, Store, Symlink, WriteFile
from pullman.core.refs import HfRef, Ref
from pullman.core.units import human
from pullman.errors import NotFound, StorageError, UsageError
from pullman.fsio import disk_errors
from pullman.layouts import common

STAGING = common.STAGING
__all__ = ["check_commit", "check_repo_path"]  # re-exported: the paths this layout trusts


_VAR = re.compile(r"\$(\w+|\{[^}]*\})", re.ASCII)


def _expand(path: str, env: Mapping[str, str]) -> str:
    """``os.path.expandvars(os.path.expanduser(path))``, against ``env`` (unknown vars stay)."""

    def var(m: re.Match[str]) -> str:
        name = m.group(1).strip("{}")
        return env.get(name, m.group(0))

    return _VAR.sub(var, str(Path(path).expanduser()) if path else path)


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The hub cache exactly as ``huggingface_hub.constants`` computes it: ``HF_HUB_CACHE``,
    else the legacy ``HUGGINGFACE_HUB_CACHE`` (TGI and older images set it), else
    ``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub``, else
    ``~/.cache/huggingface/hub``; ``~`` and ``$VARS`` expanded. (Computed afresh per call:
    huggingface_hub reads the environment once, at import.)"""
    env = os.environ if env is None else env
    default_home = str(Path("~").expanduser() / ".cache")
    home = env.get("HF_HOME", str(Path(env.get("XDG_CACHE_HOME", default_home)) / "huggingface"))
    hf_home = _expand(home, env)
    legacy = env.get("HUGGINGFACE_HUB_CACHE", str(Path(hf_home) / "hub"))
    return Path(_expand(env.get("HF_HUB_CACHE", legacy), env)).absolute()


def symlinks_disabled(env: Mapping[str, str] | None = None) -> bool:
    """``HF_HUB_DISABLE_SYMLINKS``, read as huggingface_hub reads it: then the cache holds the
    files themselves in ``snapshots/``, and ``blobs/`` stays empty."""
    env = os.environ if env is None else env
    return env.get("HF_HUB_DISABLE_SYMLINKS", "").upper() in ("1", "ON", "YES", "TRUE")


def repo_dir(root: Path, repo_id: str, repo_type: str) -> Path:
    """``models--org--name`` (as huggingface_hub names it, by its own ``repo_folder_name``)."""
    from huggingface_hub.file_download import repo_folder_name

    return root / repo_folder_name(repo_id=repo_id, repo_type=repo_type)


def blob_path(repo: Path, etag: str) -> Path:
    return repo / "blobs" / etag


def snapshot_path(repo: Path, commit: str, path: str) -> Path:
    return repo / "snapshots" / commit / path


def ref_path(repo: Path, revision: str) -> Path:
    return repo / "refs" / revision


def staging_dir(repo: Path) -> Path:
    return repo / STAGING


ACCESS_FILE = ".pullman-access"
ACCESS = ("public", "private", "gated")


def access_path(repo: Path) -> Path:
    return repo / ACCESS_FILE


def recorded_access(repo: Path) -> str:
    """What the Hub said about the repo when pullman downloaded it (``public``, ``private``,
    ``gated``), or ``unknown``: no record (another tool downloaded it, or an older pullman)."""
    try:
        with disk_errors(repo):
            if not access_path(repo).is_file() or access_path(repo).is_symlink():
                return "unknown"
            text = access_path(repo).read_text(errors="replace").strip()
    except StorageError:
        return "unknown"
    return text if text in ACCESS else "unknown"


def link_target(path: str, etag: str) -> str:
    """The relative symlink target from ``snapshots/<commit>/<path>`` to its blob."""
    depth = path.count("/")
    return "../" * (2 + depth) + f"blobs/{etag}"


# ------------------------------------------------------------------------------- ls / rm


@dataclass(frozen=True)
class RepoEntry:
    name: str
    path: Path
    size: int
    state: str
    revisions: tuple[str, ...]
    """``<ref or commit[:7]>`` for each snapshot."""


def list_repos(root: Path) -> list[RepoEntry]:
    """Repos in the cache, by huggingface_hub's own scan: what it reports is what readers see.

    A repo the scan cannot read (a link to a missing blob, a ref to a missing snapshot) is
    listed as ``damaged``.
    """
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    try:
        info = scan_cache_dir(root)
    except CacheNotFound:
        return []
    entries = []
    for repo in sorted(info.repos, key=lambda r: (r.repo_type, r.repo_id)):
        prefix = "datasets/" if repo.repo_type == "dataset" else ""
        revisions = tuple(
            ",".join(sorted(rev.refs)) or rev.commit_hash[:7]
            for rev in sorted(repo.revisions, key=lambda r: r.commit_hash)
        )
        name = f"hf://{prefix}{repo.repo_id}"
        entries.append(RepoEntry(name, repo.repo_path, repo.size_on_disk, "complete", revisions))
    for warning in info.warnings:
        entries.append(RepoEntry(str(warning), root, 0, "damaged", ()))
    return entries


@dataclass(frozen=True)
class RepoRemoval:
    name: str
    revisions: tuple[str, ...]
    freed: int


def remove_repo(root: Path, repo_id: str, repo_type: str, revision: str | None) -> RepoRemoval:
    """Remove a revision's snapshot (or every one), and only the blobs nothing else links to."""
    from huggingface_hub import scan_cache_dir
    from huggingface_hub.errors import CacheNotFound

    name = f"hf://{'datasets/' if repo_type == 'dataset' else ''}{repo_id}"
    missing = NotFound(f"{name} is not in the cache {root}", hint="`pullman ls` shows it")
    try:
        info = scan_cache_dir(root)
    except CacheNotFound:
        raise missing from None
    repo = next((r for r in info.repos if r.repo_id == repo_id and r.repo_type == repo_type), None)
    if repo is None:
        raise missing
    commits = [
        rev.commit_hash
        for rev in repo.revisions
        if revision is None or revision in rev.refs or rev.commit_hash.startswith(revision)
    ]
    if not commits:
        raise NotFound(f"{name} has no cached revision {revision!r}")
    strategy = info.delete_revisions(*commits)
    freed = sum(common.unshared_size(blob) for blob in strategy.blobs)  # shared: another app's
    with disk_errors(root):
        strategy.execute()
        # Whole repo gone from the cache: drop pullman's staging area with it.
        if not (repo.repo_path / "snapshots").exists() or not any(
            (repo.repo_path / "snapshots").iterdir()
        ):
            shutil.rmtree(repo.repo_path, ignore_errors=True)
    return RepoRemoval(name, tuple(commits), freed)


def _entry(repo: RepoEntry) -> StoreEntry:
    if repo.state == "damaged":
        return StoreEntry(repo.name, Store.HF_CACHE, repo.path, 0, "damaged")
    note = f"({', '.join(repo.revisions)})" if repo.revisions else ""
    return StoreEntry(
        repo.name,
        Store.HF_CACHE,
        repo.path,
        repo.size,
        repo.state,
        note,
        {"revisions": list(repo.revisions)},
        files=tuple(sorted((repo.path / "blobs").glob("*"))),
    )


def repo_dirs(root: Path) -> list[Path]:
    """Every ``<type>s--<org>--<name>`` folder in the cache."""
    return sorted(root.glob("*--*--*")) if root.is_dir() else []


@dataclass(frozen=True)
class CachedFile:
    path: str
    """The file's path in the repo."""
    blob: Path
    digest: Digest
    size: int


def cached_snapshot(root: Path, ref: HfRef) -> tuple[str, list[CachedFile]]:
    """The commit the cache holds for ``ref``'s revision, and every file of that snapshot
    whose blob is there (read from the cache alone: no network)."""
    repo = repo_dir(root, ref.repo_id, ref.repo_type)
    commit = ref.revision
    if not is_commit(commit):
        try:
            commit = ref_path(repo, ref.revision).read_text().strip()
        except OSError:
            raise NotFound(
                f"{ref} is not in the HF cache {root}",
                why=f"there is no {ref.revision!r} in {repo}",
                hint=f"`pullman get {ref}` downloads it",
            ) from None
    if not is_commit(commit):
        raise StorageError(
            f"{ref_path(repo, ref.revision)} does not hold a commit id",
            hint=f"`pullman get {ref}` writes it again",
        )
    snapshot = repo / "snapshots" / commit
    blobs = Path(os.path.realpath(repo / "blobs"))
    files = []
    for link in sorted(snapshot.rglob("*")) if snapshot.is_dir() else []:
        blob = Path(os.path.realpath(link))
        digest = from_blob_name(blob.name) if link.is_symlink() else None
        if digest is None or not blob.is_file() or blob.parent != blobs:
            continue  # a link out of the repo, or no blob: not a file to share
        path = check_repo_path(link.relative_to(snapshot).as_posix())
        files.append(CachedFile(path, blob, digest, blob.stat().st_size))
    return commit, files


def _repo_id(folder: Path) -> tuple[str, str]:
    """(owner ref as shown, repo id) of a cache folder."""
    kind, _, rest = folder.name.partition("--")
    repo_id = rest.replace("--", "/", 1)
    return f"hf://{'datasets/' if kind == 'datasets' else ''}{repo_id}", repo_id


def _linked(folder: Path) -> list[str]:
    """The blob names the snapshots of a repo folder link to, each once, in order."""
    names: dict[str, None] = {}
    for link in sorted((folder / "snapshots").glob("**/*")):
        if link.is_symlink():
            names.setdefault(link.readlink().name)
    return list(names)


def _files(
    release: Release, repo: Path, commit: str, *, linked: bool
) -> tuple[list[FileSpec], list[Final]]:
    """Each file as a blob plus a relative snapshot link, or (``linked=False``) as the file
    itself at its snapshot path."""
    specs: list[FileSpec] = []
    finals: list[Final] = []
    for f in release.files:
        assert f.digest is not None  # the Hub lists a digest for every file
        etag = f.digest.hex
        key = f.key or f"hf-{etag}"
        in_snapshot = snapshot_path(repo, commit, f.path)
        if not linked:  # a commit's path names its content: the right size is the right file
            specs.append(f.spec(in_snapshot, key, content_addressed=True))
            continue
        specs.append(f.spec(blob_path(repo, etag), key, content_addressed=True))
        finals.append(Symlink(in_snapshot, link_target(f.path, etag)))
    return specs, finals


class HfCacheLayout:
    store = Store.HF_CACHE

    def root(self, options: GetOptions) -> Path:
        if options.hf_cache is not None:
            return Path(options.hf_cache).expanduser().absolute()
        return cache_dir()

    def pinned(self, options: GetOptions) -> GetOptions:
        return replace(options, hf_cache=str(self.root(options)))

    def check_writable(self, root: Path) -> None:
        common.check_writable(root, "set HF_HUB_CACHE (or HF_HOME) to a directory you can write")

    def place(self, release: Release, root: Path, options: GetOptions) -> Plan:
        """Blobs into the cache, then the snapshot links, then the ref, in that order. With
        ``HF_HUB_DISABLE_SYMLINKS`` the files themselves go into ``snapshots/``, as
        huggingface_hub puts them then. The snapshot directory is made first."""
        hub = release.repo
        if hub is None:
            raise UsageError(
                f"{release.display} is not a Hugging Face repo",
                hint="the HF cache holds files of Hub repos",
            )
        repo = repo_dir(root, hub.repo_id, hub.repo_type)
        specs, finals = _files(release, repo, hub.commit, linked=not symlinks_disabled())
        if hub.revision != hub.commit:
            finals.append(WriteFile(ref_path(repo, hub.revision), hub.commit.encode()))
        if hub.access in ACCESS:  # what `pullman serve` reads before it shares the repo
            finals.append(WriteFile(access_path(repo), hub.access.encode()))
        snapshot = repo / "snapshots" / hub.commit
        return Plan(
            release.ref,
            tuple(specs),
            root,
            staging_dir(repo),
            release.title,
            tuple(finals),
            release.display,
            Store.HF_CACHE,
            ("snapshot", snapshot),
            early=(snapshot,),
        )

    def entries(self, root: Path) -> list[StoreEntry]:
        return [_entry(r) for r in list_repos(root)]

    def remove(self, root: Path, ref: Ref) -> Removal:
        if not isinstance(ref, HfRef):
            raise UsageError(f"{ref} is not a Hugging Face repo", hint="e.g. hf://org/repo")
        revision = ref.revision if ref.revision_given else None
        gone = remove_repo(root, ref.repo_id, ref.repo_type, revision)
        summary = f"removed {gone.name}: {len(gone.revisions)} revisions, {human(gone.freed)}"
        return Removal(gone.name, gone.freed, summary, {"revisions": list(gone.revisions)})

    def blobs(self, root: Path, ref: Ref | None) -> Iterator[BlobCheck]:
        """Every blob a snapshot links to (``ref``: one repo's)."""
        only = ref.repo_id if isinstance(ref, HfRef) else None
        for folder in repo_dirs(root):
            owner, repo_id = _repo_id(folder)
            if only is not None and repo_id != only:
                continue
            for name in _linked(folder):
                digest = from_blob_name(name)
                if digest is not None:
                    yield BlobCheck(owner, folder / "blobs" / name, digest, None)

    def unreferenced(self, root: Path, min_age: float, now: float) -> Iterator[Garbage]:
        for folder in repo_dirs(root):
            used = set(_linked(folder))
            for blob in sorted((folder / "blobs").glob("*")):
                if (
                    blob.is_file()
                    and blob.name not in used
                    and common.older_than(blob, min_age, now)
                ):
                    yield Garbage("unreferenced", blob, blob.stat().st_size)

    def staging_dirs(self, root: Path) -> list[Path]:
        return [staging_dir(folder) for folder in repo_dirs(root)]
