"""``verify``, ``gc`` and ``doctor`` on real stores filled through the simulator."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest

from pullman.core.jobs import GetOptions, JobOptions
from pullman.index import Index
from pullman.maintenance import busy_dirs, staging_dirs
from pullman.testing import Simulator, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import MiB, cli_env, pullman

DATA = make_data(2 * MiB, 5)
HEX = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def filled(sim: Simulator, tmp_path: Path) -> tuple[OllamaRegistry, Path, dict[str, str]]:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", DATA), ("template", b"t")])
    env = cli_env(tmp_path / "home", OLLAMA_HOST="http://127.0.0.1:9",
                  HF_HUB_CACHE=str(tmp_path / "hf"))  # fmt: skip
    models = tmp_path / "models"
    r = pullman("get", "--insecure", "--ollama-dir", str(models), registry.name("library/tiny"),
                home=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return registry, models, env


def test_verify_finds_a_corrupt_blob_and_repair_fetches_it_again(
    filled: tuple[OllamaRegistry, Path, dict[str, str]], tmp_path: Path
) -> None:
    registry, models, env = filled
    r = pullman("verify", "--ollama-dir", str(models), home=tmp_path, env=env)
    assert r.returncode == 0 and "ok (3 blobs)" in r.stdout
    blob = models / "blobs" / f"sha256-{HEX}"
    raw = bytearray(blob.read_bytes())
    raw[12345] ^= 0x40
    blob.write_bytes(bytes(raw))
    r = pullman("verify", "--ollama-dir", str(models), "--json", home=tmp_path, env=env)
    assert r.returncode == 4
    states = {Path(d["path"]).name: d["state"] for d in json.loads(r.stdout)}
    assert states[f"sha256-{HEX}"] == "corrupt"
    r = pullman("verify", "--ollama-dir", str(models), "--repair", "--insecure",
                home=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert blob.read_bytes() == DATA
    assert registry.blob(DATA).bytes_sent >= 2 * len(DATA)


def age(path: Path, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_gc_removes_abandoned_partials_and_unreferenced_blobs_only(
    filled: tuple[OllamaRegistry, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, models, env = filled
    staging = models / ".pullman-partial"
    old_part, old_journal = staging / "sha256-old.part", staging / "sha256-old.journal"
    old_part.write_bytes(b"x" * 1000)
    old_journal.write_bytes(b"j")
    young = staging / "sha256-young.part"
    young.write_bytes(b"y" * 10)
    orphan = models / "blobs" / ("sha256-" + "b" * 64)
    orphan.write_bytes(b"z" * 500)
    for path in (old_part, old_journal, orphan):
        age(path, 7200)
    used = models / "blobs" / f"sha256-{HEX}"
    age(used, 7200)
    r = pullman("gc", "--ollama-dir", str(models), "--dry-run", "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {(i["kind"], Path(i["path"]).name) for i in doc["items"]} == {
        ("partial", "sha256-old.part"),
        ("unreferenced", orphan.name),
    }
    assert old_part.exists() and orphan.exists()  # a dry run deletes nothing
    r = pullman("gc", "--ollama-dir", str(models), home=tmp_path, env=env)
    assert r.returncode == 0 and "freed 1.5 KiB" in r.stdout
    assert not old_part.exists() and not old_journal.exists() and not orphan.exists()
    assert young.exists() and used.exists()


def test_doctor_rebuilds_a_deleted_or_damaged_index_from_the_stores(
    filled: tuple[OllamaRegistry, Path, dict[str, str]], tmp_path: Path
) -> None:
    _, models, env = filled
    index = tmp_path / "home" / "index.db"
    assert index.exists()
    index.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(index) + suffix).unlink(missing_ok=True)
    r = pullman("doctor", "--ollama-dir", str(models), "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["index_recovered_from"] is not None and doc["models"] == 1
    assert "moved to" in r.stderr and "pullman doctor" in r.stderr
    assert list((tmp_path / "home").glob("index.db.damaged-*"))
    assert (models / "blobs" / f"sha256-{HEX}").read_bytes() == DATA  # no data touched


def test_gc_knows_the_staging_areas_of_plain_downloads(tmp_path: Path) -> None:
    """``-o DIR`` (an existing directory, no slash) stages in DIR; a URL without ``-o`` lands
    in the directory it was started in and stages there; an Ollama pull stages in its store."""
    into, here = tmp_path / "into", tmp_path / "here"
    into.mkdir()
    asked = {
        "https://h/a.gguf": GetOptions(out=str(into), cwd=str(here)),
        "https://h/b.gguf": GetOptions(cwd=str(here)),
        "llama3": GetOptions(cwd=str(tmp_path / "elsewhere")),
    }
    with Index.open(tmp_path / "index.db") as index:
        for ref, options in asked.items():
            index.add_job(ref, JobOptions(options).to_json())
        jobs = index.jobs()
    expected = [here / ".pullman-partial", into / ".pullman-partial"]
    assert staging_dirs([], jobs) == expected
    assert busy_dirs([], jobs) == set(expected)  # unfinished: their progress is kept
