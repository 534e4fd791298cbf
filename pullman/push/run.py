"""``pullman push``: a model of the local Ollama store into an OCI registry, manifest last.

The blobs go first (:mod:`pullman.push.blob`: skipped, mounted or uploaded, resumably), one at
a time over one connection; then ``PUT /v2/<repo>/manifests/<tag>`` with the stored manifest
bytes and their own ``Content-Type``. The registry's ``Docker-Content-Digest`` must be the
sha256 of those bytes: a registry that rewrote the manifest would serve a model whose digest
Ollama does not know. Progress is observable with :meth:`Push.statistics` (the shape every
progress view draws).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pullman.core.digests import Digest
from pullman.core.push_target import PushTarget
from pullman.core.refs import OllamaRef
from pullman.core.registry_auth import push_scopes
from pullman.core.uploads import DEFAULT_CHUNK
from pullman.errors import IntegrityError, collapse_groups
from pullman.net.registry_client import RegistryClient, registry_error
from pullman.net.retry import retrying
from pullman.push.blob import BlobContext, BlobPush, BlobReport
from pullman.push.local import LocalModel, docker_credentials, local_model, store_repos
from pullman.push.state import PushState
from pullman.transfer.config import TransferConfig
from pullman.transfer.meter import RateMeter
from pullman.transfer.stats import TransferStats

MAX_SOURCES = 8
"""Mount sources asked for in one token (scopes); more would make a very long token request."""


@dataclass(frozen=True)
class PushOptions:
    chunk_size: int = DEFAULT_CHUNK
    insecure: bool = False
    grace: float = 15.0
    """Seconds a chunk in flight may take to finish once the push is stopped."""


@dataclass(frozen=True)
class PushResult:
    ref: OllamaRef
    target: PushTarget
    manifest_digest: str
    blobs: tuple[BlobReport, ...]

    def count(self, action: str) -> int:
        return sum(b.action == action for b in self.blobs)

    @property
    def bytes_sent(self) -> int:
        return sum(b.sent for b in self.blobs)

    def to_json(self) -> dict[str, object]:
        return {
            "ref": self.ref.short(),
            "destination": str(self.target),
            "registry": self.target.base,
            "manifest_digest": self.manifest_digest,
            "skipped": self.count("skipped"),
            "mounted": self.count("mounted"),
            "uploaded": self.count("uploaded"),
            "bytes_sent": self.bytes_sent,
            "blobs": [_blob_json(b) for b in self.blobs],
        }


def _blob_json(b: BlobReport) -> dict[str, object]:
    return {
        "digest": str(b.layer.digest),
        "kind": b.layer.kind,
        "size": b.layer.size,
        "action": b.action,
        "sent": b.sent,
        "resumed_from": b.resumed_from,
        "restarted": b.restarted,
        "mounted_from": b.mounted_from,
        "retries": b.retries,
    }


class Push:
    """One model to one destination; ``run()`` once."""

    def __init__(
        self,
        ref: OllamaRef,
        target: PushTarget,
        *,
        store: Path,
        state_dir: Path,
        transfer: TransferConfig,
        options: PushOptions,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.ref = ref
        self.target = target
        self.store = store
        self.state = PushState(state_dir, target.base)
        self.transfer = transfer
        self.options = options
        self.env = os.environ if env is None else env
        self._blobs: list[BlobPush] = []
        self._meters: dict[str, RateMeter] = {}

    def statistics(self) -> list[TransferStats]:
        now = time.monotonic()
        return [self._stats(b.report, now) for b in self._blobs]

    def _stats(self, r: BlobReport, now: float) -> TransferStats:
        name = f"{r.layer.kind} {r.layer.digest.hex[:12]}"
        meter = self._meters.setdefault(name, RateMeter())
        meter.feed(now, r.sent)
        state = {"uploading": "uploading", "checking": "checking"}.get(r.action, r.action)
        return TransferStats(
            name, state, r.layer.size, r.held, 0, r.sent, r.resumed_from,
            meter.rate(now), 1, 0, r.retries, 0, 0, r.note,
        )  # fmt: skip

    async def run(self) -> PushResult:
        model = local_model(self.store, self.ref)
        sources = self._sources(model)
        creds = docker_credentials(self.target.host, self.env)
        wanted = [s for d in model.manifest.blobs for s in sources.get(d.digest.hex, [])]
        scopes = push_scopes(self.target.repo, list(dict.fromkeys(wanted))[:MAX_SOURCES])
        client = RegistryClient(
            self.target.base,
            credentials=creds.credentials,
            helper=creds.helper,
            scopes=scopes,
            insecure=self.options.insecure,
            proxies=self.transfer.proxies,
        )
        policy = self.transfer.retry_policy
        ctx = BlobContext(
            client, self.target, self.state, policy, self.options.chunk_size, self.options.grace
        )
        self._blobs = [
            BlobPush(ctx, layer, model.path(layer), sources.get(layer.digest.hex, []))
            for layer in model.manifest.blobs
        ]
        with collapse_groups():
            try:
                await retrying(client.authorize, policy)
                for blob in self._blobs:
                    await blob.run()
                digest = await retrying(lambda: self._put_manifest(client, model), policy)
            finally:
                await client.aclose()
        return PushResult(self.ref, self.target, digest, tuple(b.report for b in self._blobs))

    def _sources(self, model: LocalModel) -> dict[str, list[str]]:
        """Per blob: repositories of this registry that hold it (mount sources)."""
        local = store_repos(self.store, self.target.host)
        out: dict[str, list[str]] = {}
        for layer in model.manifest.blobs:
            hex_digest = layer.digest.hex
            known = self.state.repos_with(str(layer.digest)) + local.get(hex_digest, [])
            out[hex_digest] = [r for r in dict.fromkeys(known) if r != self.target.repo]
        return out

    async def _put_manifest(self, client: RegistryClient, model: LocalModel) -> str:
        target = self.target
        url = f"{target.base}/v2/{target.repo}/manifests/{target.tag}"
        headers = {"Content-Type": model.media_type, "Content-Length": str(len(model.raw))}
        reply = await client.send("PUT", url, headers, model.raw)
        if reply.status in (401, 403):
            raise client.denied(reply.status, why=reply.message())
        if reply.status not in (200, 201):
            raise registry_error(reply, f"{target}: the manifest")
        mine = str(Digest("sha256", hashlib.sha256(model.raw).hexdigest()))
        answered = reply.headers.get("docker-content-digest")
        if answered is not None and answered != mine:
            raise IntegrityError(
                f"{target.host} stored the manifest of {target} as {answered[:80]}, not {mine}",
                why="the registry rewrote the manifest; Ollama would not trust what it serves",
                hint="push to a registry that keeps manifests as they are sent "
                "(CNCF distribution, zot, Harbor do)",
            )
        return mine
