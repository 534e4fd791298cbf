"""``--mirror``: another box is asked first; the upstream only on a miss, a failure or a bad
digest; the result is stored under the model's own name, and no upstream credential reaches
the mirror. Two simulators play the upstream and the mirror (real sockets)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.core.mirrors import mirrors_for, parse_mirror
from pullman.errors import UsageError
from pullman.sources import parse
from pullman.testing import FlipByte, Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, cli_env, pullman

MODEL = make_data(900 * KiB, 21)
LAYERS = [("model", MODEL), ("template", b"{{ .Prompt }}")]
FILES = {"config.json": b'{"a": 1}\n', "model.safetensors": make_data(300 * KiB, 22)}


@pytest.fixture
def mirror() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


def ollama_get(upstream: OllamaRegistry, models: Path, home: Path, *extra: str):  # type: ignore[no-untyped-def]
    name = upstream.name("library/tiny")
    return pullman("get", "--insecure", "--ollama-dir", str(models), *extra, name, "--json",
                   home=home)  # fmt: skip


def test_an_ollama_model_comes_from_the_mirror_and_is_stored_under_its_own_name(
    sim: Simulator, mirror: Simulator, tmp_path: Path
) -> None:
    upstream = OllamaRegistry(sim)
    raw = upstream.add_model("library/tiny", layers=LAYERS)
    assert OllamaRegistry(mirror).add_model("library/tiny", layers=LAYERS) == raw
    models = tmp_path / "models"
    via = f"{upstream.host}={mirror.origin.url}"
    r = ollama_get(upstream, models, tmp_path, "--mirror", via)
    assert r.returncode == 0, r.stderr
    assert sim.total_bytes_sent() == 0  # not one byte from upstream
    assert mirror.total_bytes_sent() >= len(MODEL)
    manifest = models / "manifests" / upstream.host / "library" / "tiny" / "latest"
    assert manifest.read_bytes() == raw  # the model's own name, not the mirror's
    blob = models / "blobs" / f"sha256-{hashlib.sha256(MODEL).hexdigest()}"
    assert blob.read_bytes() == MODEL


def test_a_miss_or_a_bad_digest_on_the_mirror_falls_back_to_upstream(
    sim: Simulator, mirror: Simulator, tmp_path: Path
) -> None:
    upstream = OllamaRegistry(sim)
    upstream.add_model("library/tiny", layers=LAYERS)
    bad = OllamaRegistry(mirror)  # the mirror's copy of the weights is corrupt, every time
    bad.add_model("library/tiny", layers=LAYERS, faults={"model": [FlipByte(offset=500, times=-1)]})
    via = f"{upstream.host}={mirror.origin.url}"
    r = ollama_get(upstream, tmp_path / "models", tmp_path, "--mirror", via)
    assert r.returncode == 0, r.stderr
    assert "failed" in r.stderr and "from upstream" in r.stderr
    blob = tmp_path / "models" / "blobs" / f"sha256-{hashlib.sha256(MODEL).hexdigest()}"
    assert blob.read_bytes() == MODEL
    r = ollama_get(
        upstream, tmp_path / "other", tmp_path, "--mirror", f"{upstream.host}=http://127.0.0.1:9"
    )
    assert r.returncode == 0, r.stderr  # a mirror that is down: upstream, said so
    assert "the mirror http://127.0.0.1:9" in r.stderr


def test_a_hub_repo_comes_from_the_mirror_without_the_hub_token(
    sim: Simulator, mirror: Simulator, tmp_path: Path
) -> None:
    upstream, copy = HubSimulator(sim), HubSimulator(mirror)
    commit = upstream.add_repo("org/tiny", FILES)
    assert copy.add_repo("org/tiny", FILES) == commit
    cache = tmp_path / "hf"
    env = cli_env(tmp_path / "home", HF_ENDPOINT=upstream.endpoint, HF_HUB_CACHE=str(cache),
                  HF_TOKEN="hf_secret_of_the_upstream")  # fmt: skip
    r = pullman("get", "hf://org/tiny", "--mirror", mirror.origin.url, home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert sim.total_bytes_sent() == 0 and not sim.origin.seen  # the Hub was never asked
    assert not mirror.origin.saw_header("authorization")  # its token stayed home
    assert not mirror.cdn.saw_header("authorization")
    snapshot = cache / "models--org--tiny" / "snapshots" / commit
    assert {p.name: p.read_bytes() for p in snapshot.iterdir()} == FILES
    assert (cache / "models--org--tiny" / "refs" / "main").read_text() == commit


def test_mirrors_from_pullman_toml_and_no_mirror(
    sim: Simulator, mirror: Simulator, tmp_path: Path
) -> None:
    upstream = OllamaRegistry(sim)
    upstream.add_model("library/tiny", layers=LAYERS)
    OllamaRegistry(mirror).add_model("library/tiny", layers=LAYERS)
    (tmp_path / "pullman.toml").write_text(
        f'[sources]\nmirrors = ["{upstream.host}={mirror.origin.url}"]\n'
    )
    r = ollama_get(upstream, tmp_path / "m1", tmp_path)
    assert r.returncode == 0, r.stderr
    assert sim.total_bytes_sent() == 0
    asked = len(mirror.origin.seen)
    r = ollama_get(upstream, tmp_path / "m2", tmp_path, "--no-mirror")
    assert r.returncode == 0, r.stderr
    assert len(mirror.origin.seen) == asked and sim.origin.seen  # upstream's manifest, this time
    assert all(d["verified"] for d in json.loads(r.stdout))


def test_which_mirrors_serve_which_refs() -> None:
    plain, hf_co = "http://box:11435", "hf.co=http://box:11436"
    assert mirrors_for((plain, hf_co), parse("qwen2.5:7b")) == ["http://box:11435"]
    assert mirrors_for((plain, hf_co), parse("hf://org/repo")) == ["http://box:11435"]
    assert mirrors_for((plain, hf_co), parse("hf.co/org/repo:Q4_K_M")) == ["http://box:11436"]
    assert mirrors_for((plain,), parse("https://host/x.gguf", plain=True)) == []
    for bad in ("box:11435", "http://user:pw@box:11435", "ftp://box", "http://box/?t=1"):
        with pytest.raises(UsageError) as info:
            parse_mirror(bad)
        assert "pw" not in info.value.explain()
