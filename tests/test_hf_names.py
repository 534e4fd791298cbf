"""``hf.co/org/repo:QUANT`` is an Ollama name (as for ``ollama pull``); pasted web pages of the
Hub and of ollama.com are the refs they show; ``--include onnx/`` matches as ``hf download``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pullman.core.refs import HfRef, OllamaRef, UrlRef
from pullman.errors import RefError
from pullman.sources import parse, source_for
from pullman.sources.hf_registry import HfRegistrySource
from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, cli_env, pullman


def test_hf_co_names_are_ollama_names() -> None:
    ref = parse("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M")
    assert ref == OllamaRef("hf.co", "bartowski", "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M", "https")
    assert isinstance(source_for(ref), HfRegistrySource)
    assert parse("huggingface.co/org/repo") == OllamaRef(
        "huggingface.co", "org", "repo", "latest", "https"
    )


def test_an_hf_co_model_lands_in_the_ollama_store_where_ollama_run_finds_it(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)  # stands in for hf.co's Ollama-compatible registry
    gguf = make_data(300 * KiB, 1)
    raw = registry.add_model("bart/M-GGUF", "Q4_K_M", layers=[("model", gguf), ("template", b"t")])
    models = tmp_path / "models"
    env = cli_env(tmp_path / "home", PULLMAN_HF_REGISTRY=sim.origin.url)
    r = pullman("get", "--ollama-dir", str(models), "hf.co/bart/M-GGUF:Q4_K_M", home=tmp_path,
                env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (models / "manifests" / "hf.co" / "bart" / "M-GGUF" / "Q4_K_M").read_bytes() == raw
    r = pullman("ls", "--ollama-dir", str(models), "--json", home=tmp_path, env=env)
    assert [e["name"] for e in json.loads(r.stdout)] == ["hf.co/bart/M-GGUF:Q4_K_M"]
    r = pullman("rm", "--ollama-dir", str(models), "hf.co/bart/M-GGUF:Q4_K_M", home=tmp_path,
                env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not list((models / "blobs").glob("sha256-*"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://huggingface.co/org/repo", HfRef("org/repo")),
        (
            "https://huggingface.co/org/repo/tree/v1/onnx",
            HfRef("org/repo", revision="v1", pattern="onnx"),
        ),
        (
            "https://huggingface.co/org/repo/blob/main/weights/model.safetensors",
            HfRef("org/repo", revision="main", pattern="weights/model.safetensors"),
        ),
        (
            "https://hf.co/org/repo/resolve/abc123/config.json",
            HfRef("org/repo", revision="abc123", pattern="config.json"),
        ),
        ("https://huggingface.co/datasets/org/data", HfRef("org/data", "dataset")),
        (
            "https://ollama.com/library/llama3.2",
            OllamaRef("registry.ollama.ai", "library", "llama3.2", "latest", "https"),
        ),
        (
            "https://ollama.com/library/qwen2.5:7b",
            OllamaRef("registry.ollama.ai", "library", "qwen2.5", "7b", "https"),
        ),
        (
            "https://ollama.com/someone/model",
            OllamaRef("registry.ollama.ai", "someone", "model", "latest", "https"),
        ),
        (
            "https://example.com/org/repo/model.gguf",
            UrlRef("https://example.com/org/repo/model.gguf"),
        ),
        (
            "https://huggingface.co/api/models/org/repo",
            UrlRef("https://huggingface.co/api/models/org/repo"),
        ),
    ],
)
def test_pasted_web_urls(url: str, expected: object) -> None:
    assert parse(url) == expected


def test_pasted_urls_under_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.example.internal")
    assert parse("https://hub.example.internal/org/repo/blob/main/a.json") == HfRef(
        "org/repo", pattern="a.json"
    )


@pytest.mark.parametrize(
    "url", ["https://huggingface.co/spaces/org/app", "https://ollama.com/library"]
)
def test_pages_that_are_not_models_are_refused(url: str) -> None:
    with pytest.raises(RefError):
        parse(url)


def test_a_pasted_file_page_downloads_that_file_into_the_cache(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    hub.add_repo("org/tiny", {"config.json": b'{"a": 1}\n', "big.bin": make_data(64 * KiB, 2)})
    cache = tmp_path / "cache"
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(cache))
    r = pullman("get", f"{hub.endpoint}/org/tiny/blob/main/config.json", "--json", home=tmp_path,
                env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [d["name"] for d in json.loads(r.stdout)] == ["config.json"]


def test_include_a_folder_matches_as_hf_download(sim: Simulator, tmp_path: Path) -> None:
    hub = HubSimulator(sim)
    files = {"onnx/model.onnx": b"onnx", "onnx/sub/extra.onnx": b"x", "model.bin": b"bin"}
    hub.add_repo("org/tiny", files)
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(tmp_path / "c"))
    r = pullman("get", "hf://org/tiny", "--include", "onnx/", "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert sorted(d["name"] for d in json.loads(r.stdout)) == [
        "onnx/model.onnx",
        "onnx/sub/extra.onnx",
    ]


def test_hf_download_habits_revision_cache_dir_and_a_token_file(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    commit = hub.add_repo("org/gated", {"config.json": b'{"v": 2}\n'}, gated=True)
    hub.add_tag("org/gated", "v2")
    hub.add_token("hf_test_token_123", approved_gated=True)
    token = tmp_path / "token"
    token.write_text("hf_test_token_123\n")
    cache = tmp_path / "elsewhere"
    env = cli_env(tmp_path / "home", HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf"))
    args = ("-vv", "get", "hf://org/gated", "--revision", "v2", "--cache-dir", str(cache))
    r = pullman(*args, "--token", str(token), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (cache / "models--org--gated" / "refs" / "v2").read_text() == commit
    assert "hf_test_token_123" not in r.stdout + r.stderr
    r = pullman("get", "hf://org/gated", "--cache-dir", str(cache), home=tmp_path, env=env)
    assert r.returncode == 6  # without the token: gated
