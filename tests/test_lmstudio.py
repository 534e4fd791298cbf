"""LM Studio as a destination: its home found as LM Studio finds it, models two folders deep,
partial data outside its tree, and clear errors when it is not there."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pullman.layouts.lmstudio_home import lmstudio_home, models_dir
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, pullman, spawn

GGUF = b"GGUF" + make_data(400 * KiB, 3)
MMPROJ = b"GGUF" + make_data(40 * KiB, 4)


def test_its_home_is_found_as_lm_studio_finds_it(tmp_path: Path) -> None:
    home = tmp_path / "user"
    home.mkdir()
    env = {"HOME": str(home)}
    assert lmstudio_home(env) == home / ".lmstudio"  # a fresh machine: LM Studio's default
    (home / ".cache" / "lm-studio").mkdir(parents=True)
    assert lmstudio_home(env) == home / ".cache" / "lm-studio"  # an older install
    (home / ".lmstudio-home-pointer").write_text(f"{tmp_path / 'moved'}\n")
    assert lmstudio_home(env) == tmp_path / "moved"  # the pointer LM Studio writes
    assert lmstudio_home({**env, "LMSTUDIO_HOME": str(tmp_path / "env")}) == tmp_path / "env"
    assert models_dir(None, env) == tmp_path / "moved" / "models"
    assert models_dir(str(tmp_path / "mine"), env) == tmp_path / "mine"  # --lmstudio-dir


@pytest.fixture
def hub(sim: Simulator) -> HubSimulator:
    hub = HubSimulator(sim)
    files = {"M-Q4_K_M.gguf": GGUF, "M-Q8_0.gguf": GGUF[::-1], "mmproj-M-F16.gguf": MMPROJ}
    hub.add_repo("org/M-GGUF", {**files, "README.md": b"# M\n"})
    return hub


def env_for(tmp_path: Path, hub: HubSimulator, **extra: str) -> dict[str, str]:
    user = tmp_path / "user"
    user.mkdir(exist_ok=True)
    return cli_env(
        tmp_path / "home",
        HOME=str(user),
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_CACHE=str(tmp_path / "hf"),
        **extra,
    )


def test_a_gguf_repo_lands_two_folders_deep_with_its_projector(
    hub: HubSimulator, tmp_path: Path
) -> None:
    lms = tmp_path / "user" / ".lmstudio"
    env = env_for(tmp_path, hub)
    lms.mkdir(parents=True)  # LM Studio is installed (its home exists)
    r = pullman("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    folder = lms / "models" / "org" / "M-GGUF"
    assert sorted(p.name for p in folder.iterdir()) == ["M-Q4_K_M.gguf", "mmproj-M-F16.gguf"]
    assert (folder / "M-Q4_K_M.gguf").read_bytes() == GGUF
    assert not (tmp_path / "hf").exists()  # --to lmstudio only: not the HF cache too
    assert f"saved to: {folder}" in r.stdout


def test_without_lm_studio_it_says_so_and_writes_nothing(hub: HubSimulator, tmp_path: Path) -> None:
    env = env_for(tmp_path, hub)
    r = pullman("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", home=tmp_path, env=env)
    assert r.returncode == 3, r.stderr
    assert "LM Studio seems not to be installed" in r.stderr and "--lmstudio-dir" in r.stderr
    assert not (tmp_path / "user" / ".lmstudio").exists()


def test_partial_data_never_sits_in_lm_studio_s_tree(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    big = make_data(6 * MiB, 9)
    files = {"B-Q4_K_M.gguf": big, "mmproj-B-F16.gguf": MMPROJ}  # the projector: done first
    hub.add_repo("org/B-GGUF", files, throttle=Throttle(burst=0, rate=MiB))
    sim_file = (
        next(iter(hub.repos[("model", "org/B-GGUF")].commits.values()))
        .files["B-Q4_K_M.gguf"]
        .sim_file
    )
    models = tmp_path / "lms" / "models"
    models.mkdir(parents=True)
    env = env_for(tmp_path, hub)
    args = ("get", "hf://org/B-GGUF:Q4_K_M", "--to", "lmstudio", "--lmstudio-dir", str(models))
    proc = spawn(*args, "--json", home=tmp_path, env=env)
    deadline = time.monotonic() + 30
    while sim_file.bytes_sent < 2 * MiB and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the download should still be running"
    in_tree = [p for p in models.rglob("*") if p.is_file()]
    staging = tmp_path / "lms" / ".pullman-partial"
    staged, held = list(staging.glob("*.part")), [p for p in staging.iterdir() if "." not in p.name]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert in_tree == [] and len(staged) >= 1  # mid-download: nothing in LM Studio's tree,
    assert [p.read_bytes() for p in held] == [MMPROJ]  # not even the projector it finished
    r = pullman(*args, "--json", home=tmp_path, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    doc = next(d for d in json.loads(r.stdout) if d["name"] == "B-Q4_K_M.gguf")
    assert doc["resumed"] > 0  # the staged progress was kept
    assert (models / "org" / "B-GGUF" / "B-Q4_K_M.gguf").read_bytes() == big


def test_an_ollama_model_goes_to_lm_studio_as_its_gguf_and_projector(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    layers = [("model", GGUF), ("projector", MMPROJ), ("template", b"{{ .Prompt }}")]
    registry.add_model("library/llava", "7b", layers=layers)
    models = tmp_path / "lms" / "models"
    models.mkdir(parents=True)
    env = cli_env(tmp_path / "home", OLLAMA_MODELS=str(tmp_path / "ollama"))
    name = registry.name("library/llava", "7b")
    to = ("--to", "lmstudio", "--to", "ollama", "--lmstudio-dir", str(models))
    r = pullman("get", "--insecure", name, *to, home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    folder = models / "ollama" / "llava"
    assert sorted(p.name for p in folder.iterdir()) == ["llava-7b.gguf", "mmproj-llava-7b.gguf"]
    blob = tmp_path / "ollama" / "blobs" / f"sha256-{hashlib.sha256(GGUF).hexdigest()}"
    assert (folder / "llava-7b.gguf").stat().st_ino == blob.stat().st_ino
    assert registry.blob(GGUF).bytes_sent <= len(GGUF) + 64  # once, for both apps


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run pullman as another user")
def test_an_unwritable_lm_studio_folder_is_refused_before_any_byte(
    hub: HubSimulator, tmp_path: Path
) -> None:
    base = Path(tempfile.mkdtemp(prefix="pullman-lms-"))  # /tmp itself is world-traversable
    try:
        base.chmod(0o755)
        models = base / "lms" / "models"
        models.mkdir(parents=True, mode=0o755)  # root's: the unprivileged user may not write
        home = base / "home"
        home.mkdir()
        home.chmod(0o777)
        env = cli_env(home, HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(home / "hf"))
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        args = ["get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--lmstudio-dir", str(models)]
        r = subprocess.run([*as_nobody, sys.executable, "-m", "pullman", *args], env=env,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
        assert r.returncode == 5, r.stderr
        assert "cannot write to" in r.stderr and "--lmstudio-dir" in r.stderr
        assert not any(models.iterdir())
        assert hub_bytes_sent(hub) == 0  # refused before any byte
    finally:
        shutil.rmtree(base)


def hub_bytes_sent(hub: HubSimulator) -> int:
    repo = hub.repos[("model", "org/M-GGUF")]
    return sum(f.sim_file.bytes_sent for c in repo.commits.values() for f in c.files.values())


def test_folder_and_file_names_are_single_safe_segments() -> None:
    from pullman.core.lmstudio_names import folder, segment
    from pullman.sources import parse

    assert segment("..", "x") == "x" and segment(".", "x") == "x" and segment("a/b", "x") == "a-b"
    assert segment(".hidden", "x") == "hidden"
    for url in ("https://a/..gguf", "https://h/x/..gguf", "https://h/%2e%2e.gguf"):
        publisher, repo = folder(parse(url, plain=True))
        assert publisher not in ("", ".", "..") and repo not in ("", ".", "..")
        assert "/" not in publisher + repo


def test_rm_from_lm_studio_removes_only_what_the_ref_names(
    hub: HubSimulator, tmp_path: Path
) -> None:
    models = tmp_path / "lms" / "models"
    models.mkdir(parents=True)
    env = env_for(tmp_path, hub)
    for quant in ("Q4_K_M", "Q8_0"):
        r = pullman("get", f"hf://org/M-GGUF:{quant}", "--to", "lmstudio", "--lmstudio-dir",
                    str(models), home=tmp_path, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
    folder = models / "org" / "M-GGUF"
    theirs = folder / "notes.txt"
    theirs.write_text("the user's own")
    rm = ("rm", "--from", "lmstudio", "--lmstudio-dir", str(models))
    r = pullman(*rm, "hf://org/M-GGUF:Q4_K_M", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == [
        "M-Q8_0.gguf",
        "mmproj-M-F16.gguf",  # the other quant still needs it
        "notes.txt",
    ]
    r = pullman(*rm, "hf://org/M-GGUF:Q8_0", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    r = pullman(*rm, "https://a/..gguf", home=tmp_path, env=env)
    assert r.returncode == 3 and theirs.exists()  # never the models folder itself
    r = pullman("verify", "--lmstudio-dir", str(models), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr  # what rm removed is forgotten, not "missing"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: checks what sudo pullman get leaves")
def test_sudo_leaves_lm_studio_s_staging_to_its_owner(hub: HubSimulator, tmp_path: Path) -> None:
    home = tmp_path / "lms"
    (home / "models").mkdir(parents=True)
    os.chown(home, 65534, 65534)
    os.chown(home / "models", 65534, 65534)
    env = env_for(tmp_path, hub)
    r = pullman("get", "hf://org/M-GGUF:Q4_K_M", "--to", "lmstudio", "--lmstudio-dir",
                str(home / "models"), home=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for path in [home / ".pullman-partial", *(home / "models").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
