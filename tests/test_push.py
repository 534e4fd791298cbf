"""``pullman push`` into a real OCI registry (Debian's ``docker-registry``, CNCF distribution),
then ``pullman get`` from it into a fresh store: byte-exact. The model comes from the simulator
through ``pullman get`` (there is no ``ollama`` binary here: the pull back is pullman's).

Counts come from push's ``--json`` and from the registry's own access log."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pullman.testing import Simulator, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, free_port, pullman, spawn

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
MODEL = make_data(3 * MiB + 123, 31)
LAYERS = [("model", MODEL), ("template", b"{{ .Prompt }}"), ("license", b"MIT or so")]


@dataclass
class Registry:
    host: str
    log: Path
    data: Path

    def lines(self, needle: str) -> list[str]:
        """Access-log lines that contain ``needle`` (e.g. ``"HEAD /v2/library/tiny/blobs"``)."""
        return [line for line in self.log.read_text().splitlines() if needle in line]


def start_registry(tmp_path: Path, extra: str = "") -> Iterator[Registry]:
    if not Path(REGISTRY).exists():
        pytest.skip("needs Debian's docker-registry (scripts/test installs it)")
    port = free_port()
    data = tmp_path / "registry-data"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: pullman-test-secret\n{extra}"
    )
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=out)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                break
        except urllib.error.HTTPError:
            break  # 401: up, and wants auth
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield Registry(host, log, data)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from start_registry(tmp_path)


@dataclass
class Pulled:
    models: Path
    name: str
    """The model's name in the store (the simulator's host/library/tiny:latest)."""
    raw: bytes
    blobs: dict[str, bytes]
    home: Path


def pull_from_simulator(sim: Simulator, tmp_path: Path, layers: list[tuple[str, bytes]]) -> Pulled:
    upstream = OllamaRegistry(sim)
    config = b'{"model_format":"gguf","model_family":"llama"}'
    raw = upstream.add_model("library/tiny", layers=layers, config=config)
    models, home = tmp_path / "models", tmp_path / "home"
    name = upstream.name("library/tiny")
    r = pullman("get", "--insecure", "--ollama-dir", str(models), name, home=home)
    assert r.returncode == 0, r.stderr
    blobs = {hashlib.sha256(d).hexdigest(): d for d in [config, *(d for _, d in layers)]}
    return Pulled(models, name, raw, blobs, home)


@pytest.fixture
def pulled(sim: Simulator, tmp_path: Path) -> Pulled:
    return pull_from_simulator(sim, tmp_path, LAYERS)


def push(p: Pulled, dest: str, *extra: str, env: dict[str, str] | None = None, home: Path | None = None):  # type: ignore[no-untyped-def]
    return pullman("push", "--insecure", "--ollama-dir", str(p.models), p.name, dest, "--json",
                   *extra, home=home or p.home, env=env)  # fmt: skip


def summary(r: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def pull_back(reg: Registry, repo: str, tag: str, tmp_path: Path, p: Pulled) -> None:
    """``pullman get`` from the registry into a fresh store: the same bytes, every one."""
    fresh = tmp_path / "fresh"
    r = pullman("get", "--insecure", "--ollama-dir", str(fresh), f"{reg.host}/{repo}:{tag}",
                home=tmp_path / "home2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ns, model = repo.split("/")
    assert (fresh / "manifests" / reg.host / ns / model / tag).read_bytes() == p.raw
    for hex_digest, data in p.blobs.items():
        assert (fresh / "blobs" / f"sha256-{hex_digest}").read_bytes() == data
    shutil.rmtree(fresh)


def test_push_then_pull_back_is_byte_exact_then_skips_then_mounts(
    registry: Registry, pulled: Pulled, tmp_path: Path
) -> None:
    total = sum(len(d) for d in pulled.blobs.values())
    dest = f"{registry.host}/library/tiny"
    first = summary(push(pulled, dest, "--chunk-size", "1MiB"))
    assert (first["uploaded"], first["skipped"], first["mounted"]) == (4, 0, 0)
    assert first["bytes_sent"] == total
    assert first["manifest_digest"] == "sha256:" + hashlib.sha256(pulled.raw).hexdigest()
    patches = registry.lines("PATCH /v2/library/tiny/blobs/uploads/")
    assert len(patches) == 4  # the 3 MiB model in 1 MiB chunks; small blobs in one PUT
    pull_back(registry, "library/tiny", "latest", tmp_path, pulled)

    second = summary(push(pulled, dest))
    assert (second["uploaded"], second["skipped"], second["mounted"]) == (0, 4, 0)
    assert second["bytes_sent"] == 0
    heads = registry.lines("HEAD /v2/library/tiny/blobs/sha256:")
    assert len([h for h in heads if '" 200 ' in h]) == 4
    assert len(registry.lines("PUT /v2/library/tiny/manifests/latest")) == 2

    other = summary(push(pulled, f"{registry.host}/library/other:v1"))
    assert (other["uploaded"], other["skipped"], other["mounted"]) == (0, 0, 4)
    assert other["bytes_sent"] == 0
    assert {b["mounted_from"] for b in other["blobs"]} == {"library/tiny"}
    mounts = registry.lines("POST /v2/library/other/blobs/uploads/?from=library%2Ftiny")
    mounts += registry.lines("POST /v2/library/other/blobs/uploads/?mount=")
    assert len([m for m in mounts if '" 201 ' in m]) == 4
    pull_back(registry, "library/other", "v1", tmp_path, pulled)
