"""Ollama model names: pullman's parser agrees with Ollama's own rules and test vectors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from pullman.core.refs import OllamaRef, UrlRef, parse_ollama, parse_ollama_name, parse_ref
from pullman.errors import RefError

# Test vectors from Ollama's own name tests (copied from the project's reference notes).
VECTORS = Path(__file__).with_name("ollama-names.tsv")

# Ollama's per-part grammar, written independently of pullman.core.refs as regular expressions.
PART = {
    "host": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}"),
    "namespace": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,79}"),
    "model": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
    "tag": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}"),
}


def vectors() -> list[list[str]]:
    rows = []
    for line in VECTORS.read_text().splitlines():
        if line.startswith("#") or line.startswith("kind\t"):
            continue
        cols = line.split("\t")
        rows.append(cols + [""] * (6 - len(cols)))
    return rows


@pytest.mark.parametrize("row", vectors(), ids=lambda r: r[1][:40] or "<empty>")
def test_ollama_vectors(row: list[str]) -> None:
    kind, text, *want = row
    if kind == "valid":
        ref = parse_ollama_name(text)
        assert list(ref.parts) == want[:4]
    else:
        with pytest.raises(RefError):
            parse_ollama_name(text)


def parts_of(kind: str) -> st.SearchStrategy[str]:
    first = st.sampled_from("abcxyzABZ019_")
    rest_chars = {
        "host": "abz09_.-:",
        "namespace": "abz09_-",
        "model": "abz09_.-",
        "tag": "abz09_.-",
    }[kind]
    limit = 350 if kind == "host" else 80
    rest = st.text(alphabet=rest_chars, max_size=min(limit - 1, 30))
    return st.builds(lambda a, b: a + b, first, rest)


@given(
    host=parts_of("host"),
    ns=parts_of("namespace"),
    model=parts_of("model"),
    tag=parts_of("tag"),
    form=st.integers(0, 5),
)
def test_valid_names_round_trip(host: str, ns: str, model: str, tag: str, form: int) -> None:
    text, expected = {
        0: (model, ("registry.ollama.ai", "library", model, "latest")),
        1: (f"{model}:{tag}", ("registry.ollama.ai", "library", model, tag)),
        2: (f"{ns}/{model}", ("registry.ollama.ai", ns, model, "latest")),
        3: (f"{ns}/{model}:{tag}", ("registry.ollama.ai", ns, model, tag)),
        4: (f"{host}/{ns}/{model}:{tag}", (host, ns, model, tag)),
        5: (f"ollama://{host}/{ns}/{model}", (host, ns, model, "latest")),
    }[form]
    assert parse_ollama_name(text).parts == expected


@given(st.text(alphabet="ab:/._-@+ \x00é%Z9", max_size=40))
def test_whatever_is_accepted_obeys_the_grammar(text: str) -> None:
    try:
        ref = parse_ollama_name(text)
    except RefError:
        return
    for kind, part in zip(("host", "namespace", "model", "tag"), ref.parts, strict=True):
        assert PART[kind].fullmatch(part), (kind, part)
        assert part not in (".", "..")
    again = parse_ollama_name(f"{ref.host}/{ref.namespace}/{ref.model}:{ref.tag}")
    assert again.parts == ref.parts


@given(
    ns=parts_of("namespace"),
    model=parts_of("model"),
    bad=st.sampled_from([*list("/\\ @+%é\x00*?"), "..", ""]),
    where=st.integers(0, 2),
)
def test_a_bad_character_anywhere_is_refused(ns: str, model: str, bad: str, where: int) -> None:
    if where == 0:
        text = f"{ns}/{bad}{model}"
    elif where == 1:
        text = f"{ns}{bad}x/{model}" if bad not in ("", "/") else f"/{ns}/{model}"
    else:
        text = f"{ns}/{model}:{bad}"
    assume(not (bad in ("/", "") and where == 0))  # "ns//model" is covered by the vectors
    with pytest.raises(RefError):
        parse_ollama_name(text)


def test_http_registry_needs_insecure() -> None:
    with pytest.raises(RefError) as info:
        parse_ollama("http://myhost:5000/team/model:tag")
    assert "--insecure" in (info.value.hint or "")
    ref = parse_ollama("myhost:5000/team/model:tag", insecure=True)
    assert ref.scheme == "http" and ref.registry == "http://myhost:5000"
    assert parse_ollama("team/model").registry == "https://registry.ollama.ai"


def test_refs_route_to_the_right_source() -> None:
    assert isinstance(parse_ref("deepseek-coder-v2:16b"), OllamaRef)
    assert isinstance(parse_ref("ollama://llama3"), OllamaRef)
    assert isinstance(parse_ref("https://host/file.gguf"), UrlRef)
    with pytest.raises(RefError):
        parse_ref("ftp://host/file")


def test_short_display() -> None:
    assert parse_ollama("llama3").short() == "llama3:latest"
    assert parse_ollama("me/llama3:8b").short() == "me/llama3:8b"
    assert parse_ollama("h:1/me/m:t").short() == "h:1/me/m:t"
