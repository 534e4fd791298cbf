"""Which of Ollama's bundled chat templates a GGUF's Jinja template is. Pure.

A port of ``template.Named`` and its loader in Ollama's ``template/template.go`` (commit
``fb30760``, unchanged since v0.24.0): ``index.json`` lists Jinja templates seen in real models,
each with the name of the Go template Ollama uses instead (``<name>.gotmpl``, CRLF read as LF) and
its parameters (``<name>.json``, of which Ollama's struct keeps only ``stop``). The match is the
index entry with the smallest Levenshtein distance (``agnivade/levenshtein`` v1.1.1, over runes)
to the GGUF's ``tokenizer.chat_template``, the first one on a tie, and only if that distance is
under 100; otherwise there is none and ``ollama create`` writes no template layer.

The distance here is exact (Hyyrö's bit-parallel form of Myers' algorithm, on Python integers).
Go's keeps its cells in ``uint16``, so for a string of 65,535 runes or more its count wraps; no
index template is that long, and such a chat template is at least 60,000 edits from all of them,
so pullman reports no match where Go's wrapped count could, in principle, land under 100.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_DISTANCE = 100
"""``Named`` accepts a template only when its distance is below this."""


@dataclass(frozen=True)
class NamedTemplate:
    """One entry of Ollama's ``index.json`` with the files it names."""

    name: str
    jinja: str
    """The chat template as models carry it (``index.json``'s ``template``)."""
    gotmpl: bytes
    """The Go template Ollama writes as the template layer (line endings normalized)."""
    has_params: bool
    """Whether ``<name>.json`` exists: Ollama writes a params layer only then."""
    stop: tuple[str, ...] | None
    """Its ``stop`` list (None when the file has none: Ollama then writes ``"stop":null``)."""

    @property
    def parameters(self) -> dict[str, object] | None:
        """What Ollama's ``Parameters`` struct holds, as JSON, or None for no params layer."""
        if not self.has_params:
            return None
        return {"stop": None if self.stop is None else list(self.stop)}


def _entry(raw: object) -> tuple[str, str]:
    if not isinstance(raw, dict):
        raise ValueError("an index.json entry is not an object")
    name, jinja = raw.get("name"), raw.get("template")
    if not isinstance(name, str) or not isinstance(jinja, str):
        raise ValueError("an index.json entry lacks a name or a template")
    return name, jinja


def _stop(params: bytes) -> tuple[str, ...] | None:
    doc = json.loads(params)
    stop = doc.get("stop") if isinstance(doc, dict) else None
    if stop is None:
        return None
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ValueError("a template's stop parameter is not a list of strings")
    return tuple(stop)


def parse_catalog(
    index_json: bytes, read: Callable[[str], bytes | None]
) -> tuple[NamedTemplate, ...]:
    """The index in its order; ``read(file_name)`` gives a file's bytes, None if it is absent."""
    doc = json.loads(index_json)
    if not isinstance(doc, list):
        raise ValueError("index.json is not a list")
    catalog = []
    for raw in doc:
        name, jinja = _entry(raw)
        gotmpl = read(f"{name}.gotmpl")
        if gotmpl is None:
            raise ValueError(f"{name}.gotmpl is missing")
        params = read(f"{name}.json")
        stop = None if params is None else _stop(params)
        gotmpl = gotmpl.replace(b"\r\n", b"\n")
        catalog.append(NamedTemplate(name, jinja, gotmpl, params is not None, stop))
    return tuple(catalog)


def levenshtein(a: str, b: str) -> int:
    """Edits (insert, delete, substitute one code point) between ``a`` and ``b``."""
    if len(a) < len(b):
        a, b = b, a
    m = len(b)
    if m == 0:
        return len(a)
    peq: dict[str, int] = {}
    for i, ch in enumerate(b):
        peq[ch] = peq.get(ch, 0) | (1 << i)
    full, top = (1 << m) - 1, 1 << (m - 1)
    pv, mv, score = full, 0, m
    for ch in a:
        eq = peq.get(ch, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & full)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & full
        mh = (mh << 1) & full
        pv = mh | (~(xv | ph) & full)
        mv = ph & xv
    return score


def named(chat_template: str, catalog: Sequence[NamedTemplate]) -> NamedTemplate | None:
    """``template.Named``: the closest index entry under :data:`MAX_DISTANCE`, else None.

    A length gap is a lower bound of the distance, so entries that cannot beat the best so far
    (nor the limit) are not measured; the result is the same as measuring all of them.
    """
    best, score = None, MAX_DISTANCE
    for entry in catalog:
        if abs(len(chat_template) - len(entry.jinja)) >= score:
            continue
        distance = levenshtein(chat_template, entry.jinja)
        if distance < score:
            best, score = entry, distance
    return best
