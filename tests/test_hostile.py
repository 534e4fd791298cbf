"""Hostile input: fuzzed parsers, names that try to leave a store, symlinks planted in a store,
tokens that must stay secret, servers that never end, and the permissions of what we create.

Every parser of untrusted input may only fail with our own clear errors (``PullmanError``
subclasses, or ``ValueError`` where the function documents it). Tests marked ``xfail(strict)``
show an open FINDING of docs/reliability.md (the marker goes once it is fixed); comments name
the FINDING a regression test was written for.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import posixpath
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pullman import config
from pullman.core.headers import (
    MAX_RETRY_AFTER,
    MAX_SIZE,
    parse_bearer_challenge,
    parse_content_length,
    parse_content_range,
    parse_retry_after,
    strong_etag,
)
from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import CONFIG_TYPE, MANIFEST_V2, BadManifest, parse_manifest
from pullman.core.refs import HfRef, OllamaRef, UrlRef, parse_ref
from pullman.daemon import daemon_pid
from pullman.errors import PullmanError, RefError, RemoteError
from pullman.index import Index
from pullman.layouts import hf_cache
from pullman.layouts import ollama as ollama_store
from pullman.session import PlanReport, Session
from pullman.sources.hf import _hub_file
from pullman.testing import Drip, Simulator, Throttle, make_data
from pullman.testing.hub import HubSimulator, git_blob_sha1
from pullman.testing.registry import OllamaRegistry, build_manifest
from pullman.testing.server import Request, send_simple
from pullman.transfer.journal import Journal

from helpers import KiB, MiB, cli_env, fast_config, pullman

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROOT = Path("/nonexistent/store")


# ------------------------------------------------------------------------------- in-process get


def session_get(
    tmp_path: Path, ref: str, options: GetOptions, *, timeout: float = 30
) -> list[PlanReport]:
    settings_ = config.Settings(
        paths=config.Paths(data=tmp_path / "home", config_file=tmp_path / "none.toml"),
        transfer=fast_config(),
    )

    async def main() -> list[PlanReport]:
        with anyio.fail_after(timeout):
            return await Session(settings_).get([ref], options)

    return anyio.run(main)


@pytest.fixture
def hf_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """HF settings for in-process runs; returns the cache directory."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return tmp_path / "cache"


def tree(root: Path) -> dict[str, bytes | str]:
    """Every file (its bytes) and link (its target) under ``root``."""
    out: dict[str, bytes | str] = {}
    if not root.exists():
        return out
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_bytes()
    return out


# ------------------------------------------------------------------------------- fuzz: refs

REF_BITS = [
    "hf://",
    "hf.co/",
    "huggingface.co/",
    "ollama://",
    "http://",
    "https://",
    "datasets/",
    "models/",
    "/",
    "/",
    ":",
    ":",
    "@",
    ".",
    "..",
    "-",
    "_",
    "~",
    "a",
    "Z",
    "0",
    "9",
    "refs",
    "pr",
    "%2e",
    "%2F",
    "\\",
    "\x00",
    "\n",
    " ",
    "é",
    "ｅ",
    "．",
    "*",
    "?",
    "[",
    "latest",
    "127.0.0.1:5000",
    "..%2f",
    "\u202e",
    "org",
    "repo",
    "main",
]
refs = st.one_of(
    st.lists(st.sampled_from(REF_BITS), max_size=14).map("".join),
    st.text(max_size=60),
)


@FUZZ
@given(refs, st.booleans())
@example("hf://org/repo@refs/pr/1/a/b", False)
@example("127.0.0.1:5000/ns/model:tag", True)
@example("ollama://a/b/c:d", False)
@example("http://h/%2e%2e", False)
def test_parse_ref_only_raises_ref_errors_and_names_stay_inside(text: str, insecure: bool) -> None:
    try:
        ref = parse_ref(text, insecure=insecure)
    except RefError:
        return
    if isinstance(ref, OllamaRef):
        path = ollama_store.manifest_path(ROOT, ref)
        rel = path.relative_to(ROOT / "manifests")
        assert len(rel.parts) == 4
        assert not {".", ".."} & set(rel.parts)
        assert posixpath.normpath(str(path)) == str(path)
    elif isinstance(ref, HfRef):
        repo = hf_cache.repo_dir(ROOT, ref.repo_id, ref.repo_type)
        assert repo.parent == ROOT and "/" not in repo.name and repo.name not in (".", "..")
        ref_file = posixpath.normpath(f"{repo}/refs/{ref.revision}")
        assert ref_file.startswith(f"{repo}/")
        if ref.pattern is not None:
            assert ".." not in ref.pattern.split("/")
    else:
        assert isinstance(ref, UrlRef)
        name = ref.filename
        assert name and name not in (".", "..")
        assert "/" not in name and "\0" not in name
        assert len(name.encode()) <= 255


# Regression test for FINDING 15: a stray '[' in a URL was an internal error.
@pytest.mark.parametrize("text", ["http://[", "https://[::1/x.bin", "https://h]/x.bin"])
def test_urls_with_broken_brackets_are_ref_errors(text: str) -> None:
    with pytest.raises(RefError):
        parse_ref(text)


# Regression test for FINDING 10: HF revisions with '.' segments (fixed in 2aba698).
@pytest.mark.parametrize(
    "text", ["hf://org/repo@.", "hf://org/repo@./main", "hf://org/repo@refs/./x"]
)
def test_revisions_with_dot_segments_are_refused(text: str) -> None:
    # git forbids ref components that start with '.', so no Hub serves such a revision; and
    # refs/<revision> would be refs/ itself (".") or not the name that was asked for.
    with pytest.raises(RefError):
        parse_ref(text)


# ------------------------------------------------------------------------------- fuzz: manifests

HEX = st.binary(min_size=1, max_size=8).map(lambda b: hashlib.sha256(b).hexdigest())
DIGESTS = st.one_of(
    HEX.map(lambda h: "sha256:" + h),
    st.sampled_from(
        [
            "sha256:../../../etc/passwd",
            "sha256:" + "A" * 64,
            "sha256:" + "0" * 63,
            "sha256:" + "0" * 65,
            "sha512:" + "0" * 128,
            "sha256:" + "０" * 64,
            "sha256:" + "٠" * 64,
            " sha256:" + "0" * 64,
            "sha256:" + "0" * 64 + "\n",
            "sha256-" + "0" * 64,
            "sha256:" + "0" * 62 + "/.",
            "sha256:" + "0" * 60 + "/../",
        ]
    ),
    st.text(max_size=70),
    st.integers(),
    st.none(),
)
SIZES = st.one_of(
    st.integers(min_value=-2, max_value=2**62),
    st.sampled_from([MAX_SIZE, MAX_SIZE + 1, True, False, 1.0, "5", None]),
    st.floats(allow_nan=True),
)
MEDIA = st.one_of(
    st.sampled_from(
        [
            CONFIG_TYPE,
            "application/vnd.ollama.image.model",
            "application/vnd.ollama.image.license",
            "application/vnd.ollama.image.../../x",
            "application/vnd.ollama.image.",
            "text/plain",
            "application/vnd.ollama.image.Model",
            MANIFEST_V2,
        ]
    ),
    st.text(max_size=30),
)
LAYER = st.one_of(
    st.fixed_dictionaries({"mediaType": MEDIA, "digest": DIGESTS, "size": SIZES}),
    st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=10), max_size=3),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
MANIFESTS = st.fixed_dictionaries(
    {
        "schemaVersion": st.sampled_from([2, 1, "2", 2.0, True, None, 3]),
        "config": LAYER,
        "layers": st.one_of(st.lists(LAYER, max_size=5), st.none(), st.text(max_size=5)),
    },
    optional={"mediaType": st.sampled_from([MANIFEST_V2, "x", None])},
)


def _check_parsed(raw: bytes) -> None:
    try:
        manifest = parse_manifest(raw)
    except BadManifest:
        return
    for layer in manifest.blobs:
        assert re.fullmatch(r"[0-9a-f]{64}", layer.digest.hex)
        assert layer.digest.algorithm == "sha256"
        assert type(layer.size) is int and 0 <= layer.size <= MAX_SIZE
        assert ollama_store.blob_path(ROOT, layer.digest.hex).parent == ROOT / "blobs"
        assert layer.kind and "/" not in layer.kind


@FUZZ
@given(MANIFESTS)
def test_manifest_parser_on_structured_garbage(doc: dict[str, Any]) -> None:
    _check_parsed(json.dumps(doc).encode())


@FUZZ
@given(st.binary(max_size=3000))
@example(b"\xff\xfe{}")
@example(b'{"schemaVersion": 2, "layers": [1e999]}')
@example(b"[" * 500 + b"]" * 500)
def test_manifest_parser_on_bytes(raw: bytes) -> None:
    _check_parsed(raw)


# Regression test for FINDING 2: RecursionError from nested JSON (fixed in 2aba698).
def test_deeply_nested_manifest_json_is_a_bad_manifest() -> None:
    _check_parsed(b'{"schemaVersion": 2, "layers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")


# Regression test for FINDING 2 (fixed in 2aba698).
def test_deeply_nested_manifest_from_a_registry_is_a_clear_error(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    registry.set_manifest("library/deep", "latest", b"[" * 50_000 + b"]" * 50_000)
    r = pullman(
        "get",
        "--insecure",
        "--ollama-dir",
        str(tmp_path / "models"),
        registry.name("library/deep"),
        home=tmp_path,
    )
    assert r.returncode == 1
    assert "internal error" not in r.stderr and "invalid manifest" in r.stderr


# ------------------------------------------------------------------------------- fuzz: HF tree

PATH_BITS = [
    "a",
    "b.bin",
    "/",
    "/",
    "..",
    ".",
    "",
    "\\",
    "\x00",
    "\n",
    "é",
    "e\u0301",
    "．．",
    "\u2025",
    " ",
    ".pullman-partial",
    "snapshots",
    "blobs",
    "~",
    "%2e%2e",
    "ｂ",
    "\u202e",
    "CON",
]
REPO_PATHS = st.one_of(
    st.lists(st.sampled_from(PATH_BITS), min_size=1, max_size=8).map("".join),
    st.text(max_size=40),
)
ENTRIES = st.fixed_dictionaries(
    {
        "path": REPO_PATHS,
        "size": SIZES,
        "oid": st.one_of(
            st.binary(max_size=4).map(lambda b: hashlib.sha1(b).hexdigest()), st.text(max_size=41)
        ),
        "lfs": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {
                    "oid": st.one_of(HEX, st.text(max_size=65)),
                    "size": SIZES,
                    "pointerSize": st.integers(0, 200),
                }
            ),
        ),
    }
)


@FUZZ
@given(ENTRIES)
@example({"path": "a/../../x", "size": 1, "oid": "a" * 40, "lfs": None})
@example({"path": "weights/model.bin", "size": 1, "oid": "a" * 40, "lfs": None})
def test_hub_tree_entries_are_refused_or_stay_inside_the_repo(entry: dict[str, Any]) -> None:
    from huggingface_hub.hf_api import RepoFile

    try:
        hub_file = _hub_file(RepoFile(**dict(entry)))
    except RemoteError:
        return
    assert re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", hub_file.etag)
    assert type(hub_file.size) is int and hub_file.size >= 0
    repo = ROOT / "models--o--r"
    commit = "c" * 40
    link = str(hf_cache.snapshot_path(repo, commit, hub_file.path))
    assert posixpath.normpath(link) == link
    assert link.startswith(f"{repo}/snapshots/{commit}/")
    target = posixpath.join(
        posixpath.dirname(link), hf_cache.link_target(hub_file.path, hub_file.etag)
    )
    assert posixpath.normpath(target) == f"{repo}/blobs/{hub_file.etag}"


@FUZZ
@given(REPO_PATHS)
def test_check_repo_path(path: str) -> None:
    try:
        checked = hf_cache.check_repo_path(path)
    except RemoteError as exc:
        assert "refusing" in exc.what
        return
    assert checked == path and not path.startswith("/")
    assert posixpath.normpath(path) == path and ".." not in path.split("/")
    assert all(ord(c) >= 32 for c in path) and "\\" not in path


# ------------------------------------------------------------------------------- fuzz: headers

NUMS = st.one_of(
    st.integers(0, 10**17).map(str), st.sampled_from(["", "*", "-1", "٣", "1e3", " 1"])
)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda a, b, c, sp, unit: f"{unit}{sp}{a}-{b}/{c}",
            NUMS,
            NUMS,
            NUMS,
            st.sampled_from([" ", "\t", "", "  "]),
            st.sampled_from(["bytes", "BYTES", "items"]),
        ),
    )
)
@example("bytes 0-0/0")
@example("bytes */0")
@example("bytes 5-4/10")
@example("bytes 0-9/10\r\nX: y")
def test_content_range(value: str) -> None:
    try:
        cr = parse_content_range(value)
    except ValueError:
        return
    if cr.total is not None:
        assert 0 <= cr.total <= MAX_SIZE
    if cr.start is None:
        assert cr.end is None and cr.total is not None
        return
    assert cr.end is not None and 0 <= cr.start <= cr.end
    if cr.total is not None:
        assert cr.end < cr.total


# Regression test for FINDING 11: non-ASCII digits in Content-Range (fixed in 2aba698).
def test_content_range_is_ascii_only() -> None:
    # httpx decodes a UTF-8 header as UTF-8, so these can arrive; Content-Length already
    # insists on ASCII digits, Content-Range should too.
    with pytest.raises(ValueError):
        parse_content_range("bytes ٠-٩/١٠")


DATES = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)
).map(lambda d: format_datetime(d, usegmt=True))


@FUZZ
@given(
    st.one_of(
        st.none(),
        st.text(max_size=40),
        DATES,
        st.integers(-5, 10**30).map(str),
        DATES.map(lambda d: d.replace("GMT", "+0000")),
        DATES.map(lambda d: d[5:]),
    ),
    st.one_of(st.none(), st.datetimes(timezones=st.just(dt.UTC))),
)
@example("Mon, 01 Jan 0001 00:00:00 GMT", None)
@example("Fri, 31 Dec 9999 23:59:59 GMT", dt.datetime(1, 1, 1, tzinfo=dt.UTC))
@example("Fri, 31 Dec 9999 23:59:59 -2359", None)
def test_retry_after(value: str | None, now: dt.datetime | None) -> None:
    wait = parse_retry_after(value, now=now)
    if wait is not None:
        assert isinstance(wait, float) and math.isfinite(wait)
        assert 0.0 <= wait <= MAX_RETRY_AFTER


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=30), st.integers(-5, 10**20).map(str)))
def test_content_length_and_etag(value: str | None) -> None:
    n = parse_content_length(value)
    assert n is None or (type(n) is int and 0 <= n <= MAX_SIZE)
    tag = strong_etag(value)
    assert tag is None or (tag.startswith('"') and tag.endswith('"') and len(tag) >= 2)


@FUZZ
@given(
    st.one_of(
        st.text(max_size=80),
        st.lists(
            st.sampled_from(
                [
                    "Bearer ",
                    'realm="',
                    "http://x/t",
                    '"',
                    ",",
                    "scope=",
                    "a",
                    "\\",
                    "=",
                    " ",
                    'service="s"',
                ]
            ),
            max_size=12,
        ).map("".join),
    )
)
def test_bearer_challenge(value: str) -> None:
    params = parse_bearer_challenge(value)
    assert params is None or (isinstance(params.get("realm"), str))


@FUZZ
@given(
    st.one_of(
        st.binary(max_size=300),
        st.fixed_dictionaries(
            {
                "version": st.sampled_from([1, 2, "1", None]),
                "size": SIZES,
                "digest": st.one_of(st.none(), st.text(max_size=5), st.integers()),
                "etag": st.one_of(st.none(), st.text(max_size=5), st.integers()),
                "done": st.one_of(
                    st.none(),
                    st.text(max_size=5),
                    st.lists(
                        st.one_of(
                            st.lists(
                                st.one_of(st.integers(-5, 2**64), st.text(max_size=2), st.none()),
                                max_size=3,
                            ),
                            st.integers(),
                            st.none(),
                        ),
                        max_size=5,
                    ),
                ),
            }
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_journal_parser_raises_only_value_error(raw: bytes) -> None:
    try:
        journal = Journal.from_bytes(raw)
    except ValueError:
        return
    for start, end in journal.done:
        assert 0 <= start <= end <= journal.size  # empty spans are harmless


# ------------------------------------------------------------------------------- paths: HF

REFUSED_PATHS = [
    "../escape.bin",
    "/abs.bin",
    "a/../../escape.bin",
    "a//b.bin",
    "./a.bin",
    "a/",
    "a\\b.bin",
    "a\x00b",
    "a\nb",
    "..",
    ".",
    "a/./b",
    "x/..",
    "a/b/../../../c",
]


@pytest.mark.parametrize("local", [False, True])
def test_hub_paths_that_would_escape_are_refused_before_anything_is_written(
    sim: Simulator, tmp_path: Path, hf_env: Path, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    hub = HubSimulator(sim)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    for i, path in enumerate(REFUSED_PATHS):
        repo = f"org/evil{i}"
        hub.add_repo(repo, {"ok.bin": make_data(2 * KiB, i)})
        hub.add_raw_tree_entry(repo, {"type": "file", "path": path, "size": 5, "oid": "a" * 40})
        options = GetOptions(local_dir=str(tmp_path / "local" / str(i))) if local else GetOptions()
        with pytest.raises(RemoteError, match="refusing the repo file path"):
            session_get(tmp_path, f"hf://{repo}", options)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "hf-home" not in p.parts]
    assert written == []  # nothing at all: not in the cache, not beside it, not outside


ODD_NAMES = {
    "config.json.": b"trailing dot",
    "dir./file": b"dotted dir",
    "．．/fullwidth-dots": b"U+FF0E twice is not ..",
    "\u2025/two-dot-leader": b"U+2025",
    "e\u0301.bin": b"NFD e-acute",
    "\u00e9.bin": b"NFC e-acute",
    "Case.bin": b"upper",
    "case.bin": b"lower",
    "-rf": b"dash",
    " space .bin": b"spaces",
    "%2e%2e/percent": b"percent-encoded dots stay literal",
    "snapshots/blobs/refs": b"names of the cache's own folders",
    "deep/" * 20 + "leaf": b"deep",
}


@pytest.mark.parametrize("local", [False, True])
def test_odd_but_legal_names_land_inside_byte_for_byte(
    sim: Simulator, tmp_path: Path, hf_env: Path, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    hub = HubSimulator(sim)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    files = {**ODD_NAMES, "big.bin": make_data(300 * KiB, 5)}
    commit = hub.add_repo("org/odd", files)
    dest = tmp_path / "local"
    session_get(
        tmp_path, "hf://org/odd", GetOptions(local_dir=str(dest)) if local else GetOptions()
    )
    if local:
        ours = (".pullman-partial", ".cache/huggingface/")  # staging; huggingface_hub's metadata
        got = {k: v for k, v in tree(dest).items() if not k.startswith(ours)}
        assert got == files
    else:
        snap = hf_env / "models--org--odd" / "snapshots" / commit
        for path, data in files.items():
            link = snap / path
            assert link.is_symlink() and not os.readlink(link).startswith("/")
            assert link.resolve().is_relative_to((hf_env / "models--org--odd" / "blobs").resolve())
            assert link.read_bytes() == data
    outside = [p for p in tmp_path.iterdir() if p.name not in ("cache", "local", "home", "hf-home")]
    assert outside == []


# Regression test for FINDING 4: a repo path inside the --local-dir staging area (fixed in 2aba698).
def test_a_repo_file_inside_the_staging_folder_cannot_swap_another_files_bytes(
    sim: Simulator, tmp_path: Path, hf_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = HubSimulator(sim)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    weights = make_data(2 * MiB, 1)
    evil = b"EVIL" * 1000
    target = f".pullman-partial/hf-{hashlib.sha256(weights).hexdigest()}.part"
    hub.add_repo(
        "org/swap", {"weights.bin": weights, target: evil}, throttle=Throttle(rate=512 * KiB)
    )
    dest = tmp_path / "local"
    with contextlib.suppress(RemoteError):  # refusing such a path is a fine answer
        session_get(tmp_path, "hf://org/swap", GetOptions(local_dir=str(dest)))
    weights_file = dest / "weights.bin"
    assert not weights_file.exists() or weights_file.read_bytes() == weights


# ------------------------------------------------------------------------------- paths: Ollama

EVIL_DIGESTS = [
    "sha256:../../../../tmp/evil",
    "sha256:" + "A" * 64,
    "sha512:" + "0" * 128,
    "sha256:" + "0" * 63 + "/",
    "sha256:" + "0" * 64 + "/../x",
    " sha256:" + "0" * 64,
    "sha256:" + "０" * 64,
    "sha256:" + "0" * 64 + "\n",
]


def test_manifest_digests_that_are_not_plain_hex_write_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    config_blob = b'{"model_format":"gguf"}'
    registry.add_blob(config_blob)
    for i, digest in enumerate(EVIL_DIGESTS):
        doc = json.loads(build_manifest(config_blob, [("model", b"x")]))
        doc["layers"][0]["digest"] = digest
        registry.set_manifest(f"library/evil{i}", "latest", json.dumps(doc).encode())
        options = GetOptions(insecure=True, ollama_dir=str(tmp_path / "models"))
        with pytest.raises(BadManifest):
            session_get(tmp_path, registry.name(f"library/evil{i}"), options)
    assert tree(tmp_path / "models") == {}
    assert not (tmp_path / "tmp").exists()


# ------------------------------------------------------------------------------- planted symlinks


@dataclass
class Planted:
    victim: Path
    outside: Path


def _plant_ollama(what: str, models: Path, tmp_path: Path, blob_hex: str, host: str) -> Planted:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious\n")
    if what == "blobs dir":
        models.mkdir(parents=True)
        (models / "blobs").symlink_to(outside, target_is_directory=True)
    elif what == "manifests dir":
        models.mkdir(parents=True)
        (models / "manifests").symlink_to(outside, target_is_directory=True)
    elif what == "staging dir":
        models.mkdir(parents=True)
        (models / ".pullman-partial").symlink_to(outside, target_is_directory=True)
    elif what == "blob file":
        (models / "blobs").mkdir(parents=True)
        (models / "blobs" / f"sha256-{blob_hex}").symlink_to(victim)
    elif what in ("part file", "journal temp file", "lock file"):
        staging = models / ".pullman-partial"
        staging.mkdir(parents=True)
        suffix = {"part file": ".part", "journal temp file": ".journal.tmp", "lock file": ".lock"}[
            what
        ]
        (staging / f"sha256-{blob_hex}{suffix}").symlink_to(victim)
    elif what == "manifest temp file":
        mdir = models / "manifests" / host / "library" / "m"
        mdir.mkdir(parents=True)
        (mdir / ".latest.pullman-tmp").symlink_to(victim)
    return Planted(victim, outside)


PLANTED_OLLAMA = [
    pytest.param("blobs dir"),
    pytest.param("manifests dir"),
    pytest.param("staging dir"),
    pytest.param("blob file"),
    # Regression tests for FINDING 1: writes through planted symlinks (fixed in 2aba698).
    pytest.param("part file"),
    pytest.param("journal temp file"),
    pytest.param("manifest temp file"),
    pytest.param("lock file"),
]


@pytest.mark.parametrize("what", PLANTED_OLLAMA)
def test_symlinks_planted_in_an_ollama_store_never_lead_outside(
    sim: Simulator, tmp_path: Path, what: str
) -> None:
    registry = OllamaRegistry(sim)
    blob = make_data(300 * KiB, 3)
    registry.add_model("library/m", layers=[("model", blob)])
    models = tmp_path / "models"
    planted = _plant_ollama(what, models, tmp_path, hashlib.sha256(blob).hexdigest(), registry.host)
    before = tree(planted.outside)
    links = {p: os.readlink(p) for p in models.rglob("*") if p.is_symlink()}
    options = GetOptions(insecure=True, ollama_dir=str(models))
    try:
        session_get(tmp_path, registry.name("library/m"), options)
    except PullmanError as exc:
        assert exc.exit_code in (1, 5), exc.explain()
    assert tree(planted.outside) == before, "pullman wrote outside the store"
    for p in models.rglob("*"):
        if p.is_symlink() and links.get(p) != os.readlink(p):
            assert p.resolve().is_relative_to(models.resolve()), f"{p} now leads outside"


PLANTED_HF = [
    pytest.param("blobs dir"),
    pytest.param("snapshot dir"),
    pytest.param("snapshots dir"),
    pytest.param("ref temp file"),  # FINDING 1 (fixed in 2aba698)
    pytest.param("part file"),  # FINDING 1 (fixed in 2aba698)
]


@pytest.mark.parametrize("what", PLANTED_HF)
def test_symlinks_planted_in_the_hf_cache_never_lead_outside(
    sim: Simulator, tmp_path: Path, hf_env: Path, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    hub = HubSimulator(sim)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    weights = make_data(300 * KiB, 4)
    commit = hub.add_repo("org/m", {"weights.bin": weights, "config.json": b"{}"})
    repo = hf_env / "models--org--m"
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_bytes(b"precious\n")
    if what == "blobs dir":
        repo.mkdir(parents=True)
        (repo / "blobs").symlink_to(outside, target_is_directory=True)
    elif what == "snapshot dir":
        (repo / "snapshots").mkdir(parents=True)
        (repo / "snapshots" / commit).symlink_to(outside, target_is_directory=True)
    elif what == "snapshots dir":
        repo.mkdir(parents=True)
        (repo / "snapshots").symlink_to(outside, target_is_directory=True)
    elif what == "ref temp file":
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / ".main.pullman-tmp").symlink_to(victim)
    elif what == "part file":
        (repo / ".pullman-partial").mkdir(parents=True)
        key = "hf-" + hashlib.sha256(weights).hexdigest()
        (repo / ".pullman-partial" / f"{key}.part").symlink_to(victim)
    before = tree(outside)
    links = {p: os.readlink(p) for p in repo.rglob("*") if p.is_symlink()}
    try:
        session_get(tmp_path, "hf://org/m", GetOptions())
    except PullmanError as exc:
        assert exc.exit_code in (1, 5), exc.explain()
    assert tree(outside) == before, "pullman wrote outside the cache"
    for p in repo.rglob("*"):
        if p.is_symlink() and links.get(p) != os.readlink(p):
            assert p.resolve().is_relative_to(repo.resolve()), f"{p} now leads outside"


# ------------------------------------------------------------------------------- tokens

TOKEN = "hf_Sup3rSecretT0kenForTests"


def test_the_hub_token_never_reaches_the_cdn_logs_json_or_index(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    hub.add_token(TOKEN)
    hub.add_repo("org/gated", {"config.json": b"{}", "w.bin": make_data(300 * KiB, 1)}, gated=True)
    env = cli_env(
        tmp_path / "home",
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_CACHE=str(tmp_path / "c"),
        HF_HOME=str(tmp_path / "hfh"),
        HF_TOKEN=TOKEN,
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    env.pop("HUGGING_FACE_HUB_TOKEN", None)
    outputs = []
    for flags in (["-vv"], ["-vv", "--debug"]):
        r = pullman(*flags, "get", "hf://org/gated", "--json", "--force", home=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)[0]["verified"]
        outputs += [r.stdout, r.stderr]
    r = pullman("-vv", "get", "hf://org/gated", "--detach", "--json", home=tmp_path, env=env)
    outputs += [r.stdout, r.stderr]
    # a failing run (the Hub no longer accepts the token) records its error in the index
    hub.tokens.clear()
    r = pullman("-vv", "get", "hf://org/nothere", "--json", home=tmp_path, env=env)
    assert r.returncode != 0
    outputs += [r.stdout, r.stderr]
    r = pullman("status", "--all", "--json", home=tmp_path, env=env)
    outputs += [r.stdout, r.stderr]
    for text in outputs:
        assert TOKEN not in text
    index_bytes = b"".join(p.read_bytes() for p in (tmp_path / "home").glob("index.db*"))
    assert index_bytes and TOKEN.encode() not in index_bytes
    assert not sim.cdn.saw_header("authorization")
    assert any(s.headers.get("authorization") == f"Bearer {TOKEN}" for s in sim.origin.seen)


def test_registry_tokens_never_reach_the_cdn_or_the_logs(sim: Simulator, tmp_path: Path) -> None:
    registry = OllamaRegistry(sim, auth="token")
    registry.add_model("library/m", layers=[("model", make_data(300 * KiB, 2))])
    r = pullman(
        "-vv",
        "get",
        "--insecure",
        "--ollama-dir",
        str(tmp_path / "models"),
        registry.name("library/m"),
        "--json",
        home=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert registry.tokens
    for token in registry.tokens:
        assert token not in r.stderr and token not in r.stdout
    assert not sim.cdn.saw_header("authorization")


# Regression test for FINDING 9: presigned URLs in -vv logs (fixed in 2aba698).
def test_presigned_cdn_urls_are_not_logged_at_vv(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("m.bin", make_data(100 * KiB, 6), via_cdn=True)
    r = pullman("-vv", "get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "X-Amz-Signature=" not in r.stderr  # redact() hides queries; the logs should too


def test_a_signed_url_the_user_gives_is_neither_logged_nor_kept_as_the_models_name(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_file("m.bin", make_data(100 * KiB, 6))
    signed = sim.url("m.bin") + "?X-Amz-Signature=s3cr3t&X-Amz-Credential=AKIDEXAMPLE"
    r = pullman("-vv", "get", signed, "-o", str(tmp_path / "m.bin"), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "s3cr3t" not in r.stderr + r.stdout and "AKIDEXAMPLE" not in r.stderr
    with Index.open(tmp_path / "index.db") as index:
        [model] = index.models()
    assert model.ref.endswith("/m.bin?…") and "s3cr3t" not in model.ref


# ------------------------------------------------------------------------------- endless servers

DEADLINE = 15.0
"""With the test settings (stall_timeout 1 s, 4 retries) a well-behaved pullman gives up on a
silent or endless server within a few seconds; this leaves generous room."""


async def _stall(request: Request) -> None:
    await asyncio.sleep(3600)  # accept, read the request, never answer


async def _drip_json(request: Request) -> None:
    await request.conn.send_head(
        200, [("Content-Type", MANIFEST_V2), ("Transfer-Encoding", "chunked")]
    )
    while True:
        await request.conn.send(b"1\r\n \r\n")
        await asyncio.sleep(0.5)


async def _endless(request: Request) -> None:
    await request.conn.send_head(
        200, [("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")]
    )
    chunk = b" " * 65536
    while True:
        await request.conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))


_pages = [0]


async def _endless_tree(request: Request) -> None:
    _pages[0] += 1
    await asyncio.sleep(0.01)
    link = f'<{request.origin.url}/api/models/org/endless/tree/main?cursor={_pages[0]}>; rel="next"'
    await send_simple(request, 200, b"[]", [("Link", link)])


@dataclass
class Ended:
    code: int | None
    """None: still running at the deadline (killed)."""
    seconds: float
    stderr: str


@pytest.fixture(scope="module")
def endless(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Ended]]:
    """Every hostile server at once, each against its own ``pullman get`` subprocess."""
    tmp = tmp_path_factory.mktemp("endless")
    sim = Simulator()
    sim.origin.route("GET", r"/v2/library/stall/manifests/.*", _stall)
    sim.origin.route("GET", r"/v2/library/drip/manifests/.*", _drip_json)
    sim.origin.route("GET", r"/v2/library/huge/manifests/.*", _endless)
    sim.origin.route("GET", r"/stall/.*", _stall)
    sim.origin.route("GET", r"/endless/.*", _endless)
    sim.origin.route("GET", r"/api/models/org/stall(/.*)?", _stall)
    sim.origin.route("GET", r"/api/models/org/endless/tree/.*", _endless_tree)
    hub = HubSimulator(sim)
    hub.add_repo("org/endless", {"a.bin": b"a"})
    # the probe (one byte) gets its byte; every data request gets one byte, then a drip
    sim.add_file("drip.bin", make_data(256 * KiB, 8), faults=[Drip(times=-1, after=1, rate=64)])
    sim.start()
    host = sim.origin.url.removeprefix("http://")
    models = str(tmp / "models")
    cases = {
        "manifest endless": ["get", "--insecure", "--ollama-dir", models, f"{host}/library/huge"],
        "manifest stall": ["get", "--insecure", "--ollama-dir", models, f"{host}/library/stall"],
        "manifest drip": ["get", "--insecure", "--ollama-dir", models, f"{host}/library/drip"],
        "url stall": ["get", f"{sim.origin.url}/stall/x.bin", "-o", str(tmp / "x.bin")],
        "url endless": ["get", f"{sim.origin.url}/endless/x.bin", "-o", str(tmp / "y.bin")],
        "blob drip": ["get", sim.url("drip.bin"), "-o", str(tmp / "drip.bin")],
        "hub stall": ["get", "hf://org/stall"],
        "hub endless tree": ["get", "hf://org/endless"],
    }
    procs = {}
    for name, args in cases.items():
        home = tmp / name.replace(" ", "-")
        env = cli_env(
            home,
            HF_ENDPOINT=hub.endpoint,
            HF_HUB_CACHE=str(home / "cache"),
            HF_HOME=str(home / "hfh"),
            HF_HUB_DISABLE_TELEMETRY="1",
            PULLMAN_TRANSFER_RETRY_ATTEMPTS="4",
            OLLAMA_HOST="http://127.0.0.1:9",
        )
        env.pop("HF_TOKEN", None)
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pullman", *args, "--progress", "none"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    started = time.monotonic()
    results: dict[str, Ended] = {}
    while len(results) < len(procs):
        for name, proc in procs.items():
            if name in results:
                continue
            now = time.monotonic() - started
            if proc.poll() is not None:
                results[name] = Ended(
                    proc.returncode, now, proc.stderr.read() if proc.stderr else ""
                )
            elif now > DEADLINE:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                results[name] = Ended(None, now, "")
        time.sleep(0.05)
    sim.stop()
    yield results


def _ended_cleanly(result: Ended) -> None:
    assert result.code is not None, f"still running after {DEADLINE:g} s"
    assert result.code == 1, result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert "pullman: error:" in result.stderr


def test_an_endless_manifest_is_cut_off(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["manifest endless"])
    assert "larger than" in endless["manifest endless"].stderr


def test_an_endless_body_without_a_size_is_refused(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["url endless"])
    assert "did not say how large" in endless["url endless"].stderr


# Regression test for FINDING 6: metadata and probes waited minutes or forever (fixed in 2aba698).
def test_a_registry_that_never_answers_is_given_up_on(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["manifest stall"])
    stderr = endless["manifest stall"].stderr
    assert "/manifests/latest did not answer completely within 2 s" in stderr


# Regression test for FINDING 6: metadata and probes waited minutes or forever (fixed in 2aba698).
def test_a_registry_that_drips_its_manifest_is_given_up_on(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["manifest drip"])
    stderr = endless["manifest drip"].stderr
    assert "library/drip/manifests/latest did not answer completely" in stderr
    assert "stalls or drips" in stderr


# Regression test for FINDING 6: metadata and probes waited minutes or forever (fixed in 2aba698).
def test_a_file_server_that_never_answers_the_probe_is_given_up_on(
    endless: dict[str, Ended],
) -> None:
    _ended_cleanly(endless["url stall"])
    assert "/stall/x.bin did not answer completely within 2 s" in endless["url stall"].stderr


# Regression test for FINDING 7: a dripping server kept a transfer forever (fixed in 2aba698).
def test_a_file_server_that_only_drips_is_given_up_on(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["blob drip"])
    assert "drip.bin: hardly any data for 1 s" in endless["blob drip"].stderr
    assert "stalled or dripped" in endless["blob drip"].stderr


# Regression test for FINDING 5: a silent Hub hung pullman (fixed in 2aba698).
def test_a_hub_that_never_answers_is_given_up_on(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["hub stall"])
    assert "stopped answering for 2 s" in endless["hub stall"].stderr


# Regression test for FINDING 5: a listing of endless empty pages was followed for ever.
def test_a_tree_listing_that_never_ends_is_cut_off(endless: dict[str, Ended]) -> None:
    _ended_cleanly(endless["hub endless tree"])
    stderr = endless["hub endless tree"].stderr
    assert "stopped answering" in stderr or "never ended" in stderr


# ------------------------------------------------------------------------------- permissions


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_index_and_stores_get_sensible_permissions(sim: Simulator, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        registry = OllamaRegistry(sim)
        registry.add_model("library/m", layers=[("model", make_data(200 * KiB, 9))])
        home = tmp_path / "home"
        models = tmp_path / "models"
        r = pullman(
            "get", "--insecure", "--ollama-dir", str(models), registry.name("library/m"), home=home
        )
        assert r.returncode == 0, r.stderr
        assert _mode(home) == 0o700
        for p in home.glob("index.db*"):
            assert _mode(p) == 0o600, p
        for blob in (models / "blobs").iterdir():
            assert _mode(blob) == 0o644
        [manifest] = [p for p in (models / "manifests").rglob("*") if p.is_file()]
        assert _mode(manifest) == 0o644
    finally:
        os.umask(old)


# Regression test for FINDING 3: a daemon-created state directory was 0755 (fixed in 2aba698).
def test_the_state_directory_is_private_when_the_daemon_creates_it(tmp_path: Path) -> None:
    old = os.umask(0o022)
    home = tmp_path / "fresh-home"
    env = cli_env(home)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pullman", "daemon"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        paths = config.Paths.from_env(env)
        deadline = time.monotonic() + 20
        while daemon_pid(paths) != proc.pid and time.monotonic() < deadline:
            time.sleep(0.02)
        assert daemon_pid(paths) == proc.pid
        assert _mode(home / "index.db") == 0o600
        assert _mode(home) == 0o700
    finally:
        os.umask(old)
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_hub_blobs_are_world_readable_and_links_relative(
    sim: Simulator, tmp_path: Path, hf_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = os.umask(0o022)
    try:
        hub = HubSimulator(sim)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        hub.add_repo("org/p", {"a.bin": make_data(4 * KiB, 1), "b.txt": b"small"})
        session_get(tmp_path, "hf://org/p", GetOptions())
        repo = hf_env / "models--org--p"
        for blob in (repo / "blobs").iterdir():
            assert _mode(blob) == 0o644
        assert git_blob_sha1(b"small") in {p.name for p in (repo / "blobs").iterdir()}
    finally:
        os.umask(old)
