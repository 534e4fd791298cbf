"""One copy, every app: a GGUF fetched once lands in the HF cache, LM Studio's tree and
Ollama's store as one inode; the other destinations fetch nothing; removing it from one app
keeps the others whole; across file systems it is copied (and checked), never a symlink."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pullman.core.units import human
from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, cli_env, pullman

GGUF = b"GGUF" + make_data(600 * KiB, 7)
NAME = "M-Q4_K_M.gguf"
HEX = hashlib.sha256(GGUF).hexdigest()
EVERY_APP = ("--to", "hf", "--to", "lmstudio", "--to", "ollama")


class Apps:
    """The Hub, hf.co's Ollama registry (both on the simulator) and three empty stores."""

    def __init__(self, sim: Simulator, tmp_path: Path) -> None:
        self.hub = HubSimulator(sim)
        self.commit = self.hub.add_repo("org/M-GGUF", {NAME: GGUF, "README.md": b"# M\n"})
        self.registry = OllamaRegistry(sim)
        layers = [("model", GGUF), ("template", b"{{ .Prompt }}"), ("params", b"{}")]
        self.manifest = self.registry.add_model("org/M-GGUF", "Q4_K_M", layers=layers)
        self.cache, self.lmstudio = tmp_path / "hf", tmp_path / "lms" / "models"
        self.ollama = tmp_path / "ollama"
        self.lmstudio.mkdir(parents=True)
        self.home = tmp_path
        self.env = cli_env(
            tmp_path / "home",
            HF_ENDPOINT=self.hub.endpoint,
            HF_HUB_CACHE=str(self.cache),
            PULLMAN_HF_REGISTRY=sim.origin.url,
            OLLAMA_MODELS=str(self.ollama),
            PULLMAN_STORES_LMSTUDIO=str(self.lmstudio),
        )

    def run(self, *args: str):  # type: ignore[no-untyped-def]
        return pullman(*args, home=self.home, env=self.env)

    def hub_bytes(self) -> int:
        repo = self.hub.repos[("model", "org/M-GGUF")]
        return repo.commits[self.commit].files[NAME].sim_file.bytes_sent

    def registry_bytes(self) -> int:
        return self.registry.blob(GGUF).bytes_sent

    @property
    def places(self) -> dict[str, Path]:
        return {
            "hf": self.cache / "models--org--M-GGUF" / "blobs" / HEX,
            "lmstudio": self.lmstudio / "org" / "M-GGUF" / NAME,
            "ollama": self.ollama / "blobs" / f"sha256-{HEX}",
        }


PROBE = 64
"""Bytes a first request may read beyond the file (pullman's one-byte range probe)."""


def fetched_once(apps: Apps) -> bool:
    return len(GGUF) <= apps.hub_bytes() <= len(GGUF) + PROBE


@pytest.fixture
def apps(sim: Simulator, tmp_path: Path) -> Apps:
    return Apps(sim, tmp_path)


def test_one_download_lands_in_three_apps_as_one_inode(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", *EVERY_APP, "--json")
    assert r.returncode == 0, r.stderr
    docs = {(Path(d["path"]).name, d["status"]) for d in json.loads(r.stdout)}
    assert (HEX, "downloaded") in docs and (NAME, "linked") in docs  # HF cache, LM Studio
    assert (f"sha256-{HEX}", "linked") in docs  # Ollama's model layer: the same GGUF
    inodes = {app: path.stat() for app, path in apps.places.items()}
    assert len({(st.st_dev, st.st_ino) for st in inodes.values()}) == 1
    assert all(st.st_nlink == 3 for st in inodes.values())
    assert fetched_once(apps)  # from the Hub's CDN
    assert apps.registry_bytes() == 0  # the registry's copy of the layer: not a byte
    manifest = apps.ollama / "manifests" / "hf.co" / "org" / "M-GGUF" / "Q4_K_M"
    assert manifest.read_bytes() == apps.manifest
    assert not list(apps.lmstudio.rglob("*.part")) and not list(apps.lmstudio.rglob(".*"))
    _hf_reads_it_offline(apps)


def _hf_reads_it_offline(apps: Apps) -> None:
    """The real huggingface_hub, offline, finds the file in the cache pullman wrote."""
    code = (
        "import sys; from huggingface_hub import hf_hub_download; "
        f"print(hf_hub_download('org/M-GGUF', {NAME!r}, cache_dir=sys.argv[1], "
        "local_files_only=True))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(apps.cache)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).read_bytes() == GGUF


def test_a_later_destination_links_what_an_earlier_run_fetched(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M")  # into the HF cache, its natural store
    assert r.returncode == 0, r.stderr
    fetched = apps.hub_bytes()
    r = apps.run("get", "hf.co/org/M-GGUF:Q4_K_M")  # the Ollama name, another day
    assert r.returncode == 0, r.stderr
    assert "1 linked from other stores" in r.stdout
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio")
    assert r.returncode == 0, r.stderr
    assert apps.hub_bytes() == fetched and apps.registry_bytes() == 0
    assert apps.places["lmstudio"].stat().st_nlink == 3


def test_removing_it_from_one_app_keeps_the_others_whole(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", *EVERY_APP)
    assert r.returncode == 0, r.stderr
    r = apps.run("rm", "hf://org/M-GGUF", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["freed"] == 0  # the bytes are still another app's
    assert not apps.places["hf"].exists()
    for app in ("lmstudio", "ollama"):
        assert apps.places[app].read_bytes() == GGUF
        assert apps.places[app].stat().st_nlink == 2
    r = apps.run("rm", "hf.co/org/M-GGUF:Q4_K_M", "--from", "lmstudio")
    assert r.returncode == 0, r.stderr
    assert not (apps.lmstudio / "org").exists()
    assert apps.places["ollama"].read_bytes() == GGUF
    assert apps.places["ollama"].stat().st_nlink == 1


def test_ls_shows_which_apps_see_a_model_and_the_bytes_saved(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", *EVERY_APP)
    assert r.returncode == 0, r.stderr
    r = apps.run("ls", "--json")
    assert r.returncode == 0, r.stderr
    entries = {e["store"]: e for e in json.loads(r.stdout)}
    assert set(entries) == {"hf", "lmstudio", "ollama"}
    assert entries["lmstudio"]["name"] == "org/M-GGUF"
    assert sorted(entries["lmstudio"]["shared_with"]) == ["hf", "ollama"]
    assert entries["lmstudio"]["shared_bytes"] == len(GGUF)
    r = apps.run("ls")
    assert f"sharing saves {human(2 * len(GGUF))}" in r.stdout, r.stdout


def test_across_file_systems_the_copy_is_checked_and_said(apps: Apps, tmp_path: Path) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm as tmpfs)")
    other = shm / f"pullman-test-{os.getpid()}-lms"
    other.mkdir()  # LM Studio's home, on another file system
    try:
        r = apps.run("get", "hf://org/M-GGUF:Q4_K_M")
        assert r.returncode == 0, r.stderr
        r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--lmstudio-dir",
                     str(other / "models"), "--json")  # fmt: skip
        assert r.returncode == 0, r.stderr
        [doc] = [d for d in json.loads(r.stdout) if d["name"] == NAME]
        assert doc["status"] in ("copied", "cloned")
        assert "copied from" in r.stderr or doc["status"] == "cloned"
        placed = other / "models" / "org" / "M-GGUF" / NAME
        assert placed.read_bytes() == GGUF and not placed.is_symlink()
        assert fetched_once(apps)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_corrupt_copy_elsewhere_is_not_shared(apps: Apps, tmp_path: Path) -> None:
    """A cross-device copy is hashed on the way; a bad one is skipped and the file fetched."""
    r = apps.run("get", "hf.co/org/M-GGUF:Q4_K_M")
    assert r.returncode == 0, r.stderr
    blob = apps.places["ollama"]
    raw = bytearray(blob.read_bytes())
    raw[1000] ^= 1
    blob.write_bytes(bytes(raw))  # same size, wrong bytes (and one name: no link shares it)
    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm as tmpfs)")
    cache = shm / f"pullman-test-{os.getpid()}-hf"
    try:
        r = pullman("get", "hf://org/M-GGUF:Q4_K_M", "--cache-dir", str(cache), home=apps.home,
                    env=apps.env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "does not match its digest" in r.stderr
        assert fetched_once(apps)  # from the Hub: the bad copy was not used
        assert (cache / "models--org--M-GGUF" / "blobs" / HEX).read_bytes() == GGUF
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def test_link_shows_the_hf_cache_gguf_to_lm_studio_without_a_byte(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M")
    assert r.returncode == 0, r.stderr
    before = apps.hub_bytes()
    r = apps.run("link", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--json")
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["status"] == "linked" and doc["links"] == 2
    assert apps.places["lmstudio"].stat().st_ino == apps.places["hf"].stat().st_ino
    assert apps.hub_bytes() == before


def test_link_an_ollama_model_into_lm_studio(apps: Apps) -> None:
    r = apps.run("get", "hf.co/org/M-GGUF:Q4_K_M")  # Ollama's store only
    assert r.returncode == 0, r.stderr
    r = apps.run("link", "hf.co/org/M-GGUF:Q4_K_M", "--to", "lmstudio")
    assert r.returncode == 0, r.stderr
    placed = apps.lmstudio / "org" / "M-GGUF" / "M-GGUF-Q4_K_M.gguf"  # named from the model
    assert placed.stat().st_ino == apps.places["ollama"].stat().st_ino


def test_link_into_ollama_takes_the_small_layers_from_the_registry(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M")
    assert r.returncode == 0, r.stderr
    r = apps.run("link", "hf://org/M-GGUF:Q4_K_M", "--to", "ollama")
    assert r.returncode == 0, r.stderr
    manifest = apps.ollama / "manifests" / "hf.co" / "org" / "M-GGUF" / "Q4_K_M"
    assert manifest.read_bytes() == apps.manifest  # hf.co's own manifest, byte for byte
    assert apps.places["ollama"].stat().st_ino == apps.places["hf"].stat().st_ino
    assert apps.registry_bytes() == 0


def test_link_refuses_what_is_not_here_and_writes_nothing(apps: Apps) -> None:
    r = apps.run("link", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio")
    assert r.returncode == 3, r.stderr  # not found
    assert "not in the HF cache" in r.stderr and "pullman get" in r.stderr
    assert not any(apps.lmstudio.iterdir())
    r = apps.run("link", "llama3", "--to", "hf")
    assert r.returncode == 2 and "cannot go to the Hugging Face cache" in r.stderr


def test_verify_checks_every_name_of_a_shared_file_and_lm_studio_s_copy(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", *EVERY_APP)
    assert r.returncode == 0, r.stderr
    r = apps.run("verify", "--json")
    assert r.returncode == 0, r.stderr
    checked = {Path(d["path"]) for d in json.loads(r.stdout) if d["state"] == "ok"}
    assert set(apps.places.values()) <= checked  # every app's name for it, lm studio's too
    lms = apps.places["lmstudio"]
    lms.unlink()  # LM Studio's copy alone goes bad: a file of its own, corrupt
    lms.write_bytes(GGUF[:-1] + b"!")
    r = apps.run("verify", "--json")
    assert r.returncode == 4
    bad = [d for d in json.loads(r.stdout) if d["state"] != "ok"]
    assert [Path(d["path"]) for d in bad] == [lms]


CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def real_gguf(path: Path) -> bytes:
    """A small, real GGUF (llama.cpp's writer): a Q4_K_M-typed qwen2 with a ChatML template."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(path, "qwen2")
    w.add_string("tokenizer.chat_template", CHATML)
    w.add_uint32("general.file_type", 15)
    w.add_tensor("w", np.ones((64, 64), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


@pytest.mark.parametrize("how", ["--offline", "registry-down"])
def test_link_into_ollama_offline_writes_the_manifest_from_the_gguf(
    sim: Simulator, tmp_path: Path, how: str
) -> None:
    from pullman.core.ollama_manifest import parse_manifest

    data = real_gguf(tmp_path / "q.gguf")
    hub = HubSimulator(sim)
    hub.add_repo("org/Q-GGUF", {"Q-Q4_K_M.gguf": data})
    ollama_dir, cache = tmp_path / "ollama", tmp_path / "hf"
    down = "http://127.0.0.1:9"  # hf.co's registry, unreachable
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(cache),
                  OLLAMA_MODELS=str(ollama_dir), PULLMAN_HF_REGISTRY=down)  # fmt: skip
    r = pullman("get", "hf://org/Q-GGUF:Q4_K_M", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    extra = ("--offline",) if how == "--offline" else ()
    r = pullman("link", "hf://org/Q-GGUF:Q4_K_M", "--to", "ollama", *extra, home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert "written from the GGUF's metadata (the chatml template)" in r.stderr
    raw = (ollama_dir / "manifests" / "hf.co" / "org" / "Q-GGUF" / "Q4_K_M").read_bytes()
    manifest = parse_manifest(raw)
    hex_digest = hashlib.sha256(data).hexdigest()
    kinds = {layer.kind: layer for layer in manifest.blobs}
    assert kinds["model"].digest.hex == hex_digest
    blob = ollama_dir / "blobs" / f"sha256-{hex_digest}"
    snapshot_blob = cache / "models--org--Q-GGUF" / "blobs" / hex_digest
    assert blob.stat().st_ino == snapshot_blob.stat().st_ino  # the GGUF itself: no copy
    for layer in manifest.blobs:  # every blob the manifest names is there, and is right
        body = (ollama_dir / "blobs" / f"sha256-{layer.digest.hex}").read_bytes()
        assert hashlib.sha256(body).hexdigest() == layer.digest.hex and len(body) == layer.size
    template = (ollama_dir / "blobs" / f"sha256-{kinds['template'].digest.hex}").read_text()
    assert "<|im_start|>" in template and "{{" in template and "{%" not in template  # Go, not Jinja
    config = json.loads((ollama_dir / "blobs" / f"sha256-{manifest.config.digest.hex}").read_text())
    assert config["model_format"] == "gguf" and config["file_type"] == "Q4_K_M"
    assert config["model_family"] == "qwen2"


def test_a_full_disk_during_link_is_a_clear_error_and_leaves_nothing(
    apps: Apps, tmp_path: Path
) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)],
                             capture_output=True, text=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        r = apps.run("get", "hf://org/M-GGUF:Q4_K_M")
        assert r.returncode == 0, r.stderr
        models = small / "models"
        models.mkdir()
        r = apps.run("link", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--lmstudio-dir",
                     str(models))  # fmt: skip
        assert r.returncode == 5, r.stderr  # disk full, said so
        assert "disk full" in r.stderr and "Traceback" not in r.stderr
        assert [p for p in small.rglob("*") if p.is_file()] == []  # no half file anywhere
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_a_copy_edited_in_place_since_it_was_verified_is_not_linked(apps: Apps) -> None:
    """The index recorded LM Studio's file as verified; then something rewrote it in place
    (same size). Sharing checks the digest before linking, so the HF cache gets real bytes."""
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio")
    assert r.returncode == 0, r.stderr
    lms = apps.places["lmstudio"]
    with lms.open("r+b") as f:  # as a metadata editor does: same inode, same size
        f.seek(100)
        f.write(b"\xff")
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    assert "does not match its digest" in r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["status"] == "downloaded" and doc["verified"]
    assert hashlib.sha256(apps.places["hf"].read_bytes()).hexdigest() == HEX
    assert apps.places["hf"].stat().st_ino != lms.stat().st_ino


def test_rm_of_an_ollama_model_frees_only_what_no_other_app_uses(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--to", "ollama")
    assert r.returncode == 0, r.stderr
    r = apps.run("rm", "hf.co/org/M-GGUF:Q4_K_M", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["freed"] < 1024  # the GGUF is LM Studio's too: not freed
    assert apps.places["lmstudio"].read_bytes() == GGUF


def test_link_shares_small_files_too(sim: Simulator, tmp_path: Path) -> None:
    """An MLX repo (no GGUF): its small files are named by git blob ids, not sha256."""
    hub = HubSimulator(sim)
    files = {"config.json": b'{"model_type": "qwen2"}\n', "model.safetensors": make_data(8192, 5)}
    hub.add_repo("mlx-community/M-4bit", files)
    models = tmp_path / "lms" / "models"
    models.mkdir(parents=True)
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(tmp_path / "hf"))
    r = pullman("get", "hf://mlx-community/M-4bit", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = pullman("link", "hf://mlx-community/M-4bit", "--to", "lmstudio", "--lmstudio-dir",
                str(models), "--json", home=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert {d["status"] for d in json.loads(r.stdout)} == {"linked"}
    folder = models / "mlx-community" / "M-4bit"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--to", "lmstudio", "--local-dir", "x"), "both say where"),
        (("--to", "hf", "-o", "y.gguf"), "both say where"),
        (("--to", "lm-studio"), "is not a destination"),
    ],
)
def test_to_refuses_what_it_would_silently_ignore(
    apps: Apps, args: tuple[str, ...], message: str
) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", *args)
    assert r.returncode == 2 and message in r.stderr, r.stderr
    assert apps.hub_bytes() == 0


def test_to_takes_app_names_in_any_case(apps: Apps) -> None:
    r = apps.run("get", "hf://org/M-GGUF:Q4_K_M", "--to", "LMStudio")
    assert r.returncode == 0, r.stderr
    assert apps.places["lmstudio"].read_bytes() == GGUF


def test_gc_keeps_a_queued_to_job_s_partial_download(apps: Apps) -> None:
    r = apps.run("get", "--detach", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio")
    assert r.returncode == 0, r.stderr  # queued; no daemon runs it
    staging = apps.lmstudio.parent / ".pullman-partial"
    staging.mkdir()
    part = staging / f"hf-{HEX}.part"
    part.write_bytes(b"x" * 4096)
    old = time.time() - 7200
    os.utime(part, (old, old))
    r = apps.run("gc", "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    assert [i for i in json.loads(r.stdout)["items"] if "lms" in i["path"]] == []
