"""``pullman export`` and ``pullman import``: bundles for machines without a network.

Real stores, filled by ``pullman get`` from the simulator's registry and Hub; the real ``tar``
and ``sha256sum`` read the bundles; the real huggingface_hub reads an imported cache, offline.
Hostile bundles are built by hand with ``tarfile`` (a header naming ``../``, links, a newer
format), with their checksum list recomputed so that the hostile part is what is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pullman.index import Index
from pullman.layouts.hf_cache import ACCESS_FILE
from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from conftest import LEAKY
from helpers import KiB, cli_env, pullman

LAYERS = [
    ("model", make_data(700 * KiB + 13, 42)),
    ("template", b"{{ .System }} {{ .Prompt }}"),
    ("params", b'{"stop": ["<|end|>"]}'),
    ("license", b"MIT License, for tests"),
]
OTHER = [("model", make_data(200 * KiB, 7)), ("license", b"MIT License, for tests")]
REPO = "org/tiny"
HF_FILES = {
    "config.json": b'{"model_type": "llama"}\n',
    "copy/config.json": b'{"model_type": "llama"}\n',  # one blob, two snapshot paths
    "tokenizer.json": make_data(3 * KiB, 9),
    "weights/model.safetensors": make_data(600 * KiB + 1, 3),
}
STAGING = ".pullman-partial"


def env(home: Path, **extra: str) -> dict[str, str]:
    """The command's environment: no store or Hub of the shell that runs pytest."""
    base = {k: v for k, v in cli_env(home).items() if not k.startswith(LEAKY[1:])}
    return {**base, "HF_HUB_DISABLE_TELEMETRY": "1", **extra}


def run(*args: str, home: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return pullman(*args, home=home, env=env(home, **extra))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Stores filled once through the simulator: two Ollama models and one HF repo."""
    base = tmp_path_factory.mktemp("source")
    with Simulator() as sim:
        registry = OllamaRegistry(sim)
        registry.add_model("library/tiny", layers=LAYERS)
        registry.add_model("team/other", "v1", layers=OTHER)
        hub = HubSimulator(sim)
        commit = hub.add_repo(REPO, HF_FILES)
        models, cache = base / "models", base / "cache"
        names = [registry.name("library/tiny"), registry.name("team/other", "v1")]
        r = run("get", "--insecure", "--ollama-dir", str(models), *names, home=base / "home")
        assert r.returncode == 0, r.stderr
        extra = {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_XET": "1"}
        r = run("get", "--cache-dir", str(cache), f"hf://{REPO}", home=base / "home", **extra)
        assert r.returncode == 0, r.stderr
    yield {"models": models, "cache": cache, "names": names, "commit": commit, "base": base}


def export(source: dict[str, Any], out: Path, *refs: str) -> subprocess.CompletedProcess[str]:
    args = ["--ollama-dir", str(source["models"]), "--cache-dir", str(source["cache"])]
    return run("export", *refs, "-o", str(out), *args, "--json", home=out.parent / "home")


@pytest.fixture(scope="module")
def bundle(source: dict[str, Any]) -> Path:
    """One bundle of an Ollama model and the HF repo."""
    out = source["base"] / "bundle.tar"
    r = export(source, out, source["names"][0], f"hf://{REPO}")
    assert r.returncode == 0, r.stderr
    return out


def importing(bundle: Path | str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    stores = ["--ollama-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    return run("import", str(bundle), *stores, *extra, home=tmp_path / "home")


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes) and link (its target) under ``root``, staging aside, and the
    record of a repo's access (``pullman serve``'s; a bundle does not carry it: an imported
    repo counts as private there)."""
    found: dict[str, bytes | str] = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        rel = str(path.relative_to(root))
        if STAGING in path.parts or path.name == ACCESS_FILE:
            continue
        if path.is_symlink():
            found[rel] = os.readlink(path)
        elif path.is_file():
            found[rel] = path.read_bytes()
    return found


def state(root: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every entry under ``root`` (staging included): inode, size, mtime, mode (the staging
    directory's mtime aside: an import's own directory came and went in it)."""
    out = {}
    for path in sorted(root.rglob("*")) if root.exists() else []:
        st = path.lstat()
        mtime = 0 if path.name == STAGING else st.st_mtime_ns
        out[str(path.relative_to(root))] = (st.st_ino, st.st_size, mtime, st.st_mode)
    return out


def nothing_left(tmp_path: Path) -> None:
    """A failed import into fresh stores leaves no file and no directory behind."""
    for store in ("models", "cache"):
        root = tmp_path / store
        assert not root.exists() or list(root.rglob("*")) == [], list(root.rglob("*"))


def tiny_files(models: Path) -> set[str]:
    """The store paths of library/tiny in a store: its manifest and every blob it names."""
    [manifest] = (models / "manifests").glob("*/library/tiny/latest")
    doc = json.loads(manifest.read_bytes())
    blobs = {"blobs/sha256-" + d["digest"][7:] for d in [doc["config"], *doc["layers"]]}
    return blobs | {str(manifest.relative_to(models))}


# ---------------------------------------------------------------------------- round trips


def test_an_ollama_model_goes_across_byte_for_byte(source: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "tiny.tar"
    r = export(source, out, source["names"][0])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"] == len(LAYERS) + 2  # layers, config, manifest
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.tar"]  # and no temp file beside it
    listed = subprocess.run(["tar", "tf", str(out)], capture_output=True, text=True, check=True)
    names = listed.stdout.split()
    assert names[:2] == ["pullman-bundle.json", "SHA256SUMS"]
    assert all(n.startswith("ollama/blobs/sha256-") for n in names[2:-1])
    assert names[-1].startswith("ollama/manifests/") and names[-1].endswith("/library/tiny/latest")
    r = importing(out, tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert (doc["imported"], doc["present"]) == (len(LAYERS) + 1, 0)
    wanted = tiny_files(source["models"])
    theirs = {k: v for k, v in tree(source["models"]).items() if k in wanted}
    assert tree(tmp_path / "models") == theirs and len(theirs) == len(LAYERS) + 2
    assert list((tmp_path / "models" / STAGING).iterdir()) == []
    r = run("ls", "--ollama-dir", str(tmp_path / "models"), "--json", home=tmp_path / "home")
    assert [(e["name"], e["state"]) for e in json.loads(r.stdout)] == [(doc["name"], "complete")]
    with Index.open(tmp_path / "home" / "index.db") as index:
        assert [m.ref for m in index.models()] == [doc["name"]]


def test_tar_and_sha256sum_check_a_bundle_without_pullman(bundle: Path, tmp_path: Path) -> None:
    subprocess.run(["tar", "xf", str(bundle), "-C", str(tmp_path)], check=True)
    header = json.loads((tmp_path / "pullman-bundle.json").read_text())
    assert (header["format"], header["version"]) == ("pullman-bundle", 1)
    r = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=tmp_path, capture_output=True,
                       text=True, check=False)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": OK") == len(header["files"]) + 1  # and the header itself


def test_a_hugging_face_repo_is_read_offline_after_import(
    source: dict[str, Any], bundle: Path, tmp_path: Path
) -> None:
    r = importing(bundle, tmp_path)
    assert r.returncode == 0, r.stderr
    cache = tmp_path / "cache"
    repo = cache / "models--org--tiny"
    assert (repo / "refs" / "main").read_bytes() == source["commit"].encode()  # no newline
    assert tree(cache) == tree(source["cache"])  # blobs, relative links, the ref
    code = f"""
        import json
        from huggingface_hub import hf_hub_download, scan_cache_dir
        paths = [hf_hub_download("{REPO}", p, local_files_only=True) for p in {sorted(HF_FILES)!r}]
        data = [open(p, "rb").read().hex() for p in paths]
        print(json.dumps([len(scan_cache_dir().warnings), *data]))
    """
    hf_env = env(tmp_path / "home", HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=hf_env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [0] + [HF_FILES[p].hex() for p in sorted(HF_FILES)]


def test_a_cache_without_symlinks_gets_the_files_themselves(bundle: Path, tmp_path: Path) -> None:
    """With HF_HUB_DISABLE_SYMLINKS, as huggingface_hub then keeps them: each snapshot path
    holds its file (one blob at two paths is written twice), and blobs/ stays empty."""
    stores = ["--ollama-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    r = run("import", str(bundle), *stores, home=tmp_path / "home", HF_HUB_DISABLE_SYMLINKS="1")
    assert r.returncode == 0, r.stderr
    repo = tmp_path / "cache" / "models--org--tiny"
    [snapshot] = (repo / "snapshots").iterdir()
    for path, data in HF_FILES.items():
        assert not (snapshot / path).is_symlink() and (snapshot / path).read_bytes() == data
    assert not list((repo / "blobs").glob("*")) and list((repo / STAGING).iterdir()) == []


def test_a_pipe_from_export_to_import_streams_the_models(
    source: dict[str, Any], tmp_path: Path
) -> None:
    """As in ``ssh box pullman export qwen2.5:7b -o - | pullman import -``; the two Ollama
    models share a blob, which the bundle carries once."""
    home = tmp_path / "home"
    home.mkdir()
    stores = ["--ollama-dir", str(source["models"]), "--cache-dir", str(source["cache"])]
    exporter = subprocess.Popen(
        [sys.executable, "-m", "pullman", "export", *source["names"], f"hf://{REPO}",
         "-o", "-", "--json", *stores],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env(home), cwd=tmp_path,
    )  # fmt: skip
    importer = subprocess.run(
        [sys.executable, "-m", "pullman", "import", "-", "--json",
         "--ollama-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")],
        stdin=exporter.stdout, capture_output=True, text=True, env=env(home), cwd=tmp_path,
        timeout=120, check=False,
    )  # fmt: skip
    assert exporter.stdout is not None and exporter.stderr is not None
    exporter.stdout.close()
    summary = exporter.stderr.read().decode()
    assert exporter.wait(timeout=60) == 0, summary
    assert importer.returncode == 0, importer.stderr
    summary_doc = json.loads(summary)  # the summary went to stderr, not into the pipe
    every = len(tree(source["models"])) + len(HF_FILES)  # each shared blob once; HF: 3 + ref
    assert summary_doc["bundle"] == "-" and summary_doc["files"] == every
    assert [d["name"] for d in json.loads(importer.stdout)][2] == f"hf://{REPO}"
    assert tree(tmp_path / "cache") == tree(source["cache"])
    assert tree(tmp_path / "models") == tree(source["models"])


def test_an_import_stopped_midway_leaves_nothing(bundle: Path, tmp_path: Path) -> None:
    """SIGTERM while blobs stream in (the rest of the bundle not yet sent): exit 75, and the
    staging files and directories the import made are gone."""
    import signal
    import time

    home = tmp_path / "home"
    home.mkdir()
    stores = ["--ollama-dir", str(tmp_path / "models"), "--cache-dir", str(tmp_path / "cache")]
    proc = subprocess.Popen([sys.executable, "-m", "pullman", "import", "-", *stores],
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env(home),
                            cwd=tmp_path)  # fmt: skip
    assert proc.stdin is not None and proc.stderr is not None
    data = bundle.read_bytes()
    proc.stdin.write(data[: -64 * KiB])  # all but the end: the reader waits for the rest
    proc.stdin.flush()
    staging = tmp_path / "models" / STAGING
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".part") for p in staging.rglob("*")):  # blobs streaming in
        assert time.monotonic() < deadline and proc.poll() is None, "no blob is staged"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 75
    assert "the import stopped before it finished" in proc.stderr.read().decode()
    proc.stdin.close()
    nothing_left(tmp_path)


def test_blobs_already_in_the_store_are_not_written_again(bundle: Path, tmp_path: Path) -> None:
    assert importing(bundle, tmp_path).returncode == 0
    blobs = [p for p in tmp_path.rglob("*") if p.parent.name == "blobs"]
    before = {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in blobs}
    r = importing(bundle, tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    docs = json.loads(r.stdout)
    assert [d["imported"] for d in docs] == [0, 0]
    assert [d["present"] for d in docs] == [len(LAYERS) + 1, len(HF_FILES) - 1]
    after = {str(p): (p.stat().st_ino, p.stat().st_mtime_ns) for p in blobs}
    assert after == before and len(before) == len(LAYERS) + 1 + len(HF_FILES) - 1


# ---------------------------------------------------------------------------- refused


def load(bundle: Path) -> tuple[dict[str, Any], list[tuple[tarfile.TarInfo, bytes]]]:
    """A bundle's header, and its members after the checksum list, read by ``tarfile``."""
    with tarfile.open(bundle) as tar:
        items = []
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isreg() else None
            items.append((member, f.read() if f is not None else b""))
    return json.loads(items[0][1]), items[2:]


def save(out: Path, header: dict[str, Any], items: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A bundle with this header and these members, its checksum list made to agree."""
    raw = json.dumps(header).encode()
    lines = [f"{hashlib.sha256(raw).hexdigest()}  pullman-bundle.json"]
    lines += [f"{f['sha256']}  {f['store']}/{f['path']}" for f in header["files"]]
    sums = ("\n".join(lines) + "\n").encode()
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("pullman-bundle.json", raw), ("SHA256SUMS", sums)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info, data in items:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out


def edited(bundle: Path, out: Path, edit: Callable[[dict[str, Any], list[Any]], None]) -> Path:
    header, items = load(bundle)
    edit(header, items)
    return save(out, header, items)


def refused(r: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr
    for needle in needles:
        assert needle in r.stderr, r.stderr


@pytest.fixture
def filled(source: dict[str, Any], tmp_path: Path) -> dict[str, tuple[int, int, int, int]]:
    """The destination store already holds another model: the state of every entry."""
    other = tmp_path / "other.tar"
    assert export(source, other, source["names"][1]).returncode == 0
    assert importing(other, tmp_path).returncode == 0
    return state(tmp_path / "models")


def test_a_flipped_byte_is_refused_and_nothing_is_committed(
    bundle: Path, tmp_path: Path, filled: dict[str, Any]
) -> None:
    tampered = tmp_path / "tampered.tar"
    data = bytearray(bundle.read_bytes())
    with tarfile.open(bundle) as tar:
        big = max(tar.getmembers(), key=lambda m: m.size)
    data[big.offset_data + 1000] ^= 0x01
    tampered.write_bytes(data)
    r = importing(tampered, tmp_path)
    refused(r, 4, "does not match its sha256", "nothing was imported")
    assert state(tmp_path / "models") == filled  # staging included: no file left there
    assert not (tmp_path / "cache").exists()


def test_a_truncated_bundle_is_refused_and_nothing_is_committed(
    bundle: Path, tmp_path: Path
) -> None:
    with tarfile.open(bundle) as tar:
        members = tar.getmembers()
    big = max(members, key=lambda m: m.size)
    cuts = {
        "inside a blob": big.offset_data + big.size // 2,
        "before the last member": members[-1].offset,
        "inside the header": 700,
    }
    data = bundle.read_bytes()
    for where, cut in cuts.items():
        short = tmp_path / "short.tar"
        short.write_bytes(data[:cut])
        r = importing(short, tmp_path)
        refused(r, 4, "nothing was imported")
        assert "truncated" in r.stderr or where == "inside the header", (where, r.stderr)
        nothing_left(tmp_path)


@pytest.mark.parametrize("path", ["../../escaped", "/tmp/escaped-absolute"])
def test_a_bundle_naming_a_path_outside_the_store_is_refused(
    bundle: Path, tmp_path: Path, path: str
) -> None:
    def escape(header: dict[str, Any], items: list[Any]) -> None:
        header["files"][0]["path"] = path
        items[0][0].name = f"ollama/{path}"

    r = importing(edited(bundle, tmp_path / "evil.tar", escape), tmp_path)
    refused(r, 4, "unsafe path")
    nothing_left(tmp_path)
    assert not (tmp_path / "escaped").exists() and not Path("/tmp/escaped-absolute").exists()


def test_a_model_name_that_is_no_ollama_name_is_refused(bundle: Path, tmp_path: Path) -> None:
    def rename(header: dict[str, Any], items: list[Any]) -> None:
        header["models"][0]["parts"][1] = ".."

    r = importing(edited(bundle, tmp_path / "evil.tar", rename), tmp_path)
    refused(r, 4, "invalid namespace")
    nothing_left(tmp_path)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE])
def test_links_and_devices_in_the_tar_are_refused(
    bundle: Path, tmp_path: Path, kind: bytes
) -> None:
    def link(header: dict[str, Any], items: list[Any]) -> None:
        info = items[0][0]
        info.type, info.linkname, info.size = kind, "/etc/passwd", 0
        items[0] = (info, b"")

    r = importing(edited(bundle, tmp_path / "evil.tar", link), tmp_path)
    refused(r, 4, "is not a regular file")
    nothing_left(tmp_path)


def test_a_manifest_naming_other_blobs_is_refused(bundle: Path, tmp_path: Path) -> None:
    def swap(header: dict[str, Any], items: list[Any]) -> None:
        i = next(i for i, (m, _) in enumerate(items) if "/manifests/" in m.name)
        doc = json.loads(items[i][1])
        doc["layers"] = doc["layers"][1:]  # a manifest that names fewer blobs than shipped
        raw = json.dumps(doc).encode()
        items[i][0].size = len(raw)
        items[i] = (items[i][0], raw)
        entry = next(f for f in header["files"] if f["kind"] == "manifest")
        entry.update(size=len(raw), sha256=hashlib.sha256(raw).hexdigest())

    r = importing(edited(bundle, tmp_path / "evil.tar", swap), tmp_path)
    refused(r, 4, "names other blobs")
    nothing_left(tmp_path)


def test_a_bundle_from_a_newer_pullman_is_refused(bundle: Path, tmp_path: Path) -> None:
    def newer(header: dict[str, Any], items: list[Any]) -> None:
        header.update(version=2, pullman="9.0.0")

    r = importing(edited(bundle, tmp_path / "newer.tar", newer), tmp_path)
    refused(r, 7, "format version 2", "newer pullman (9.0.0)", "upgrade pullman")
    nothing_left(tmp_path)


def test_something_that_is_not_a_bundle_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all\n" * 100)
    refused(importing(junk, tmp_path), 4, "is not a pullman bundle")
    refused(importing(tmp_path / "missing.tar", tmp_path), 3, "no bundle at")
    nothing_left(tmp_path)


# ---------------------------------------------------------------------------- export refuses


def test_export_refuses_unknown_incomplete_and_corrupt_models(
    source: dict[str, Any], tmp_path: Path
) -> None:
    import shutil

    models = tmp_path / "copy"
    shutil.copytree(source["models"], models, symlinks=True)
    out = tmp_path / "out" / "b.tar"
    out.parent.mkdir()
    args = ("-o", str(out), "--ollama-dir", str(models))
    refused(run("export", "nosuch:7b", *args, home=tmp_path / "home"), 3, "no model nosuch:7b")
    refused(run("export", f"hf://{REPO}", *args, "--cache-dir", str(tmp_path / "empty"),
                home=tmp_path / "home"), 3, "is not in the cache")  # fmt: skip
    [blob] = [p for p in (models / "blobs").iterdir() if p.stat().st_size == len(LAYERS[0][1])]
    data = bytearray(blob.read_bytes())
    data[5] ^= 1
    blob.write_bytes(data)  # rotted in place: same name, same size
    refused(run("export", source["names"][0], *args, home=tmp_path / "home"), 4, "is corrupt")
    blob.unlink()
    refused(run("export", source["names"][0], *args, home=tmp_path / "home"), 3, "incomplete")
    assert list(out.parent.iterdir()) == []  # no bundle, no temp file


# ---------------------------------------------------------------------------- the machine


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: checks what sudo pullman import leaves")
def test_root_imports_into_a_store_as_its_owner(bundle: Path, tmp_path: Path) -> None:
    for store in ("models", "cache"):
        (tmp_path / store).mkdir()
        os.chown(tmp_path / store, 65534, 65534)  # the store belongs to ollama, say
    r = importing(bundle, tmp_path)
    assert r.returncode == 0, r.stderr
    made = [p for store in ("models", "cache") for p in (tmp_path / store).rglob("*")]
    assert any(p.name == "latest" for p in made) and any(p.name == "main" for p in made)
    wrong = [str(p) for p in made if (p.lstat().st_uid, p.lstat().st_gid) != (65534, 65534)]
    assert wrong == []


@contextlib.contextmanager
def mounted(*commands: list[str], target: Path) -> Iterator[None]:
    """Run mount ``commands`` (skipping the test if this machine forbids mounting)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    done = False
    try:
        for command in commands:
            r = subprocess.run(command, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                pytest.skip(f"cannot mount here: {' '.join(command)}: {r.stderr.strip()}")
            done = True
        yield
    finally:
        if done:
            subprocess.run(["umount", str(target)], check=False)


def test_import_reads_from_a_read_only_mount(bundle: Path, tmp_path: Path) -> None:
    stick, ro = tmp_path / "stick", tmp_path / "usb"
    stick.mkdir()
    ro.mkdir()
    (stick / "models.tar").write_bytes(bundle.read_bytes())
    with mounted(["mount", "--bind", str(stick), str(ro)],
                 ["mount", "-o", "remount,ro,bind", str(ro)], target=ro):  # fmt: skip
        probe = subprocess.run(["touch", str(ro / "probe")], capture_output=True, check=False)
        assert probe.returncode != 0  # really read-only, even for root
        r = importing(ro / "models.tar", tmp_path)
        assert r.returncode == 0, r.stderr
        assert sorted(p.name for p in ro.iterdir()) == ["models.tar"]
    assert (tmp_path / "cache" / "models--org--tiny" / "refs" / "main").is_file()


def test_a_full_disk_is_refused_before_anything_is_written(bundle: Path, tmp_path: Path) -> None:
    small = tmp_path / "models"
    small.mkdir()
    with mounted(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], target=small):
        r = importing(bundle, tmp_path)
        refused(r, 5, "not enough free space")
        assert list(small.rglob("*")) == []
    nothing_left(tmp_path)


# ---------------------------------------------------------------------------- the format, pure


def _header(**changes: Any) -> dict[str, Any]:
    blob = "ab" * 32
    doc: dict[str, Any] = {
        "format": "pullman-bundle",
        "version": 1,
        "pullman": "0.1.0",
        "models": [
            {"store": "ollama", "parts": ["registry.ollama.ai", "library", "m", "latest"],
             "blobs": [{"sha256": blob, "size": 3}]},
            {"store": "hf", "repo_id": "org/r", "repo_type": "dataset", "revision": "refs/pr/1",
             "commit": "c" * 40, "files": [{"path": "a/b.txt", "blob": "d" * 40, "size": 2}]},
        ],
        "files": [
            {"store": "ollama", "path": f"blobs/sha256-{blob}", "kind": "blob", "size": 3,
             "sha256": blob},
            {"store": "hf", "path": f"datasets--org--r/blobs/{'d' * 40}", "kind": "blob",
             "size": 2, "sha256": "e" * 64},
            {"store": "ollama", "path": "manifests/registry.ollama.ai/library/m/latest",
             "kind": "manifest", "size": 10, "sha256": "f" * 64},
            {"store": "hf", "path": "datasets--org--r/refs/refs/pr/1", "kind": "ref",
             "size": 40, "sha256": "0" * 64},
        ],
    }  # fmt: skip
    doc.update(changes)
    return doc


def test_the_header_round_trips_through_its_own_checks() -> None:
    from pullman.bundle.format import parse_header

    header = parse_header(json.dumps(_header()).encode())
    assert [m.name for m in header.models] == ["m:latest", "hf://datasets/org/r@refs/pr/1"]
    assert parse_header(header.encode()) == header


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d["files"][0].update(sha256="AB" * 32), "64-hex sha256"),
        (lambda d: d["files"][1].update(path="datasets--org--r/blobs/..\\x"), "unsafe path"),
        (lambda d: d["files"][1].update(path="datasets--org--r/blobs/./x"), "unsafe path"),
        (lambda d: d["files"].insert(0, dict(d["files"][0])), "twice"),
        (lambda d: d["files"].reverse(), "after a manifest"),
        (lambda d: d["files"].pop(2), "lacks ollama/manifests"),
        (lambda d: d["files"][0].update(size=4), "two sizes"),
        (lambda d: d["models"][1].update(repo_id="org/../x"), "not a valid Hugging Face repo"),
        (lambda d: d["models"][1].update(commit="main"), "40-hex commit"),
        (lambda d: d["models"][1]["files"][0].update(path="/etc/passwd"), "unsafe path"),
        (lambda d: d["models"][1]["files"][0].update(blob="x" * 40), "names the blob"),
        (lambda d: d["models"][0]["parts"].__setitem__(3, "a/b"), "invalid tag"),
        (lambda d: d.update(format="tar"), "not a pullman bundle"),
        (lambda d: d.update(version=True), "no valid format version"),
    ],
)
def test_the_header_refuses_what_a_bundle_must_not_say(
    edit: Callable[[dict[str, Any]], object], needle: str
) -> None:
    from pullman.bundle.format import parse_header
    from pullman.errors import IntegrityError

    doc = _header()
    edit(doc)
    with pytest.raises(IntegrityError) as info:
        parse_header(json.dumps(doc).encode())
    assert needle in info.value.explain()
