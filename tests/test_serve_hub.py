"""``pullman serve`` as a Hugging Face endpoint over the HF cache, for the real client:
huggingface_hub's ``snapshot_download`` / ``hf_hub_download`` / ``HfApi`` with ``HF_ENDPOINT``
pointing at it (in a fresh interpreter: the client reads the variable at import). Repos got
there by ``pullman get`` from the Hub simulator; private and gated ones stay home unless
``--serve-private``; a ``--token-file`` token is enforced."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.testing import Simulator, make_data

from helpers import KiB
from serve_fixtures import FILES, Served, Stores, fill_stores, run_client, serving

DATA = {"train.csv": make_data(40 * KiB, 41), "README.md": b"# data\n"}
HIDDEN = {"model.gguf": make_data(20 * KiB, 42), "config.json": b"{}\n"}

SNAPSHOT = """
import json, os, sys
from huggingface_hub import snapshot_download
kind = sys.argv[1] if len(sys.argv) > 1 else "model"
path = snapshot_download(os.environ["REPO"], repo_type=os.environ.get("KIND", "model"))
files = {}
for top, _, names in os.walk(path):
    for name in names:
        full = os.path.join(top, name)
        files[os.path.relpath(full, path)] = open(full, "rb").read().hex()
print(json.dumps({"path": path, "files": files}))
"""


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    extra = {
        "data/tiny": {"files": DATA, "repo_type": "dataset"},
        "org/private": {"files": HIDDEN, "private": True},
        "org/gated": {"files": HIDDEN, "gated": "manual"},
    }
    with Simulator() as sim:
        yield fill_stores(sim, tmp_path_factory.mktemp("stores"), extra)


def _client_env(s: Served, home: Path, **extra: str) -> dict[str, str]:
    return {"HF_ENDPOINT": s.url, "HF_HOME": str(home), "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def _snapshot(
    s: Served, home: Path, repo: str, kind: str = "model", **extra: str
) -> dict[str, object]:
    r = run_client(SNAPSHOT, _client_env(s, home, REPO=repo, KIND=kind, **extra))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_snapshot_download_through_hf_endpoint_is_byte_exact_at_the_right_commit(
    stores: Stores, tmp_path: Path
) -> None:
    with serving(stores) as s:
        got = _snapshot(s, tmp_path / "client", "org/tiny")
        files = {k: bytes.fromhex(v) for k, v in got["files"].items()}  # type: ignore[union-attr]
        assert files == FILES
        commit = stores.commits["org/tiny"]
        assert Path(str(got["path"])).name == commit
        cache = tmp_path / "client" / "hub" / "models--org--tiny"
        assert (cache / "refs" / "main").read_text() == commit
        lfs = __import__("hashlib").sha256(FILES["weights/model.safetensors"]).hexdigest()
        assert (cache / "blobs" / lfs).is_file()  # named by sha256, as from the real Hub
        data = _snapshot(s, tmp_path / "client", "data/tiny", "dataset")
        assert {k: bytes.fromhex(v) for k, v in data["files"].items()} == DATA  # type: ignore[union-attr]
        log = s.log()
        assert "/api/models/org/tiny/revision/main" in log and "/resolve/" in log
        hf = Path(sys.executable).with_name("hf")  # the Hub's own command line, too
        if hf.exists():
            env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
            env.update(_client_env(s, tmp_path / "cli"))
            out = tmp_path / "local"
            command = [str(hf), "download", "org/tiny", "--local-dir", str(out)]
            r = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=60, check=False
            )
            assert r.returncode == 0, r.stderr[-2000:]
            assert {p: (out / p).read_bytes() for p in FILES} == FILES


def test_hf_hub_download_and_the_metadata_calls(stores: Stores, tmp_path: Path) -> None:
    code = """
import json, os
from huggingface_hub import HfApi, hf_hub_download, get_hf_file_metadata, hf_hub_url
api = HfApi()
out = {}
out["file"] = open(hf_hub_download("org/tiny", "weights/model.safetensors"), "rb").read().hex()
small = hf_hub_download("org/tiny", "config.json", revision=os.environ["COMMIT"])
out["small"] = open(small, "rb").read().hex()
tree = api.list_repo_tree("org/tiny", recursive=True)
out["tree"] = sorted([e.path, getattr(e, "size", 0), getattr(e, "blob_id", None),
                      e.lfs.sha256 if getattr(e, "lfs", None) else None] for e in tree)
out["top"] = sorted(e.path for e in api.list_repo_tree("org/tiny"))
out["info"] = [e.path for e in api.get_paths_info("org/tiny", ["config.json", "weights"])]
meta = get_hf_file_metadata(hf_hub_url("org/tiny", "weights/model.safetensors"))
out["meta"] = [meta.commit_hash, meta.etag, meta.size, meta.xet_file_data is None]
info = api.model_info("org/tiny", files_metadata=True)
out["siblings"] = sorted([x.rfilename, x.size] for x in info.siblings)
try:
    hf_hub_download("org/tiny", "no/such/file")
except Exception as exc:
    out["missing"] = type(exc).__name__
try:
    api.model_info("org/tiny", revision="no-such-branch")
except Exception as exc:
    out["norev"] = type(exc).__name__
print(json.dumps(out))
"""
    import hashlib

    from pullman.testing.hub import git_blob_sha1, lfs_pointer

    commit = stores.commits["org/tiny"]
    with serving(stores) as s:
        r = run_client(code, _client_env(s, tmp_path / "client", COMMIT=commit))
        assert r.returncode == 0, r.stderr[-3000:]
        out = json.loads(r.stdout.strip().splitlines()[-1])
        _, headers, _ = s.get("/org/tiny/resolve/main/weights/model.safetensors", method="HEAD")
    weights = FILES["weights/model.safetensors"]
    assert bytes.fromhex(out["file"]) == weights
    assert bytes.fromhex(out["small"]) == FILES["config.json"]
    expected_tree = sorted(
        [p, len(d), git_blob_sha1(lfs_pointer(d)) if len(d) >= 1024 else git_blob_sha1(d),
         hashlib.sha256(d).hexdigest() if len(d) >= 1024 else None]
        for p, d in FILES.items()
    )  # fmt: skip
    assert [e for e in out["tree"] if e[0] != "weights"] == expected_tree  # the Hub's oids
    assert out["top"] == ["README.md", "config.json", "tokenizer.json", "weights"]
    assert sorted(out["info"]) == ["config.json", "weights"]
    assert out["meta"] == [commit, hashlib.sha256(weights).hexdigest(), len(weights), True]
    assert out["siblings"] == sorted([p, len(d)] for p, d in FILES.items())
    assert out["missing"] == "RemoteEntryNotFoundError"
    assert out["norev"] == "RevisionNotFoundError"
    assert not any(k.lower() in ("x-xet-hash", "link", "location") for k in headers)  # no Xet


def test_private_and_gated_repos_stay_home_unless_serve_private(
    stores: Stores, tmp_path: Path
) -> None:
    assert (stores.cache / "models--org--private" / ".pullman-access").read_text() == "private"
    assert (stores.cache / "models--org--gated" / ".pullman-access").read_text() == "gated"
    with serving(stores) as s:
        assert s.summary["hf"]["repos"] == {"public": 2, "private": 1, "gated": 1, "unknown": 0}
        for repo in ("org/private", "org/gated"):
            r = run_client(SNAPSHOT, _client_env(s, tmp_path / repo, REPO=repo))
            assert r.returncode != 0 and "RepositoryNotFoundError" in r.stderr, r.stderr[-2000:]
            status, headers, _ = s.get(f"/{repo}/resolve/main/config.json")
            assert status == 404 and headers["X-Error-Code"] == "RepoNotFound"
    with serving(stores, "--serve-private") as s:
        got = _snapshot(s, tmp_path / "client", "org/private")
        assert {k: bytes.fromhex(v) for k, v in got["files"].items()} == HIDDEN  # type: ignore[union-attr]
        info = json.loads(s.get("/api/models/org/gated")[2])
        assert (
            info["gated"] == "manual" and json.loads(s.get("/api/models/org/private")[2])["private"]
        )


def test_a_repo_with_no_record_counts_as_private(stores: Stores, tmp_path: Path) -> None:
    import shutil

    cache = tmp_path / "hf"
    shutil.copytree(stores.cache / "models--org--tiny", cache / "models--org--tiny", symlinks=True)
    (cache / "models--org--tiny" / ".pullman-access").unlink()  # as huggingface_hub leaves it
    copy = Stores(tmp_path, stores.models, cache, stores.registry_host, stores.manifest)
    with serving(copy) as s:
        assert s.summary["hf"]["repos"]["unknown"] == 1 and s.summary["hf"]["served"] == 0
        assert s.get("/api/models/org/tiny")[0] == 404
    with serving(copy, "--serve-private") as s:
        assert s.get("/api/models/org/tiny")[0] == 200


def test_a_token_file_makes_every_client_show_the_token(stores: Stores, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("lan-secret-123\n")
    with serving(stores, "--token-file", str(token_file), "--registry", stores.registry_host) as s:
        r = run_client(SNAPSHOT, _client_env(s, tmp_path / "anon", REPO="org/tiny"))
        assert r.returncode != 0
        r = run_client(
            SNAPSHOT, _client_env(s, tmp_path / "wrong", REPO="org/tiny", HF_TOKEN="nope")
        )
        assert r.returncode != 0
        got = _snapshot(s, tmp_path / "ok", "org/tiny", HF_TOKEN="lan-secret-123")
        assert {k: bytes.fromhex(v) for k, v in got["files"].items()} == FILES  # type: ignore[union-attr]
        status, headers, _ = s.get("/v2/library/tiny/tags/list")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer realm=")
        basic = base64.b64encode(b"anyone:lan-secret-123").decode()
        assert s.get("/v2/library/tiny/tags/list", {"Authorization": f"Basic {basic}"})[0] == 200
        assert (
            s.get("/v2/library/tiny/tags/list", {"Authorization": "Bearer lan-secret-123"})[0]
            == 200
        )
        assert "lan-secret-123" not in s.log()  # never logged


def test_allow_refuses_addresses_outside_the_list(stores: Stores) -> None:
    with serving(stores, "--allow", "10.1.2.0/24") as s:
        status, _, body = s.get("/v2/")
        assert status == 403 and json.loads(body)["errors"][0]["code"] == "DENIED"
        assert s.get("/api/models/org/tiny")[0] == 403
    with serving(stores, "--allow", "127.0.0.1") as s:
        assert s.get("/api/models/org/tiny")[0] == 200
