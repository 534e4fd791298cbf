"""The Hugging Face cache, exactly as transformers, llama.cpp, vLLM and huggingface_hub read it.

::

    <cache>/models--<org>--<name>/               (datasets--... for datasets)
        blobs/<etag>                             sha256 for LFS files, git blob sha1 for small ones
        snapshots/<commit>/<path>                relative symlinks to ../../blobs/<etag>
        refs/<revision>                          the 40-char commit, no trailing newline
        .pullman-partial/                        pullman's staging area (ignored by readers)

Blobs are renamed into place after they verify, then the snapshot links, then the ref: a reader
never sees a link to a missing blob or a ref to a missing snapshot. ``--local-dir`` instead
writes plain files under a directory of the user's choosing.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pullman.errors import NotFound, RemoteError
from pullman.transfer.staging import disk_errors

STAGING = ".pullman-partial"
_COMMIT = re.compile(r"[0-9a-f]{40}")


def cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser().absolute()
    if env.get("HF_HOME"):
        home = Path(env["HF_HOME"])
    else:
        home = Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
    return (home.expanduser() / "hub").absolute()


def local_dir(text: str) -> Path:
    """``--local-dir``: plain files, as ``hf download --local-dir`` writes them."""
    return Path(text).expanduser().absolute()


def repo_dir(root: Path, repo_id: str, repo_type: str) -> Path:
    return root / f"{repo_type}s--{repo_id.replace('/', '--')}"


def blob_path(repo: Path, etag: str) -> Path:
    return repo / "blobs" / etag


def snapshot_path(repo: Path, commit: str, path: str) -> Path:
    return repo / "snapshots" / commit / path


def ref_path(repo: Path, revision: str) -> Path:
    return repo / "refs" / revision


def staging_dir(repo: Path) -> Path:
    return repo / STAGING


def link_target(path: str, etag: str) -> str:
    """The relative symlink target from ``snapshots/<commit>/<path>`` to its blob."""
    depth = path.count("/")
    return "../" * (2 + depth) + f"blobs/{etag}"


def check_repo_path(path: str) -> str:
    """A file path from a repo listing, refused unless it stays inside the repo folder."""
    bad = (
        not path
        or len(path) > 1024
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(ord(ch) < 32 for ch in path)
        or posixpath.normpath(path) != path
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    if bad:
        raise RemoteError(
            f"refusing the repo file path {path[:120]!r}",
            why="it would not stay inside the repo folder",
            hint="the Hub (or what answers as the Hub) is broken or hostile; nothing was written",
        )
    return path


def check_commit(commit: str) -> str:
    if not _COMMIT.fullmatch(commit):
        raise RemoteError(f"the Hub sent an invalid commit id {commit[:60]!r}")
    return commit


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
    with disk_errors(root):
        strategy.execute()
        # Whole repo gone from the cache: drop pullman's staging area with it.
        if not (repo.repo_path / "snapshots").exists() or not any(
            (repo.repo_path / "snapshots").iterdir()
        ):
            shutil.rmtree(repo.repo_path, ignore_errors=True)
    return RepoRemoval(name, tuple(commits), strategy.expected_freed_size)
