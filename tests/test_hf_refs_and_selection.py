"""Hugging Face refs, file selection (globs, GGUF quantisations) and cache path rules. Pure."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullman.core.digests import Digest
from pullman.core.names import check_repo_path
from pullman.core.refs import HfRef, parse_ref
from pullman.errors import NotFound, RefError, RemoteError
from pullman.layouts.hf_cache import link_target
from pullman.sources.hf_select import HubFile, Snapshot, quant_tags, select


def hub_file(path: str, size: int = 10) -> HubFile:
    return HubFile(path, size, Digest("sha256", hashlib.sha256(path.encode()).hexdigest()))


def snapshot(ref: HfRef, *paths: str) -> Snapshot:
    return Snapshot(ref, "https://hub.test", "a" * 40, tuple(hub_file(p) for p in paths))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hf://Qwen/Qwen2.5-0.5B-Instruct", HfRef("Qwen/Qwen2.5-0.5B-Instruct")),
        ("hf://org/repo@v1.0", HfRef("org/repo", revision="v1.0")),
        (
            "hf://org/repo@refs/pr/3/a/b.bin",
            HfRef("org/repo", revision="refs/pr/3", pattern="a/b.bin"),
        ),
        (
            "hf://datasets/org/data/train/*.parquet",
            HfRef("org/data", "dataset", pattern="train/*.parquet"),
        ),
        ("hf://bartowski/M-GGUF:Q4_K_M", HfRef("bartowski/M-GGUF", quant="Q4_K_M", gguf=True)),
        (
            "hf://bartowski/M-GGUF@v2:q8_0",
            HfRef("bartowski/M-GGUF", revision="v2", quant="q8_0", gguf=True),
        ),
    ],
)
def test_hf_refs(text: str, expected: HfRef) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "hf://org",
        "hf://org/",
        "hf://../repo",
        "hf://org/re--po",
        "hf://org/repo/../x",
        "hf://org/repo@..",
        "hf.co/org",
        "hf.co/org/repo:Q4 K",
        "hf://org/repo:Q4 K",
        "hf://org/repo//x",
    ],
)
def test_bad_hf_refs(text: str) -> None:
    with pytest.raises(RefError):
        parse_ref(text)


@given(st.text(max_size=60))
def test_hf_ref_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(RefError):
        parse_ref("hf://" + text)


def test_quant_pick_with_split_files() -> None:
    ref = HfRef("b/M-GGUF", quant="q4_k_m", gguf=True)
    snap = snapshot(
        ref,
        "M-Q4_K_M-00001-of-00002.gguf",
        "M-Q4_K_M-00002-of-00002.gguf",
        "M-Q8_0.gguf",
        "README.md",
    )
    files, note = select(snap)
    assert [f.path for f in files] == [
        "M-Q4_K_M-00001-of-00002.gguf",
        "M-Q4_K_M-00002-of-00002.gguf",
    ]
    assert note is None


def test_quant_in_a_folder() -> None:
    snap = snapshot(
        HfRef("b/M", quant="Q6_K", gguf=True), "Q6_K/M-Q6_K-00001-of-00001.gguf", "M-Q4_K_M.gguf"
    )
    files, _ = select(snap)
    assert [f.path for f in files] == ["Q6_K/M-Q6_K-00001-of-00001.gguf"]


def test_default_quant_is_q4_k_m_and_says_so() -> None:
    snap = snapshot(HfRef("b/M", gguf=True), "M-Q8_0.gguf", "M-Q4_K_M.gguf", "M-IQ3_XS.gguf")
    files, note = select(snap)
    assert [f.path for f in files] == ["M-Q4_K_M.gguf"]
    assert note is not None and "Q4_K_M" in note


def test_unknown_quant_lists_what_exists() -> None:
    snap = snapshot(HfRef("b/M", quant="Q3_K_L", gguf=True), "M-Q8_0.gguf", "M-Q4_K_M.gguf")
    with pytest.raises(NotFound) as info:
        select(snap)
    assert "Q4_K_M" in (info.value.why or "") and "Q8_0" in (info.value.why or "")


def test_globs_include_exclude() -> None:
    ref = HfRef("o/r")
    snap = snapshot(ref, "config.json", "model.safetensors", "onnx/model.onnx", "a/b/c.txt")
    files, _ = select(snap, include=("*.json", "*.safetensors", "onnx/*"), exclude=("onnx/*",))
    assert sorted(f.path for f in files) == ["config.json", "model.safetensors"]
    files, _ = select(snapshot(HfRef("o/r", pattern="a"), "a/b/c.txt", "ab.txt"))
    assert [f.path for f in files] == ["a/b/c.txt"]
    with pytest.raises(NotFound):
        select(snapshot(HfRef("o/r", pattern="nope/*"), "a.txt"))


def test_quant_tags() -> None:
    assert quant_tags("Qwen2.5-7B-Instruct-Q4_K_M.gguf") == {"Q4_K_M"}
    assert quant_tags("x-IQ3_XS-00001-of-00003.gguf") == {"IQ3_XS"}
    assert quant_tags("x-f16.gguf") == {"F16"}


@pytest.mark.parametrize(
    "path", ["../x", "a/../../x", "/etc/passwd", "a//b", "./a", "a/./b", "a\\b", "a/", "", "a\x00b"]
)
def test_repo_paths_that_escape_are_refused(path: str) -> None:
    with pytest.raises(RemoteError):
        check_repo_path(path)


def test_link_targets_climb_one_level_per_folder() -> None:
    assert link_target("config.json", "e") == "../../blobs/e"
    assert link_target("a/b/c.bin", "e") == "../../../../blobs/e"
