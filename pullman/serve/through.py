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

Listings (tags, repositories) and the Hub side are the local catalog's.
"""

from __future__ import annotations

from pullman.core.digests import Digest, sha256
from pullman.errors import NotFound
from pullman.serve.catalog import Catalog, Content, RepoView, StoredManifest
from pullman.serve.pullthrough import PullThrough
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
        except NotFound:
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

    async def has_repo(self, kind: str, repo_id: str) -> bool:
        return await self.local.has_repo(kind, repo_id)

    async def revision(self, kind: str, repo_id: str, revision: str) -> RepoView | None:
        return await self.local.revision(kind, repo_id, revision)

    async def hf_file(self, view: RepoView, path: str) -> Content | None:
        return await self.local.hf_file(view, path)


def _content(landing: Landing, digest: Digest) -> Content:
    """Always a reader: it follows the file through its commit and its move into ``blobs/``
    (a path could be renamed away between this answer and its ``sendfile``); once the job is
    done the local catalog answers with the path."""
    assert landing.size is not None
    return Content(landing.size, digest, read=landing.read)
