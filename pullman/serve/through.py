"""The pull-through catalog: the local one first; what it lacks, from upstream through
:class:`~pullman.serve.pullthrough.PullThrough`.

- A manifest the store lacks (by tag) is fetched from the upstream registry and answered with
  its exact bytes, and the model's download starts (or is joined); by digest, only one a job
  here fetched.
- A blob of such a model is answered from its landing: a complete file once committed (sent
  with ``sendfile``), else a reader that yields each range once its bytes are written. Blobs are
  scoped to their repository, as in the local catalog: only a job fetching ``name`` serves them.
- A model the upstream does not have is a miss (404); an upstream that fails raises the
  engine's error (the server answers an error status, or cuts a started response short).

- A Hub repo the cache lacks: its access, revision, files (sizes, digests) and commit come
  from the upstream Hub through pullman's HF source (the metadata calls ``get`` makes); a
  revision asked for starts (or joins) the download of the repo at that revision, and each
  file is answered from its landing as for blobs. Its access is the Hub's (private and gated
  repos are hidden unless ``--serve-private``, as in the local catalog).

Listings (tags, repositories) are the local catalog's. :func:`upstream_errors` turns an
upstream failure before any byte into an error status in the asker's dialect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from pullman.core import oci_names as oci
from pullman.core.digests import Digest, sha256
from pullman.core.plan import Plan, Symlink, WriteFile
from pullman.errors import AccessDenied, NotFound, PullmanError
from pullman.layouts.hf_cache import ACCESS_FILE
from pullman.serve.catalog import Catalog, Content, RepoFile, RepoView, StoredManifest
from pullman.serve.pullthrough import PullThrough, hub_name
from pullman.transfer.landing import Landing


class PullThroughCatalog:
    """``local`` first, then ``pull`` for what is missing."""

    def __init__(self, local: Catalog, pull: PullThrough) -> None:
        self.local = local
        self.pull = pull

    # ------------------------------------------------------------------ OCI

    async def manifest(self, name: str, reference: str) -> StoredManifest | None:
        stored = await self.local.manifest(name, reference)
        if stored is not None:
            return stored
        try:
            fetched = await self.pull.ollama_manifest(name, reference)
        except (NotFound, AccessDenied):  # not there, or not for us: not found here
            return None
        return StoredManifest(fetched.raw, fetched.media_type, sha256(fetched.digest[7:]))

    async def blob(self, name: str, digest: Digest) -> Content | None:
        content = await self.local.blob(name, digest)
        if content is not None:
            return content
        landing = await self.pull.file(str(digest), name)
        if landing is None or landing.size is None:
            return None
        return _content(landing, digest)

    async def tags(self, name: str) -> list[str] | None:
        return await self.local.tags(name)

    async def repositories(self) -> list[str]:
        return await self.local.repositories()

    # ------------------------------------------------------------------ Hugging Face

    async def repo_access(self, kind: str, repo_id: str) -> str | None:
        fetching = self.pull.hf_any(kind, repo_id)
        if fetching is not None:  # the cache has it half-written, its access not yet recorded
            return _access(fetching)
        access = await self.local.repo_access(kind, repo_id)
        if access is not None:
            return access
        try:
            plan = await self.pull.hf_metadata(kind, repo_id, "main")
        except (NotFound, AccessDenied):  # not there, or not for us: not found here
            return None
        return _access(plan)

    async def revision(self, kind: str, repo_id: str, revision: str) -> RepoView | None:
        known = self.pull.hf_known(kind, repo_id, revision)  # a job here: its whole listing
        if known is not None:
            return _view(kind, repo_id, revision, known)
        view = await self.local.revision(kind, repo_id, revision)
        if view is not None:
            return view
        try:
            plan = await self.pull.hf_repo(kind, repo_id, revision)
        except (NotFound, AccessDenied):  # not there, or not for us: not found here
            return None
        return _view(kind, repo_id, revision, plan)

    async def hf_file(self, view: RepoView, path: str) -> Content | None:
        content = await self.local.hf_file(view, path)
        if content is not None:
            return content
        entry = view.file(path)
        if entry is None:
            return None
        landing = await self.pull.file(str(entry.etag), hub_name(view.kind, view.repo_id))
        if landing is None or landing.size is None:
            return None
        return _content(landing, entry.etag)


def _access(plan: Plan) -> str:
    """What the Hub said of the repo (``public``, ``private``, ``gated``), else ``unknown``."""
    for final in plan.finals:
        if isinstance(final, WriteFile) and final.path.name == ACCESS_FILE:
            return final.data.decode("ascii", "replace").strip() or "unknown"
    return "unknown"


def _view(kind: str, repo_id: str, revision: str, plan: Plan) -> RepoView:
    """A repo at one commit as its plan has it: each snapshot link, its blob's size and digest."""
    assert plan.location is not None
    snapshot = plan.location[1]
    blobs = {spec.dest.name: spec for spec in plan.files}
    files = []
    for final in plan.finals:
        if not isinstance(final, Symlink) or not final.path.is_relative_to(snapshot):
            continue
        spec = blobs.get(Path(final.target).name)
        if spec is not None and spec.digest is not None and spec.size is not None:
            path = final.path.relative_to(snapshot).as_posix()
            files.append(RepoFile(path, spec.size, spec.digest))
    access = _access(plan)
    refs = (revision,) if revision != snapshot.name else ()
    return RepoView(kind, repo_id, snapshot.name, tuple(files), access == "public", access, refs)


def _content(landing: Landing, digest: Digest) -> Content:
    """Always a reader: it follows the file through its commit and its move into ``blobs/``
    (a path could be renamed away between this answer and its ``sendfile``); once the job is
    done the local catalog answers with the path."""
    assert landing.size is not None
    return Content(landing.size, digest, read=landing.read)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def upstream_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """An upstream failure before any byte was sent: 502 (the registry's JSON error, or the
    Hub's ``X-Error-Message``), not a traceback; the server carries on. (After the first byte
    the response is cut short instead: the client sees it end early.)"""
    try:
        return await handler(request)
    except PullmanError as exc:
        message = f"upstream: {exc.what}"
        if request.path.startswith("/v2/"):
            body = oci.error_body("UNKNOWN", message)
            return web.Response(status=502, body=body, content_type="application/json")
        return web.json_response(
            {"error": message}, status=502, headers={"X-Error-Message": message}
        )
