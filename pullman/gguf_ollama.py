"""A Hugging Face GGUF in the HF cache as an Ollama model, written offline: the GGUF itself is
the model blob (hard-linked, zero bytes), and the config, template and params blobs and the
manifest are what ``ollama create FROM model.gguf`` writes for it
(:mod:`pullman.core.ollama_from_gguf`, which follows Ollama's ``server/create.go``).

The name is the one ``ollama pull`` would give it (``hf.co/<org>/<repo>:<QUANT>``), so a later
pull of the same name from hf.co finds the same model blob. Ollama's current ``create``
rewrites a text-only GGUF through ``llama-quantize`` (another blob); pullman keeps the file, and
writes the rest as current Ollama does (:attr:`OllamaRelease.CURRENT`).
"""

from __future__ import annotations

import logging
from dataclasses import replace

from pullman.core.jobs import GetOptions
from pullman.core.ollama_from_gguf import OllamaRelease, model_layer_from, ollama_from_gguf
from pullman.core.plan import OllamaModel, Plan, Release, RemoteFile, Store, WriteFile
from pullman.core.quants import quant_tags
from pullman.core.refs import HfRef
from pullman.errors import UsageError
from pullman.gguf_facts import read_gguf_facts
from pullman.layouts import hf_cache, layout_for, ollama
from pullman.sources.routes import as_ollama
from pullman.templates import ollama_templates

log = logging.getLogger("pullman.gguf_ollama")
RELEASE = OllamaRelease.CURRENT


def _the_model_file(release: Release) -> RemoteFile:
    weights = [
        f
        for f in release.files
        if f.path.lower().endswith(".gguf") and "mmproj" not in f.path.rsplit("/", 1)[-1].lower()
    ]
    if len(weights) != 1:
        raise UsageError(
            f"{release.display} has {len(weights)} GGUF model files here, not one",
            why="an Ollama model written from a GGUF's metadata takes exactly one file",
            hint="name one quantisation (hf://org/repo:Q4_K_M) or file (hf://org/repo/x.gguf)",
        )
    return weights[0]


def ollama_plan(release: Release, options: GetOptions) -> Plan:
    """The Ollama model of ``release``'s one GGUF file (in the HF cache), as a plan for the
    Ollama store: the GGUF shared in, the small blobs and the manifest written after it."""
    hub = release.repo
    assert hub is not None  # read from the HF cache
    gguf = _the_model_file(release)
    assert gguf.digest is not None and gguf.size is not None
    cache = layout_for(Store.HF_CACHE).root(options)
    path = hf_cache.blob_path(hf_cache.repo_dir(cache, hub.repo_id, hub.repo_type), gguf.digest.hex)
    facts = read_gguf_facts(path)
    root = layout_for(Store.OLLAMA).root(options)
    blob = ollama.blob_path(root, gguf.digest.hex)
    origin = model_layer_from(RELEASE, facts, blob_path=str(blob), file_name=path.name)
    made = ollama_from_gguf(
        facts, gguf.digest, gguf.size, ollama_templates(), release=RELEASE, model_from=origin
    )
    if release.files != (gguf,):
        log.info("%s: only %s goes into the Ollama model", release.display, gguf.path)
    name = as_ollama(HfRef(hub.repo_id, quant=_quant(release, gguf), gguf=True))
    model = replace(gguf, role="model", key=f"sha256-{gguf.digest.hex}")
    placed = layout_for(Store.OLLAMA).place(
        Release(
            str(name), name.short(), name.short(), (model,), OllamaModel(name.parts, made.manifest)
        ),
        root,
        options,
    )
    blobs = tuple(WriteFile(ollama.blob_path(root, b.digest.hex), b.data) for b in made.blobs)
    template = f"the {made.template} template" if made.template else "no chat template"
    log.warning("%s: manifest written from the GGUF's metadata (%s)", name.short(), template)
    return replace(placed, finals=(*blobs, *placed.finals))


def _quant(release: Release, gguf: RemoteFile) -> str | None:
    tags = quant_tags(gguf.path)
    return next(iter(tags)) if len(tags) == 1 else None
