# ruff: noqa: S311, S603  (seeded randomness on purpose; subprocesses of our own python)
"""pullman's chaos harness: seeded fault soaks, crash loops and a many-jobs run.

Entry point: ``scripts/chaos`` (see ``scripts/chaos --help``). Subcommands:

- ``soak``: hundreds of seeded runs against the simulator. Each run picks a target (a plain
  URL, an Ollama model, a Hugging Face repo), a random engine configuration and a random mix of
  every fault the simulator can script, runs pullman in-process (:class:`pullman.session.Session`),
  and then checks every final path against the bytes the simulator serves. A run that failed
  is run once more with the faults removed ("heal"): the progress kept must let it finish.
  Runs execute in worker processes; the parent kills a worker whose run outlives its deadline
  (a hang, reported with its seed). ``--only-seed N`` replays one run, verbosely.
- ``crashloop``: SIGKILL the foreground CLI and the daemon at random points across a
  multi-layer Ollama pull, checking every journal after every kill; reports refetched bytes.
- ``many``: N small files queued with ``get --detach`` and run by the daemon; checks the
  connection budget and reports the daemon's peak RSS.

Everything is on 127.0.0.1; nothing here touches the network.

Invariants checked after every run (a violation is a *corrupt commit* and fails the soak):

- URL: the destination, if it exists, holds exactly the served bytes (runs without a digest
  never script FlipByte: without a digest pullman documents that it cannot notice one).
- Ollama: every ``blobs/sha256-<hex>`` hashes to its name and is a blob of the model; the
  manifest exists only if every blob it names is there and right, and is the registry's bytes.
- HF cache: every blob hashes to its name; every snapshot entry is a relative link to a right
  blob holding the served bytes of that path; ``refs/main`` only once every link is there.
- HF ``--local-dir``: every file there holds the served bytes of its path.
- No final path is a symlink out of its store; the CDN never sees an ``Authorization`` header.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import queue
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

KiB = 1 << 10
MiB = 1 << 20
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# huggingface_hub reads some settings at import time: set them before anything imports it.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_XET", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.pop("HF_HUB_OFFLINE", None)

# ---------------------------------------------------------------------------------- helpers


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the duration of a block."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def fast_transfer_config(rng: random.Random | None = None) -> Any:
    """Small pieces and short timeouts (like tests/conftest.py's fast_config), randomised."""
    from pullman.transfer.config import TransferConfig
    from pullman.transfer.recycle import RecycleConfig

    r = rng or random.Random(0)
    piece = r.choice([64 * KiB, 128 * KiB, 256 * KiB, 512 * KiB]) if rng else 256 * KiB
    recycle = RecycleConfig(
        stall_timeout=round(r.uniform(0.5, 1.5), 2) if rng else 1.0,
        pause=0.01,
        warmup=0.2,
        rate_window=0.2,
        slow_grace=0.3,
        min_request_bytes=64 * KiB,
        learn=(r.random() < 0.7) if rng else True,
        request_seconds=r.choice([60.0, 60.0, 2.0]) if rng else 60.0,
    )
    return TransferConfig(
        connections=r.randint(1, 6) if rng else 4,
        piece_size=piece,
        min_piece=64 * KiB,
        write_block=r.choice([16 * KiB, 64 * KiB]) if rng else 64 * KiB,
        journal_interval=0.2,
        retry_attempts=r.choice([4, 6, 8]) if rng else 6,
        retry_initial=0.01,
        retry_max=0.05,
        retry_after_max=2.0,
        tick=0.05,
        read_timeout=10.0,
        space_margin=0,
        recycle=recycle,
    )


# ---------------------------------------------------------------------------------- faults

FAULT_KINDS = (
    # (name, weight, works on files the Hub serves itself (small git files))
    ("reset", 14, True),
    ("short", 10, True),
    ("stall", 8, True),
    ("drip", 6, True),
    ("5xx", 12, True),
    ("429", 8, True),
    ("404", 2, True),
    ("ignore_range", 8, False),
    ("wrong_range", 8, False),
    ("flip", 10, False),
)


def _trigger(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.55:
        return {"times": rng.randint(1, 4)}
    if roll < 0.80:
        return {"on": tuple(sorted(rng.sample(range(1, 16), rng.randint(1, 3))))}
    return {"chance": round(rng.uniform(0.05, 0.35), 3), "seed": rng.randrange(1 << 30)}


def _after(rng: random.Random, size: int) -> int:
    roll = rng.random()
    if roll < 0.25:
        return 0
    if roll < 0.5:
        return rng.randint(1, 4096)
    return rng.randint(0, max(0, size))


def make_faults(
    rng: random.Random, size: int, *, served_by_hub: bool = False, digest: bool = True
) -> list[Any]:
    """0-4 faults for one file, each with a random trigger (times / on / chance)."""
    from pullman.testing import (
        Drip,
        FlipByte,
        IgnoreRange,
        Reset,
        Short,
        Stall,
        Status,
        WrongContentRange,
    )

    kinds = [
        (name, weight)
        for name, weight, on_hub in FAULT_KINDS
        if (on_hub or not served_by_hub) and (name != "flip" or (digest and size > 0))
    ]
    faults: list[Any] = []
    for _ in range(rng.choice([0, 1, 1, 2, 2, 3, 4])):
        name = rng.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
        trig = _trigger(rng)
        # A few runs get a fault on every request: they must end in a clean error (not a hang).
        fatal = rng.random() < 0.04 and name in ("5xx", "wrong_range", "flip", "reset")
        if fatal:
            trig = {"times": -1}
        if name == "reset":
            faults.append(Reset(after=0 if fatal else _after(rng, size), **trig))
        elif name == "short":
            faults.append(Short(after=_after(rng, size), **trig))
        elif name == "stall":
            faults.append(Stall(after=_after(rng, size), seconds=rng.uniform(0.3, 2.5), **trig))
        elif name == "drip":
            faults.append(Drip(after=_after(rng, size), rate=rng.randint(1, 256), **trig))
        elif name == "5xx":
            faults.append(Status(code=rng.choice([500, 502, 503]), **trig))
        elif name == "429":
            faults.append(Status(code=429, retry_after=rng.choice([None, 0, 1, 2, 3]), **trig))
        elif name == "404":
            trig = {"times": 1} if "times" in trig and trig["times"] < 0 else trig
            faults.append(Status(code=404, **trig))
        elif name == "ignore_range":
            faults.append(IgnoreRange(**trig))
        elif name == "wrong_range":
            faults.append(WrongContentRange(shift=rng.choice([1, 4096, 65536]), **trig))
        elif name == "flip":
            faults.append(FlipByte(offset=rng.randrange(size), **trig))
    return faults


def describe_fault(f: Any) -> str:
    kind = type(f).__name__
    fields = {
        k: v
        for k, v in dataclasses.asdict(f).items()
        if k not in ("used", "_rng") and v not in ((), 0.0, None) and not (k == "seed" and v == 0)
    }
    return kind + "(" + ",".join(f"{k}={v}" for k, v in fields.items()) + ")"


def random_size(rng: random.Random, big: int = 3 * MiB) -> int:
    roll = rng.random()
    if roll < 0.06:
        return rng.choice([0, 1, 2])
    if roll < 0.14:
        return rng.choice([1023, 1024, 65535, 65536, 65537, 131072])
    if roll < 0.35:
        return rng.randint(3, 256 * KiB)
    return rng.randint(256 * KiB, big)


def random_throttle(rng: random.Random) -> Any:
    from pullman.testing import Throttle

    if rng.random() >= 0.3:
        return None
    return Throttle(
        burst=rng.choice([0, 64 * KiB, 256 * KiB, MiB]),
        rate=rng.randint(512 * KiB, 4 * MiB),
        per=rng.choice(["connection", "request"]),
    )


# ---------------------------------------------------------------------------------- invariants


def check_plain(dest: Path, data: bytes) -> list[str]:
    if dest.is_symlink():
        return [f"{dest} is a symlink"]
    if dest.exists() and dest.read_bytes() != data:
        return [f"{dest}: wrong bytes at a final path"]
    return []


def check_ollama(models: Path, manifest: Path, raw: bytes, blobs: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    blob_dir = models / "blobs"
    if blob_dir.is_symlink():
        problems.append("blobs/ is a symlink")
    if blob_dir.is_dir():
        for p in blob_dir.iterdir():
            if p.is_symlink() or not p.is_file():
                problems.append(f"{p} is not a regular file")
                continue
            hex_digest = p.name.removeprefix("sha256-")
            if not p.name.startswith("sha256-") or hex_digest not in blobs:
                problems.append(f"unexpected file in blobs/: {p.name}")
                continue
            if sha256_hex(p.read_bytes()) != hex_digest:
                problems.append(f"{p.name}: wrong bytes at a final path")
    if manifest.exists() or manifest.is_symlink():
        if manifest.is_symlink() or manifest.read_bytes() != raw:
            problems.append("the manifest is not the registry's bytes")
        for hex_digest, data in blobs.items():
            blob = blob_dir / f"sha256-{hex_digest}"
            if not blob.is_file() or blob.stat().st_size != len(data):
                problems.append(f"manifest written before blob {hex_digest[:12]} was in place")
    for p in models.iterdir() if models.is_dir() else ():
        if p.name not in ("blobs", "manifests", ".pullman-partial"):
            problems.append(f"stray entry in the store: {p.name}")
    return problems


def check_hf_cache(repo: Path, commit: str, files: dict[str, bytes], wanted: set[str]) -> list[str]:
    problems: list[str] = []
    by_name = {}
    for data in files.values():
        by_name[sha256_hex(data) if len(data) >= 1024 else git_sha1(data)] = data
    blob_dir = repo / "blobs"
    if blob_dir.is_dir():
        for p in blob_dir.iterdir():
            if p.is_symlink() or not p.is_file():
                problems.append(f"{p} is not a regular file")
                continue
            data = p.read_bytes()
            if p.name not in by_name:
                problems.append(f"unexpected blob {p.name}")
            elif (sha256_hex(data) if len(p.name) == 64 else git_sha1(data)) != p.name:
                problems.append(f"blob {p.name}: wrong bytes at a final path")
    snap = repo / "snapshots"
    if snap.is_dir():
        for link in snap.rglob("*"):
            if link.is_dir() and not link.is_symlink():
                continue
            rel = link.relative_to(snap)
            if rel.parts[0] != commit:
                problems.append(f"snapshot of an unknown commit: {rel}")
                continue
            path = "/".join(rel.parts[1:])
            if not link.is_symlink():
                problems.append(f"snapshot entry {path} is not a link")
                continue
            target = str(link.readlink())
            if target.startswith("/"):
                problems.append(f"snapshot link {path} is absolute")
            resolved = link.resolve()
            if not resolved.is_relative_to(blob_dir.resolve()):
                problems.append(f"snapshot link {path} points outside blobs/")
            elif path not in files or not resolved.is_file():
                problems.append(f"snapshot link {path}: unknown path or dangling")
            elif resolved.read_bytes() != files[path]:
                problems.append(f"snapshot link {path}: wrong bytes at a final path")
    ref = repo / "refs" / "main"
    if ref.exists():
        if ref.read_text() != commit:
            problems.append("refs/main does not name the commit")
        for path in wanted:
            if not (snap / commit / path).is_symlink():
                problems.append(f"refs/main written before the link {path}")
    return problems


def check_local_dir(local: Path, files: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    if not local.is_dir():
        return problems
    for p in local.rglob("*"):
        rel = p.relative_to(local)
        if rel.parts[0] == ".pullman-partial" or (p.is_dir() and not p.is_symlink()):
            continue
        path = "/".join(rel.parts)
        if p.is_symlink():
            problems.append(f"{path} is a symlink")
        elif path not in files:
            problems.append(f"unexpected file {path}")
        elif p.read_bytes() != files[path]:
            problems.append(f"{path}: wrong bytes at a final path")
    return problems


# ---------------------------------------------------------------------------------- scenarios


@dataclasses.dataclass
class Scenario:
    kind: str
    ref: str
    options: Any
    check: Callable[[], list[str]]
    detail: str
    env: dict[str, str | None] = dataclasses.field(default_factory=dict)
    size: int = 0
    heal: Callable[[], None] = lambda: None
    staging: Path | None = None
    """Where the partial data and journals live."""
    keys: dict[str, bytes] = dataclasses.field(default_factory=dict)
    """Staging key -> the bytes that file must hold."""
    sim: Any = None

    def flips(self) -> dict[str, set[int]]:
        """Staging key -> offsets a FlipByte fault may have corrupted in transit."""
        from pullman.testing import FlipByte

        by_data: dict[bytes, set[int]] = {}
        for sf in self.sim.files.values():
            offsets = {f.offset for f in sf.faults if isinstance(f, FlipByte)}
            if offsets:
                by_data.setdefault(sf.data, set()).update(offsets)
        return {k: by_data.get(d, set()) for k, d in self.keys.items()}


def build_url(rng: random.Random, sim: Any, work: Path) -> Scenario:
    from pullman.core.digests import sha256
    from pullman.core.jobs import GetOptions

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
        f"throttle={f.throttle} faults=[{', '.join(map(describe_fault, faults))}]"
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


def _data(rng: random.Random, size: int) -> bytes:
    return rng.randbytes(size)


KINDS = ("template", "params", "license", "system", "projector")


def build_ollama(rng: random.Random, sim: Any, work: Path, seed: int) -> Scenario:
    from pullman.core.jobs import GetOptions
    from pullman.layouts import ollama as store
    from pullman.core.refs import parse_ollama
    from pullman.testing.registry import OllamaRegistry

    auth = rng.choice(["none", "token"])
    redirect = rng.random() < 0.75
    expires = round(rng.uniform(0.3, 3.0), 2) if rng.random() < 0.3 else 3600.0
    registry = OllamaRegistry(sim, auth=auth, redirect=redirect, cdn_expires=expires)
    layers = [("model", _data(rng, random_size(rng, big=2 * MiB)))]
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(KINDS)
        size = rng.randint(256 * KiB, MiB) if kind == "projector" else rng.randint(0, 5000)
        layers.append((kind, _data(rng, size)))
    if rng.random() < 0.15:
        layers.append(layers[-1])  # the same blob twice in one manifest
    repo = f"library/chaos{seed}"
    raw = registry.add_model(repo, layers=layers, throttle=random_throttle(rng))
    config = b'{"model_format":"gguf","model_family":"llama"}'
    blobs = {sha256_hex(d): d for d in [config, *(d for _, d in layers)]}
    described = []
    for hex_digest, data in blobs.items():
        f = registry.blob(hex_digest)
        f.faults = make_faults(rng, len(data))
        if f.faults:
            described.append(f"{hex_digest[:8]}: " + ", ".join(map(describe_fault, f.faults)))
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


def build_hf(rng: random.Random, sim: Any, work: Path, seed: int) -> Scenario:
    from pullman.core.jobs import GetOptions
    from pullman.testing.hub import HubSimulator

    expires = round(rng.uniform(0.3, 3.0), 2) if rng.random() < 0.3 else 3600.0
    hub = HubSimulator(sim, cdn_expires=expires, page_size=rng.randint(1, 6))
    files: dict[str, bytes] = {
        "config.json": json.dumps({"model_type": "llama", "seed": seed}).encode(),
        "README.md": _data(rng, rng.randint(0, 900)),
        "tokenizer.json": _data(rng, rng.randint(1024, 64 * KiB)),
    }
    for i in range(rng.randint(1, 3)):
        files[f"weights/model-{i:05d}.safetensors"] = _data(rng, random_size(rng, big=2 * MiB))
    if rng.random() < 0.15:
        files["copy/config.json"] = files["config.json"]  # same blob at two paths
    faults = {}
    described = []
    for path, data in files.items():
        fs = make_faults(rng, len(data), served_by_hub=len(data) < 1024)
        if fs:
            faults[path] = fs
            described.append(f"{path}: " + ", ".join(map(describe_fault, fs)))
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
    if local:
        options = GetOptions(local_dir=str(work / "local"))
        check = lambda: check_local_dir(work / "local", files)  # noqa: E731
    else:
        options = GetOptions()
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        check = lambda: check_hf_cache(repo, commit, files, set(files))  # noqa: E731
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
    staging = (
        work / "local" / ".pullman-partial"
        if local
        else cache / f"models--{repo_id.replace('/', '--')}" / ".pullman-partial"
    )
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


# ---------------------------------------------------------------------------------- one run


RUN_TIMEOUT = 45.0


def _session_stats(session: Any) -> dict[str, int]:
    stats = session.statistics()
    return {
        "recycles": sum(s.recycles for s in stats),
        "retries": sum(s.retries for s in stats),
        "refreshes": sum(s.refreshes for s in stats),
    }


def _attempt(
    scenario: Scenario, settings: Any, timeout: float, *, twins: int = 1
) -> dict[str, Any]:
    """Run the scenario once (``twins`` sessions at once, like two terminals); classify it."""
    import anyio

    from pullman.errors import PullmanError
    from pullman.session import Session

    sessions = [Session(settings) for _ in range(twins)]
    outcomes: list[Any] = [None] * twins
    out: dict[str, Any] = {}
    started = time.monotonic()

    async def one(i: int) -> None:
        try:
            outcomes[i] = await sessions[i].get([scenario.ref], scenario.options)
        except Exception as exc:
            outcomes[i] = exc

    async def main() -> None:
        with anyio.fail_after(timeout):
            async with anyio.create_task_group() as tg:
                for i in range(twins):
                    tg.start_soon(one, i)

    try:
        anyio.run(main)
    except TimeoutError:
        out["outcome"] = "timeout"
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    crashes = [e for e in errors if not isinstance(e, PullmanError)]
    if "outcome" in out:
        pass
    elif crashes:
        out["outcome"] = "crash"
        out["error"] = type(crashes[0]).__name__
        out["message"] = "".join(traceback.format_exception(crashes[0]))[-3000:]
    elif errors:
        exc = errors[0]
        assert isinstance(exc, PullmanError)
        out["outcome"] = "clean"
        out["error"] = type(exc).__name__
        out["exit_code"] = exc.exit_code
        out["message"] = exc.explain()
    else:
        reports = [r for o in outcomes for r in o]
        out["outcome"] = "ok"
        files = [f for r in reports for f in r.files if f.outcome is not None]
        out["resumed"] = sum(f.outcome.resumed for f in files)
        out["discarded"] = sum(f.outcome.discarded for f in files)
        unverified = [str(f.path) for r in reports for f in r.files if not f.verified]
        if unverified and scenario.kind != "url":
            out["problems"] = [f"reported unverified: {unverified}"]
    out["elapsed"] = round(time.monotonic() - started, 3)
    for session in sessions:
        for key, value in _session_stats(session).items():
            out[key] = out.get(key, 0) + value
    return out


def run_seed(
    seed: int, base: Path, *, timeout: float = RUN_TIMEOUT, twins: bool = True
) -> dict[str, Any]:
    """One chaos run, and its heal run if it failed. Pure function of ``seed``."""
    from pullman import config
    from pullman.testing import Simulator

    twins_allowed = twins
    rng = random.Random(seed)
    kind = rng.choices(["url", "ollama", "hf"], [4, 3, 3])[0]
    work = base / f"seed-{seed}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result: dict[str, Any] = {"seed": seed, "kind": kind}
    sim = Simulator().start()
    try:
        if kind == "url":
            scenario = build_url(rng, sim, work)
        elif kind == "ollama":
            scenario = build_ollama(rng, sim, work, seed)
        else:
            scenario = build_hf(rng, sim, work, seed)
        result["detail"] = scenario.detail
        scenario.sim = sim
        flips = scenario.flips()  # before the heal clears the faults
        result["size"] = scenario.size
        settings = config.Settings(
            paths=config.Paths(data=work / "home", config_file=work / "pullman.toml"),
            transfer=fast_transfer_config(rng),
        )
        result["connections"] = settings.transfer.connections
        interrupt = round(rng.uniform(0.05, 1.5), 2) if rng.random() < 0.25 else None
        result["interrupt_at"] = interrupt
        # Two sessions at once on the same store, like two terminals (``twins=False``: never).
        both = kind != "url" and rng.random() < 0.2
        n_sessions = 2 if both and twins_allowed else 1
        result["twins"] = n_sessions
        with environ(**scenario.env):

            def attempt(timeout: float) -> dict[str, Any]:
                out = _attempt(scenario, settings, timeout, twins=n_sessions)
                out["problems"] = out.get("problems", []) + scenario.check()
                if scenario.staging is not None:
                    claimed, bad = check_journals(scenario.staging, scenario.keys, flips)
                    out["journal_claimed"] = claimed
                    out["problems"] += bad
                return out

            if interrupt is not None:
                # Like Ctrl-C: cancelled at a random moment, then run again with the faults.
                stopped = attempt(interrupt)
                if stopped["outcome"] == "timeout":
                    stopped["outcome"] = "interrupted"
                result["interrupted"] = stopped
            first = attempt(timeout)
            first["faults_used"] = sum(f.used for sf in sim.files.values() for f in sf.faults)
            result["first"] = first
            if first["outcome"] != "ok":
                for sf in sim.files.values():
                    sf.faults = []
                    sf.throttle = None
                scenario.heal()
                result["heal"] = attempt(timeout)
        result["bytes_sent"] = sim.total_bytes_sent()
        result["token_to_cdn"] = sim.cdn.saw_header("authorization")
    except Exception as exc:
        result["harness_error"] = "".join(traceback.format_exception(exc))[-3000:]
    finally:
        sim.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


# ---------------------------------------------------------------------------------- workers


def worker_main(base: Path, timeout: float, twins: bool = True) -> None:
    """Read seeds on stdin, write one JSON result per line on stdout."""
    logging.basicConfig(level=logging.CRITICAL)
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not break the protocol
    for line in sys.stdin:
        seed = int(line)
        result = run_seed(seed, base, timeout=timeout, twins=twins)
        out.write(json.dumps(result) + "\n")
        out.flush()


class Worker:
    def __init__(self, base: Path, timeout: float, log: Path, twins: bool = True) -> None:
        self.base, self.timeout, self.log, self.twins = base, timeout, log, twins
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._start()

    def _start(self) -> None:
        self._log = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__)),
                "worker",
                "--base",
                str(self.base),
                "--timeout",
                str(self.timeout),
                *([] if self.twins else ["--no-twins"]),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
        )
        self.lines = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc, self.lines), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def run(self, seed: int, deadline: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(f"{seed}\n")
            self.proc.stdin.flush()
            line = self.lines.get(timeout=deadline)
        except queue.Empty:
            self.restart()
            return {"seed": seed, "killed": f"no result after {deadline:.0f} s (hang)"}
        except BrokenPipeError:
            line = None
        if line is None:
            self.restart()
            return {"seed": seed, "killed": "the worker died"}
        result: dict[str, Any] = json.loads(line)
        return result

    def restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------------- soak


def verdict(result: dict[str, Any]) -> str:
    """``ok`` / ``clean`` (failed cleanly, then healed) or what went wrong."""
    if "killed" in result:
        return "hang"
    if "harness_error" in result:
        return "harness"
    first, heal = result["first"], result.get("heal")
    stopped = result.get("interrupted")
    if first["problems"] or (heal and heal["problems"]) or (stopped and stopped["problems"]):
        return "corrupt"
    if stopped and stopped["outcome"] == "crash":
        return "crash"
    if result.get("token_to_cdn"):
        return "leak"
    if first["outcome"] == "crash" or (heal and heal["outcome"] == "crash"):
        return "crash"
    if first["outcome"] == "timeout":
        return "timeout"
    if heal is not None and heal["outcome"] != "ok":
        return "unhealed"
    return "ok" if first["outcome"] == "ok" else "clean"


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    verdicts = Counter(verdict(r) for r in results)
    firsts = [r["first"] for r in results if "first" in r]
    heals = [r["heal"] for r in results if "heal" in r]
    corrupt = sum(
        len(r[k]["problems"])
        for r in results
        for k in ("interrupted", "first", "heal")
        if isinstance(r.get(k), dict)
    )
    stopped = [r["interrupted"] for r in results if isinstance(r.get("interrupted"), dict)]
    size = sum(r.get("size", 0) for r in results if "first" in r)
    return {
        "runs": len(results),
        "by_kind": dict(Counter(r.get("kind", "?") for r in results)),
        "faults_injected": sum(f.get("faults_used", 0) for f in firsts),
        "recycles": sum(f.get("recycles", 0) for f in firsts + heals),
        "retries": sum(f.get("retries", 0) for f in firsts + heals),
        "link_refreshes": sum(f.get("refreshes", 0) for f in firsts + heals),
        "completions": sum(1 for f in firsts if f["outcome"] == "ok"),
        "clean_failures": sum(1 for f in firsts if f["outcome"] == "clean"),
        "clean_failure_types": dict(
            Counter(
                f"{f['error']} (exit {f['exit_code']})" for f in firsts if f["outcome"] == "clean"
            )
        ),
        "healed": sum(1 for h in heals if h["outcome"] == "ok"),
        "interrupted": sum(1 for i in stopped if i["outcome"] == "interrupted"),
        "resumed_bytes_after_interrupt": sum(
            r["first"].get("resumed", 0)
            for r in results
            if isinstance(r.get("interrupted"), dict)
            and r["interrupted"]["outcome"] == "interrupted"
        ),
        "resumed_bytes_in_heals": sum(h.get("resumed", 0) for h in heals),
        "discarded_bytes": sum(f.get("discarded", 0) for f in firsts + heals),
        "corrupt_commits": corrupt,
        "journal_claimed_bytes_checked": sum(
            r[k].get("journal_claimed", 0)
            for r in results
            for k in ("interrupted", "first", "heal")
            if isinstance(r.get(k), dict)
        ),
        "token_leaks": sum(1 for r in results if r.get("token_to_cdn")),
        "crashes": verdicts.get("crash", 0),
        "timeouts": verdicts.get("timeout", 0),
        "hangs_killed": verdicts.get("hang", 0),
        "unhealed": verdicts.get("unhealed", 0),
        "harness_errors": verdicts.get("harness", 0),
        "bytes_served": sum(r.get("bytes_sent", 0) for r in results),
        "bytes_of_files": size,
        "verdicts": dict(verdicts),
    }


BAD = ("corrupt", "leak", "crash", "timeout", "hang", "unhealed", "harness")


def soak(args: argparse.Namespace) -> int:
    seeds = (
        [args.only_seed]
        if args.only_seed is not None
        else list(range(args.seed, args.seed + args.runs))
    )
    base = Path(tempfile.mkdtemp(prefix="pullman-chaos-"))
    if args.only_seed is not None:
        logging.basicConfig(level=logging.INFO, format="  %(name)s: %(message)s")
        started = time.monotonic()
        result = run_seed(args.only_seed, base, timeout=args.timeout, twins=not args.no_twins)
        shutil.rmtree(base, ignore_errors=True)
        print(json.dumps(result, indent=2))
        print(f"verdict: {verdict(result)} in {time.monotonic() - started:.1f} s")
        return 1 if verdict(result) in BAD else 0
    todo: queue.Queue[int] = queue.Queue()
    for s in seeds:
        todo.put(s)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()
    started = time.monotonic()
    deadline = 2 * args.timeout + 30

    def drive(n: int) -> None:
        worker = Worker(base, args.timeout, base / f"worker-{n}.log", twins=not args.no_twins)
        try:
            while True:
                try:
                    seed = todo.get_nowait()
                except queue.Empty:
                    return
                result = worker.run(seed, deadline)
                with lock:
                    results.append(result)
                    v = verdict(result)
                    first = result.get("first", {})
                    line = (
                        f"[{len(results):>4}/{len(seeds)}] seed {seed:<8} "
                        f"{result.get('kind', '?'):<6} {v:<8} "
                        f"faults={first.get('faults_used', '-'):<3} "
                        f"recycles={first.get('recycles', '-'):<3} "
                        f"retries={first.get('retries', '-'):<3} "
                        f"{first.get('elapsed', 0):6.2f}s"
                    )
                    if first.get("outcome") == "clean":
                        line += f"  {first['error']} (exit {first['exit_code']})"
                    if not args.quiet or v in BAD:
                        print(line, flush=True)
                    if v in BAD:
                        print("    " + json.dumps(result)[:4000], flush=True)
        finally:
            worker.stop()

    threads = [threading.Thread(target=drive, args=(n,)) for n in range(args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    summary = summarise(results)
    summary["seeds"] = f"{seeds[0]}..{seeds[-1]}"
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    bad = sorted((r["seed"], verdict(r)) for r in results if verdict(r) in BAD)
    summary["failing_seeds"] = bad
    print()
    print("chaos soak summary")
    for key in (
        "runs",
        "by_kind",
        "faults_injected",
        "recycles",
        "retries",
        "link_refreshes",
        "completions",
        "clean_failures",
        "clean_failure_types",
        "healed",
        "interrupted",
        "resumed_bytes_after_interrupt",
        "resumed_bytes_in_heals",
        "discarded_bytes",
        "corrupt_commits",
        "journal_claimed_bytes_checked",
        "token_leaks",
        "crashes",
        "timeouts",
        "hangs_killed",
        "unhealed",
        "harness_errors",
        "bytes_served",
        "bytes_of_files",
        "wall_seconds",
    ):
        print(f"  {key:<24} {summary[key]}")
    for seed, v in bad:
        print(f"  FAILING seed {seed}: {v}; replay: scripts/chaos soak --only-seed {seed}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "runs": results}, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


# ---------------------------------------------------------------------------------- crash loop

FAST_ENV = {
    "PULLMAN_TRANSFER_CONNECTIONS": "4",
    "PULLMAN_TRANSFER_PIECE_SIZE": "512KiB",
    "PULLMAN_TRANSFER_MIN_PIECE": "64KiB",
    "PULLMAN_TRANSFER_WRITE_BLOCK": "64KiB",
    "PULLMAN_TRANSFER_JOURNAL_INTERVAL": "0.2",
    "PULLMAN_TRANSFER_RETRY_ATTEMPTS": "6",
    "PULLMAN_TRANSFER_RETRY_INITIAL": "0.01",
    "PULLMAN_TRANSFER_RETRY_MAX": "0.05",
    "PULLMAN_TRANSFER_SPACE_MARGIN": "0",
    "PULLMAN_RECYCLE_STALL_TIMEOUT": "1",
    "PULLMAN_RECYCLE_PAUSE": "0.01",
}


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULLMAN_", "HF_"))}
    env.update(FAST_ENV)
    env["PULLMAN_HOME"] = str(home)
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"
    env.update(extra)
    return env


def run_cli(
    args: list[str], env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pullman ARGS`` to completion, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pullman", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def check_journals(
    staging: Path, blobs: dict[str, bytes], flips: dict[str, set[int]] | None = None
) -> tuple[int, list[str]]:
    """Every journal claims only bytes that are on disk and right; returns (claimed, problems).

    ``flips``: offsets where the server sent a flipped byte (FlipByte). The journal records what
    arrived, so those may differ (the digest check throws such data away); nothing else may.
    """
    from pullman.transfer.staging import Staging

    problems: list[str] = []
    claimed = 0
    if not staging.is_dir():
        return 0, problems
    for journal in staging.glob("*.journal"):
        key = journal.name.removesuffix(".journal")
        st = Staging(staging, key)
        loaded = st.load_journal()
        if loaded is None:  # no slot saved yet (or its data file is gone): claims nothing
            continue
        data = blobs.get(key, blobs.get(key.removeprefix("sha256-")))
        if data is None:
            problems.append(f"{key}: journal of an unknown file")
            continue
        if not loaded.done:
            continue
        if loaded.size != len(data):
            problems.append(f"{key}: journal size {loaded.size} != {len(data)}")
            continue
        allowed = (flips or {}).get(key, set())
        with st.part.open("rb") as f:
            for start, end in loaded.done:
                f.seek(start)
                got = f.read(end - start)
                claimed += end - start
                if got == data[start:end]:
                    continue
                wrong = {
                    start + i
                    for i, (a, b) in enumerate(zip(got, data[start:end], strict=False))
                    if a != b
                }
                if len(got) != end - start or not wrong <= allowed:
                    problems.append(
                        f"{key}: journal claims [{start},{end}) but the bytes on disk differ"
                        f" at {sorted(wrong - allowed)[:5]}"
                    )
    return claimed, problems


def crashloop(args: argparse.Namespace) -> int:
    result = run_crashloop(
        kills_cli=args.kills_cli,
        kills_daemon=args.kills_daemon,
        seed=args.seed,
        layers=args.layers,
        layer_size=args.layer_size * MiB,
        rate=args.rate * KiB,
        work=Path(tempfile.mkdtemp(prefix="pullman-crashloop-")),
        log=print,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_crashloop(
    *,
    kills_cli: int,
    kills_daemon: int,
    seed: int,
    layers: int,
    layer_size: int,
    rate: int,
    work: Path,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """SIGKILL ``pullman get`` then ``pullman daemon`` at random points of one Ollama pull."""
    from pullman import config as pconfig
    from pullman.daemon import daemon_pid
    from pullman.index import Index
    from pullman.layouts import ollama as store
    from pullman.core.refs import parse_ollama
    from pullman.testing import Simulator, Throttle, make_data
    from pullman.testing.registry import OllamaRegistry

    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    home, models = work / "home", work / "models"
    env = cli_env(home)
    problems: list[str] = []
    kills: list[dict[str, Any]] = []
    with Simulator() as sim:
        registry = OllamaRegistry(sim)
        data_layers = [("model", make_data(layer_size + i * 4099, seed + i)) for i in range(layers)]
        data_layers += [("template", b"{{ .Prompt }}"), ("license", b"MIT")]
        raw = registry.add_model(
            "library/crash", layers=data_layers, throttle=Throttle(burst=0, rate=rate)
        )
        config_blob = b'{"model_format":"gguf","model_family":"llama"}'
        blobs = {sha256_hex(d): d for d in [config_blob, *(d for _, d in data_layers)]}
        total = sum(len(d) for d in blobs.values())
        name = registry.name("library/crash")
        manifest = store.manifest_path(models, parse_ollama(name, insecure=True))
        staging = models / ".pullman-partial"
        args = ["get", "--insecure", "--ollama-dir", str(models), name, "--progress", "none"]

        def served() -> int:
            return sum(registry.blob(h).bytes_sent for h in blobs)

        def after_kill(who: str, at: int) -> None:
            claimed, bad = check_journals(staging, blobs)
            for journal in staging.glob("*.journal") if staging.is_dir() else ():
                if stat.S_IMODE(journal.stat().st_mode) != 0o600:
                    bad.append(f"{journal.name} has mode {journal.stat().st_mode:o}")
            bad += check_ollama(models, manifest, raw, blobs)
            problems.extend(f"after kill {len(kills) + 1} ({who}): {p}" for p in bad)
            kills.append({"who": who, "served": at, "claimed": claimed})
            log(
                f"  kill {len(kills):>3} ({who:<6}) at {at / MiB:6.2f} MiB served, "
                f"{on_disk() / MiB:6.2f} MiB safe on disk (journals claim "
                f"{claimed / MiB:6.2f} MiB), problems: {len(bad)}"
            )

        def spawn(argv: list[str], out: Any = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [sys.executable, "-m", "pullman", *argv], env=env, stdout=out, stderr=out
            )

        def on_disk() -> int:
            """Bytes that are safe: committed blobs plus what the journals claim."""
            committed = sum(
                len(d) for h, d in blobs.items() if (models / "blobs" / f"sha256-{h}").is_file()
            )
            return committed + check_journals(staging, blobs)[0]

        def kill_when(proc: subprocess.Popen[bytes], who: str, kills_left: int) -> bool:
            """SIGKILL ``proc`` after a random share of what is left (spread so that the kills
            cover the whole download); False if it ended first."""
            left = total - on_disk()
            share = min(0.9, rng.uniform(0.3, 1.5) / (kills_left + 1))
            wanted = served() + max(64 * KiB, int(left * share))
            deadline = time.monotonic() + 60
            while served() < wanted and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))
            if proc.poll() is not None:
                return False
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            after_kill(who, served())
            return True

        started = time.monotonic()
        paths = pconfig.Paths.from_env(env)
        daemon_log = (work / "daemon.log").open("ab")
        # The daemon's job: the same pull, queued once; the foreground runs make their own.
        r = run_cli([*args, "--detach"], env, 60)
        if r.returncode != 0:
            problems.append(f"get --detach failed: {r.stderr}")
        order = ["cli"] * kills_cli + ["daemon"] * kills_daemon
        rng.shuffle(order)
        for n, who in enumerate(order):
            if who == "cli":
                proc = spawn(args)
            else:
                proc = spawn(["daemon"], daemon_log)
                _wait(
                    lambda p=proc: daemon_pid(paths) == p.pid or p.poll() is not None,  # type: ignore[misc]
                    30,
                    "the daemon's lock",
                )
            if not kill_when(proc, who, len(order) - n):
                if who == "cli" and proc.returncode != 0:
                    problems.append(f"a foreground run failed with exit {proc.returncode}")
                break
        proc = spawn(["daemon"], daemon_log)
        index = Index.open(paths.index)

        def jobs_done() -> bool:
            return all(j.state in ("done", "failed", "cancelled") for j in index.jobs())

        try:
            _wait(jobs_done, 300, "the daemon to finish every job")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
            daemon_log.close()
        elapsed = time.monotonic() - started
        # A last foreground run must find everything in place and fetch nothing.
        before = served()
        r = run_cli([*args, "--json"], env, 120)
        if r.returncode != 0:
            problems.append(f"final get failed ({r.returncode}): {r.stderr}")
        if served() != before:
            problems.append("the final get fetched bytes again")
        jobs = index.jobs()
        states = Counter(j.state for j in jobs)
        failed = [j for j in jobs if j.state == "failed"]
        if failed:
            problems.append(f"failed jobs: {[(j.id, j.error) for j in failed]}")
        problems += check_ollama(models, manifest, raw, blobs)
        if not manifest.is_file():
            problems.append("the model is not complete at the end")
        leftover = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
        index.close()
        refetched = served() - total
    shutil.rmtree(work, ignore_errors=True)
    return {
        "ok": not problems,
        "kills": len(kills),
        "kills_cli": sum(1 for k in kills if k["who"] == "cli"),
        "kills_daemon": sum(1 for k in kills if k["who"] == "daemon"),
        "files": len(blobs),
        "bytes": total,
        "served": total + refetched,
        "refetched": refetched,
        "refetched_per_kill": refetched // max(1, len(kills)),
        "job_states": dict(states),
        "staging_leftovers": leftover,
        "seconds": round(elapsed, 1),
        "problems": problems,
    }


# ---------------------------------------------------------------------------------- many jobs


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def run_many(
    *,
    files: int,
    size: int,
    work: Path,
    log: Callable[[str], None] = lambda s: None,
    schedule: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``files`` small URL jobs queued with one ``get --detach``, run by the daemon."""
    from pullman import config as pconfig
    from pullman.daemon import daemon_pid
    from pullman.index import Index
    from pullman.testing import Simulator

    work.mkdir(parents=True, exist_ok=True)
    home = work / "home"
    sched = {"connections": "16", "per_host": "8", "jobs": "4"} | (schedule or {})
    env = cli_env(home, **{f"PULLMAN_SCHEDULE_{k.upper()}": v for k, v in sched.items()})
    problems: list[str] = []
    with Simulator() as sim:
        datas = {}
        for i in range(files):
            data = random.Random(i).randbytes(size + i % 7)
            name = f"f{i:05d}.bin"
            sim.add_file(name, data)
            datas[name] = data
        refs = [sim.url(n) for n in datas]
        t0 = time.monotonic()
        r = run_cli(["get", "--detach", *refs], env, 120)
        if r.returncode != 0:
            problems.append(f"get --detach failed: {r.stderr}")
        queued_in = time.monotonic() - t0
        log(f"  queued {files} jobs in {queued_in:.1f} s")
        paths = pconfig.Paths.from_env(env)
        with (work / "daemon.log").open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pullman", "daemon"], env=env, stdout=out, stderr=out
            )
        _wait(lambda: daemon_pid(paths) == proc.pid, 30, "the daemon's lock")
        index = Index.open(paths.index)
        t1 = time.monotonic()
        peak = 0
        deadline = t1 + max(120.0, files * 0.5)
        done = 0
        last = 0.0
        while time.monotonic() < deadline:
            peak = max(peak, _vm_hwm(proc.pid))
            states = Counter(j.state for j in index.jobs())
            done = states.get("done", 0)
            if time.monotonic() - last > 5:
                log(
                    f"  {time.monotonic() - t1:6.1f} s: {dict(states)}  peak RSS "
                    f"{peak / MiB:.0f} MiB, max connections {sim.origin.max_active}"
                )
                last = time.monotonic()
            if states.get("done", 0) + states.get("failed", 0) == files:
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - t1
        peak = max(peak, _vm_hwm(proc.pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        failed = [j for j in index.jobs() if j.state != "done"]
        if failed:
            problems.append(
                f"{len(failed)} jobs not done, e.g. {failed[0].state} {failed[0].error}"
            )
        wrong = [
            n
            for n, d in datas.items()
            if not (paths.downloads / n).is_file() or (paths.downloads / n).read_bytes() != d
        ]
        if wrong:
            problems.append(f"{len(wrong)} files missing or wrong, e.g. {wrong[:3]}")
        max_active = sim.origin.max_active
        if max_active > int(sched["per_host"]):
            problems.append(f"{max_active} connections open at once > per_host {sched['per_host']}")
        index.close()
    shutil.rmtree(work, ignore_errors=True)
    return {
        "ok": not problems,
        "files": files,
        "done": done,
        "queue_seconds": round(queued_in, 1),
        "run_seconds": round(elapsed, 1),
        "files_per_second": round(files / elapsed, 1) if elapsed else None,
        "peak_rss_mib": round(peak / MiB, 1),
        "max_connections_open": max_active,
        "per_host_budget": int(sched["per_host"]),
        "problems": problems,
    }


def many(args: argparse.Namespace) -> int:
    result = run_many(
        files=args.files,
        size=args.size,
        log=print,
        work=Path(tempfile.mkdtemp(prefix="pullman-many-")),
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


# ---------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("soak", help="seeded fault runs (the default)")
    s.add_argument("--runs", type=int, default=300)
    s.add_argument("--seed", type=int, default=1, help="first seed; runs use seed..seed+runs-1")
    s.add_argument("--only-seed", type=int, help="replay one run, verbosely")
    s.add_argument("--jobs", "-j", type=int, default=2, help="worker processes")
    s.add_argument("--timeout", type=float, default=RUN_TIMEOUT, help="seconds per attempt")
    s.add_argument("--json-out", help="write every run's result here")
    s.add_argument("--quiet", "-q", action="store_true", help="print only failing runs")
    s.add_argument(
        "--no-twins", action="store_true", help="never run two sessions at once on one store"
    )
    c = sub.add_parser("crashloop", help="SIGKILL the CLI and the daemon across a model pull")
    c.add_argument("--kills-cli", type=int, default=25)
    c.add_argument("--kills-daemon", type=int, default=25)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--layers", type=int, default=4)
    c.add_argument("--layer-size", type=int, default=8, help="MiB per model layer")
    c.add_argument("--rate", type=int, default=1024, help="KiB/s per connection")
    m = sub.add_parser("many", help="N small queued files through the daemon")
    m.add_argument("--files", type=int, default=1000)
    m.add_argument("--size", type=int, default=16 * KiB)
    w = sub.add_parser("worker")
    w.add_argument("--base", required=True)
    w.add_argument("--timeout", type=float, default=RUN_TIMEOUT)
    w.add_argument("--no-twins", action="store_true")
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in ("soak", "crashloop", "many", "worker", "-h", "--help"):
        words = ["soak", *words]
    args = parser.parse_args(words)
    if args.command == "worker":
        worker_main(Path(args.base), args.timeout, twins=not args.no_twins)
        return 0
    if args.command == "crashloop":
        return crashloop(args)
    if args.command == "many":
        return many(args)
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
