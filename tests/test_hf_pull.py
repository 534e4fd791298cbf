"""``pullman get hf://...`` against the Hub simulator; the real huggingface_hub reads the result.

The reading side runs huggingface_hub in a subprocess with ``HF_HUB_OFFLINE=1``: the library
reads its settings at import time, and offline mode proves nothing is fetched behind our back.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator

from helpers import KiB, MiB, hub_env, pullman

REPO = "org/tiny-model"
FILES = {
    "config.json": b'{"model_type": "llama", "hidden_size": 64}\n',
    "README.md": b"# tiny\n",
    "tokenizer.json": make_data(5 * KiB, 9),
    "weights/model.safetensors": make_data(2 * MiB + 17, 7),
    "weights/shards/shard-00001-of-00002.bin": make_data(300 * KiB, 8),
    "weights/shards/shard-00002-of-00002.bin": make_data(300 * KiB + 1, 10),
}


@pytest.fixture
def hub(sim: Simulator) -> HubSimulator:
    return HubSimulator(sim)


def get(tmp_path: Path, hub: HubSimulator, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return pullman("get", *args, home=tmp_path, env=hub_env(tmp_path, hub, **env))


def hf_python(tmp_path: Path, hub: HubSimulator, code: str, **env: str) -> str:
    """Run huggingface_hub itself in a fresh process; returns its stdout."""
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=hub_env(tmp_path, hub, **env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    return r.stdout


READ_OFFLINE = """
import json, os
from huggingface_hub import hf_hub_download, snapshot_download, scan_cache_dir
files = json.loads(os.environ["EXPECT"])
out = {}
for path in files:
    local = hf_hub_download("org/tiny-model", path, local_files_only=True)
    out[path] = open(local, "rb").read().hex()
folder = snapshot_download("org/tiny-model", local_files_only=True)
listed = sorted(
    os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs
)
info = scan_cache_dir()
repos = {r.repo_id: [r.size_on_disk, r.nb_files, sorted(map(str, r.refs))] for r in info.repos}
print(json.dumps({"files": out, "listed": listed, "repos": repos,
                  "warnings": [str(w) for w in info.warnings]}))
"""


def test_huggingface_hub_reads_what_pullman_wrote_offline(
    hub: HubSimulator, tmp_path: Path
) -> None:
    commit = hub.add_repo(REPO, FILES)
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    assert f"{REPO}@main: 6 files verified" in r.stdout
    out = json.loads(
        hf_python(tmp_path, hub, READ_OFFLINE, HF_HUB_OFFLINE="1", EXPECT=json.dumps(list(FILES)))
    )
    assert {p: bytes.fromhex(h) for p, h in out["files"].items()} == FILES
    assert out["listed"] == sorted(FILES)
    size = sum(len(d) for d in FILES.values())
    assert out["repos"] == {REPO: [size, len(FILES), ["main"]]}
    assert out["warnings"] == []
    repo_dir = tmp_path / "cache" / "models--org--tiny-model"
    assert (repo_dir / "refs" / "main").read_bytes() == commit.encode()  # no trailing newline
    link = repo_dir / "snapshots" / commit / "weights" / "shards" / "shard-00001-of-00002.bin"
    assert link.is_symlink() and not Path(link.readlink()).is_absolute()
    lfs_blob = repo_dir / "blobs" / hashlib.sha256(FILES["weights/model.safetensors"]).hexdigest()
    assert lfs_blob.read_bytes() == FILES["weights/model.safetensors"]


def test_a_cache_filled_by_huggingface_hub_is_reused_and_the_reverse(
    hub: HubSimulator, sim: Simulator, tmp_path: Path
) -> None:
    hub.add_repo(REPO, FILES)
    hf_python(
        tmp_path,
        hub,
        'from huggingface_hub import snapshot_download\nsnapshot_download("org/tiny-model")',
    )
    sent = sim.total_bytes_sent()
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    assert sim.total_bytes_sent() == sent  # zero data bytes fetched
    assert "6 already present" in r.stdout
    # The reverse: a second repo fetched by pullman, then asked of huggingface_hub online.
    hub.add_repo("org/other", {"a.bin": make_data(300 * KiB, 1), "b.txt": b"small"})
    assert get(tmp_path, hub, "hf://org/other").returncode == 0
    sent = sim.total_bytes_sent()
    code = 'from huggingface_hub import snapshot_download\nprint(snapshot_download("org/other"))'
    folder = Path(hf_python(tmp_path, hub, code).strip())
    assert sim.total_bytes_sent() == sent
    assert (folder / "b.txt").read_bytes() == b"small"


def test_the_cdn_never_receives_the_token(
    hub: HubSimulator, sim: Simulator, tmp_path: Path
) -> None:
    hub.add_repo(REPO, FILES, private=True)
    hub.add_token("hf_secret_token_123", approved_gated=True)
    r = get(tmp_path, hub, f"hf://{REPO}", "--json", HF_TOKEN="hf_secret_token_123")
    assert r.returncode == 0, r.stderr
    assert sim.cdn.seen and not sim.cdn.saw_header("authorization")
    assert any("authorization" in s.headers for s in sim.origin.seen)
    assert "hf_secret_token_123" not in r.stdout + r.stderr


def test_a_private_repo_without_a_token_says_how_to_log_in(
    hub: HubSimulator, tmp_path: Path
) -> None:
    hub.add_repo(REPO, FILES, private=True)
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 3, r.stderr
    assert "not found" in r.stderr and "hf auth login" in r.stderr
    assert not (tmp_path / "cache" / "models--org--tiny-model" / "snapshots").exists()


def test_a_gated_repo_says_where_to_ask(hub: HubSimulator, tmp_path: Path) -> None:
    hub.add_repo(REPO, FILES, gated=True)
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 6, r.stderr
    assert f"{hub.endpoint}/{REPO}" in r.stderr and "HF_TOKEN" in r.stderr
    hub.add_token("hf_not_approved", approved_gated=False)
    r = get(tmp_path, hub, f"hf://{REPO}", HF_TOKEN="hf_not_approved")
    assert r.returncode == 6, r.stderr
    assert "gated" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "cache" / "models--org--tiny-model" / "snapshots").exists()


@pytest.mark.parametrize(
    ("ref", "needle"),
    [
        ("hf://org/missing", "repo org/missing not found"),
        (f"hf://{REPO}@nope", "has no revision 'nope'"),
        (f"hf://{REPO}/no/such/file.bin", "no file in"),
    ],
)
def test_missing_repo_revision_or_file(
    hub: HubSimulator, tmp_path: Path, ref: str, needle: str
) -> None:
    hub.add_repo(REPO, FILES)
    r = get(tmp_path, hub, ref)
    assert r.returncode == 3, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "cache").glob("*/snapshots/*"))


@pytest.mark.parametrize("path", ["../../escape.bin", "/etc/passwd", "weights/../../x"])
def test_a_tree_entry_escaping_the_repo_is_refused(
    hub: HubSimulator, tmp_path: Path, path: str
) -> None:
    hub.add_repo(REPO, FILES)
    hub.add_raw_tree_entry(REPO, {"type": "file", "path": path, "size": 5, "oid": "a" * 40})
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 1, r.stderr
    assert "refusing the repo file path" in r.stderr
    assert not (tmp_path / "cache" / "models--org--tiny-model").exists()
    assert not (tmp_path / "escape.bin").exists()


def test_rate_limits_are_waited_out(hub: HubSimulator, tmp_path: Path) -> None:
    hub.add_repo(REPO, {"a.bin": make_data(4 * KiB, 3)})
    hub.rate_limit_next(2, retry_after=1)
    r = get(tmp_path, hub, f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    assert hub.rate_limited == 2


def test_gguf_quant_pick_with_split_files(hub: HubSimulator, tmp_path: Path) -> None:
    parts = {
        "M-Q4_K_M-00001-of-00002.gguf": make_data(200 * KiB, 1),
        "M-Q4_K_M-00002-of-00002.gguf": make_data(200 * KiB, 2),
        "M-Q8_0.gguf": make_data(300 * KiB, 3),
        "mmproj-M-F16.gguf": make_data(50 * KiB, 4),
        "mmproj-M-Q8_0.gguf": make_data(40 * KiB, 5),
        "README.md": b"# gguf\n",
    }
    hub.add_repo("bart/M-GGUF", parts)
    r = get(tmp_path, hub, "hf://bart/M-GGUF:q4_k_m", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(d["name"] for d in json.loads(r.stdout)) == sorted(
        ["M-Q4_K_M-00001-of-00002.gguf", "M-Q4_K_M-00002-of-00002.gguf", "mmproj-M-F16.gguf"]
    )  # the split files, and the one vision projector (F16)
    r = get(tmp_path, hub, "hf://bart/M-GGUF:Q2_K")
    assert r.returncode == 3 and "Q8_0" in r.stderr


def test_local_dir_writes_plain_files(hub: HubSimulator, tmp_path: Path) -> None:
    hub.add_repo(REPO, FILES)
    target = tmp_path / "plain"
    r = get(tmp_path, hub, f"hf://{REPO}", "--local-dir", str(target), "--include", "weights/*")
    assert r.returncode == 0, r.stderr
    files = [p for p in target.rglob("*") if p.is_file()]
    got = {str(p.relative_to(target)): p.read_bytes() for p in files if ".cache" not in p.parts}
    assert got == {k: v for k, v in FILES.items() if k.startswith("weights/")}
    assert not (tmp_path / "cache").exists()
    metadata = target / ".cache" / "huggingface" / "download"  # as hf download keeps it
    assert sorted(str(p.relative_to(metadata)) for p in metadata.rglob("*.metadata")) == sorted(
        f"{k}.metadata" for k in FILES if k.startswith("weights/")
    )


def test_ls_and_rm_cover_the_hf_cache(hub: HubSimulator, tmp_path: Path) -> None:
    hub.add_repo(REPO, FILES)
    assert get(tmp_path, hub, f"hf://{REPO}").returncode == 0
    env = hub_env(tmp_path, hub)
    r = pullman("ls", "--json", "--ollama-dir", str(tmp_path / "none"), home=tmp_path, env=env)
    [doc] = json.loads(r.stdout)
    assert doc["name"] == f"hf://{REPO}" and doc["state"] == "complete"
    assert doc["size"] == sum(len(v) for v in FILES.values())
    r = pullman("rm", f"hf://{REPO}", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "cache" / "models--org--tiny-model").exists()
    r = pullman("rm", f"hf://{REPO}", home=tmp_path, env=env)
    assert r.returncode == 3
