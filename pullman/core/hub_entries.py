"""What a Hugging Face client may ask the endpoint for, and the JSON shapes it reads. Pure.

Repo ids, revisions and file paths come from URLs and choose files in the cache, so each is
checked (huggingface_hub's own rules for repo ids; branch names as git allows them, without
``..``; repo paths by :func:`pullman.core.names.check_repo_path`). The entries are what the
Hub's ``tree`` / ``paths-info`` / ``revision`` answers carry and huggingface_hub parses:
``oid`` is the git blob sha1 (of the LFS pointer, for LFS files) and ``lfs.oid`` the sha256.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from pullman.core.names import is_commit

REPO_ID = re.compile(r"(?:[\w.-]+/)?[\w.-]+", re.ASCII)
MAX_REPO_ID = 96
_REF_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,99}", re.ASCII)
DATE = "1970-01-01T00:00:00.000Z"
"""lastModified: the cache does not know when a commit was made."""

REPO_NOT_FOUND = "RepoNotFound"
REVISION_NOT_FOUND = "RevisionNotFound"
ENTRY_NOT_FOUND = "EntryNotFound"
GATED_REPO = "GatedRepo"


def valid_repo_id(repo_id: str) -> bool:
    """huggingface_hub's ``validate_repo_id``: ``[ns/]name`` of word chars, ``.`` and ``-``,
    no ``--`` or ``..``, at most 96 characters, not starting or ending with ``.`` / ``-``."""
    if len(repo_id) > MAX_REPO_ID or not REPO_ID.fullmatch(repo_id):
        return False
    if "--" in repo_id or ".." in repo_id:
        return False
    return all(part[0] not in ".-" and part[-1] not in ".-" for part in repo_id.split("/"))


def valid_revision(revision: str) -> bool:
    """A full commit sha, or a branch name (``main``, ``refs/pr/1`` style paths allowed) that
    can name a file under ``refs/`` without leaving it."""
    if is_commit(revision):
        return True
    if not revision or len(revision) > 255 or revision.endswith((".lock", "/")):
        return False
    return all(_REF_PART.fullmatch(p) and ".." not in p for p in revision.split("/"))


def valid_path(path: str) -> bool:
    """A file path inside a repo (the same rule as :func:`pullman.core.names.check_repo_path`)."""
    return (
        0 < len(path) <= 1024
        and not path.startswith("/")
        and "\\" not in path
        and all(ord(ch) >= 32 for ch in path)
        and posixpath.normpath(path) == path
        and all(part not in ("", ".", "..") for part in path.split("/"))
    )


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file (``sha1(b"blob <len>\\0" + data)``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def lfs_pointer(sha256_hex: str, size: int) -> bytes:
    """The Git LFS pointer git stores in place of an LFS file (whose blob id is ``oid``)."""
    spec = "version https://git-lfs.github.com/spec/v1"
    return f"{spec}\noid sha256:{sha256_hex}\nsize {size}\n".encode()


def git_oid(etag: str, size: int, lfs: bool) -> str:
    """The tree ``oid`` of a file: its own git blob id, or its LFS pointer's."""
    return git_blob_sha1(lfs_pointer(etag, size)) if lfs else etag


def file_entry(path: str, size: int, etag: str, lfs: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": "file",
        "oid": git_oid(etag, size, lfs),
        "size": size,
        "path": path,
    }
    if lfs:
        pointer = len(lfs_pointer(etag, size))
        entry["lfs"] = {"oid": etag, "size": size, "pointerSize": pointer}
    return entry


def dir_entry(path: str, children: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A directory entry; its ``oid`` is a stable hash of what it holds."""
    listing = "\n".join(f"{p} {oid}" for p, oid in sorted(children))
    oid = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
    return {"type": "directory", "oid": oid, "size": 0, "path": path}


def sibling(path: str, size: int, etag: str, lfs: bool, blobs: bool) -> dict[str, Any]:
    sib: dict[str, Any] = {"rfilename": path}
    if blobs:
        sib["size"] = size
        sib["blobId"] = git_oid(etag, size, lfs)
        if lfs:
            pointer = len(lfs_pointer(etag, size))
            sib["lfs"] = {"sha256": etag, "size": size, "pointerSize": pointer}
    return sib


def directories(paths: Iterable[str]) -> set[str]:
    """Every directory that holds one of ``paths`` (``a``, ``a/b`` for ``a/b/c``)."""
    out: set[str] = set()
    for path in paths:
        parts = path.split("/")[:-1]
        out.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def in_tree(path: str, under: str, recursive: bool) -> bool:
    """Whether a tree listing of ``under`` (``""``: the root) shows ``path``."""
    prefix = under + "/" if under else ""
    if not path.startswith(prefix) or path == under:
        return False
    return recursive or "/" not in path[len(prefix) :]


def body_paths(text: str, content_type: str) -> list[str] | None:
    """``paths`` of a ``paths-info`` request body: a form (what huggingface_hub sends) or JSON;
    None when a JSON body does not hold a list of strings."""
    if content_type.lower().startswith("application/json"):
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        paths = doc.get("paths") if isinstance(doc, dict) else None
        if isinstance(paths, str):
            return [paths]
        if isinstance(paths, list) and all(isinstance(p, str) for p in paths):
            return paths
        return None
    form = parse_qs(text, keep_blank_values=True)
    return form.get("paths", []) + form.get("paths[]", [])
