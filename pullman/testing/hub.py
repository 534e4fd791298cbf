"""A Hugging Face Hub on the simulator's origin, its LFS data on the ``cdn`` origin.

Close enough to the real Hub that ``huggingface_hub`` (2.x) works against it with
``HF_ENDPOINT=<sim.origin.url>`` (or ``endpoint=``):

- ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: repo info (``sha``, ``siblings``, with
  ``size`` / ``blobId`` / ``lfs {sha256, size, pointerSize}`` when ``blobs=true``).
- ``GET /api/{models,datasets}/<repo>/tree/<rev>[/<path>]?recursive=&expand=``: the listing,
  ``page_size`` entries a page, the next page in a ``Link: <...>; rel="next"`` header.
- ``POST /api/{models,datasets}/<repo>/paths-info/<rev>``: entries for the given paths.
- ``GET /api/{models,datasets}/<repo>/refs``: branches and tags.
- ``HEAD`` / ``GET /[datasets/]<repo>/resolve/<rev>/<path>``: small (git) files answered 200 by
  the origin with ``ETag`` (the git blob sha1) and ``X-Repo-Commit``; LFS files answered 302 to a
  signed, expiring URL on the CDN origin with ``X-Linked-Etag`` (sha256), ``X-Linked-Size`` and
  ``X-Repo-Commit``. The CDN serves the bytes with Range / 206 and, like the Xet bridge, without
  ``ETag`` or ``Last-Modified``. No Xet headers: plain HTTP is the only way.

Errors carry ``X-Error-Code`` / ``X-Error-Message`` like the real Hub: ``RepoNotFound`` (404;
401 for a private repo without a valid token), ``GatedRepo`` (401 without a token, 403 with a
token that was not approved; gated repos' metadata stays public, their files do not),
``EntryNotFound`` (404, with ``X-Repo-Commit``), ``RevisionNotFound`` (404). A token that the
Hub does not know is refused with 401 ``Invalid credentials in Authorization header``, even for
public repos, as the real Hub does. :meth:`HubSimulator.rate_limit_next` answers API / resolve
requests with 429, ``Retry-After`` and a ``RateLimit`` header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from pullman.core.hub_entries import body_paths
from pullman.testing.faults import Fault, Status, Throttle
from pullman.testing.files import (
    Data,
    SimFile,
    Sparse,
    _send_with_fault,
    body_view,
    parse_range,
    sha256_hex,
)
from pullman.testing.server import Request, send_simple
from pullman.testing.simulator import Simulator

DATE = "2026-10-21T07:28:00.000Z"
REPO_TYPES = ("model", "dataset")
_API_SUBPATHS = {"revision", "tree", "paths-info", "refs"}
_HEX40 = frozenset("0123456789abcdef")


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a file (``sha1(b"blob <len>\\0" + data)``)."""
    return _sha1(b"blob %d\0" % len(data) + data)


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def lfs_pointer(data: Data) -> bytes:
    """The Git LFS pointer file that git stores in place of ``data``."""
    oid = sha256_hex(data)
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()
    )


def is_commit(value: str) -> bool:
    return len(value) == 40 and set(value) <= _HEX40


@dataclass
class HubFile:
    """One file of one commit."""

    path: str
    size: int
    oid: str
    """The git blob sha1 (of the LFS pointer, for LFS files), as the tree API's ``oid``."""
    sim_file: SimFile
    sha256: str | None = None
    """Set for LFS files only."""
    pointer_size: int | None = None

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    @property
    def etag(self) -> str:
        """What the client names the blob after: sha256 for LFS files, else the git sha1."""
        return self.sha256 if self.sha256 is not None else self.oid

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "type": "file",
            "oid": self.oid,
            "size": self.size,
            "path": self.path,
        }
        if self.sha256 is not None:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": self.pointer_size}
        return entry

    def sibling(self, blobs: bool) -> dict[str, Any]:
        sib: dict[str, Any] = {"rfilename": self.path}
        if blobs:
            sib["size"] = self.size
            sib["blobId"] = self.oid
            if self.sha256 is not None:
                sib["lfs"] = {
                    "sha256": self.sha256,
                    "size": self.size,
                    "pointerSize": self.pointer_size,
                }
        return sib


@dataclass
class HubCommit:
    sha: str
    files: dict[str, HubFile]
    parent: str | None = None
    raw: list[dict[str, Any]] = field(default_factory=list)
    """Entries served as they are in tree listings (see :meth:`HubSimulator.add_raw_tree_entry`)."""

    def dirs(self) -> set[str]:
        out: set[str] = set()
        for path in self.files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out

    def dir_entry(self, path: str) -> dict[str, Any]:
        prefix = path + "/"
        listing = sorted((p, f.oid) for p, f in self.files.items() if p.startswith(prefix))
        oid = _sha1(json.dumps(listing).encode())
        return {"type": "directory", "oid": oid, "size": 0, "path": path}


@dataclass
class HubRepo:
    repo_id: str
    repo_type: str
    private: bool = False
    gated: bool | str = False
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    commits: dict[str, HubCommit] = field(default_factory=dict)
    default_branch: str = "main"

    def resolve(self, revision: str) -> HubCommit | None:
        rev = revision.removeprefix("refs/heads/")
        sha = self.branches.get(rev)
        if sha is None:
            sha = self.tags.get(revision.removeprefix("refs/tags/"))
        if sha is None and is_commit(revision):
            sha = revision
        return self.commits.get(sha) if sha is not None else None

    @property
    def url_path(self) -> str:
        return ("/datasets/" if self.repo_type == "dataset" else "/") + self.repo_id


class HubSimulator:
    """Installs Hub routes on ``sim.origin``; LFS files are served by ``sim.cdn``."""

    def __init__(
        self,
        sim: Simulator,
        *,
        cdn_expires: float | None = 3600.0,
        page_size: int = 3,
        bare_401: bool = False,
    ) -> None:
        """``page_size``: tree entries per page (the real Hub: 1000, 50 with ``expand``).

        ``bare_401``: answer a private repo without a valid token with a 401 that has no
        ``X-Error-Code`` (the client then cannot tell it is RepoNotFound over plain http).
        """
        self.sim = sim
        self.cdn_expires = cdn_expires
        self.page_size = page_size
        self.bare_401 = bare_401
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.tokens: dict[str, bool] = {}
        self.rate_limited = 0
        """429s answered so far."""
        self._rate_limit_left = 0
        self._retry_after = 1
        sim.origin.route("GET", r"/api/(?:models|datasets)/.+", self._api)
        sim.origin.route("POST", r"/api/(?:models|datasets)/.+", self._api)
        sim.origin.route("GET", r"/(?:datasets/)?[^/]+(?:/[^/]+)?/resolve/.+", self._resolve)

    # ------------------------------------------------------------------ content

    @property
    def endpoint(self) -> str:
        """What to set ``HF_ENDPOINT`` to."""
        return self.sim.origin.url

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, Data],
        *,
        repo_type: str = "model",
        revision: str = "main",
        lfs_threshold: int = 1024,
        gated: bool | str = False,
        private: bool = False,
        throttle: Throttle | None = None,
        faults: dict[str, list[Fault]] | None = None,
    ) -> str:
        """Commit ``files`` (path -> bytes) to branch ``revision``; returns the commit sha.

        Files of ``lfs_threshold`` bytes or more are LFS files (data on the CDN). ``faults`` are
        keyed by path and attach to the file's data (the CDN copy for LFS files); HEAD requests
        to the Hub never consume them. Calling again for the same repo adds a commit (on
        another branch, or on top of the same one); ``gated`` / ``private`` apply to the whole
        repo (the last call's values win). ``gated=True`` means ``"auto"``; ``"manual"`` is
        also accepted.
        """
        if repo_type not in REPO_TYPES:
            raise ValueError(f"repo_type must be one of {REPO_TYPES}, not {repo_type!r}")
        if not repo_id or repo_id.count("/") > 1 or "" in repo_id.split("/"):
            raise ValueError(f"bad repo id {repo_id!r}")
        if is_commit(revision) or not revision or revision.startswith("refs/"):
            raise ValueError(f"revision must be a branch name, not {revision!r}")
        for path in files:
            _check_path(path)
        unknown = set(faults or {}) - set(files)
        if unknown:
            raise ValueError(f"faults for files not in the repo: {sorted(unknown)}")
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            repo = HubRepo(repo_id, repo_type, default_branch=revision)
            self.repos[(repo_type, repo_id)] = repo
        repo.private = private
        repo.gated = "auto" if gated is True else gated
        hub_files: dict[str, HubFile] = {}
        for path, data in sorted(files.items()):
            f_faults = (faults or {}).get(path)
            hub_files[path] = self._hub_file(repo, path, data, lfs_threshold, throttle, f_faults)
        parent = repo.branches.get(revision)
        listing = [[p, f.oid] for p, f in hub_files.items()]
        sha = _sha1(json.dumps([repo_type, repo_id, parent, listing]).encode())
        repo.commits.setdefault(sha, HubCommit(sha, hub_files, parent))
        repo.branches[revision] = sha
        return sha

    def add_tag(
        self, repo_id: str, tag: str, revision: str = "main", *, repo_type: str = "model"
    ) -> str:
        """Point tag ``tag`` at ``revision``'s commit; returns that commit."""
        repo = self._repo(repo_id, repo_type)
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        repo.tags[tag] = commit.sha
        return commit.sha

    def add_token(self, token: str, approved_gated: bool = True) -> None:
        """A valid token; ``approved_gated``: its user was granted access to gated repos."""
        self.tokens[token] = approved_gated

    def add_raw_tree_entry(
        self,
        repo_id: str,
        entry: dict[str, Any],
        revision: str = "main",
        *,
        repo_type: str = "model",
    ) -> None:
        """Serve ``entry`` as it is in root tree listings, paths-info and siblings of
        ``revision``'s current commit (for hostile-Hub tests: ``../`` or absolute paths ...)."""
        self._commit(repo_id, revision, repo_type).raw.append(dict(entry))

    def rate_limit_next(self, n: int, retry_after: int = 1) -> None:
        """Answer the next ``n`` API / resolve requests with 429 and ``Retry-After``."""
        self._retry_after = retry_after
        self._rate_limit_left = n

    def commit(self, repo_id: str, revision: str = "main", *, repo_type: str = "model") -> str:
        return self._commit(repo_id, revision, repo_type).sha

    def file(
        self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model"
    ) -> HubFile:
        """A file's metadata; ``.sim_file`` counts requests and data bytes served."""
        return self._commit(repo_id, revision, repo_type).files[path]

    def url(
        self, repo_id: str, path: str, revision: str = "main", *, repo_type: str = "model"
    ) -> str:
        """The file's ``resolve`` URL, as ``huggingface_hub.hf_hub_url`` builds it."""
        prefix = "datasets/" if repo_type == "dataset" else ""
        rev = quote(revision, safe="")
        return f"{self.endpoint}/{prefix}{repo_id}/resolve/{rev}/{quote(path)}"

    def _repo(self, repo_id: str, repo_type: str) -> HubRepo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id}")
        return repo

    def _commit(self, repo_id: str, revision: str, repo_type: str) -> HubCommit:
        commit = self._repo(repo_id, repo_type).resolve(revision)
        if commit is None:
            raise KeyError(f"{repo_id} has no revision {revision!r}")
        return commit

    def _hub_file(
        self,
        repo: HubRepo,
        path: str,
        data: Data,
        lfs_threshold: int,
        throttle: Throttle | None,
        faults: list[Fault] | None,
    ) -> HubFile:
        base = f"hub/{repo.repo_type}s/{repo.repo_id}"
        if len(data) >= lfs_threshold:
            sha256 = sha256_hex(data)
            pointer = lfs_pointer(data)
            sim_file = self._sim_file(f"{base}/lfs/{sha256}", data, True, throttle, faults)
            return HubFile(path, len(data), git_blob_sha1(pointer), sim_file, sha256, len(pointer))
        if isinstance(data, Sparse):  # a small file kept in git: real bytes
            data = data.head + bytes(len(data) - len(data.head))
        oid = git_blob_sha1(data)
        sim_file = self._sim_file(f"{base}/git/{oid}", data, False, throttle, faults)
        return HubFile(path, len(data), oid, sim_file)

    def _sim_file(
        self,
        name: str,
        data: Data,
        lfs: bool,
        throttle: Throttle | None,
        faults: list[Fault] | None,
    ) -> SimFile:
        existing = self.sim.files.get(name)
        if existing is not None:
            if faults is not None:
                existing.faults = list(faults)
            if throttle is not None:
                existing.throttle = throttle
            return existing
        return self.sim.add_file(
            name,
            data,
            faults=faults or (),
            throttle=throttle,
            via_cdn=lfs,
            cdn_expires=self.cdn_expires if lfs else None,
            etag=False,  # the Xet bridge sends neither ETag nor Last-Modified
            last_modified=False,
        )

    # ------------------------------------------------------------------ gates

    async def _gate(self, request: Request) -> bool:
        """Rate limit and token check shared by every Hub request; False: already answered."""
        if self._rate_limit_left > 0:
            self._rate_limit_left -= 1
            self.rate_limited += 1
            wait = self._retry_after
            kind = "api" if request.path.startswith("/api/") else "resolvers"
            headers = [
                ("Retry-After", str(wait)),
                ("RateLimit", f'"{kind}";r=0;t={wait}'),
                ("RateLimit-Policy", f'"fixed window";"{kind}";q=500;w=300'),
            ]
            message = f"You have exceeded our hourly quotas for action '{kind}'. Retry later."
            await _error(request, 429, None, message, headers)
            return False
        token = self._bearer(request)
        if token is not None and token not in self.tokens:
            await _error(request, 401, None, "Invalid credentials in Authorization header")
            return False
        return True

    def _bearer(self, request: Request) -> str | None:
        header = request.header("authorization")
        if header is None:
            return None
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" else ""

    async def _repo_or_error(
        self, request: Request, repo_type: str, repo_id: str, *, data: bool
    ) -> HubRepo | None:
        """The repo if this request may see it (its files, with ``data``), else answer."""
        repo = self.repos.get((repo_type, repo_id))
        token = self._bearer(request)
        if repo is None:
            await _error(request, 404, "RepoNotFound", "Repository not found")
            return None
        if repo.private and token is None:
            code = None if self.bare_401 else "RepoNotFound"
            await _error(request, 401, code, "Invalid username or password.")
            return None
        if data and repo.gated and not (token is not None and self.tokens.get(token)):
            where = self.endpoint + repo.url_path
            if token is None:
                message = (
                    f"Access to {repo_type} {repo_id} is restricted. You must have access to it"
                    " and be authenticated to access it. Please log in, then ask for access at"
                    f" {where}."
                )
                await _error(request, 401, "GatedRepo", message)
            else:
                message = (
                    f"Access to {repo_type} {repo_id} is restricted and you are not in the"
                    f" authorized list. Visit {where} to ask for access."
                )
                await _error(request, 403, "GatedRepo", message)
            return None
        return repo

    # ------------------------------------------------------------------ API

    async def _api(self, request: Request) -> None:
        if not await self._gate(request):
            return
        segments = [unquote(s) for s in urlsplit(request.target).path.split("/")]
        repo_type = "model" if segments[2] == "models" else "dataset"
        repo_id, rest = self._split_repo(repo_type, segments[3:])
        repo = await self._repo_or_error(request, repo_type, repo_id, data=False)
        if repo is None:
            return
        kind = rest[0] if rest else None
        if request.method == "POST":
            if kind == "paths-info" and len(rest) == 2:
                await self._paths_info(request, repo, rest[1])
                return
            await send_simple(request, 405, b"")
            return
        if kind is None:
            await self._info(request, repo, repo.default_branch)
        elif kind == "revision" and len(rest) == 2:
            await self._info(request, repo, rest[1])
        elif kind == "tree" and len(rest) >= 2:
            await self._tree(request, repo, rest[1], "/".join(rest[2:]).strip("/"))
        elif kind == "refs" and len(rest) == 1:
            await self._refs(request, repo)
        else:
            await send_simple(request, 404, b'{"error": "Sorry, we can\'t find the page."}')

    def _split_repo(self, repo_type: str, segments: list[str]) -> tuple[str, list[str]]:
        """``ns/name/rest...`` or ``name/rest...`` (canonical repos without a namespace)."""
        if len(segments) >= 2 and (repo_type, "/".join(segments[:2])) in self.repos:
            return "/".join(segments[:2]), segments[2:]
        if (repo_type, segments[0]) in self.repos:
            return segments[0], segments[1:]
        if len(segments) >= 2 and segments[1] not in _API_SUBPATHS:
            return "/".join(segments[:2]), segments[2:]
        return segments[0], segments[1:]

    async def _commit_or_error(
        self, request: Request, repo: HubRepo, revision: str
    ) -> HubCommit | None:
        commit = repo.resolve(revision)
        if commit is None:
            await _error(request, 404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    async def _info(self, request: Request, repo: HubRepo, revision: str) -> None:
        commit = await self._commit_or_error(request, repo, revision)
        if commit is None:
            return
        blobs = _flag(request.query.get("blobs"))
        siblings = [f.sibling(blobs) for f in commit.files.values()]
        siblings += [_raw_sibling(e, blobs) for e in commit.raw if e.get("type") == "file"]
        namespace, _, _ = repo.repo_id.rpartition("/")
        info: dict[str, Any] = {
            "_id": _sha1(repo.url_path.encode())[:24],
            "id": repo.repo_id,
            "author": namespace or None,
            "sha": commit.sha,
            "lastModified": DATE,
            "createdAt": DATE,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(f.size for f in commit.files.values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        expand = (request.query.get("expand") or []) + (request.query.get("expand[]") or [])
        if expand:
            info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
        await _json(request, info)

    async def _tree(self, request: Request, repo: HubRepo, revision: str, path: str) -> None:
        commit = await self._commit_or_error(request, repo, revision)
        if commit is None:
            return
        dirs = commit.dirs()
        if path and path not in dirs:
            await _error(request, 404, "EntryNotFound", f"{path} does not exist on {revision}")
            return
        recursive = _flag(request.query.get("recursive"))
        prefix = path + "/" if path else ""

        def wanted(p: str) -> bool:
            if not p.startswith(prefix):
                return False
            return recursive or "/" not in p[len(prefix) :]

        entries = [commit.dir_entry(d) for d in sorted(dirs) if wanted(d)]
        entries += [f.tree_entry() for p, f in sorted(commit.files.items()) if wanted(p)]
        entries.sort(key=lambda e: str(e["path"]))
        if not path:
            entries += commit.raw
        cursor = _first(request.query.get("cursor"))
        try:
            offset = _decode_cursor(cursor) if cursor else 0
        except ValueError:
            await _error(request, 400, None, "Invalid cursor")
            return
        size = max(1, self.page_size)
        page = entries[offset : offset + size]
        headers: list[tuple[str, str]] = []
        if offset + size < len(entries):
            params = {k: v[0] for k, v in request.query.items() if k != "cursor" and v}
            params["cursor"] = _encode_cursor(offset + size)
            raw_path = urlsplit(request.target).path
            link = f"{self.endpoint}{raw_path}?{urlencode(params)}"
            headers.append(("Link", f'<{link}>; rel="next"'))
        await _json(request, page, headers)

    async def _paths_info(self, request: Request, repo: HubRepo, revision: str) -> None:
        commit = await self._commit_or_error(request, repo, revision)
        if commit is None:
            return
        paths = _body_paths(request)
        if paths is None:
            await _error(request, 400, None, "Invalid request body: expected paths")
            return
        dirs = commit.dirs()
        out: list[dict[str, Any]] = []
        for raw_path in paths:
            path = raw_path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry())
            elif path in dirs:
                out.append(commit.dir_entry(path))
            out += [e for e in commit.raw if e.get("path") == raw_path]
        await _json(request, out)

    async def _refs(self, request: Request, repo: HubRepo) -> None:
        def refs(names: dict[str, str], kind: str) -> list[dict[str, str]]:
            return [
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": sha}
                for n, sha in sorted(names.items())
            ]

        doc = {
            "branches": refs(repo.branches, "heads"),
            "tags": refs(repo.tags, "tags"),
            "converts": [],
            "pullRequests": [],
        }
        await _json(request, doc)

    # ------------------------------------------------------------------ resolve

    async def _resolve(self, request: Request) -> None:
        if not await self._gate(request):
            return
        segments = urlsplit(request.target).path.split("/")[1:]
        repo_type = "model"
        if segments[0] == "datasets":
            repo_type, segments = "dataset", segments[1:]
        at = 2 if len(segments) > 3 and segments[2] == "resolve" else 1
        repo_id = "/".join(unquote(s) for s in segments[:at])
        revision = unquote(segments[at + 1]) if len(segments) > at + 1 else ""
        path = "/".join(unquote(s) for s in segments[at + 2 :])
        repo = await self._repo_or_error(request, repo_type, repo_id, data=True)
        if repo is None:
            return
        commit = await self._commit_or_error(request, repo, revision)
        if commit is None:
            return
        f = commit.files.get(path)
        commit_header = [("X-Repo-Commit", commit.sha)]
        if f is None:
            await _error(request, 404, "EntryNotFound", "Entry not found", commit_header)
            return
        if f.sha256 is not None:
            location = self.sim.signed_url(f.sim_file.name, f.sim_file.cdn_expires)
            headers = [
                ("Location", location),
                ("X-Linked-Etag", f'"{f.sha256}"'),
                ("X-Linked-Size", str(f.size)),
                *commit_header,
                ("Accept-Ranges", "bytes"),
            ]
            body = f"Found. Redirecting to {location}".encode()
            await send_simple(request, 302, body, headers, "text/plain; charset=utf-8")
            return
        await self._serve_git_file(request, f, commit.sha)

    async def _serve_git_file(self, request: Request, f: HubFile, commit: str) -> None:
        """A small file straight from the Hub: Range / 206 / 416, ETag = git blob sha1."""
        sim_file = f.sim_file
        etag = f'"{f.oid}"'
        wanted = parse_range(request.header("range"), f.size)
        if request.header("if-range") not in (None, etag):
            wanted = None
        span = wanted if isinstance(wanted, tuple) else (0, f.size)
        fault = sim_file.next_fault(*span) if request.method != "HEAD" else None
        if isinstance(fault, Status):
            extra = (
                [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
            )
            sim_file.statuses.append(fault.code)
            await send_simple(request, fault.code, b'{"error": "scripted failure"}', extra)
            return
        if wanted == "unsatisfiable":
            sim_file.statuses.append(416)
            await send_simple(request, 416, b"", [("Content-Range", f"bytes */{f.size}")])
            return
        assert not isinstance(wanted, str)
        start, end = wanted if wanted is not None else (0, f.size)
        status = 206 if wanted is not None else 200
        headers = [
            ("Content-Length", str(end - start)),
            ("Content-Type", sim_file.content_type),
            ("Accept-Ranges", "bytes"),
            ("ETag", etag),
            ("X-Repo-Commit", commit),
        ]
        if status == 206:
            headers.append(("Content-Range", f"bytes {start}-{end - 1}/{f.size}"))
        sim_file.ranges.append((start, end))
        sim_file.statuses.append(status)
        await request.conn.send_head(status, headers)
        if request.method == "HEAD":
            return
        body = body_view(sim_file.data, start, end)
        throttle = sim_file.throttle or self.sim.origin_throttle
        await _send_with_fault(request, sim_file, body, fault, throttle)


# ---------------------------------------------------------------------- helpers


def _check_path(path: str) -> None:
    parts = path.split("/")
    if path.startswith("/") or "\\" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"bad repo path {path!r} (use add_raw_tree_entry for hostile entries)")


def _flag(values: list[str] | None) -> bool:
    return values is not None and len(values) > 0 and values[0].lower() in ("1", "true")


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        doc = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad cursor") from exc
    offset = doc.get("offset") if isinstance(doc, dict) else None
    if not isinstance(offset, int) or offset < 0:
        raise ValueError("bad cursor")
    return offset


def _body_paths(request: Request) -> list[str] | None:
    """``paths`` from a form (what huggingface_hub sends) or a JSON body."""
    text = request.body.decode("utf-8", "replace")
    return body_paths(text, request.header("content-type") or "")


def _raw_sibling(entry: dict[str, Any], blobs: bool) -> dict[str, Any]:
    sib: dict[str, Any] = {"rfilename": entry.get("path")}
    if blobs:
        sib["size"] = entry.get("size")
        sib["blobId"] = entry.get("oid")
        lfs = entry.get("lfs")
        if isinstance(lfs, dict):
            sib["lfs"] = {
                "sha256": lfs.get("oid"),
                "size": lfs.get("size"),
                "pointerSize": lfs.get("pointerSize"),
            }
    return sib


async def _json(request: Request, doc: object, headers: Iterable[tuple[str, str]] = ()) -> None:
    body = json.dumps(doc, separators=(",", ":")).encode()
    await send_simple(request, 200, body, list(headers), "application/json; charset=utf-8")


async def _error(
    request: Request,
    status: int,
    code: str | None,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    head = [("X-Error-Code", code)] if code is not None else []
    shown = message.encode("ascii", "backslashreplace").decode()  # headers are latin-1
    head += [("X-Error-Message", shown), *headers]
    body = json.dumps({"error": message}).encode()
    await send_simple(request, status, body, head, "application/json; charset=utf-8")
