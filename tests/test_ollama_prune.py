"""Ollama's start-up prune removes blobs no manifest references once they are an hour old, so a
model's finished blobs must not sit unreferenced in ``blobs/`` while the rest downloads: they
wait, verified, in the staging area and move into ``blobs/`` just before the manifest. ``gc``
leaves a store alone while an unfinished job downloads into it."""

from __future__ import annotations

import hashlib
import signal
import time
from pathlib import Path

from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, pullman, spawn

SMALL = make_data(200 * KiB, 1)
BIG = make_data(3 * MiB, 2)


def blobs(models: Path) -> list[str]:
    where = models / "blobs"
    return sorted(p.name for p in where.glob("sha256-*")) if where.is_dir() else []


def held(models: Path) -> list[str]:
    return sorted(
        p.name for p in (models / ".pullman-partial").glob("sha256-*") if "." not in p.name
    )


def prune_like_ollama(models: Path) -> list[str]:
    """What the server's start-up prune does (ignoring the hour): drop unreferenced blobs."""
    referenced = set()
    for manifest in (models / "manifests").rglob("*") if (models / "manifests").is_dir() else []:
        if manifest.is_file():
            words = manifest.read_text().split('"')
            referenced.update(w for w in words if w.startswith("sha256:"))
    gone = []
    for blob in (models / "blobs").glob("sha256-*") if (models / "blobs").is_dir() else []:
        if "sha256:" + blob.name.removeprefix("sha256-") not in referenced:
            blob.unlink()
            gone.append(blob.name)
    return gone


def slow_model(sim: Simulator) -> tuple[OllamaRegistry, str]:
    registry = OllamaRegistry(sim)
    registry.add_model("library/two", layers=[("template", SMALL), ("model", BIG)])
    registry.blob(BIG).throttle = Throttle(rate=256 * KiB)  # the small one is done long before
    return registry, registry.name("library/two")


def wait_for(check, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_finished_blobs_wait_outside_blobs_until_the_manifest(
    sim: Simulator, tmp_path: Path
) -> None:
    _, name = slow_model(sim)
    models = tmp_path / "models"
    small = "sha256-" + hashlib.sha256(SMALL).hexdigest()
    proc = spawn("get", "--insecure", "--ollama-dir", str(models), name, home=tmp_path)
    wait_for(lambda: small in held(models))  # verified, held in the staging area
    assert blobs(models) == []  # nothing the server could prune ...
    assert prune_like_ollama(models) == []  # ... a restart of the server now removes nothing
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert small in blobs(models) and held(models) == []
    assert (models / "blobs" / small).read_bytes() == SMALL
    assert prune_like_ollama(models) == []  # referenced by the manifest now


def test_an_interrupted_pull_keeps_its_verified_blobs_and_gc_leaves_them(
    sim: Simulator, tmp_path: Path
) -> None:
    registry, name = slow_model(sim)
    models = tmp_path / "models"
    small = "sha256-" + hashlib.sha256(SMALL).hexdigest()
    args = ("get", "--insecure", "--ollama-dir", str(models), name)
    proc = spawn(*args, home=tmp_path)
    wait_for(lambda: small in held(models))
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 75
    env = cli_env(tmp_path, PULLMAN_HOME=str(tmp_path))
    r = pullman("gc", "--ollama-dir", str(models), "--min-age", "0", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert small in held(models)  # the paused job still wants it: gc leaves the store alone
    sent = registry.blob(SMALL).bytes_sent
    registry.blob(BIG).throttle = None
    r = pullman(*args, home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert registry.blob(SMALL).bytes_sent == sent  # not fetched again
    assert {"sha256-" + hashlib.sha256(d).hexdigest() for d in (SMALL, BIG)} <= set(blobs(models))
    assert held(models) == []


def test_gc_removes_held_blobs_once_no_job_wants_them(sim: Simulator, tmp_path: Path) -> None:
    _, name = slow_model(sim)
    models = tmp_path / "models"
    small = "sha256-" + hashlib.sha256(SMALL).hexdigest()
    proc = spawn("get", "--insecure", "--ollama-dir", str(models), name, home=tmp_path)
    wait_for(lambda: small in held(models))
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert pullman("cancel", "--all", home=tmp_path).returncode == 0
    r = pullman("gc", "--ollama-dir", str(models), "--min-age", "0", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"removed held: {models / '.pullman-partial' / small}" in r.stdout
    assert held(models) == []
