"""One seeded run's target: a plain URL, an Ollama model or a Hugging Face repo, served by the
simulator with random faults, and how to check what pullman left behind."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections.abc import Callable
from pathlib import Path

from pullman.core.digests import sha256
from pullman.core.jobs import GetOptions
from pullman.core.refs import parse_ollama
from pullman.layouts import ollama as store
from pullman.testing import Fault, FlipByte, Simulator
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from chaoslib.checks import check_hf_cache, check_local_dir, check_ollama, check_plain
from chaoslib.common import KiB, MiB, git_sha1, sha256_hex
from chaoslib.faults import describe_fault, make_faults, random_size, random_throttle

__all__ = ["KINDS", "Scenario", "build_hf", "build_ollama", "build_url"]

Check = Callable[[], list[str]]


def _nothing() -> None:
    pass


@dataclasses.dataclass
class Scenario:
    kind: str
    ref: str
    options: GetOptions
    check: Check
    detail: str
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    size: int = 0
    heal: Callable[[], None] = _nothing
    staging: Path | None = None
    """Where the partial data and journals live."""
    keys: dict[str, bytes] = dataclasses.field(default_factory=dict)
    """Staging key -> the bytes that file must hold."""
    sim: Simulator | None = None

    def flips(self) -> dict[str, set[int]]:
        """Staging key -> offsets a FlipByte fault may have corrupted in transit."""
        assert self.sim is not None
        by_data: dict[bytes, set[int]] = {}
        for sf in self.sim.files.values():
            offsets = {f.offset for f in sf.faults if isinstance(f, FlipByte)}
            if offsets and isinstance(sf.data, bytes):  # chaos files are never Sparse
                by_data.setdefault(sf.data, set()).update(offsets)
        return {k: by_data.get(d, set()) for k, d in self.keys.items()}


def _data(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


def _described(faults: list[Fault]) -> str:
    return ", ".join(map(describe_fault, faults))


# ---------------------------------------------------------------------------------- URL


def build_url(rng: random.Random, sim: Simulator, work: Path) -> Scenario:
    size = random_size(rng)
    data = _data(rng, size)
    digest = rng.random() < 0.8
    via = rng.random() < 0.5
    expires = round(rng.uniform(0.3, 3.0), 2) if via and rng.random() < 0.4 else None
    faults = make_faults(rng, size, digest=digest)
    f = sim.add_file(
        "model.bin",
        data,
        faults=faults,
        throttle=random_throttle(rng),
        via_cdn=via,
        cdn_expires=expires,
        etag=rng.random() < 0.8,
        last_modified=rng.random() < 0.8,
    )
    dest = work / "out" / "model.bin"
    options = GetOptions(out=str(dest), digest=sha256(sha256_hex(data)) if digest else None)
    detail = (
        f"url size={size} digest={digest} via_cdn={via} expires={expires} etag={f.etag} "
        f"throttle={f.throttle} faults=[{_described(faults)}]"
    )
    url = sim.url("model.bin")
    key = "url-" + hashlib.sha256(f"{url}\n{dest}".encode()).hexdigest()[:32]
    return Scenario(
        "url",
        url,
        options,
        lambda: check_plain(dest, data),
        detail,
        size=size,
        staging=dest.parent / ".pullman-partial",
        keys={key: data},
    )


# ---------------------------------------------------------------------------------- Ollama

KINDS = ("template", "params", "license", "system", "projector")


def build_ollama(rng: random.Random, sim: Simulator, work: Path, seed: int) -> Scenario:
    auth = rng.choice(["none", "token"])
    redirect = rng.random() < 0.75
    expires = round(rng.uniform(0.3, 3.0), 2) if rng.random() < 0.3 else 3600.0
    registry = OllamaRegistry(sim, auth=auth, redirect=redirect, cdn_expires=expires)
    layers = _ollama_layers(rng)
    repo = f"library/chaos{seed}"
    raw = registry.add_model(repo, layers=layers, throttle=random_throttle(rng))
    config = b'{"model_format":"gguf","model_family":"llama"}'
    blobs = {sha256_hex(d): d for d in [config, *(d for _, d in layers)]}
    described = []
    for hex_digest, data in blobs.items():
        f = registry.blob(hex_digest)
        f.faults = make_faults(rng, len(data))
        if f.faults:
            described.append(f"{hex_digest[:8]}: " + _described(f.faults))
    models = work / "models"
    name = registry.name(repo)
    manifest = store.manifest_path(models, parse_ollama(name, insecure=True))
    options = GetOptions(insecure=True, ollama_dir=str(models))
    detail = (
        f"ollama layers={[(k, len(d)) for k, d in layers]} auth={auth} redirect={redirect} "
        f"expires={expires} faults=[{'; '.join(described)}]"
    )
    return Scenario(
        "ollama",
        name,
        options,
        lambda: check_ollama(models, manifest, raw, blobs),
        detail,
        size=sum(len(d) for d in blobs.values()),
        staging=models / ".pullman-partial",
        keys={f"sha256-{h}": d for h, d in blobs.items()},
    )


def _ollama_layers(rng: random.Random) -> list[tuple[str, bytes]]:
    layers = [("model", _data(rng, random_size(rng, big=2 * MiB)))]
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(KINDS)
        size = rng.randint(256 * KiB, MiB) if kind == "projector" else rng.randint(0, 5000)
        layers.append((kind, _data(rng, size)))
    if rng.random() < 0.15:
        layers.append(layers[-1])  # the same blob twice in one manifest
    return layers


# ---------------------------------------------------------------------------------- HF


def build_hf(rng: random.Random, sim: Simulator, work: Path, seed: int) -> Scenario:
    expires = round(rng.uniform(0.3, 3.0), 2) if rng.random() < 0.3 else 3600.0
    hub = HubSimulator(sim, cdn_expires=expires, page_size=rng.randint(1, 6))
    files = _hf_files(rng, seed)
    faults, described = _hf_faults(rng, files)
    repo_id = f"org/chaos-{seed}"
    throttle = random_throttle(rng)
    commit = hub.add_repo(repo_id, files, faults=faults, throttle=throttle)
    # Files with the same bytes share one simulator file: the last faults given win.
    token = f"hf_chaos{seed}secret" if rng.random() < 0.4 else None
    if token:
        hub.add_token(token)
    limited = rng.randint(1, 2) if rng.random() < 0.1 else 0
    if limited:
        hub.rate_limit_next(limited, retry_after=1)
    local = rng.random() < 0.2
    cache = work / "cache"
    options, check, staging = _hf_target(work, cache, repo_id, commit, files, local=local)
    detail = (
        f"hf files={[(p, len(d)) for p, d in files.items()]} local_dir={local} token={bool(token)} "
        f"expires={expires} page_size={hub.page_size} rate_limited={limited} "
        f"throttle={throttle} faults=[{'; '.join(described)}]"
    )
    env: dict[str, str | None] = {
        "HF_ENDPOINT": hub.endpoint,
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(work / "hf-home"),
        "HF_TOKEN": token,
        "HUGGING_FACE_HUB_TOKEN": None,
    }

    def heal() -> None:
        hub.rate_limit_next(0)

    keys = {f"hf-{sha256_hex(d) if len(d) >= 1024 else git_sha1(d)}": d for d in files.values()}
    return Scenario(
        "hf",
        f"hf://{repo_id}",
        options,
        check,
        detail,
        env=env,
        size=sum(len(d) for d in set(files.values())),
        heal=heal,
        staging=staging,
        keys=keys,
    )


def _hf_files(rng: random.Random, seed: int) -> dict[str, bytes]:
    files: dict[str, bytes] = {
        "config.json": json.dumps({"model_type": "llama", "seed": seed}).encode(),
        "README.md": _data(rng, rng.randint(0, 900)),
        "tokenizer.json": _data(rng, rng.randint(1024, 64 * KiB)),
    }
    for i in range(rng.randint(1, 3)):
        files[f"weights/model-{i:05d}.safetensors"] = _data(rng, random_size(rng, big=2 * MiB))
    if rng.random() < 0.15:
        files["copy/config.json"] = files["config.json"]  # same blob at two paths
    return files


def _hf_faults(
    rng: random.Random, files: dict[str, bytes]
) -> tuple[dict[str, list[Fault]], list[str]]:
    """Faults by path (the Hub serves files under 1 KiB itself), and their descriptions."""
    faults: dict[str, list[Fault]] = {}
    described = []
    for path, data in files.items():
        fs = make_faults(rng, len(data), served_by_hub=len(data) < 1024)
        if fs:
            faults[path] = fs
            described.append(f"{path}: " + _described(fs))
    return faults, described


def _hf_target(
    work: Path, cache: Path, repo_id: str, commit: str, files: dict[str, bytes], *, local: bool
) -> tuple[GetOptions, Check, Path]:
    """The options, the check and the staging directory: a ``--local-dir`` or the cache."""
    if local:
        local_dir = work / "local"
        return (
            GetOptions(local_dir=str(local_dir)),
            lambda: check_local_dir(local_dir, files),
            local_dir / ".pullman-partial",
        )
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    return (
        GetOptions(),
        lambda: check_hf_cache(repo, commit, files, set(files)),
        repo / ".pullman-partial",
    )
