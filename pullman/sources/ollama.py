"""The Ollama registry: a model name to a plan of blobs, and the manifest written last.

Wire protocol (anonymous for public models): ``GET /v2/<ns>/<model>/manifests/<tag>`` with the
Docker v2 Accept header; blobs at ``/v2/<ns>/<model>/blobs/sha256:<hex>`` answer 307 to a
presigned CDN URL (or 200 directly on self-hosted registries; the engine handles both and
re-resolves an expired link). A 401 with a ``Bearer`` challenge gets an anonymous token from the
realm; the token goes to the registry only, never to the CDN.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from pullman.core.headers import parse_bearer_challenge
from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import MANIFEST_V2, MAX_MANIFEST, Manifest, parse_manifest
from pullman.core.plan import OllamaModel, Release, Store
from pullman.core.refs import OllamaRef, Ref
from pullman.core.urls import is_loopback
from pullman.errors import AccessDenied, NotFound, RemoteError
from pullman.net.client import Document, fetch
from pullman.net.errors import error_for_status
from pullman.net.retry import retrying
from pullman.sources import SourceContext

MAX_TOKEN_DOC = 64 << 10


@dataclass(frozen=True)
class Resolved:
    ref: OllamaRef
    raw: bytes
    manifest: Manifest
    auth: Mapping[str, str]


@dataclass(frozen=True)
class Registry:
    """An Ollama-compatible registry at ``base`` (``scheme://host[:port]``), and how to ask it."""

    base: str
    ctx: SourceContext

    @classmethod
    def of(cls, ref: OllamaRef, ctx: SourceContext) -> Registry:
        """The ref's own registry, or the mirror the context names."""
        return cls(ctx.mirror or ref.registry, ctx)

    @property
    def auth(self) -> dict[str, str]:
        """What to send before any challenge: a mirror's token, where one is configured."""
        token = self.ctx.mirror_token
        return {"Authorization": f"Bearer {token}"} if self.ctx.mirror and token else {}

    @property
    def insecure(self) -> bool:
        return self.base.startswith("http://")

    def manifest_url(self, ref: OllamaRef, tag: str | None = None) -> str:
        return f"{self.base}/v2/{ref.namespace}/{ref.model}/manifests/{tag or ref.tag}"

    def blob_url(self, ref: OllamaRef, digest_hex: str) -> str:
        return f"{self.base}/v2/{ref.namespace}/{ref.model}/blobs/sha256:{digest_hex}"

    async def fetch(self, url: str, headers: Mapping[str, str], limit: int) -> Document:
        """A small document; redirects followed, credentials kept on this origin."""
        ctx = self.ctx
        return await fetch(
            url,
            headers,
            limit=limit,
            insecure=self.insecure,
            deadline=ctx.deadline,
            proxies=ctx.proxies,
            follow=True,
        )


async def fetch_manifest(ref: OllamaRef, registry: Registry) -> Resolved:
    """Fetch and validate the manifest, getting a registry token first if one is demanded."""
    policy = registry.ctx.policy
    auth = registry.auth
    headers = {"Accept": MANIFEST_V2}

    async def once(tag: str | None) -> Document:
        url = registry.manifest_url(ref, tag)
        doc = await registry.fetch(url, {**headers, **auth}, MAX_MANIFEST)
        if doc.status == 429 or doc.status >= 500:
            raise error_for_status(doc.status, url, doc.headers)
        return doc

    async def get(tag: str | None = None) -> Document:
        return await retrying(lambda: once(tag), policy)

    doc = await get()
    if doc.status == 401:
        token = await retrying(lambda: _token(ref, doc, registry), policy)
        auth = {"Authorization": f"Bearer {token}"}
        doc = await get()
    if doc.status == 200:
        return Resolved(ref, doc.body, parse_manifest(doc.body), auth)
    if doc.status == 404:
        raise await _not_found(ref, doc, get)
    if doc.status in (401, 403):
        raise _private(ref)
    raise error_for_status(doc.status, doc.url, doc.headers)


async def _token(ref: OllamaRef, challenged: Document, registry: Registry) -> str:
    params = parse_bearer_challenge(challenged.headers.get("www-authenticate"))
    if params is None:
        raise _private(ref)
    realm = params["realm"]
    parts = urlsplit(realm)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteError(f"the registry {ref.host} sent an unusable token realm")
    if parts.scheme == "http" and not (registry.insecure or is_loopback(realm)):
        raise RemoteError(
            f"the registry {ref.host} wants tokens fetched over plain http",
            hint="pass --insecure if you trust this registry",
        )
    query = {"service": params.get("service", ref.host)}
    query["scope"] = params.get("scope", f"repository:{ref.namespace}/{ref.model}:pull")
    url = realm + ("&" if parts.query else "?") + urlencode(query)
    doc = await registry.fetch(url, {}, MAX_TOKEN_DOC)
    if doc.status in (401, 403):
        raise _private(ref)
    if doc.status != 200:
        raise error_for_status(doc.status, url, doc.headers)
    try:
        body = json.loads(doc.body)
        token = body.get("token") or body.get("access_token")
    except (ValueError, AttributeError, RecursionError):
        token = None
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise RemoteError(f"the registry {ref.host} sent no usable token")
    return token


def _private(ref: OllamaRef) -> AccessDenied:
    return AccessDenied(
        f"{ref.short()} needs credentials",
        why="the registry refused an anonymous pull; private models need an Ollama key "
        "(Ollama signs its requests with ~/.ollama/id_ed25519), which pullman does not use",
        hint="pull it with --via-server (the Ollama server signs the requests), or with "
        "`ollama pull`",
    )


def _error_codes(body: bytes) -> set[str]:
    try:
        doc = json.loads(body)
        return {str(e.get("code")) for e in doc.get("errors", []) if isinstance(e, dict)}
    except (ValueError, AttributeError, TypeError, RecursionError):
        return set()


async def _not_found(
    ref: OllamaRef, doc: Document, get: Callable[[str | None], Awaitable[Document]]
) -> NotFound:
    """Say which part was not found: the model, or only its tag."""
    codes = _error_codes(doc.body)
    model = f"{ref.namespace}/{ref.model}" if ref.namespace != "library" else ref.model
    where = f" on {ref.host}" if ref.host != "registry.ollama.ai" else ""
    no_model = NotFound(
        f"model {model!r} not found{where}",
        hint="check the spelling; the library is listed at https://ollama.com/library",
    )
    if "NAME_UNKNOWN" in codes or ref.tag == "latest":
        return no_model
    # MANIFEST_UNKNOWN: is it the tag, or the whole model? Ask for the default tag.
    other = await get("latest")
    if other.status != 200:
        return no_model
    return NotFound(
        f"model {model!r} has no tag {ref.tag!r}{where}",
        hint=f"the model exists; check the tag (`pullman get {model}` fetches :latest)",
    )


class OllamaSource:
    name = "ollama"
    options: frozenset[str] = frozenset()

    def pinned(self, options: GetOptions) -> GetOptions:
        return options

    def store(self, ref: Ref, options: GetOptions) -> Store:
        return Store.OLLAMA

    def registry(self, ref: OllamaRef, ctx: SourceContext) -> Registry:
        """The registry that serves ``ref``: its own host."""
        return Registry.of(ref, ctx)

    async def resolve(self, ref: Ref, ctx: SourceContext) -> Release:
        assert isinstance(ref, OllamaRef)
        return await release_of(ref, self.registry(ref, ctx))


async def release_of(ref: OllamaRef, registry: Registry) -> Release:
    """Every blob of the model (config and layers, each once), and the raw manifest."""
    resolved = await fetch_manifest(ref, registry)
    files = tuple(
        layer.remote(
            registry.blob_url(ref, layer.digest.hex),
            auth=resolved.auth,
            insecure=registry.insecure,
        )
        for layer in resolved.manifest.blobs
    )
    model = OllamaModel(ref.parts, resolved.raw)
    return Release(str(ref), ref.short(), ref.short(), files, model=model)
