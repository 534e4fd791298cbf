"""The Hugging Face cache and ``--local-dir`` as huggingface_hub itself keeps them: the cache
root, a repo in progress, ``HF_HUB_DISABLE_SYMLINKS``, and the download metadata that lets a
later ``hf download --local-dir`` trust pullman's files. The real huggingface_hub checks."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pullman.layouts.hf_cache import cache_dir
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.hub import HubSimulator

from helpers import KiB, MiB, cli_env, pullman, spawn

REPO = "org/tiny"
FILES = {"config.json": b'{"a": 1}\n', "weights/model.safetensors": make_data(1 * MiB, 1)}


def run_python(code: str, env: dict[str, str]) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HF_HOME": "/tmp/hfhome"},
        {"HF_HOME": "$BASE/hf", "BASE": "/srv"},
        {"XDG_CACHE_HOME": "/tmp/xdg"},
        {"HUGGINGFACE_HUB_CACHE": "/tmp/legacy"},
        {"HUGGINGFACE_HUB_CACHE": "/tmp/legacy", "HF_HUB_CACHE": "/tmp/new"},
        {"HF_HUB_CACHE": "~/models/hub", "HF_HOME": "/ignored"},
        {"HF_HUB_CACHE": "${BASE}/cache", "BASE": "/data"},
    ],
)
def test_the_cache_root_is_huggingface_hubs(env: dict[str, str]) -> None:
    hf = ("HF_", "HUGGINGFACE_", "XDG_")
    base = {k: v for k, v in cli_env(Path("/tmp/home")).items() if not k.startswith(hf)}
    full = {**base, **env}
    theirs = run_python(
        "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)", full
    )
    assert cache_dir(full) == Path(theirs.strip()).absolute()


def hub_env(tmp_path: Path, hub: HubSimulator, **extra: str) -> dict[str, str]:
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_XET="1", **extra)
    env.update(HF_HUB_CACHE=str(tmp_path / "cache"), HF_HOME=str(tmp_path / "hf"))
    return env


def test_an_interrupted_repo_is_in_progress_not_corrupt(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    files = {**FILES, "big.bin": make_data(4 * MiB, 2)}
    hub.add_repo(REPO, files)
    sim.cdn_throttle = Throttle(rate=512 * KiB)
    env = hub_env(tmp_path, hub)
    proc = spawn("get", f"hf://{REPO}", home=tmp_path, env=env)
    repo = tmp_path / "cache" / "models--org--tiny"
    big = hub.file(REPO, "big.bin").sim_file
    deadline = time.monotonic() + 30
    while big.bytes_sent < MiB:  # well into the big file, some blobs committed
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    proc.kill()  # as a reboot would
    proc.wait()
    out = run_python(
        """
        from huggingface_hub import scan_cache_dir
        info = scan_cache_dir()
        print(len(info.warnings), [r.repo_id for r in info.repos])
        """,
        env,
    )
    assert out.split(" ", 1)[0] == "0"  # huggingface_hub finds nothing wrong with it
    assert (repo / "snapshots").is_dir()


def test_symlinks_disabled_puts_the_files_in_the_snapshot(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    commit = hub.add_repo(REPO, FILES)
    env = hub_env(tmp_path, hub, HF_HUB_DISABLE_SYMLINKS="1")
    r = pullman("get", f"hf://{REPO}", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    snapshot = tmp_path / "cache" / "models--org--tiny" / "snapshots" / commit
    for path, data in FILES.items():
        assert not (snapshot / path).is_symlink() and (snapshot / path).read_bytes() == data
    assert not list((tmp_path / "cache" / "models--org--tiny" / "blobs").glob("*"))
    out = run_python(
        f"""
        import json
        from huggingface_hub import hf_hub_download
        paths = [hf_hub_download("{REPO}", p, local_files_only=True) for p in {sorted(FILES)!r}]
        print(json.dumps([open(p, "rb").read().hex() for p in paths]))
        """,
        env,
    )
    assert json.loads(out) == [FILES[p].hex() for p in sorted(FILES)]


def test_hf_download_reuses_what_pullman_put_in_a_local_dir(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    hub.add_repo(REPO, FILES)
    env = hub_env(tmp_path, hub)
    local = tmp_path / "local"
    r = pullman("get", f"hf://{REPO}", "--local-dir", str(local), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    served = sim.total_bytes_sent()  # every file the Hub serves is a simulator file
    run_python(
        f"""
        from huggingface_hub import snapshot_download
        snapshot_download("{REPO}", local_dir="{local}")
        """,
        env,
    )
    assert sim.total_bytes_sent() == served  # huggingface_hub trusted them: no byte again
    for path, data in FILES.items():
        assert (local / path).read_bytes() == data
