"""``pullman get <model>`` against the simulator's Ollama registry, into a temp models dir."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.core.jobs import GetOptions
from pullman.index import Index
from pullman.session import Session
from pullman.testing import FlipByte, Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, pullman, spawn

MODEL = make_data(3 * MiB + 777, 42)
LAYERS = [
    ("model", MODEL),
    ("template", b"{{ .System }} {{ .Prompt }}"),
    ("params", b'{"stop": ["<|end|>"]}'),
    ("license", b"MIT License, for tests"),
    ("license", b"A second license, as some models carry"),
]


@pytest.fixture
def registry(sim: Simulator) -> OllamaRegistry:
    return OllamaRegistry(sim)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    return tmp_path / "models"


def get(
    registry: OllamaRegistry, models: Path, home: Path, *names: str, extra: tuple[str, ...] = ()
):  # type: ignore[no-untyped-def]
    refs = [registry.name(*n.split(":")) for n in names]
    return pullman("get", "--insecure", "--ollama-dir", str(models), *extra, *refs, home=home)


def store_files(models: Path) -> list[str]:
    return sorted(str(p.relative_to(models)) for p in models.rglob("*") if p.is_file())


def test_multi_layer_model_lands_in_the_exact_ollama_layout(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    raw = registry.add_model("library/tiny", layers=LAYERS)
    os.umask(0o022)
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    manifest = models / "manifests" / registry.host / "library" / "tiny" / "latest"
    assert manifest.read_bytes() == raw  # byte for byte what the registry served
    doc = json.loads(raw)
    expected = {"blobs/sha256-" + d["digest"][7:] for d in [doc["config"], *doc["layers"]]}
    assert set(store_files(models)) == expected | {str(manifest.relative_to(models))}
    for layer in [doc["config"], *doc["layers"]]:
        blob = models / "blobs" / ("sha256-" + layer["digest"][7:])
        data = blob.read_bytes()
        assert len(data) == layer["size"]
        assert "sha256:" + hashlib.sha256(data).hexdigest() == layer["digest"]
        assert stat.S_IMODE(blob.stat().st_mode) == 0o644
    assert stat.S_IMODE((models / "blobs").stat().st_mode) == 0o755
    assert "tiny:latest: 6 blobs verified" in r.stdout
    assert not list((models / ".pullman-partial").iterdir())


def test_second_pull_fetches_no_blob_bytes(
    registry: OllamaRegistry, models: Path, tmp_path: Path, sim: Simulator
) -> None:
    registry.add_model("library/tiny", layers=LAYERS)
    assert get(registry, models, tmp_path, "library/tiny").returncode == 0
    sent = sim.total_bytes_sent()
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    assert sim.total_bytes_sent() == sent
    assert "6 already present" in r.stdout


def test_json_and_the_index_name_the_blobs_where_they_landed(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    """Blobs are held in staging and moved at the end: reports name the store, not staging."""
    registry.add_model("library/tiny", layers=LAYERS)
    for _ in range(2):  # downloaded, then already present
        r = get(registry, models, tmp_path, "library/tiny", extra=("--json",))
        assert r.returncode == 0, r.stderr
        paths = [Path(d["path"]) for d in json.loads(r.stdout)]
        assert len(paths) == 6
        for path in paths:
            assert path.is_file() and path.parent == models / "blobs", path
    with Index.open(tmp_path / "index.db") as index:
        recorded = [Path(f.path) for m in index.models() for f in m.files]
    assert recorded and all(".pullman-partial" not in p.parts for p in recorded), recorded


def test_corrupt_blob_is_caught_and_fetched_again(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    registry.add_model(
        "library/tiny", layers=LAYERS, faults={"model": [FlipByte(offset=MiB + 5, times=1)]}
    )
    r = get(registry, models, tmp_path, "library/tiny", extra=("--json",))
    assert r.returncode == 0, r.stderr
    model = next(d for d in json.loads(r.stdout) if d["name"].startswith("model"))
    assert model["discarded"] == len(MODEL)
    blob = models / "blobs" / ("sha256-" + hashlib.sha256(MODEL).hexdigest())
    assert blob.read_bytes() == MODEL


def test_expiring_cdn_links_are_resolved_again(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim, cdn_expires=0.5)
    # 4 connections at 512 KiB/s need at least 1.5 s for the 3 MiB blob; links live 0.5 s.
    registry.add_model("library/tiny", layers=LAYERS, throttle=Throttle(rate=512 * KiB))
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    statuses = [s.path for s in sim.origin.seen]
    blob_url_hits = [p for p in statuses if "/blobs/" in p and MODEL_HEX in p]
    assert len(blob_url_hits) >= 2  # resolved, then resolved again after the link expired


MODEL_HEX = hashlib.sha256(MODEL).hexdigest()


def test_self_hosted_registry_serving_blobs_directly(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim, redirect=False)
    registry.add_model("team/tiny", "v1", layers=LAYERS)
    r = get(registry, models, tmp_path, "team/tiny:v1")
    assert r.returncode == 0, r.stderr
    assert (models / "manifests" / registry.host / "team" / "tiny" / "v1").is_file()
    assert sim.cdn.connections == 0


def test_token_challenge_and_the_cdn_never_sees_it(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim, auth="token")
    registry.add_model("library/tiny", layers=LAYERS)
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    assert any(s.path == "/token" for s in sim.origin.seen)
    blob_requests = [s for s in sim.origin.seen if "/blobs/" in s.path]
    assert blob_requests and all("authorization" in s.headers for s in blob_requests)
    assert sim.cdn.seen and not sim.cdn.saw_header("authorization")
    for token in registry.tokens:
        assert token not in r.stdout + r.stderr


def test_private_model_says_it_needs_a_key(sim: Simulator, models: Path, tmp_path: Path) -> None:
    registry = OllamaRegistry(sim, auth="token")
    registry.add_model("someone/secret", layers=LAYERS, private=True)
    r = get(registry, models, tmp_path, "someone/secret")
    assert r.returncode == 6, r.stderr
    assert "needs credentials" in r.stderr and "--via-server" in r.stderr
    assert store_files(models) == []


def test_unknown_model_and_unknown_tag_say_which(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    registry.add_model("library/tiny", layers=LAYERS)
    r = get(registry, models, tmp_path, "library/nonesuch")
    assert r.returncode == 3 and "model 'nonesuch' not found" in r.stderr
    r = get(registry, models, tmp_path, "library/tiny:99b")
    assert r.returncode == 3 and "has no tag '99b'" in r.stderr
    assert "Traceback" not in r.stderr
    assert store_files(models) == []


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:../../../../etc/passwd",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "sha256:" + "a" * 64 + "/../x",
        "sha256:" + "a" * 32 + "\x00" + "a" * 31,
    ],
)
def test_hostile_digest_in_manifest_writes_nothing(
    registry: OllamaRegistry, models: Path, tmp_path: Path, digest: str
) -> None:
    good = json.loads(registry.add_model("library/tiny", layers=LAYERS))
    good["layers"][1]["digest"] = digest
    registry.set_manifest("library/evil", "latest", json.dumps(good).encode())
    r = get(registry, models, tmp_path, "library/evil")
    assert r.returncode == 1, r.stderr
    assert "invalid manifest" in r.stderr and "Traceback" not in r.stderr
    assert store_files(models) == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1}',
        b'{"schemaVersion": 2, "layers": []}',
        b'{"schemaVersion": 2, "config": {}, "layers": [{}]}',
    ],
)
def test_malformed_manifests_write_nothing(
    registry: OllamaRegistry, models: Path, tmp_path: Path, raw: bytes
) -> None:
    registry.set_manifest("library/broken", "latest", raw)
    r = get(registry, models, tmp_path, "library/broken")
    assert r.returncode == 1 and "invalid manifest" in r.stderr
    assert store_files(models) == []


def test_blob_shared_by_two_models_downloads_once(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    registry.add_model("library/one", layers=LAYERS)
    registry.add_model("library/two", layers=[LAYERS[0], ("template", b"other template")])
    r = get(registry, models, tmp_path, "library/one", "library/two")
    assert r.returncode == 0, r.stderr
    model_blob = registry.blob(MODEL)
    assert model_blob.bytes_sent <= len(MODEL) + 64 * KiB  # once (plus steal overlap)
    assert "1 already present" in r.stdout or "2 already present" in r.stdout


def test_layers_download_side_by_side_within_one_budget(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    """Two big layers, three connections each, one shared budget of three: sampled in-process.
    (The config blob is small: it has a lane of its own, outside the budget, and is not counted.)"""
    registry = OllamaRegistry(sim)
    big = [("model", make_data(2 * MiB, 1)), ("projector", make_data(2 * MiB, 2))]
    registry.add_model("library/pair", layers=big, throttle=Throttle(rate=512 * KiB))
    env = {"PULLMAN_HOME": str(tmp_path), "PULLMAN_TRANSFER_CONNECTIONS": "3",
           "PULLMAN_TRANSFER_MIN_PIECE": "64KiB", "PULLMAN_TRANSFER_SPACE_MARGIN": "0"}  # fmt: skip
    session = Session(config.load(env=env))
    options = GetOptions(insecure=True, ollama_dir=str(models))
    peak = 0
    overlap = False

    async def main() -> None:
        nonlocal peak, overlap
        plan = await session.plan(registry.name("library/pair"), options)
        async with anyio.create_task_group() as tg:

            async def sample() -> None:
                nonlocal peak, overlap
                while True:
                    busy = [s for s in session.statistics() if s.connections and s.size > MiB]
                    peak = max(peak, sum(s.connections for s in busy))
                    overlap = overlap or len([s for s in busy if s.size > MiB]) == 2
                    await anyio.sleep(0.005)

            tg.start_soon(sample)
            await session.fetch(plan, options)
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert 1 <= peak <= 3
    assert overlap  # both layers were downloading at the same moment
    for _, data in big:
        assert (
            models / "blobs" / ("sha256-" + hashlib.sha256(data).hexdigest())
        ).read_bytes() == data


def test_verify_existing_replaces_a_corrupt_blob(
    registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    registry.add_model("library/tiny", layers=LAYERS)
    assert get(registry, models, tmp_path, "library/tiny").returncode == 0
    blob = models / "blobs" / ("sha256-" + MODEL_HEX)
    data = bytearray(blob.read_bytes())
    data[1000] ^= 1
    blob.write_bytes(bytes(data))
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0 and blob.read_bytes() != MODEL  # same size: trusted by default
    r = get(registry, models, tmp_path, "library/tiny", extra=("--verify-existing",))
    assert r.returncode == 0, r.stderr
    assert blob.read_bytes() == MODEL


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_unwritable_models_dir_fails_cleanly(registry: OllamaRegistry, tmp_path: Path) -> None:
    registry.add_model("library/tiny", layers=LAYERS)
    base = Path(tempfile.mkdtemp(prefix="pullman-ollama-"))
    base.chmod(0o755)
    models = base / "models"
    models.mkdir(mode=0o755)  # like /usr/share/ollama/.ollama/models, owned by someone else
    home = base / "home"
    home.mkdir()
    home.chmod(0o777)
    try:
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-m", "pullman", "get", "--insecure", "--ollama-dir", str(models),
             registry.name("library/tiny")],
            env=cli_env(home), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert r.returncode == 5, r.stderr
        assert "cannot write to the Ollama models directory" in r.stderr
        assert "sudo -u root" in r.stderr and "--via-server" in r.stderr
        assert list(models.iterdir()) == []
    finally:
        shutil.rmtree(base)


@pytest.fixture
def two_models(registry: OllamaRegistry, models: Path, tmp_path: Path) -> Iterator[Path]:
    registry.add_model("library/one", layers=LAYERS)
    registry.add_model("library/two", layers=[LAYERS[0], ("template", b"two's own template")])
    assert get(registry, models, tmp_path, "library/one", "library/two").returncode == 0
    yield models


def test_ls_lists_models_with_size_and_state(
    registry: OllamaRegistry, two_models: Path, tmp_path: Path
) -> None:
    r = pullman("ls", "--ollama-dir", str(two_models), "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    docs = {d["name"]: d for d in json.loads(r.stdout)}
    one = docs[f"{registry.host}/library/one:latest"]
    assert one["state"] == "complete" and one["size"] > len(MODEL)
    (
        two_models / "blobs" / ("sha256-" + hashlib.sha256(b"two's own template").hexdigest())
    ).unlink()
    r = pullman("ls", "--ollama-dir", str(two_models), home=tmp_path)
    assert "incomplete (1 missing)" in r.stdout


def test_rm_keeps_blobs_other_manifests_use(
    registry: OllamaRegistry, two_models: Path, tmp_path: Path
) -> None:
    # A manifest pullman did not write also references the license blob.
    license_hex = hashlib.sha256(LAYERS[3][1]).hexdigest()
    other = two_models / "manifests" / "registry.ollama.ai" / "library" / "mine" / "latest"
    other.parent.mkdir(parents=True)
    other.write_text(json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": "sha256:" + license_hex, "size": len(LAYERS[3][1])},
        "layers": [{"mediaType": "application/vnd.ollama.image.license",
                    "digest": "sha256:" + license_hex, "size": len(LAYERS[3][1])}],
    }))  # fmt: skip
    name = registry.name("library/one")
    r = pullman("rm", name, "--ollama-dir", str(two_models), "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    kept = {Path(p).name for p in doc["kept"]}
    removed = {Path(p).name for p in doc["removed"]}
    assert f"sha256-{MODEL_HEX}" in kept  # model two uses it
    assert f"sha256-{license_hex}" in kept  # the foreign manifest uses it
    assert f"sha256-{hashlib.sha256(LAYERS[1][1]).hexdigest()}" in removed
    assert not (two_models / "manifests" / registry.host / "library" / "one").exists()
    r = pullman("rm", name, "--ollama-dir", str(two_models), home=tmp_path)
    assert r.returncode == 3 and "no model" in r.stderr


def test_two_terminals_pulling_the_same_model_download_it_once(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=LAYERS, throttle=Throttle(rate=MiB))
    args = ("get", "--insecure", "--ollama-dir", str(models), registry.name("library/tiny"))
    first = spawn(*args, home=tmp_path / "a")
    second = spawn(*args, home=tmp_path / "b")
    _out1, err1 = first.communicate(timeout=60)
    _out2, err2 = second.communicate(timeout=60)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert registry.blob(MODEL).bytes_sent <= len(MODEL) + 64 * KiB  # one download, not two
    blob = models / "blobs" / ("sha256-" + MODEL_HEX)
    assert blob.read_bytes() == MODEL


def test_a_corrupt_cdn_copy_of_a_blob_is_refetched_through_the_registry(
    sim: Simulator, registry: OllamaRegistry, models: Path, tmp_path: Path
) -> None:
    registry.add_model("library/tiny", layers=LAYERS)
    weights = registry.blob(LAYERS[0][1])
    weights.bad_links = 1  # the first CDN link the registry hands out serves a corrupt copy
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    assert len(weights.links) == 2  # a fresh redirect from the registry, then a good copy
    blob = models / "blobs" / ("sha256-" + weights.sha256)
    assert blob.read_bytes() == LAYERS[0][1]


def test_a_manifest_redirect_is_followed_and_the_token_stays_home(
    sim: Simulator, models: Path, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim, auth="token", manifest_mirror=True)
    raw = registry.add_model("library/tiny", layers=LAYERS)
    r = get(registry, models, tmp_path, "library/tiny")
    assert r.returncode == 0, r.stderr
    mirrored = [s for s in sim.cdn.seen if "/manifests/" in s.path]
    assert mirrored  # the registry redirected the manifest to the other origin ...
    assert not sim.cdn.saw_header("authorization")  # ... which never saw the token
    home = [s for s in sim.origin.seen if "/manifests/" in s.path]
    assert any("authorization" in s.headers for s in home)  # it went to the registry itself
    manifest = models / "manifests" / registry.host / "library" / "tiny" / "latest"
    assert manifest.read_bytes() == raw
