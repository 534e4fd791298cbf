"""Ollama registry manifests: strict parsing of untrusted JSON. Pure.

A manifest names the blobs a model needs; each digest becomes a file name in the store
(``blobs/sha256-<hex>``), so nothing is accepted outside the schema: ``schemaVersion`` 2, known
media types, ``sha256:`` + 64 lowercase hex digests, sane sizes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pullman.core.digests import Digest, parse_prefixed
from pullman.core.headers import MAX_SIZE
from pullman.core.plan import RemoteFile
from pullman.errors import RemoteError

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
LAYER_PREFIX = "application/vnd.ollama.image."
MAX_MANIFEST = 4 << 20
MAX_LAYERS = 4096
_LAYER_TYPE = re.compile(r"application/vnd\.ollama\.image\.[a-z0-9][a-z0-9.+-]{0,63}")


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: Digest
    size: int

    @property
    def kind(self) -> str:
        """``model``, ``template``, ``license`` ...; ``config`` for the config blob."""
        if self.media_type == CONFIG_TYPE:
            return "config"
        return self.media_type.removeprefix(LAYER_PREFIX)

    @property
    def blob_name(self) -> str:
        return f"sha256-{self.digest.hex}"

    def remote(
        self, url: str = "", *, auth: Mapping[str, str] | None = None, insecure: bool = False
    ) -> RemoteFile:
        """This blob as a file of a release (``url`` empty: read from a store, not fetched)."""
        return RemoteFile(
            url=url,
            path=self.blob_name,
            name=f"{self.kind} {self.digest.hex[:12]}",
            size=self.size,
            digest=self.digest,
            key=self.blob_name,
            auth=auth or {},
            insecure=insecure,
            role=self.kind,
        )


@dataclass(frozen=True)
class Manifest:
    config: Layer
    layers: tuple[Layer, ...]

    @property
    def blobs(self) -> tuple[Layer, ...]:
        """Config and layers, each digest once, in manifest order."""
        seen: dict[str, Layer] = {}
        for layer in (self.config, *self.layers):
            seen.setdefault(layer.digest.hex, layer)
        return tuple(seen.values())

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.blobs)


class BadManifest(RemoteError):
    """The registry sent something that is not a valid Ollama manifest."""


def _bad(why: str) -> BadManifest:
    return BadManifest(
        "the registry sent an invalid manifest",
        why=why,
        hint="the registry is broken or not an Ollama registry; nothing was written",
    )


def _layer(raw: object, where: str, *, config: bool) -> Layer:
    if not isinstance(raw, dict):
        raise _bad(f"{where} is not an object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str):
        raise _bad(f"{where} has no mediaType")
    if config and media_type != CONFIG_TYPE:
        raise _bad(f"{where} has media type {media_type[:80]!r}, expected {CONFIG_TYPE}")
    if not config and not _LAYER_TYPE.fullmatch(media_type):
        raise _bad(f"{where} has an unknown media type {media_type[:80]!r}")
    parsed = parse_prefixed(digest) if isinstance(digest, str) else None
    if parsed is None:
        raise _bad(f"{where} has an invalid digest {str(digest)[:80]!r}")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise _bad(f"{where} has an invalid size {str(size)[:40]!r}")
    return Layer(media_type, parsed, size)


def parse_manifest(raw: bytes) -> Manifest:
    if len(raw) > MAX_MANIFEST:
        raise _bad(f"it is {len(raw)} bytes long")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _bad(f"it is not JSON ({exc})") from None
    except RecursionError:
        raise _bad("it nests JSON deeper than any manifest does") from None
    if not isinstance(doc, dict):
        raise _bad("it is not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _bad("schemaVersion is not 2")
    if doc.get("mediaType", MANIFEST_V2) != MANIFEST_V2:
        raise _bad(f"unexpected mediaType {str(doc.get('mediaType'))[:80]!r}")
    layers = doc.get("layers")
    if not isinstance(layers, list) or not layers:
        raise _bad("it lists no layers")
    if len(layers) > MAX_LAYERS:
        raise _bad(f"it lists {len(layers)} layers")
    return Manifest(
        config=_layer(doc.get("config"), "config", config=True),
        layers=tuple(_layer(x, f"layer {i}", config=False) for i, x in enumerate(layers)),
    )
