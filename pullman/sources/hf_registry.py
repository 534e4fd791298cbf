"""``hf.co/org/repo[:QUANT]``: a Hugging Face GGUF repo as an Ollama model, as ``ollama pull``
fetches it.

The Hub serves an Ollama-compatible registry at ``hf.co`` (manifests generated from the repo's
GGUF files: the model layer is the GGUF file, plus template and params layers; ``:QUANT``
picks the file, the default is the registry's). The model lands in the Ollama store under
``manifests/hf.co/<org>/<repo>/<quant>``, where ``ollama run hf.co/...`` finds it. The registry
is ``PULLMAN_HF_REGISTRY`` (default ``https://hf.co``), so tests and mirrors can stand in for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pullman.core.refs import OllamaRef, Ref
from pullman.sources import SourceContext
from pullman.sources.ollama import OllamaSource, Registry

HOSTS = ("hf.co", "huggingface.co")
DEFAULT_REGISTRY = "https://hf.co"


def registry_base(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("PULLMAN_HF_REGISTRY") or DEFAULT_REGISTRY).rstrip("/")


def is_hf_name(ref: Ref) -> bool:
    return isinstance(ref, OllamaRef) and ref.host.lower() in HOSTS


class HfRegistrySource(OllamaSource):
    """An Ollama source whose registry is the Hub's (whatever host the name was written with)."""

    def registry(self, ref: OllamaRef, ctx: SourceContext) -> Registry:
        return Registry(ctx.mirror or registry_base(), ctx)
