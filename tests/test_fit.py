"""Will it fit? ``pullman fit`` and ``get``'s check, against Hub and registry simulators whose
GGUF headers are real (``gguf.GGUFWriter``) and whose tensor data is a hole (an 8B costs no
disk); the estimate's parts checked by hand, the verdicts with given numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.core.gguf_fit import (
    Budget,
    FitHeader,
    apple_gpu_share,
    estimate,
    kv_cache_bytes,
    meminfo_bytes,
    verdict,
)
from pullman.errors import EXIT_CODES, EXIT_UNSUPPORTED, EXIT_WONT_FIT, Unsupported, WontFit
from pullman.index import Index
from pullman.testing import Simulator, Sparse
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from fit_models import LLAMA_8B, TINY, Written, gguf_model, nbytes, tensors
from helpers import MiB, cli_env, hub_env, no_traceback, pullman

GiB = 1 << 30
REPO = "org/Llama-8B-GGUF"
QUANTS = ("Q2_K", "Q4_K_M", "Q8_0", "F16")


def path_of(quant: str) -> str:
    return f"Llama-8B-{quant}.gguf"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    work = tmp_path_factory.mktemp("headers")
    return {q: gguf_model(work, LLAMA_8B, q) for q in QUANTS}


@pytest.fixture
def hub(sim: Simulator, models: dict[str, Written]) -> HubSimulator:
    hub = HubSimulator(sim, page_size=100)
    files: dict[str, bytes | Sparse] = {path_of(q): m.sparse() for q, m in models.items()}
    files["README.md"] = b"# an 8B, all header\n"
    hub.add_repo(REPO, files)
    return hub


def run(tmp_path: Path, hub: HubSimulator, *args: str, **env: str):  # type: ignore[no-untyped-def]
    return pullman(*args, home=tmp_path, env=hub_env(tmp_path, hub, **env))


def fit_json(tmp_path: Path, hub: HubSimulator, ref: str, *args: str) -> dict:  # type: ignore[type-arg]
    r = run(tmp_path, hub, "fit", ref, "--json", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def cdn_bytes(hub: HubSimulator, quant: str) -> int:
    return hub.file(REPO, path_of(quant)).sim_file.bytes_sent


# ---------------------------------------------------------------------- the estimate by hand


def header_8b(**changes: object) -> FitHeader:
    values: dict[str, object] = {
        "architecture": "llama",
        "file_type": 15,
        "weights": 4_912_898_048,
        "tensor_count": 291,
        "header_size": 1 << 20,
        "block_count": 32,
        "embedding_length": 4096,
        "head_count": (32,),
        "head_count_kv": (8,),
        "rope_dimensions": 128,
        "vocab_size": 128256,
    }
    values.update(changes)
    return FitHeader(**values)  # type: ignore[arg-type]


def test_the_kv_cache_is_llama_cpps_formula() -> None:
    # 2 (K and V) x 32 layers x 4096 tokens x 8 KV heads x 128 head dim x 2 bytes (f16)
    assert kv_cache_bytes(header_8b(), 4096) == 2 * 32 * 4096 * 8 * 128 * 2 == 512 * MiB
    assert kv_cache_bytes(header_8b(), 32768) == 4 * GiB
    # the head dim from key_length / value_length when given (over embd / heads)
    assert kv_cache_bytes(header_8b(key_length=64, value_length=64), 4096) == 256 * MiB
    # per-layer KV heads (0: a layer without a cache)
    per_layer = header_8b(head_count_kv=tuple([8] * 16 + [0] * 16))
    assert kv_cache_bytes(per_layer, 4096) == 256 * MiB
    # no head_count_kv: as many as heads (no GQA)
    assert kv_cache_bytes(header_8b(head_count_kv=None), 4096) == 2 * GiB


@pytest.mark.parametrize(
    "changes",
    [
        {"block_count": 0},
        {"block_count": None},
        {"head_count": None},
        {"head_count": (0,)},
        {"head_count_kv": (64,)},  # more KV heads than heads
        {"head_count_kv": (8, 8, 8)},  # an array that is not one per layer
        {"embedding_length": 1 << 40},
        {"key_length": 1 << 30},
        {"vocab_size": None},
        {"weights": None},  # a tensor type gguf does not know
        {"weights": 0},
    ],
)
def test_missing_or_absurd_metadata_gives_no_estimate(changes: dict[str, object]) -> None:
    assert estimate([header_8b(**changes)], 4096) is None
    assert verdict(None, Budget(16 * GiB)) == "unknown"


def test_an_absurd_context_gives_no_estimate() -> None:
    assert estimate([header_8b()], 1 << 40) is None


@pytest.mark.parametrize("context", [4096, 32768])
def test_need_is_weights_and_kv_cache_plus_a_bounded_margin(context: int) -> None:
    e = estimate([header_8b()], context)
    assert e is not None
    assert 1.0 < e.need / (e.weights + e.kv_cache) <= 1.35
    # the compute buffer: the logits graph (Ollama's "vocab graph") of an 8B, plus attention
    logits = 4 * 512 * (4096 + 128256)
    assert logits == 258.5 * MiB
    assert 258.5 * MiB < e.compute < 258.5 * MiB + 4 * 512 * 4097 * 4 + 2 * 512 * context + 1


def test_split_files_sum_their_weights_with_the_first_ones_metadata() -> None:
    first = header_8b(weights=3 * GiB)
    second = FitHeader("unknown", None, 2 * GiB, 100, 4096)
    whole = estimate([first, second], 4096)
    assert whole is not None and whole.weights == 5 * GiB
    assert whole.kv_cache == 512 * MiB


@pytest.mark.parametrize(
    ("need", "budget", "expected"),
    [
        (5 * GiB, Budget(32 * GiB, vram=8 * GiB, source="this machine"), "full GPU"),
        (12 * GiB, Budget(32 * GiB, vram=8 * GiB, source="this machine"), "partial offload"),
        (41 * GiB, Budget(32 * GiB, vram=8 * GiB, source="this machine"), "will not fit"),
        (12 * GiB, Budget(16 * GiB, source="this machine"), "CPU only"),
        (17 * GiB, Budget(16 * GiB, source="this machine"), "will not fit"),
        (12 * GiB, Budget(16 * GiB), "fits"),
        (17 * GiB, Budget(16 * GiB), "will not fit"),
        (9 * GiB, Budget(16 * GiB, gpu_share=apple_gpu_share(16 * GiB)), "full GPU"),
        (12 * GiB, Budget(16 * GiB, gpu_share=apple_gpu_share(16 * GiB)), "partial offload"),
        (5 * GiB, Budget(None), "unknown"),
        (None, Budget(16 * GiB), "unknown"),
    ],
)
def test_verdicts(need: int | None, budget: Budget, expected: str) -> None:
    assert verdict(need, budget) == expected


def test_the_machine_budget_parts() -> None:
    assert apple_gpu_share(16 * GiB) == 16 * GiB * 2 // 3  # a 16 GB Mac Mini: ~10.7 GiB
    assert apple_gpu_share(64 * GiB) == 48 * GiB
    assert apple_gpu_share(16 * GiB, wired_limit_mb=14 * 1024) == 14 * GiB
    text = "MemTotal:       16314428 kB\nMemFree:  1 kB\nMemAvailable:   9000000 kB\n"
    assert meminfo_bytes(text) == 16314428 * 1024
    assert meminfo_bytes(text, "MemAvailable") == 9000000 * 1024
    assert meminfo_bytes("junk") is None


def test_exit_code_7_is_will_not_fit_and_unsupported_moved_to_8() -> None:
    assert WontFit("x").exit_code == EXIT_WONT_FIT == 7
    assert Unsupported("x").exit_code == EXIT_UNSUPPORTED == 8
    assert "fit" in EXIT_CODES[7] and "newer pullman" in EXIT_CODES[8]


# ---------------------------------------------------------------------- pullman fit on the Hub


def test_the_header_is_read_with_range_requests_and_the_weights_add_up(
    hub: HubSimulator, models: dict[str, Written], tmp_path: Path
) -> None:
    doc = fit_json(tmp_path, hub, f"hf://{REPO}", "--memory", "16GiB")
    rows = {f["quant"]: f for f in doc["files"]}
    assert sorted(rows) == sorted(QUANTS)
    for quant, m in models.items():
        row = rows[quant]
        assert row["path"] == path_of(quant) and row["size"] == m.size
        assert row["weights"] == m.weights  # the tensor table's sum, counted independently
        # header only: ~1.8 MiB of header takes two ranges (1 MiB, then the next MiB)
        sent = cdn_bytes(hub, quant)
        assert len(m.head) - 4096 <= sent <= 2 * len(m.head), (quant, sent)
        assert sent < m.size // 500
    # Llama-3.1-8B as published (bartowski's GGUFs): 3.18, 4.92, 8.54, 16.07 GB
    for quant, published in (("Q2_K", 3.18e9), ("Q4_K_M", 4.92e9), ("Q8_0", 8.54e9)):
        assert abs(rows[quant]["weights"] / published - 1) < 0.03


@pytest.mark.parametrize(
    ("memory", "context", "pick", "verdicts"),
    [
        ("8GiB", 4096, "Q4_K_M", ("fits", "fits", "will not fit", "will not fit")),
        ("8GiB", 32768, "Q2_K", ("fits", "will not fit", "will not fit", "will not fit")),
        ("16GiB", 4096, "Q8_0", ("fits", "fits", "fits", "will not fit")),
        ("16GiB", 32768, "Q8_0", ("fits", "fits", "fits", "will not fit")),
    ],
)
def test_verdicts_and_pick_at_several_budgets(
    hub: HubSimulator,
    tmp_path: Path,
    memory: str,
    context: int,
    pick: str | None,
    verdicts: tuple[str, ...],
) -> None:
    doc = fit_json(tmp_path, hub, f"hf://{REPO}", "--memory", memory, "--context", str(context))
    assert doc["memory"] == int(memory.removesuffix("GiB")) * GiB
    assert doc["context"] == context
    rows = {f["quant"]: f for f in doc["files"]}
    assert tuple(rows[q]["verdict"] for q in QUANTS) == verdicts
    assert doc["pick"] == (path_of(pick) if pick else None)
    for row in doc["files"]:
        assert set(row) == {
            "path",
            "quant",
            "size",
            "weights",
            "kv_cache",
            "need",
            "fits",
            "verdict",
        }
        assert row["kv_cache"] == 2 * 32 * context * 8 * 128 * 2
        assert 1.0 < row["need"] / (row["weights"] + row["kv_cache"]) <= 1.35
        assert row["fits"] == (row["verdict"] == "fits")


def test_a_second_fit_reads_nothing_from_the_cdn(hub: HubSimulator, tmp_path: Path) -> None:
    first = fit_json(tmp_path, hub, f"hf://{REPO}", "--memory", "16GiB")
    sent = hub.sim.total_bytes_sent()
    second = fit_json(tmp_path, hub, f"hf://{REPO}", "--memory", "16GiB")
    assert hub.sim.total_bytes_sent() == sent  # the index had every header
    assert second == first
    with Index.open(tmp_path / "home" / "index.db") as idx:
        digest = hub.file(REPO, path_of("Q8_0")).sha256
        cached = idx.gguf_header(f"sha256:{digest}")
    assert cached is not None and cached["block_count"] == 32


def test_the_table_marks_the_pick(hub: HubSimulator, tmp_path: Path) -> None:
    r = run(tmp_path, hub, "fit", f"hf://{REPO}", "--memory", "8GiB", "--context", "32768")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    picked = [line for line in lines if "Llama-8B-Q2_K.gguf" in line and "*" in line]
    assert picked, r.stdout
    assert "* pick: Llama-8B-Q2_K.gguf" in r.stdout
    assert "will not fit" in r.stdout


def test_one_quant_and_one_file(hub: HubSimulator, tmp_path: Path) -> None:
    doc = fit_json(tmp_path, hub, f"hf://{REPO}:Q8_0", "--memory", "8GiB")
    assert [f["quant"] for f in doc["files"]] == ["Q8_0"] and doc["pick"] is None
    doc = fit_json(tmp_path, hub, f"hf://{REPO}/{path_of('Q2_K')}", "--memory", "8GiB")
    assert [f["path"] for f in doc["files"]] == [path_of("Q2_K")]
    assert doc["pick"] == path_of("Q2_K")
    assert cdn_bytes(hub, "F16") == 0  # the other quants were never read


def test_split_files_are_one_model(sim: Simulator, tmp_path: Path) -> None:
    work = tmp_path / "w"
    work.mkdir()
    count = len(list(tensors(LLAMA_8B, "F16")))
    one = gguf_model(work, LLAMA_8B, "F16", split=(1, 2, range(0, 150)))
    two = gguf_model(work, LLAMA_8B, "F16", split=(2, 2, range(150, count)))
    hub = HubSimulator(sim)
    hub.add_repo(
        "org/S-GGUF",
        {"S-F16-00001-of-00002.gguf": one.sparse(), "S-F16-00002-of-00002.gguf": two.sparse()},
    )
    doc = fit_json(tmp_path, hub, "hf://org/S-GGUF", "--memory", "32GiB")
    (row,) = doc["files"]
    assert row["path"] == "S-F16-00001-of-00002.gguf" and row["quant"] == "F16"
    assert row["size"] == one.size + two.size
    assert (
        row["weights"]
        == one.weights + two.weights
        == sum(nbytes(d, k) for _, d, k in tensors(LLAMA_8B, "F16"))
    )
    assert row["kv_cache"] == 512 * MiB and row["verdict"] == "fits"


# ---------------------------------------------------------------------- unknowns, never a crash


@pytest.fixture
def odd_repo(sim: Simulator, tmp_path: Path) -> Iterator[HubSimulator]:
    work = tmp_path / "odd"
    work.mkdir()
    good = gguf_model(work, TINY, "Q8_0")
    absurd = gguf_model(work, TINY, "Q8_0", uint32s={"llama.attention.head_count_kv": 4096})
    hub = HubSimulator(sim, page_size=100)
    hub.add_repo(
        "org/Odd-GGUF",
        {
            "Odd-Q8_0.gguf": good.head + bytes(good.size - len(good.head)),
            "Odd-Q4_0.gguf": Sparse(good.head[: len(good.head) // 2], good.size),  # zeroed
            "Odd-Q3_K_S.gguf": good.head[: len(good.head) // 2],  # a download cut short
            "Odd-Q5_0.gguf": Sparse(b"GGUF\x03\x00\x00\x00" + b"\xff" * 4096, 10 * MiB),
            "Odd-Q6_K.gguf": absurd.head + bytes(absurd.size - len(absurd.head)),
            "Odd-IQ4_XS.gguf": b"not a gguf at all" * 100,
        },
    )
    yield hub


def test_a_corrupt_or_absurd_header_is_unknown_not_a_crash(
    odd_repo: HubSimulator, tmp_path: Path
) -> None:
    r = run(tmp_path, odd_repo, "fit", "hf://org/Odd-GGUF", "--memory", "1GiB", "--json")
    assert r.returncode == 0, r.stderr
    assert no_traceback(r.stderr)
    rows = {f["quant"]: f for f in json.loads(r.stdout)["files"]}
    assert rows["Q8_0"]["verdict"] == "fits"
    for quant in ("Q4_0", "Q3_K_S", "Q5_0", "Q6_K", "IQ4_XS"):
        assert rows[quant]["verdict"] == "unknown", quant
        assert rows[quant]["need"] is None and rows[quant]["fits"] is None
    r = run(tmp_path, odd_repo, "fit", "hf://org/Odd-GGUF", "--memory", "1GiB")
    assert r.returncode == 0 and "unknown" in r.stdout and no_traceback(r.stderr)


def test_get_of_a_model_of_unknown_need_goes_ahead(odd_repo: HubSimulator, tmp_path: Path) -> None:
    r = run(tmp_path, odd_repo, "get", "hf://org/Odd-GGUF:IQ4_XS", "--memory", "1KiB")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------- get


def test_get_refuses_before_any_weight_byte_with_exit_7(hub: HubSimulator, tmp_path: Path) -> None:
    r = run(tmp_path, hub, "get", f"hf://{REPO}:F16", "--memory", "12GiB")
    assert r.returncode == 7, r.stderr
    assert no_traceback(r.stderr)
    assert "Llama-8B-F16.gguf will not fit" in r.stderr
    assert "needs about 16.0 GiB" in r.stderr and "12.0 GiB memory" in r.stderr
    assert "Q8_0 would fit" in r.stderr  # the largest quant of the repo that does
    assert "--ignore-fit" in r.stderr
    assert cdn_bytes(hub, "F16") <= 2 * MiB  # its header, no weights
    assert not list((tmp_path / "cache").rglob("*.gguf"))
    with Index.open(tmp_path / "home" / "index.db") as idx:
        (job,) = idx.jobs()
    assert job.state == "failed" and job.exit_code == 7  # the job row says so too


def test_get_without_a_quant_picks_the_largest_that_fits(
    hub: HubSimulator, sim: Simulator, tmp_path: Path, models: dict[str, Written]
) -> None:
    registry = OllamaRegistry(sim)  # hf.co's Ollama registry, beside the Hub
    for quant in QUANTS:
        registry.add_model(REPO, quant, layers=[("model", models[quant].sparse())])
    registry.add_model(REPO, "latest", layers=[("model", models["Q4_K_M"].sparse())])
    env = {"PULLMAN_HF_REGISTRY": sim.origin.url}
    args = ("get", f"hf.co/{REPO}", "--dry-run", "--json", "--memory", "16GiB")
    r = run(tmp_path, hub, *args, **env)
    assert r.returncode == 0, r.stderr
    assert "picked Q8_0, the largest that fits 16.0 GiB memory" in r.stderr
    (plan,) = json.loads(r.stdout)
    assert plan["ref"] == f"hf.co/{REPO}:Q8_0" and "picked Q8_0" in plan["note"]
    r = run(tmp_path, hub, *args[:-1], "8GiB", "--context", "131072", **env)
    assert r.returncode == 0, r.stderr
    assert "no quantisation fits 8.0 GiB memory at 131072 context" in r.stderr
    (plan,) = json.loads(r.stdout)  # the registry's own default, as before
    assert plan["ref"] == f"hf.co/{REPO}:latest" and "no quantisation fits" in plan["note"]


def test_ignore_fit_downloads_anyway(sim: Simulator, tmp_path: Path) -> None:
    tiny = gguf_model(tmp_path, TINY, "Q8_0")
    data = tiny.head + bytes(tiny.size - len(tiny.head))
    hub = HubSimulator(sim)
    hub.add_repo("org/Tiny-GGUF", {"Tiny-Q8_0.gguf": data})
    r = run(tmp_path, hub, "get", "hf://org/Tiny-GGUF:Q8_0", "--memory", "64KiB")
    assert r.returncode == 7, r.stderr
    r = run(tmp_path, hub, "get", "hf://org/Tiny-GGUF:Q8_0", "--memory", "64KiB", "--ignore-fit")
    assert r.returncode == 0, r.stderr
    (got,) = (tmp_path / "cache").rglob("Tiny-Q8_0.gguf")
    assert got.read_bytes() == data
    r = run(tmp_path, hub, "get", "hf://org/Tiny-GGUF:Q8_0", "--memory", "1GiB", "--force")
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------- local files and Ollama


def test_a_local_file(models: dict[str, Written], tmp_path: Path) -> None:
    path = models["Q4_K_M"].write(tmp_path / "Llama-8B-Q4_K_M.gguf")
    assert path.stat().st_blocks * 512 < 8 * MiB  # a hole, not 5 GB
    r = pullman("fit", str(path), "--memory", "8GiB", "--json", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (row,) = doc["files"]
    assert row["weights"] == models["Q4_K_M"].weights and row["verdict"] == "fits"
    assert doc["pick"] == str(path)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\x00" * 100)
    r = pullman("fit", str(junk), "--json", home=tmp_path / "home")
    assert r.returncode == 0 and json.loads(r.stdout)["files"][0]["verdict"] == "unknown"


def test_an_ollama_name_reads_the_model_layer(
    sim: Simulator, models: dict[str, Written], tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    model = models["Q4_K_M"].sparse()
    registry.add_model("library/llama8b", "q4", layers=[("model", model), ("template", b"{{ x }}")])
    name = registry.name("library/llama8b", "q4")
    env = cli_env(tmp_path / "home")
    r = pullman("fit", name, "--insecure", "--memory", "16GiB", "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (row,) = doc["files"]
    assert row["weights"] == models["Q4_K_M"].weights and row["verdict"] == "fits"
    sent = registry.blob(model).bytes_sent
    assert 1 * MiB < sent <= 2 * MiB  # its ~1.8 MiB header, in two ranges
    r = pullman("get", name, "--insecure", "--memory", "4GiB", home=tmp_path, env=env)
    assert r.returncode == 7 and "will not fit" in r.stderr, r.stderr
    assert registry.blob(model).bytes_sent == sent  # from the cache: nothing more read


def test_a_plain_get_of_a_small_model_reads_no_header(sim: Simulator, tmp_path: Path) -> None:
    """Without --memory or --context, a model under 1/8 of the machine's memory is fetched
    as before: one pass over its bytes, no header probe first."""
    tiny = gguf_model(tmp_path, TINY, "Q8_0")
    data = tiny.head + bytes(tiny.size - len(tiny.head))
    hub = HubSimulator(sim)
    hub.add_repo("org/Tiny-GGUF", {"Tiny-Q8_0.gguf": data})
    r = run(tmp_path, hub, "get", "hf://org/Tiny-GGUF:Q8_0")
    assert r.returncode == 0, r.stderr
    sent = hub.file("org/Tiny-GGUF", "Tiny-Q8_0.gguf").sim_file.bytes_sent
    assert len(data) <= sent <= len(data) + 64  # the engine's one-byte probe, no header read


def test_which_models_get_measures() -> None:
    from pullman.core.gguf_fit import worth_measuring

    machine = Budget(16 * GiB, source="this machine")
    assert worth_measuring(5 * GiB, machine, asked=False)
    assert not worth_measuring(1 * GiB, machine, asked=False)
    assert worth_measuring(1 * GiB, machine, asked=True)
    assert not worth_measuring(5 * GiB, Budget(None), asked=True)  # unknown: as before


def test_this_machines_budget(tmp_path: Path, models: dict[str, Written]) -> None:
    """No --memory: Linux's MemTotal (and NVML's GPUs, which this machine has none of)."""
    import importlib.util

    from pullman.machine import linux_ram, this_machine

    if importlib.util.find_spec("pynvml") is not None:
        pytest.skip("NVML bindings are installed here: the verdicts depend on the GPU")
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:        8000000 kB\nMemAvailable:    100 kB\n")
    assert linux_ram(fake) == 8_000_000 * 1024
    assert linux_ram(tmp_path / "absent") is None
    machine = this_machine()
    assert machine.ram == linux_ram() and machine.vram is None
    path = models["Q2_K"].write(tmp_path / "Llama-8B-Q2_K.gguf")
    r = pullman("fit", str(path), "--json", home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["memory"] == machine.ram and doc["context"] == 4096
    need = doc["files"][0]["need"]
    assert doc["files"][0]["verdict"] == ("CPU only" if need <= machine.ram else "will not fit")


def test_a_server_that_ignores_range_is_cut_off_after_the_header(
    sim: Simulator, models: dict[str, Written], tmp_path: Path
) -> None:
    from pullman.testing import IgnoreRange, Reset, WrongContentRange

    hub = HubSimulator(sim)
    name = path_of("Q4_K_M")
    hub.add_repo(
        REPO,
        {name: models["Q4_K_M"].sparse()},
        faults={name: [Reset(after=1000), WrongContentRange(), IgnoreRange(times=-1)]},
    )
    doc = fit_json(tmp_path, hub, f"hf://{REPO}", "--memory", "8GiB")
    (row,) = doc["files"]
    assert row["weights"] == models["Q4_K_M"].weights and row["verdict"] == "fits"
    f = hub.file(REPO, name).sim_file
    # reset, then a 206 from the wrong offset (refused, asked again), then 200s: the whole
    # file offered, and cut off after the prefix
    assert f.statuses[:3] == [206, 206, 200]
    assert f.bytes_sent < 64 * MiB  # what the socket took before pullman hung up


def test_a_queued_job_fails_the_same_way_in_the_daemon(hub: HubSimulator, tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    from pullman import config
    from pullman.daemon import daemon_pid

    env = hub_env(tmp_path, hub)
    paths = config.Paths.from_env(env)
    with (tmp_path / "daemon.log").open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "pullman", "daemon"], env=env, stdout=log,
                                stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while daemon_pid(paths) != proc.pid:
            assert time.monotonic() < deadline, "the daemon did not take its lock"
            time.sleep(0.02)
        r = pullman("get", "--detach", f"hf://{REPO}:F16", "--memory", "12GiB", home=tmp_path,
                    env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        job = None
        while job is None or job.state != "failed":
            assert time.monotonic() < deadline + 30, job
            time.sleep(0.05)
            with Index.open(paths.index) as idx:
                job = idx.job(1)
        assert job.exit_code == 7 and "will not fit" in (job.error or "")
        assert cdn_bytes(hub, "F16") <= 2 * MiB
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_quant_pick_reads_only_the_headers_it_needs(
    hub: HubSimulator, sim: Simulator, tmp_path: Path, models: dict[str, Written]
) -> None:
    """From the largest down: F16 (16 GB) is larger than 12 GiB unread, Q8_0 is read and
    fits; Q4_K_M and Q2_K are never asked for."""
    registry = OllamaRegistry(sim)
    registry.add_model(REPO, "Q8_0", layers=[("model", models["Q8_0"].sparse())])
    env = {"PULLMAN_HF_REGISTRY": sim.origin.url}
    r = run(tmp_path, hub, "get", f"hf.co/{REPO}", "--dry-run", "--memory", "12GiB", **env)
    assert r.returncode == 0, r.stderr
    assert "picked Q8_0" in r.stderr
    read = {q: cdn_bytes(hub, q) for q in QUANTS}
    assert read["F16"] == read["Q4_K_M"] == read["Q2_K"] == 0 and read["Q8_0"] > 0, read


def test_fit_refuses_what_it_cannot_measure(hub: HubSimulator, tmp_path: Path) -> None:
    r = run(tmp_path, hub, "fit", "https://example.invalid/m.gguf")
    assert r.returncode == 2 and "not URLs" in r.stderr and no_traceback(r.stderr)
    r = run(tmp_path, hub, "fit", "hf://org/no-such-repo")
    assert r.returncode == 3 and no_traceback(r.stderr)
    hub.add_repo("org/safetensors", {"model.safetensors": b"x" * 2048})
    r = run(tmp_path, hub, "fit", "hf://org/safetensors")
    assert r.returncode == 3 and "no GGUF model" in r.stderr
    r = run(tmp_path, hub, "fit", f"hf://{REPO}", "--memory", "0")
    assert r.returncode == 2 and "--memory" in r.stderr
