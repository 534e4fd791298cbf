"""A GGUF on disk as the Ollama model ``ollama create`` makes of it: header facts, the chat
template Ollama picks, the config, params and template blobs, and the manifest bytes.

Real GGUF files are written with ``gguf.GGUFWriter`` (llama.cpp's writer) and checked against
``gguf.GGUFReader`` (its reader). The strongest checks use Ollama's own test vectors: the blob
digests ``TestCreateDetectTemplate`` and ``TestCreateFromBin`` expect (``server/
routes_create_test.go`` at v0.24.0 and at commit fb30760), the ``template.Named`` cases of
``template/testdata/templates.jsonl`` (copied as ``tests/ollama-templates.jsonl``, MIT) and the
``format.HumanNumber`` cases of ``format/format_test.go``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullman.core import gojson
from pullman.core.digests import sha256
from pullman.core.gguf_meta import GgufFacts, file_type_name, human_number
from pullman.core.ollama_from_gguf import (
    OllamaCreation,
    OllamaRelease,
    model_layer_from,
    ollama_from_gguf,
)
from pullman.core.ollama_manifest import parse_manifest
from pullman.core.ollama_templates import levenshtein, named
from pullman.errors import BadModelFile, UsageError
from pullman.gguf_facts import read_gguf_facts
from pullman.templates import ollama_templates

from helpers import ROOT

TEMPLATES = ROOT / "pullman" / "templates" / "ollama"
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (  # Meta-Llama-3-8B-Instruct's tokenizer.chat_template
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
UNKNOWN = (
    "{%- for turn in conversation -%}[[{{ turn.speaker | upper }}]] says: {{ turn.text }}"
    " ~~ end of turn ~~\n{%- endfor -%}{%- if prompt_for_reply -%}[[MODEL]] says:{%- endif -%}"
) * 3
CHATML_STOP = b'{"stop":["\\u003c|im_start|\\u003e","\\u003c|im_end|\\u003e"]}\n'


def write_gguf(
    path: Path,
    arch: str = "llama",
    *,
    strings: Mapping[str, str] = {},
    uint32s: Mapping[str, int] = {},
    tensors: Iterable[tuple[str, tuple[int, ...]]] = (),
    sparse: bool = False,
    writer: gguf.GGUFWriter | None = None,
) -> bytes:
    """A GGUF at ``path`` (F32 tensors of these shapes); ``sparse``: data left as holes."""
    w = writer or gguf.GGUFWriter(path, arch)
    for key, value in strings.items():
        w.add_string(key, value)
    for key, number in uint32s.items():
        w.add_uint32(key, number)
    shapes = list(tensors)
    for name, shape in shapes:
        if sparse:
            w.add_tensor_info(name, shape, np.dtype(np.float32), 4 * int(np.prod(shape)))
        else:
            w.add_tensor(name, np.ones(shape, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    if sparse:
        w.write_ti_data_to_file()
        w.close()
        data = sum(w.ggml_pad(4 * int(np.prod(s)), 32) for _, s in shapes)
        os.truncate(path, w.ggml_pad(path.stat().st_size, 32) + data)
        return b""
    if shapes:
        w.write_tensors_to_file()
    else:
        w.write_ti_data_to_file()
    w.close()
    return path.read_bytes()


def create(
    data: bytes,
    facts: GgufFacts,
    release: OllamaRelease = OllamaRelease.V0_24,
    model_from: str | None = None,
) -> OllamaCreation:
    digest = sha256(hashlib.sha256(data).hexdigest())
    return ollama_from_gguf(
        facts, digest, len(data), ollama_templates(), release=release, model_from=model_from
    )


def model(tmp_path: Path, template: str | None, arch: str = "qwen2") -> tuple[bytes, GgufFacts]:
    path = tmp_path / "model.gguf"
    strings = {"tokenizer.chat_template": template} if template is not None else {}
    data = write_gguf(
        path, arch, strings=strings, uint32s={"general.file_type": 15}, tensors=[("w", (8, 4))]
    )
    return data, read_gguf_facts(path)


# ------------------------------------------------------------------ facts from the header


def test_the_header_facts_agree_with_the_reference_reader(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    shapes = [("token_embd.weight", (32, 16)), ("blk.0.attn_q.weight", (16, 16)), ("norm", (16,))]
    write_gguf(
        path,
        "qwen2",
        strings={"tokenizer.chat_template": CHATML, "general.name": "tiny"},
        uint32s={"general.file_type": 15, "qwen2.block_count": 1},
        tensors=shapes,
    )
    facts = read_gguf_facts(path)
    ref = gguf.GGUFReader(path)
    assert facts.architecture == ref.fields["general.architecture"].contents() == "qwen2"
    assert facts.file_type == ref.fields["general.file_type"].contents() == 15
    assert facts.file_type_name == "Q4_K_M"
    assert facts.parameter_count == sum(t.n_elements for t in ref.tensors) == 32 * 16 + 256 + 16
    assert facts.parameter_size == "784"
    assert facts.chat_template == ref.fields["tokenizer.chat_template"].contents() == CHATML
    assert facts.data_offset == ref.data_offset
    assert facts.tensor_count == 3
    assert facts.block_count == 1
    assert (facts.role, facts.kind, facts.split_count) == ("model", "unknown", 0)


def test_the_parameter_count_is_the_tensors_not_the_key(tmp_path: Path) -> None:
    """Ollama overwrites ``general.parameter_count`` with the sum of the tensors' elements."""
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint64("general.parameter_count", 7_000_000_000)
    write_gguf(path, tensors=[("a", (1000, 1000)), ("b", (500, 1000))], sparse=True, writer=w)
    facts = read_gguf_facts(path)
    assert facts.parameter_count == 1_500_000
    assert facts.parameter_size == "1.50M"


@pytest.mark.parametrize(
    ("value", "current", "v0_24"),
    [
        (15, "Q4_K_M", "Q4_K_M"),
        (7, "Q8_0", "Q8_0"),
        (1, "F16", "F16"),
        (32, "BF16", "BF16"),
        (0, "unknown", "unknown"),  # F32: KV.FileType counts only values above 0
        (30, "IQ4_XS", "unknown"),
        (38, "MXFP4_MOE", "unknown"),
        (4, "unknown", "MXFP4"),
        (5, "unknown", "unknown"),
        (1024, "unknown", "unknown"),
        (None, "unknown", "unknown"),
    ],
)
def test_file_type_names_are_ollamas(value: int | None, current: str, v0_24: str) -> None:
    from pullman.core.gguf_meta import FILE_TYPES_0_24

    assert file_type_name(value) == current
    assert file_type_name(value, FILE_TYPES_0_24) == v0_24


def test_a_file_type_of_another_gguf_type_counts_as_absent(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_int32("general.file_type", 15)  # Ollama reads it as uint32 only
    write_gguf(path, writer=w)
    assert read_gguf_facts(path).file_type is None
    assert read_gguf_facts(path).file_type_name == "unknown"


@pytest.mark.parametrize(
    ("n", "text"),
    [  # format/format_test.go, then a few real models' tensor sums
        (0, "0"),
        (999, "999"),
        (1000, "1K"),
        (1001, "1K"),
        (1000000, "1M"),
        (125000000, "125M"),
        (500500000, "500.50M"),
        (500550000, "500.55M"),
        (1000000000, "1B"),
        (2800000000, "2.8B"),
        (2850000000, "2.9B"),
        (1000000000000, "1000B"),
        (7615616512, "7.6B"),
        (494032768, "494.03M"),
        (8030261248, "8.0B"),
    ],
)
def test_human_number_is_ollamas(n: int, text: str) -> None:
    assert human_number(n) == text


def test_a_big_sparse_file_is_read_fast_from_its_header(tmp_path: Path) -> None:
    """11 GB of tensor data (holes on disk) and a real-sized vocabulary: the header alone."""
    path = tmp_path / "big.gguf"
    vocab = 151_936
    w = gguf.GGUFWriter(path, "qwen2")
    w.add_token_list([f"tok{i}" for i in range(vocab)])
    w.add_token_scores([0.0] * vocab)
    w.add_token_types([1] * vocab)
    w.add_token_merges([f"a{i} b{i}" for i in range(vocab)])
    shapes = [(f"blk.{i}.ffn.weight", (4096, 4096)) for i in range(170)]
    write_gguf(path, uint32s={"general.file_type": 1}, tensors=shapes, sparse=True, writer=w)
    assert path.stat().st_size > 11 * 10**9
    assert path.stat().st_blocks * 512 < 100 * 2**20, "the test file should be sparse"
    started = time.perf_counter()
    facts = read_gguf_facts(path)
    elapsed = time.perf_counter() - started
    assert facts.parameter_count == 170 * 4096 * 4096
    assert facts.parameter_size == "2.9B"
    assert elapsed < 2.0, f"reading the header took {elapsed:.2f} s"


# ---------------------------------------------------------------- files that are not models


def expect_bad(path: Path, *words: str) -> BadModelFile:
    with pytest.raises(BadModelFile) as caught:
        read_gguf_facts(path)
    err = caught.value
    assert err.exit_code == 2 and err.why and err.hint
    text = err.explain()
    assert all(word in text for word in words), text
    return err


def test_a_file_that_is_not_gguf_is_a_pullman_error(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(b'\x10\x00\x00\x00\x00\x00\x00\x00{"__metadata__":{}}' + b"\0" * 64)
    expect_bad(path, "not a GGUF", "magic")
    (tmp_path / "empty.gguf").write_bytes(b"")
    expect_bad(tmp_path / "empty.gguf", "empty")
    expect_bad(tmp_path / "missing.gguf", "not a file")
    expect_bad(tmp_path, "not a file")


def test_a_truncated_header_is_a_pullman_error_at_every_cut(tmp_path: Path) -> None:
    whole = write_gguf(
        tmp_path / "whole.gguf",
        strings={"tokenizer.chat_template": CHATML},
        tensors=[("a", (4, 4)), ("b", (4,))],
    )
    header_end = read_gguf_facts(tmp_path / "whole.gguf").data_offset
    cut = tmp_path / "cut.gguf"
    data_end = header_end + 4 * 16 + 4 * 4  # a: 64 bytes at 0, b: 16 bytes at 64
    for size in [*range(1, 40), *range(40, header_end, 7), header_end, data_end - 1]:
        cut.write_bytes(whole[:size])
        err = expect_bad(cut)
        assert "cut short" in err.what or "not a GGUF" in err.what, (size, err.explain())
    expect_bad(cut, "cut short", "tensor 'b'", "past the file")
    cut.write_bytes(whole[:data_end])  # the padding after the last tensor is not needed
    assert read_gguf_facts(cut).parameter_count == 20


def test_other_malformed_headers_are_pullman_errors(tmp_path: Path) -> None:
    good = write_gguf(tmp_path / "good.gguf")
    v1 = good[:4] + (1).to_bytes(4, "little") + good[8:]
    (tmp_path / "v1.gguf").write_bytes(v1)
    expect_bad(tmp_path / "v1.gguf", "version 1")
    big_endian = good[:4] + (3).to_bytes(4, "big") + good[8:]
    (tmp_path / "be.gguf").write_bytes(big_endian)
    expect_bad(tmp_path / "be.gguf", "big-endian")
    path = tmp_path / "nested.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_array("general.nested", [[1, 2], [3]])
    write_gguf(path, writer=w)
    expect_bad(path, "array of arrays")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_damaged_headers_never_escape_as_other_exceptions(data: st.DataObject) -> None:
    from pullman.gguf_facts import parse_header

    whole = SAMPLE
    where = data.draw(st.integers(0, len(whole) - 1))
    byte = data.draw(st.integers(0, 255))
    damaged = whole[:where] + bytes([byte]) + whole[where + 1 :]
    cut = data.draw(st.integers(1, len(damaged)))
    try:
        parse_header(damaged[:cut])
    except Exception as exc:  # only the module's own failure may come out
        assert type(exc).__name__ == "_Malformed", repr(exc)


def _sample() -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_gguf(
            Path(tmp) / "s.gguf",
            strings={"tokenizer.chat_template": "{{ x }}"},
            uint32s={"general.file_type": 7},
            tensors=[("a", (2, 3))],
        )


SAMPLE = _sample()


# ------------------------------------------------------------------ template.Named, ported


def naive_levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


@settings(max_examples=300, deadline=None)
@given(st.text("ab{%}é😀\n", max_size=40), st.text("ab{%}é😀\n", max_size=90))
def test_the_bit_parallel_distance_is_the_textbook_one(a: str, b: str) -> None:
    assert levenshtein(a, b) == levenshtein(b, a) == naive_levenshtein(a, b)


def test_the_distance_counts_code_points_like_go_runes() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "😀😀") == 2
    assert levenshtein("é", "e") == 1
    assert levenshtein(LLAMA3, LLAMA3 + "x" * 70) == 70


def test_ollamas_template_test_vectors_name_the_same_templates() -> None:
    """template_test.go's TestNamed: every line of templates.jsonl maps to its key."""
    catalog = ollama_templates()
    lines = (ROOT / "tests" / "ollama-templates.jsonl").read_text().splitlines()
    assert len(lines) == 35
    for line in lines:
        [(expected, jinja)] = json.loads(line).items()
        found = named(jinja, catalog)
        assert found is not None and found.name == expected


def test_a_match_needs_fewer_than_100_edits() -> None:
    catalog = ollama_templates()
    close = named(LLAMA3 + "#" * 99, catalog)
    assert close is not None and close.name == "llama3-instruct"
    assert named(LLAMA3 + "#" * 100, catalog) is None
    assert named(UNKNOWN, catalog) is None


def test_an_edited_chatml_template_is_still_chatml() -> None:
    edited = CHATML.replace("message['content']", "msg['content']").replace("{{ '", "{{'")
    assert edited != CHATML
    found = named(edited, ollama_templates())
    assert found is not None and found.name == "chatml"


def test_the_catalog_is_ollamas_index_with_its_files() -> None:
    catalog = ollama_templates()
    index = json.loads((TEMPLATES / "index.json").read_text())
    assert [(t.name, t.jinja) for t in catalog] == [(e["name"], e["template"]) for e in index]
    chatml = next(t for t in catalog if t.name == "chatml")
    assert chatml.gotmpl == (TEMPLATES / "chatml.gotmpl").read_bytes()
    assert chatml.stop == ("<|im_start|>", "<|im_end|>")
    gemma3 = next(t for t in catalog if t.name == "gemma3-instruct")
    # Ollama's Parameters struct has only Stop: gemma3-instruct.json's temperature is dropped
    assert "temperature" in (TEMPLATES / "gemma3-instruct.json").read_text()
    assert gemma3.parameters == {"stop": ["<end_of_turn>"]}
    assert "MIT License" in (TEMPLATES / "LICENSE").read_text()


# ------------------------------------------------------------------------- blobs, manifest


def test_ollamas_own_create_test_vectors(tmp_path: Path) -> None:
    """TestCreateDetectTemplate and TestCreateFromBin (server/routes_create_test.go): the blob
    digests Ollama expects for these GGUFs (written by its WriteGGUF; GGUFWriter writes the
    same bytes), at v0.24.0 and at fb30760."""
    phi3 = (
        "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
        "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
    )
    matched = tmp_path / "matched.gguf"
    data = write_gguf(matched, "test", strings={"tokenizer.chat_template": phi3})
    gguf_and_extras = {"0d79f567", "3322a0c6", "35360843"}
    for release, config in [(OllamaRelease.V0_24, "a56c12ac"), (OllamaRelease.CURRENT, "99759ad5")]:
        made = create(data, read_gguf_facts(matched), release)
        assert made.template == "phi-3"
        blobs = {hashlib.sha256(data).hexdigest()[:8]} | {b.digest.hex[:8] for b in made.extras}
        assert blobs == gguf_and_extras
        assert made.config.digest.hex[:8] == config
    unmatched = tmp_path / "unmatched.gguf"
    data = write_gguf(unmatched, "test")
    assert hashlib.sha256(data).hexdigest().startswith("89a2116c3a82d6a97f59f748d86ed441")
    for release, config in [(OllamaRelease.V0_24, "6bcdb885"), (OllamaRelease.CURRENT, "99759ad5")]:
        made = create(data, read_gguf_facts(unmatched), release)
        assert made.extras == () and made.config.digest.hex[:8] == config


def test_a_chatml_model_gets_the_chatml_template_and_its_stops(tmp_path: Path) -> None:
    data, facts = model(tmp_path, CHATML)
    made = create(data, facts, model_from="/m/blobs/sha256-x")
    assert made.template == "chatml"
    template, params = made.extras
    assert template.media_type == "application/vnd.ollama.image.template"
    assert template.data == (TEMPLATES / "chatml.gotmpl").read_bytes()
    assert params.media_type == "application/vnd.ollama.image.params"
    assert params.data == CHATML_STOP


def test_a_llama3_model_gets_llama3_instruct(tmp_path: Path) -> None:
    data, facts = model(tmp_path, LLAMA3, arch="llama")
    made = create(data, facts)
    assert made.template == "llama3-instruct"
    assert made.extras[0].data == (TEMPLATES / "llama3-instruct.gotmpl").read_bytes()
    stop = json.loads(made.extras[1].data)["stop"]
    assert stop == ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    assert b"\\u003c|eot_id|\\u003e" in made.extras[1].data  # Go's HTML-safe escaping


@pytest.mark.parametrize("template", [UNKNOWN, None, ""])
def test_no_known_template_means_no_template_or_params_layer(
    tmp_path: Path, template: str | None
) -> None:
    data, facts = model(tmp_path, template)
    made = create(data, facts)
    assert made.template is None and made.extras == ()
    assert [x.kind for x in parse_manifest(made.manifest).layers] == ["model"]


def test_the_config_blob_is_ollamas_configv2(tmp_path: Path) -> None:
    data, facts = model(tmp_path, CHATML)
    v0_24 = create(data, facts, OllamaRelease.V0_24)
    digests = [str(x.digest) for x in v0_24.layers]
    head = (
        '{"model_format":"gguf","model_family":"qwen2","model_families":["qwen2"],'
        '"model_type":"32","file_type":"Q4_K_M","architecture":"amd64","os":"linux"'
    )
    rootfs = ',"rootfs":{"type":"layers","diff_ids":' + json.dumps(digests).replace(" ", "")
    assert v0_24.config.data == (head + rootfs + "}}\n").encode()
    assert v0_24.config.media_type == "application/vnd.docker.container.image.v1+json"
    current = create(data, facts, OllamaRelease.CURRENT)
    assert current.config.data == (head + "}\n").encode()


def test_each_release_names_the_file_type_as_it_did(tmp_path: Path) -> None:
    path = tmp_path / "iq4.gguf"
    data = write_gguf(path, uint32s={"general.file_type": 30}, tensors=[("w", (4,))])
    facts = read_gguf_facts(path)
    assert facts.file_type_name == "IQ4_XS"
    assert b'"file_type":"IQ4_XS"' in create(data, facts, OllamaRelease.CURRENT).config.data
    assert b'"file_type":"unknown"' in create(data, facts, OllamaRelease.V0_24).config.data


def test_gemma4_gets_its_renderer_parser_and_stop(tmp_path: Path) -> None:
    data, facts = model(tmp_path, None, arch="gemma4")
    made = create(data, facts, OllamaRelease.CURRENT)
    config = made.config.data.decode()
    assert '"file_type":"Q4_K_M","renderer":"gemma4","parser":"gemma4","architecture"' in config
    [params] = made.extras
    assert params.data == b'{"stop":["\\u003cturn|\\u003e"]}\n'
    data, facts = model(tmp_path, CHATML, arch="gemma4")
    template, params = create(data, facts).extras
    assert template.data == (TEMPLATES / "chatml.gotmpl").read_bytes()
    assert params.data == b'{"stop":["\\u003cturn|\\u003e"]}\n'  # the request's stop wins


def test_the_manifest_is_what_write_manifest_writes(tmp_path: Path) -> None:
    data, facts = model(tmp_path, CHATML)
    made = create(data, facts, model_from="/models/blobs/sha256-abc")
    assert made.manifest.endswith(b"]}\n") and b" " not in made.manifest
    doc = json.loads(made.manifest)
    assert list(doc) == ["schemaVersion", "mediaType", "config", "layers"]
    assert doc["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert list(doc["layers"][0]) == ["mediaType", "digest", "size", "from"]
    assert doc["layers"][0]["from"] == "/models/blobs/sha256-abc"
    assert all("from" not in layer for layer in doc["layers"][1:])
    parsed = parse_manifest(made.manifest)
    assert [x.kind for x in parsed.layers] == ["model", "template", "params"]
    assert parsed.layers[0].digest.hex == hashlib.sha256(data).hexdigest()
    assert parsed.layers[0].size == len(data)
    for layer, blob in zip(parsed.layers[1:], made.extras, strict=True):
        assert layer.digest.hex == hashlib.sha256(blob.data).hexdigest()
        assert layer.size == len(blob.data)
    assert parsed.config.digest.hex == hashlib.sha256(made.config.data).hexdigest()
    assert parsed.config.size == len(made.config.data)
    assert made.blobs == (made.config, *made.extras)
    assert b'"from"' not in create(data, facts).manifest


def test_where_the_model_layers_from_comes_from(tmp_path: Path) -> None:
    _, facts = model(tmp_path, None)
    where = {"blob_path": "/m/blobs/sha256-1", "file_name": "model.gguf"}
    assert model_layer_from(OllamaRelease.V0_24, facts, **where) == "/m/blobs/sha256-1"
    assert model_layer_from(OllamaRelease.CURRENT, facts, **where) is None
    path = tmp_path / "vision.gguf"
    write_gguf(path, "gemma3", tensors=[("blk.0.w", (4,)), ("v.blk.0.w", (4,))])
    kept = read_gguf_facts(path)
    assert kept.compat_tensors
    assert model_layer_from(OllamaRelease.CURRENT, kept, **where) == "model.gguf"


def test_files_ollama_would_not_keep_as_one_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    for kind in ("projector", "mmproj", "adapter"):
        write_gguf(path, strings={"general.type": kind})
        with pytest.raises(BadModelFile, match=kind if kind != "mmproj" else "projector"):
            create(b"", read_gguf_facts(path))
    w = gguf.GGUFWriter(path, "clip")
    w.add_bool("clip.has_vision_encoder", True)
    write_gguf(path, "clip", writer=w)
    with pytest.raises(BadModelFile, match="projector"):
        create(b"", read_gguf_facts(path))
    w = gguf.GGUFWriter(path, "llama")
    w.add_uint16("split.count", 3)
    write_gguf(path, writer=w)
    with pytest.raises(UsageError, match="one of 3 split files"):
        create(b"", read_gguf_facts(path))
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("llama.source_quantization", "hf_fp8")
    w.add_array("llama.source_fp8_tensors", ["blk.0.w"])
    write_gguf(path, uint32s={"general.file_type": 1}, writer=w)
    with pytest.raises(UsageError, match="Q8_0"):
        create(b"", read_gguf_facts(path))


# -------------------------------------------------------------------- Go's encoding/json


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ({"b": 1, "a": [True, None]}, '{"b":1,"a":[true,null]}'),
        ("<a & b>", '"\\u003ca \\u0026 b\\u003e"'),
        ("\u2028\u2029é😀", '"\\u2028\\u2029é😀"'),
        ('\x01\b\f\n\r\t"\\\x7f', '"\\u0001\\b\\f\\n\\r\\t\\"\\\\\x7f"'),
        (gojson.go_text(b"a\xe2\x82b\xff"), '"a\ufffd\ufffdb\ufffd"'),
        ("\ud800", '"\ufffd"'),
    ],
)
def test_json_is_encoded_as_go_encodes_it(value: object, encoded: str) -> None:
    assert gojson.encode(value) == (encoded + "\n").encode()


def test_go_maps_are_encoded_with_sorted_keys() -> None:
    assert gojson.encode({"z": 1, "a": {"y": 2, "b": 3}}, sort_keys=True) == (
        b'{"a":{"b":3,"y":2},"z":1}\n'
    )
    with pytest.raises(TypeError):
        gojson.encode({"temperature": 0.1})
