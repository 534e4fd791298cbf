"""The OCI distribution read API over a :class:`~pullman.serve.catalog.Catalog`.

``GET /v2/``, ``GET|HEAD /v2/<name>/manifests/<tag|digest>``, ``GET|HEAD
/v2/<name>/blobs/<digest>``, ``GET /v2/<name>/tags/list``, ``GET /v2/_catalog``; errors as the
registry's JSON documents. Names, references and digests are checked here
(:mod:`pullman.core.oci_names`) before the catalog is asked; the manifest is answered with its
stored bytes exactly, a blob through :func:`pullman.serve.respond.send_content`.
"""

from __future__ import annotations

import json

from aiohttp import web

from pullman.core import oci_names as oci
from pullman.core.digests import parse_prefixed
from pullman.serve.catalog import Catalog
from pullman.serve.guard import REALM_PATH, presented_token
from pullman.serve.respond import send_content

API_VERSION = {"Docker-Distribution-Api-Version": "registry/2.0"}
MAX_CATALOG = 10_000


def registry_error(status: int, code: str, message: str, detail: object = None) -> web.Response:
    return web.Response(
        status=status,
        body=oci.error_body(code, message, detail),
        content_type="application/json",
        headers=API_VERSION,
    )


def _json(doc: object) -> web.Response:
    return web.Response(
        body=json.dumps(doc).encode(), content_type="application/json", headers=API_VERSION
    )


class Registry:
    """The routes, bound to one catalog."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2/", self.base),
            web.get("/v2", self.base),
            web.get("/v2/_catalog", self.repositories),
            web.get(REALM_PATH, self.token),
            web.get(r"/v2/{name:.+}/manifests/{reference:[^/]*}", self.manifest),
            web.get(r"/v2/{name:.+}/blobs/{digest:.*}", self.blob),
            web.get(r"/v2/{name:.+}/tags/list", self.tags),
            web.route("*", r"/v2/{tail:.*}", self.unsupported),
        ]

    async def base(self, request: web.Request) -> web.StreamResponse:
        return _json({})

    async def token(self, request: web.Request) -> web.StreamResponse:
        """The docker token endpoint: the guard let the request in, so what it shows (a
        Basic password, or a bearer token) is the server's token, handed back as a bearer."""
        shown = presented_token(request.headers.get("Authorization"))
        if not shown:
            return registry_error(404, oci.UNSUPPORTED, "this server wants no token")
        return _json({"token": shown, "access_token": shown, "expires_in": 3600})

    async def unsupported(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return registry_error(405, oci.UNSUPPORTED, "this registry is read-only")
        return registry_error(404, oci.NAME_UNKNOWN, "repository name not known to registry")

    def _name(self, request: web.Request) -> str | web.Response:
        name = request.match_info["name"]
        if not oci.valid_name(name):
            return registry_error(400, oci.NAME_INVALID, "invalid repository name")
        return name

    async def manifest(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        if isinstance(name, web.Response):
            return name
        text = request.match_info["reference"]
        reference = oci.parse_reference(text)
        if reference is None:
            code, message = (
                oci.digest_error(text) if ":" in text else (oci.TAG_INVALID, "invalid tag")
            )
            return registry_error(400, code, message)
        stored = await self.catalog.manifest(name, str(reference))
        if stored is None:
            return registry_error(
                404, oci.MANIFEST_UNKNOWN, "manifest unknown", {"Name": name, "Revision": text}
            )
        headers = {
            **API_VERSION,
            "Docker-Content-Digest": str(stored.digest),
            "ETag": f'"{stored.digest}"',
        }
        response = web.Response(body=stored.data, headers=headers)
        response.content_type = stored.media_type
        return response

    async def blob(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        if isinstance(name, web.Response):
            return name
        text = request.match_info["digest"]
        digest = parse_prefixed(text)
        if digest is None:
            code, message = oci.digest_error(text)
            return registry_error(400, code, message)
        content = await self.catalog.blob(name, digest)
        if content is None:
            return registry_error(
                404, oci.BLOB_UNKNOWN, "blob unknown to registry", {"Digest": text}
            )
        headers = {
            **API_VERSION,
            "Docker-Content-Digest": str(digest),
            "ETag": f'"{digest}"',
        }
        return await send_content(request, content, headers)

    async def tags(self, request: web.Request) -> web.StreamResponse:
        name = self._name(request)
        if isinstance(name, web.Response):
            return name
        tags = await self.catalog.tags(name)
        if tags is None:
            return registry_error(404, oci.NAME_UNKNOWN, "repository name not known to registry")
        return _json({"name": name, "tags": tags})

    async def repositories(self, request: web.Request) -> web.StreamResponse:
        names = await self.catalog.repositories()
        return _json({"repositories": names[:MAX_CATALOG]})
