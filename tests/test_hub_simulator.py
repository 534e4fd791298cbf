"""The Hub simulator's fidelity, proven with the real ``huggingface_hub`` client against it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder
from huggingface_hub.utils import close_session

from pullman.testing import Short, Simulator, make_data
from pullman.testing.hub import HubSimulator, git_blob_sha1

from helpers import KiB

REPO = "org/tiny-model"
WEIGHTS = make_data(300 * KiB + 17, 7)
SHARD = make_data(40 * KiB + 3, 8)
FILES = {
    "config.json": b'{"model_type": "llama", "hidden_size": 64}\n',
    "README.md": b"# tiny\n",
    "tokenizer.json": make_data(5 * KiB, 9),  # above the LFS threshold
    "weights/model.safetensors": WEIGHTS,
    "weights/shards/shard-00001-of-00002.bin": SHARD,
    "weights/shards/shard-00002-of-00002.bin": SHARD[::-1],
}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub(sim: Simulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[HubSimulator]:
    for name in ("HF_TOKEN", "HF_HUB_OFFLINE", "HF_ENDPOINT", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    yield HubSimulator(sim)
    # Close the client's keep-alive connections and let the server see them go, so that the
    # simulator does not stop with connections still open.
    close_session()
    deadline = time.monotonic() + 5
    while (sim.origin.active or sim.cdn.active) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def api(hub: HubSimulator, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=token)


def download(hub: HubSimulator, cache: Path, path: str, **kw: object) -> Path:
    kw.setdefault("repo_id", REPO)
    kw.setdefault("token", False)
    return Path(hf_hub_download(filename=path, endpoint=hub.endpoint, cache_dir=cache, **kw))


# ------------------------------------------------------------------------------- metadata


def test_model_info_with_files_metadata(hub: HubSimulator) -> None:
    commit = hub.add_repo(REPO, FILES)
    info = api(hub).model_info(REPO, files_metadata=True)
    assert info.id == REPO
    assert info.sha == commit and len(commit) == 40
    assert info.private is False and info.gated is False
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == set(FILES)
    for path, data in FILES.items():
        s = siblings[path]
        assert s.size == len(data)
        if len(data) >= 1024:
            assert s.lfs is not None and s.lfs.sha256 == sha256(data) and s.lfs.size == len(data)
            assert s.lfs.pointer_size > 100
        else:
            assert s.lfs is None and s.blob_id == git_blob_sha1(data)
    # Without files_metadata: names only, as the real Hub answers.
    bare = api(hub).model_info(REPO)
    assert {s.rfilename for s in bare.siblings or []} == set(FILES)
    assert all(s.size is None for s in bare.siblings or [])
    assert api(hub).model_info(REPO, revision="main").sha == commit
    assert api(hub).repo_info(REPO, revision=commit).sha == commit


def test_list_repo_tree_recursive_across_pages(hub: HubSimulator, sim: Simulator) -> None:
    commit = hub.add_repo(REPO, FILES)
    entries = list(api(hub).list_repo_tree(REPO, recursive=True, revision=commit))
    files = {e.path: e for e in entries if isinstance(e, RepoFile)}
    folders = {e.path for e in entries if isinstance(e, RepoFolder)}
    assert folders == {"weights", "weights/shards"}
    assert set(files) == set(FILES)
    for path, data in FILES.items():
        f = files[path]
        assert f.size == len(data)
        if len(data) >= 1024:
            assert f.lfs is not None and f.lfs.sha256 == sha256(data)
        else:
            assert f.lfs is None and f.blob_id == git_blob_sha1(data)
    pages = [s for s in sim.origin.seen if s.path.startswith(f"/api/models/{REPO}/tree/")]
    assert len(pages) == 3  # 8 entries, 3 a page: the client followed Link rel="next" twice

    hub.page_size = 100
    sim.origin.seen.clear()
    assert len(list(api(hub).list_repo_tree(REPO, recursive=True))) == len(entries)
    assert len(sim.origin.seen) == 1


def test_list_repo_tree_of_a_folder_and_paths_info(hub: HubSimulator) -> None:
    hub.add_repo(REPO, FILES)
    top = {e.path for e in api(hub).list_repo_tree(REPO)}
    assert top == {"config.json", "README.md", "tokenizer.json", "weights"}
    sub = {e.path: type(e) for e in api(hub).list_repo_tree(REPO, path_in_repo="weights")}
    assert sub == {"weights/model.safetensors": RepoFile, "weights/shards": RepoFolder}
    with pytest.raises(EntryNotFoundError):
        list(api(hub).list_repo_tree(REPO, path_in_repo="nope"))

    info = api(hub).get_paths_info(REPO, ["config.json", "weights/shards", "missing.txt"])
    by_path = {e.path: e for e in info}
    assert set(by_path) == {"config.json", "weights/shards"}
    config = by_path["config.json"]
    assert isinstance(config, RepoFile) and config.blob_id == git_blob_sha1(FILES["config.json"])
    assert isinstance(by_path["weights/shards"], RepoFolder)


def test_revisions_branches_tags_and_quoted_names(hub: HubSimulator, cache: Path) -> None:
    first = hub.add_repo(REPO, {"a.txt": b"one"})
    second = hub.add_repo(REPO, {"a.txt": b"two", "b.txt": b"new"})
    branch = hub.add_repo(REPO, {"a.txt": b"feature"}, revision="feature/x")
    assert len({first, second, branch}) == 3
    assert hub.add_tag(REPO, "v1.0", first) == first
    assert api(hub).model_info(REPO).sha == second
    assert api(hub).model_info(REPO, revision="v1.0").sha == first
    assert download(hub, cache, "a.txt", revision="v1.0").read_bytes() == b"one"
    assert download(hub, cache, "a.txt").read_bytes() == b"two"
    assert download(hub, cache, "a.txt", revision=first).read_bytes() == b"one"
    # "feature/x" travels as feature%2Fx, and lands in refs/feature/x.
    assert download(hub, cache, "a.txt", revision="feature/x").read_bytes() == b"feature"
    assert api(hub).model_info(REPO, revision="feature/x").sha == branch
    ref = cache / "models--org--tiny-model" / "refs" / "feature" / "x"
    assert ref.read_text() == branch
    refs = api(hub).list_repo_refs(REPO)
    assert {(b.name, b.target_commit) for b in refs.branches} == {
        ("main", second),
        ("feature/x", branch),
    }
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first)]
    with pytest.raises(RevisionNotFoundError):
        list(api(hub).list_repo_tree(REPO, revision="v9"))


# ------------------------------------------------------------------------------- downloads


def test_hf_hub_download_small_and_lfs_in_nested_folder(
    hub: HubSimulator, sim: Simulator, cache: Path
) -> None:
    commit = hub.add_repo(REPO, FILES)
    config = download(hub, cache, "config.json")
    assert config.read_bytes() == FILES["config.json"]
    weights = download(hub, cache, "weights/model.safetensors")
    assert weights.read_bytes() == WEIGHTS
    assert weights == (
        cache / "models--org--tiny-model" / "snapshots" / commit / "weights" / "model.safetensors"
    )
    # Blobs are named by the etags the Hub gave: git sha1 for small files, sha256 for LFS.
    blobs = cache / "models--org--tiny-model" / "blobs"
    assert (blobs / git_blob_sha1(FILES["config.json"])).read_bytes() == FILES["config.json"]
    assert (blobs / sha256(WEIGHTS)).read_bytes() == WEIGHTS
    assert (cache / "models--org--tiny-model" / "refs" / "main").read_text() == commit
    # The small file came from the origin, the LFS file from the CDN.
    assert hub.file(REPO, "config.json").sim_file.bytes_sent == len(FILES["config.json"])
    assert hub.file(REPO, "weights/model.safetensors").sim_file.bytes_sent == len(WEIGHTS)
    assert [s.method for s in sim.cdn.seen] == ["GET"]
    assert sim.cdn.seen[0].path.startswith("/cdn/hub/models/org/tiny-model/lfs/")


def test_snapshot_download_whole_repo(hub: HubSimulator, sim: Simulator, cache: Path) -> None:
    commit = hub.add_repo(REPO, FILES)
    folder = Path(snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache, token=False))
    assert folder.name == commit
    got = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert got == FILES
    lfs = [p for p, d in FILES.items() if len(d) >= 1024]
    assert len([s for s in sim.cdn.seen if s.method == "GET"]) == len(lfs)
    assert sim.total_bytes_sent() == sum(len(d) for d in FILES.values())


def test_dataset_repos(hub: HubSimulator, sim: Simulator, cache: Path) -> None:
    data = {"data/train.csv": b"a,b\n1,2\n", "data/big.parquet": make_data(3 * KiB, 3)}
    commit = hub.add_repo("org/set", data, repo_type="dataset")
    info = api(hub).dataset_info("org/set", files_metadata=True)
    assert info.sha == commit
    assert {s.rfilename: s.size for s in info.siblings or []} == {
        p: len(d) for p, d in data.items()
    }
    for path, content in data.items():
        got = download(hub, cache, path, repo_id="org/set", repo_type="dataset")
        assert got.read_bytes() == content
    assert any(s.path.startswith("/datasets/org/set/resolve/") for s in sim.origin.seen)
    folder = snapshot_download(
        "org/set", repo_type="dataset", endpoint=hub.endpoint, cache_dir=cache, token=False
    )
    assert Path(folder) == cache / "datasets--org--set" / "snapshots" / commit
    assert (Path(folder) / "data" / "big.parquet").read_bytes() == data["data/big.parquet"]
    with pytest.raises(RepositoryNotFoundError):
        api(hub).model_info("org/set")  # a dataset is not a model


def test_client_retries_after_a_short_body_from_the_cdn(hub: HubSimulator, cache: Path) -> None:
    hub.add_repo(REPO, FILES, faults={"weights/model.safetensors": [Short(after=100 * KiB)]})
    assert download(hub, cache, "weights/model.safetensors").read_bytes() == WEIGHTS
    sim_file = hub.file(REPO, "weights/model.safetensors").sim_file
    # huggingface_hub keeps only whole 10 MiB chunks, so it starts this small file over.
    assert sim_file.ranges == [(0, len(WEIGHTS)), (0, len(WEIGHTS))]
    assert sim_file.bytes_sent == 100 * KiB + len(WEIGHTS)


# ------------------------------------------------------------------------------- errors


def test_gated_repo(hub: HubSimulator, sim: Simulator, cache: Path) -> None:
    hub.add_repo(REPO, FILES, gated=True)
    hub.add_token("hf_approved", approved_gated=True)
    hub.add_token("hf_waiting", approved_gated=False)
    # The metadata of a gated repo is public, its files are not.
    info = api(hub).model_info(REPO, files_metadata=True)
    assert info.gated == "auto"
    with pytest.raises(GatedRepoError) as anonymous:
        download(hub, cache, "config.json")
    assert anonymous.value.response.status_code == 401
    with pytest.raises(GatedRepoError) as waiting:
        download(hub, cache, "weights/model.safetensors", token="hf_waiting")
    assert waiting.value.response.status_code == 403
    assert f"{hub.endpoint}/{REPO}" in str(waiting.value)
    got = download(hub, cache, "weights/model.safetensors", token="hf_approved")
    assert got.read_bytes() == WEIGHTS
    assert sim.origin.saw_header("authorization")
    assert sim.cdn.seen and not sim.cdn.saw_header("authorization")


def test_private_repo(hub: HubSimulator, sim: Simulator, cache: Path) -> None:
    hub.add_repo(REPO, FILES, private=True)
    hub.add_token("hf_user")
    with pytest.raises(RepositoryNotFoundError) as info_error:
        api(hub).model_info(REPO)
    assert not isinstance(info_error.value, GatedRepoError)
    assert info_error.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        download(hub, cache, "config.json")
    mark = len(sim.origin.seen)
    assert api(hub, "hf_user").model_info(REPO).private is True
    folder = snapshot_download(REPO, endpoint=hub.endpoint, cache_dir=cache, token="hf_user")
    assert (Path(folder) / "weights" / "model.safetensors").read_bytes() == WEIGHTS
    assert len(sim.cdn.seen) == 4
    assert not sim.cdn.saw_header("authorization")
    assert all("authorization" in s.headers for s in sim.origin.seen[mark:])


def test_bare_401_for_private_repos(hub: HubSimulator) -> None:
    hub.bare_401 = True
    hub.add_repo(REPO, FILES, private=True)
    r = httpx2.get(f"{hub.endpoint}/api/models/{REPO}")
    assert r.status_code == 401 and "x-error-code" not in r.headers


def test_unknown_token_is_refused_even_for_public_repos(hub: HubSimulator) -> None:
    hub.add_repo(REPO, FILES)
    with pytest.raises(HfHubHTTPError) as exc:
        api(hub, "hf_stale").model_info(REPO)
    assert exc.value.response.status_code == 401
    assert not isinstance(exc.value, RepositoryNotFoundError)


def test_missing_repo_file_and_revision(hub: HubSimulator, cache: Path) -> None:
    commit = hub.add_repo(REPO, FILES)
    with pytest.raises(RepositoryNotFoundError) as repo_error:
        api(hub).model_info("org/nope")
    assert repo_error.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        download(hub, cache, "config.json", repo_id="org/nope")
    with pytest.raises(EntryNotFoundError) as entry_error:
        download(hub, cache, "weights/missing.bin")
    assert isinstance(entry_error.value, RemoteEntryNotFoundError)
    # The 404 carries X-Repo-Commit, so the client records the absence in its cache.
    no_exist = cache / "models--org--tiny-model" / ".no_exist" / commit / "weights" / "missing.bin"
    assert no_exist.exists()
    with pytest.raises(RevisionNotFoundError):
        download(hub, cache, "config.json", revision="v404")
    with pytest.raises(RevisionNotFoundError):
        api(hub).model_info(REPO, revision="v404")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(
            REPO, revision="v404", endpoint=hub.endpoint, cache_dir=cache, token=False
        )


def test_rate_limit_is_retried_by_the_client(hub: HubSimulator, cache: Path) -> None:
    hub.add_repo(REPO, FILES)
    hub.rate_limit_next(1, retry_after=3)
    r = httpx2.head(hub.url(REPO, "config.json"))
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.headers["ratelimit"] == '"resolvers";r=0;t=3'
    hub.rate_limit_next(1, retry_after=2)
    r = httpx2.get(f"{hub.endpoint}/api/models/{REPO}")
    assert r.status_code == 429 and r.headers["ratelimit"] == '"api";r=0;t=2'

    # The client's first HEAD does not retry; it falls back to a retrying HEAD, which waits.
    hub.rate_limit_next(2, retry_after=0)
    started = time.monotonic()
    assert download(hub, cache, "config.json").read_bytes() == FILES["config.json"]
    assert time.monotonic() - started >= 1.0  # it honoured the wait (t + 1 s)
    hub.rate_limit_next(1, retry_after=0)
    assert len(list(api(hub).list_repo_tree(REPO, recursive=True))) == 8
    assert hub.rate_limited == 5


def test_raw_tree_entries_are_served_as_they_are(hub: HubSimulator) -> None:
    hub.add_repo(REPO, {"ok.txt": b"fine"})
    evil = {"type": "file", "oid": "0" * 40, "size": 4, "path": "../../escape.txt"}
    hub.add_raw_tree_entry(REPO, evil)
    hub.add_raw_tree_entry(REPO, {**evil, "path": "/etc/passwd"})
    paths = [e.path for e in api(hub).list_repo_tree(REPO, recursive=True)]
    assert paths == ["ok.txt", "../../escape.txt", "/etc/passwd"]
    siblings = api(hub).model_info(REPO, files_metadata=True).siblings or []
    assert {s.rfilename for s in siblings} == {"ok.txt", "../../escape.txt", "/etc/passwd"}
    with pytest.raises(ValueError, match="bad repo path"):
        hub.add_repo(REPO, {"../x": b""})


# ------------------------------------------------------------------------------- wire details


def test_resolve_and_cdn_headers(hub: HubSimulator, sim: Simulator) -> None:
    commit = hub.add_repo(REPO, FILES)
    with httpx2.Client() as client:
        small = client.get(hub.url(REPO, "config.json"), headers={"Range": "bytes=2-5"})
        assert small.status_code == 206 and small.content == FILES["config.json"][2:6]
        assert small.headers["etag"] == f'"{git_blob_sha1(FILES["config.json"])}"'
        assert small.headers["x-repo-commit"] == commit
        stale = client.get(
            hub.url(REPO, "config.json"), headers={"Range": "bytes=2-5", "If-Range": '"x"'}
        )
        assert stale.status_code == 200 and stale.content == FILES["config.json"]

        head = client.head(hub.url(REPO, "weights/model.safetensors"))
        assert head.status_code == 302
        assert head.headers["x-linked-etag"] == f'"{sha256(WEIGHTS)}"'
        assert head.headers["x-linked-size"] == str(len(WEIGHTS))
        assert head.headers["x-repo-commit"] == commit
        assert int(head.headers["content-length"]) < 1024  # the redirect body's, not the file's
        assert not any(h.startswith("x-xet") for h in head.headers)
        location = head.headers["location"]
        assert location.startswith(sim.cdn.url + "/")

        part = client.get(location, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == WEIGHTS[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(WEIGHTS)}"
        assert "etag" not in part.headers and "last-modified" not in part.headers

        full = client.get(hub.url(REPO, "weights/model.safetensors"), follow_redirects=True)
        assert full.content == WEIGHTS

        sim.clock = lambda: time.time() + 7200  # the signed URL has expired
        assert client.get(location).status_code == 403


def test_real_client_configured_only_by_environment(
    hub: HubSimulator, sim: Simulator, tmp_path: Path
) -> None:
    """A fresh process, HF_ENDPOINT / HF_HUB_CACHE / HF_TOKEN read at import time."""
    commit = hub.add_repo(REPO, FILES, private=True)
    hub.add_token("hf_env_token")
    script = textwrap.dedent(
        """
        import json
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        folder = snapshot_download("org/tiny-model")
        one = hf_hub_download("org/tiny-model", "weights/model.safetensors")
        sha = HfApi().model_info("org/tiny-model").sha
        print(json.dumps({"folder": folder, "one": one, "sha": sha}))
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING_FACE_"))}
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "env-home"),
        HF_HUB_CACHE=str(tmp_path / "env-cache"),
        HF_TOKEN="hf_env_token",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
    )
    r = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["sha"] == commit
    assert Path(out["one"]).read_bytes() == WEIGHTS
    assert Path(out["folder"]).name == commit
    assert sim.cdn.seen and not sim.cdn.saw_header("authorization")
    assert all(s.headers.get("authorization") == "Bearer hf_env_token" for s in sim.origin.seen)
