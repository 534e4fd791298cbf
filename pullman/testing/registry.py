"""An Ollama registry on the simulator's origin: manifests, blob redirects, tokens, errors.

- ``GET /v2/<ns>/<model>/manifests/<tag>``: the raw manifest bytes (chunked, no Content-Length,
  as the real registry sends them), or Docker-style ``NAME_UNKNOWN`` / ``MANIFEST_UNKNOWN``.
- ``GET /v2/<ns>/<model>/blobs/sha256:<hex>``: 307 to a signed, expiring URL on the CDN origin
  (``redirect=False``: 200 with the bytes, as some self-hosted registries do).
- ``auth="token"``: every registry request needs ``Authorization: Bearer <token>``; a 401 with a
  ``WWW-Authenticate: Bearer`` challenge points at ``/token``, which hands out anonymous tokens,
  except for repositories marked private (401).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from pullman.testing.faults import Fault, Throttle
from pullman.testing.files import Data, SimFile, serve_file, sha256_hex
from pullman.testing.server import Request, send_simple
from pullman.testing.simulator import Simulator

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"


def layer_type(kind: str) -> str:
    return f"application/vnd.ollama.image.{kind}"


def build_manifest(config: bytes, layers: Iterable[tuple[str, Data]]) -> bytes:
    """Manifest bytes in the registry's own formatting (so byte-identity can be checked)."""

    def desc(media_type: str, data: Data) -> dict[str, object]:
        return {
            "mediaType": media_type,
            "digest": "sha256:" + sha256_hex(data),
            "size": len(data),
        }

    doc = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": desc(CONFIG_TYPE, config),
        "layers": [desc(layer_type(kind), data) for kind, data in layers],
    }
    return json.dumps(doc, indent=3).encode() + b"\n"


@dataclass
class SimModel:
    repo: str
    tags: dict[str, bytes] = field(default_factory=dict)
    private: bool = False


class OllamaRegistry:
    """Installs registry routes on ``sim.origin``; blobs are files served via ``sim.cdn``."""

    def __init__(
        self,
        sim: Simulator,
        *,
        auth: str = "none",
        redirect: bool = True,
        cdn_expires: float | None = 3600.0,
        manifest_mirror: bool = False,
    ) -> None:
        """``manifest_mirror``: authorized manifest requests are redirected (307) to the same
        path on the CDN origin, which serves manifests without auth (as a mirror would)."""
        self.sim = sim
        self.auth = auth
        self.redirect = redirect
        self.manifest_mirror = manifest_mirror
        self.cdn_expires = cdn_expires
        self.models: dict[str, SimModel] = {}
        self.tokens: set[str] = set()
        self.manifest_requests = 0
        repo = r"/v2/(?P<repo>[^/]+/[^/]+)"
        sim.origin.route("GET", repo + r"/manifests/(?P<tag>[^/]+)", self._manifest)
        sim.origin.route("GET", repo + r"/blobs/sha256:(?P<hex>[0-9a-f]{64})", self._blob)
        sim.origin.route("GET", r"/token", self._token)
        sim.cdn.route("GET", repo + r"/manifests/(?P<tag>[^/]+)", self._mirrored)

    @property
    def host(self) -> str:
        """The registry's host:port, as it appears in model names."""
        return self.sim.origin.url.removeprefix("http://")

    def name(self, repo: str, tag: str = "latest") -> str:
        return f"{self.host}/{repo}:{tag}"

    def add_model(
        self,
        repo: str,
        tag: str = "latest",
        *,
        layers: Iterable[tuple[str, Data]],
        config: bytes = b'{"model_format":"gguf","model_family":"llama"}',
        throttle: Throttle | None = None,
        faults: dict[str, list[Fault]] | None = None,
        private: bool = False,
    ) -> bytes:
        """Register a model; returns its manifest bytes. ``faults`` is keyed by layer kind."""
        layers = list(layers)
        raw = build_manifest(config, layers)
        model = self.models.setdefault(repo, SimModel(repo))
        model.tags[tag] = raw
        model.private = private
        for kind, data in [("config", config), *layers]:
            self.add_blob(data, throttle=throttle, faults=(faults or {}).get(kind, ()))
        return raw

    def set_manifest(self, repo: str, tag: str, raw: bytes) -> None:
        """Serve arbitrary bytes as a manifest (for hostile-registry tests)."""
        self.models.setdefault(repo, SimModel(repo)).tags[tag] = raw

    def add_blob(
        self, data: Data, *, throttle: Throttle | None = None, faults: Iterable[Fault] = ()
    ) -> SimFile:
        name = "blobs/sha256-" + sha256_hex(data)
        existing = self.sim.files.get(name)
        if existing is not None:
            return existing
        return self.sim.add_file(
            name,
            data,
            throttle=throttle,
            faults=faults,
            via_cdn=self.redirect,
            cdn_expires=self.cdn_expires,
        )

    def blob(self, data_or_hex: Data | str) -> SimFile:
        hex_digest = data_or_hex if isinstance(data_or_hex, str) else sha256_hex(data_or_hex)
        return self.sim.files["blobs/sha256-" + hex_digest]

    # ------------------------------------------------------------------ handlers

    def _authorized(self, request: Request, repo: str) -> bool:
        if self.auth == "none":
            return True
        header = request.header("authorization") or ""
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def _challenge(self, request: Request, repo: str) -> None:
        realm = f"{self.sim.origin.url}/token"
        challenge = f'Bearer realm="{realm}",service="{self.host}",scope="repository:{repo}:pull"'
        body = _errors("UNAUTHORIZED", "authentication required")
        await send_simple(request, 401, body, [("WWW-Authenticate", challenge)])

    async def _manifest(self, request: Request) -> None:
        assert request.match is not None
        repo, tag = request.match.group("repo"), request.match.group("tag")
        self.manifest_requests += 1
        if not self._authorized(request, repo):
            await self._challenge(request, repo)
            return
        if self.manifest_mirror and request.origin is self.sim.origin:
            location = self.sim.cdn.url + request.path
            await send_simple(request, 307, b"", [("Location", location)])
            return
        await self._serve_manifest(request, repo, tag)

    async def _mirrored(self, request: Request) -> None:
        assert request.match is not None
        await self._serve_manifest(request, request.match.group("repo"), request.match.group("tag"))

    async def _serve_manifest(self, request: Request, repo: str, tag: str) -> None:
        model = self.models.get(repo)
        if model is None:
            await send_simple(request, 404, _errors("NAME_UNKNOWN", "repository name not known"))
            return
        raw = model.tags.get(tag)
        if raw is None:
            await send_simple(request, 404, _errors("MANIFEST_UNKNOWN", "manifest unknown"))
            return
        await request.conn.send_head(
            200, [("Content-Type", MANIFEST_V2), ("Transfer-Encoding", "chunked")]
        )
        if request.method != "HEAD":
            await request.conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(raw), raw))

    async def _blob(self, request: Request) -> None:
        assert request.match is not None
        repo, hex_digest = request.match.group("repo"), request.match.group("hex")
        if not self._authorized(request, repo):
            await self._challenge(request, repo)
            return
        f = self.sim.files.get("blobs/sha256-" + hex_digest)
        if f is None:
            await send_simple(request, 404, _errors("BLOB_UNKNOWN", "blob unknown to registry"))
            return
        if self.redirect:
            location = self.sim.signed_url(f.name, f.cdn_expires)
            await send_simple(request, 307, b"", [("Location", location)])
            return
        await serve_file(request, f, f.throttle)

    async def _token(self, request: Request) -> None:
        scope = (request.query.get("scope") or [""])[0]
        repo = scope.removeprefix("repository:").rsplit(":", 1)[0]
        model = self.models.get(repo)
        if model is not None and model.private:
            await send_simple(request, 401, _errors("UNAUTHORIZED", "not authorized"))
            return
        token = secrets.token_hex(16)
        self.tokens.add(token)
        await send_simple(request, 200, json.dumps({"token": token}).encode())


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()
