"""A Hugging Face endpoint over a :class:`~pullman.serve.catalog.Catalog` (``HF_ENDPOINT``).

- ``GET /api/{models,datasets}/<repo>[/revision/<rev>]``: the repo info (``sha``, ``siblings``;
  sizes and LFS digests with ``blobs=true``), ``private`` / ``gated`` as recorded;
- ``GET /api/.../<repo>/tree/<rev>[/<path>]?recursive=&expand=``: the listing, in one page;
- ``POST /api/.../<repo>/paths-info/<rev>``: entries for the ``paths`` asked;
- ``GET /api/.../<repo>/refs``: the branches here that point at the commit ``main`` names;
- ``HEAD|GET /[datasets/]<repo>/resolve/<rev>/<path>``: the bytes, 200 / 206, with
  ``X-Repo-Commit``, ``ETag`` (sha256 for LFS files, the git blob sha1 for small ones, as the
  Hub sends them), ``X-Linked-Etag`` / ``X-Linked-Size`` for LFS files, never a redirect and
  never ``X-Xet-Hash`` or a ``xet-auth`` link (the client would go to the real Hub's Xet CAS).

Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and
``X-Error-Message``, which huggingface_hub turns into its own exceptions. A repo not recorded
as public is answered as not found unless ``serve_private``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from pullman.core import hub_entries as hub
from pullman.serve.catalog import Catalog, RepoView
from pullman.serve.respond import send_content

SUBPATHS = {"revision", "tree", "paths-info", "refs"}
KINDS = {"models": "model", "datasets": "dataset"}


def hub_error(
    status: int, code: str | None, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    head = {"X-Error-Message": message, **(headers or {})}
    if code is not None:
        head["X-Error-Code"] = code
    return web.json_response({"error": message}, status=status, headers=head)


def _segments(request: web.Request) -> list[str]:
    """The raw path's segments, each percent-decoded on its own (a ``%2F`` in a revision
    stays inside its segment)."""
    raw = request.raw_path.split("?", 1)[0]
    return [unquote(s) for s in raw.split("/")[1:]]


def _flag(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true")


class Hub:
    def __init__(self, catalog: Catalog, *, serve_private: bool = False) -> None:
        self.catalog = catalog
        self.serve_private = serve_private

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(r"/api/{kind:models|datasets}/{rest:.+}", self.api),
            web.post(r"/api/{kind:models|datasets}/{rest:.+}", self.api),
            web.get(r"/{tail:.+}", self.resolve),
        ]

    # ------------------------------------------------------------------ lookups

    async def _visible(self, kind: str, repo_id: str) -> web.Response | None:
        """None if the repo may be shown; else the answer (not found, to hide private ones)."""
        missing = hub_error(404, hub.REPO_NOT_FOUND, "Repository not found")
        if not hub.valid_repo_id(repo_id):
            return missing
        access = await self.catalog.repo_access(kind, repo_id)
        if access is None or (access != "public" and not self.serve_private):
            return missing
        return None

    async def _view(self, kind: str, repo_id: str, revision: str) -> RepoView | web.Response:
        refused = await self._visible(kind, repo_id)
        if refused is not None:
            return refused
        view = None
        if hub.valid_revision(revision):
            view = await self.catalog.revision(kind, repo_id, revision)
        if view is None:
            return hub_error(404, hub.REVISION_NOT_FOUND, f"Invalid rev id: {revision}")
        return view

    async def _split_repo(self, kind: str, parts: list[str]) -> tuple[str, list[str]]:
        """``ns/name/rest...`` or ``name/rest...`` (repos without a namespace)."""
        if len(parts) >= 2 and await self.catalog.repo_access(kind, "/".join(parts[:2])):
            return "/".join(parts[:2]), parts[2:]
        if len(parts) >= 2 and parts[1] not in SUBPATHS:
            return "/".join(parts[:2]), parts[2:]
        return parts[0], parts[1:]

    # ------------------------------------------------------------------ API

    async def api(self, request: web.Request) -> web.StreamResponse:
        segments = _segments(request)
        kind = KINDS[segments[1]]
        repo_id, rest = await self._split_repo(kind, segments[2:])
        what = rest[0] if rest else None
        if request.method == "POST":
            if what == "paths-info" and len(rest) == 2:
                return await self._paths_info(request, kind, repo_id, rest[1])
            return hub_error(405, None, "Method not allowed")
        if what is None:
            return await self._info(request, kind, repo_id, "main")
        if what == "revision" and len(rest) == 2:
            return await self._info(request, kind, repo_id, rest[1])
        if what == "tree" and len(rest) >= 2:
            return await self._tree(request, kind, repo_id, rest[1], "/".join(rest[2:]).strip("/"))
        if what == "refs" and len(rest) == 1:
            return await self._refs(kind, repo_id)
        return hub_error(404, None, "Sorry, we can't find the page.")

    async def _info(
        self, request: web.Request, kind: str, repo_id: str, revision: str
    ) -> web.StreamResponse:
        view = await self._view(kind, repo_id, revision)
        if isinstance(view, web.Response):
            return view
        blobs = _flag(request.query.get("blobs"))
        namespace = repo_id.rpartition("/")[0]
        info: dict[str, Any] = {
            "_id": view.commit[:24],
            "id": repo_id,
            "author": namespace or None,
            "sha": view.commit,
            "lastModified": hub.DATE,
            "private": view.access not in ("public", "gated"),
            "gated": "manual" if view.access == "gated" else False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [hub.sibling(f.path, f.size, f.etag.hex, f.lfs, blobs) for f in view.files],
            "usedStorage": sum(f.size for f in view.files),
        }
        if kind == "model":
            info["modelId"] = repo_id
        expand = request.query.getall("expand", []) + request.query.getall("expand[]", [])
        if expand:
            info = {k: v for k, v in info.items() if k in {"_id", "id", *expand}}
        return web.json_response(info)

    def _entries(self, view: RepoView) -> tuple[dict[str, dict[str, Any]], set[str]]:
        files = {f.path: hub.file_entry(f.path, f.size, f.etag.hex, f.lfs) for f in view.files}
        return files, hub.directories(files)

    def _dir(self, files: dict[str, dict[str, Any]], path: str) -> dict[str, Any]:
        children = [(p, str(e["oid"])) for p, e in files.items() if p.startswith(path + "/")]
        return hub.dir_entry(path, children)

    async def _tree(
        self, request: web.Request, kind: str, repo_id: str, revision: str, path: str
    ) -> web.StreamResponse:
        view = await self._view(kind, repo_id, revision)
        if isinstance(view, web.Response):
            return view
        files, dirs = self._entries(view)
        if path and path not in dirs:
            return hub_error(404, hub.ENTRY_NOT_FOUND, f"{path} does not exist on {revision}")
        recursive = _flag(request.query.get("recursive"))
        entries = [self._dir(files, d) for d in sorted(dirs) if hub.in_tree(d, path, recursive)]
        entries += [e for p, e in files.items() if hub.in_tree(p, path, recursive)]
        entries.sort(key=lambda e: str(e["path"]))
        return web.json_response(entries)

    async def _paths_info(
        self, request: web.Request, kind: str, repo_id: str, revision: str
    ) -> web.StreamResponse:
        view = await self._view(kind, repo_id, revision)
        if isinstance(view, web.Response):
            return view
        paths = await _body_paths(request)
        if paths is None:
            return hub_error(400, None, "Invalid request body: expected paths")
        files, dirs = self._entries(view)
        out: list[dict[str, Any]] = []
        for raw in paths:
            path = raw.strip("/")
            if path in files:
                out.append(files[path])
            elif path in dirs:
                out.append(self._dir(files, path))
        return web.json_response(out)

    async def _refs(self, kind: str, repo_id: str) -> web.StreamResponse:
        view = await self._view(kind, repo_id, "main")
        branches = []
        if isinstance(view, RepoView):
            branches = [
                {"name": n, "ref": f"refs/heads/{n}", "targetCommit": view.commit}
                for n in view.refs
            ]
        elif (refused := await self._visible(kind, repo_id)) is not None:
            return refused
        return web.json_response(
            {"branches": branches, "tags": [], "converts": [], "pullRequests": []}
        )

    # ------------------------------------------------------------------ resolve

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        segments = _segments(request)
        kind = "model"
        if segments and segments[0] == "datasets":
            kind, segments = "dataset", segments[1:]
        if len(segments) > 3 and segments[2] == "resolve":
            at = 2
        elif len(segments) > 2 and segments[1] == "resolve":
            at = 1
        else:
            return hub_error(404, None, "Sorry, we can't find the page.")
        repo_id = "/".join(segments[:at])
        revision = segments[at + 1]
        path = "/".join(segments[at + 2 :])
        view = await self._view(kind, repo_id, revision)
        if isinstance(view, web.Response):
            return view
        commit = {"X-Repo-Commit": view.commit}
        entry = view.file(path) if hub.valid_path(path) else None
        content = await self.catalog.hf_file(view, path) if entry is not None else None
        if entry is None or content is None:
            return hub_error(404, hub.ENTRY_NOT_FOUND, "Entry not found", commit)
        headers = {**commit, "ETag": f'"{content.etag}"'}
        if entry.lfs:
            headers["X-Linked-Etag"] = f'"{content.etag}"'
            headers["X-Linked-Size"] = str(content.size)
        return await send_content(request, content, headers)


async def _body_paths(request: web.Request) -> list[str] | None:
    """``paths`` from a form (what huggingface_hub sends) or a JSON body."""
    text = (await request.read()).decode("utf-8", "replace")
    return hub.body_paths(text, request.content_type)
