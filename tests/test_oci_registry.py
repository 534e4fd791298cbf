"""A real OCI registry (CNCF distribution, Debian's ``docker-registry``) serving an Ollama model:
the manifest as pushed, blobs straight from its storage with 200 (no CDN redirect). This is a
self-hosted registry as people run one for ``ollama push``/``ollama pull --insecure``."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullman.testing import make_data

from distribution import start_distribution
from helpers import KiB, cli_env, pullman

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Registry:
    host: str
    log: Path

    def push(self, repo: str, tag: str, layers: list[tuple[str, bytes]]) -> bytes:
        """Upload blobs and the manifest through the registry API, as ``ollama push`` does."""
        config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
        entries = []
        for kind, data in [("config", config), *layers]:
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            location = self._call("POST", f"/v2/{repo}/blobs/uploads/", b"", 202)
            joiner = "&" if "?" in location else "?"
            self._call("PUT", f"{location}{joiner}digest={digest}", data, 201)
            media = (
                "application/vnd.docker.container.image.v1+json"
                if kind == "config"
                else f"application/vnd.ollama.image.{kind}"
            )
            entries.append({"mediaType": media, "digest": digest, "size": len(data)})
        doc = {"schemaVersion": 2, "mediaType": MANIFEST_V2, "config": entries[0]}
        manifest = json.dumps({**doc, "layers": entries[1:]}).encode()
        self._call("PUT", f"/v2/{repo}/manifests/{tag}", manifest, 201, MANIFEST_V2)
        return manifest

    def _call(
        self, method: str, path: str, body: bytes, want: int, kind: str = "application/octet-stream"
    ) -> str:
        """One request (``path`` may be a full URL, as an upload's Location is); its Location."""
        url = path if path.startswith("http") else f"http://{self.host}{path}"
        request = urllib.request.Request(
            url, data=body, method=method, headers={"Content-Type": kind}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == want, (method, path, response.status)
            return str(response.headers.get("Location", ""))

    def served(self) -> list[str]:
        """The registry's access log: ``GET /v2/...`` lines and their statuses."""
        return [line for line in self.log.read_text().splitlines() if '"GET /v2/' in line]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    for started in start_distribution(tmp_path):
        yield Registry(started.host, started.log)


def test_a_model_from_a_real_registry_lands_byte_for_byte(
    registry: Registry, tmp_path: Path
) -> None:
    model = make_data(700 * KiB, 11)
    layers = [("model", model), ("template", b"{{ .Prompt }}"), ("license", b"MIT")]
    manifest = registry.push("library/tiny", "q4", layers)
    models = tmp_path / "models"
    env = cli_env(tmp_path / "home", OLLAMA_HOST="http://127.0.0.1:9")
    args = ("get", "--insecure", "--ollama-dir", str(models), f"{registry.host}/library/tiny:q4")
    r = pullman(*args, home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    stored = models / "manifests" / registry.host / "library" / "tiny" / "q4"
    assert stored.read_bytes() == manifest  # the registry's bytes, unchanged
    blob = models / "blobs" / f"sha256-{hashlib.sha256(model).hexdigest()}"
    assert blob.read_bytes() == model
    blob_gets = [line for line in registry.served() if "/blobs/sha256:" in line]
    assert blob_gets and all('" 200 ' in line or '" 206 ' in line for line in blob_gets)
    r = pullman(*args, home=tmp_path, env=env)
    assert r.returncode == 0 and "already present" in r.stdout


def test_an_unknown_tag_on_a_real_registry_is_not_found(registry: Registry, tmp_path: Path) -> None:
    registry.push("library/tiny", "q4", [("model", b"m" * 2048)])
    r = pullman("get", "--insecure", "--ollama-dir", str(tmp_path / "models"),
                f"{registry.host}/library/tiny:nope", home=tmp_path)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "models" / "blobs").exists() or not any(
        (tmp_path / "models" / "blobs").iterdir()
    )
