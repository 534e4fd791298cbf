"""The Ollama model ``ollama create`` makes of a GGUF file (``FROM /path/model.gguf``). Pure.

Given a GGUF's header facts (:mod:`pullman.gguf_facts`), its sha256 and size, and Ollama's
bundled templates (:func:`pullman.templates.ollama_templates`), :func:`ollama_from_gguf` gives
the small blobs (config, template, params) and the manifest bytes, so pullman can expose the
file as an Ollama model with the GGUF itself as the model blob: nothing downloaded or copied.

Followed, in Ollama (github.com/ollama/ollama, commit ``fb30760``, and tag ``v0.24.0``):

- ``server/create.go``: ``CreateHandler`` (config starts as ``os`` linux, ``architecture`` amd64),
  ``ggufLayers`` (the model layer: the file itself, ``application/vnd.ollama.image.model``),
  ``createModel`` (``model_format`` gguf, ``model_family`` and ``model_families`` from
  ``general.architecture``, ``model_type`` = ``format.HumanNumber(ParameterCount)``, ``file_type``
  = ``FileType.String()``; renderer, parser and stop for gemma4, laguna and nemotron_h),
  ``setParameters`` (the params layer re-encoded as a Go map: sorted keys, moved last),
  ``createConfigLayer`` (``rootfs.diff_ids`` = the layers' digests, until v0.32.7);
- ``server/model.go``: ``detectChatTemplate`` (``template.Named`` on ``tokenizer.chat_template``;
  the ``.gotmpl`` as the template layer, then its ``Parameters`` as the params layer);
- ``types/model/config.go``: ``ConfigV2``'s field order and ``omitempty`` tags;
- ``manifest/manifest.go``, ``manifest/layer.go``: ``WriteManifest`` (``schemaVersion`` 2, Docker's
  manifest media type) and ``Layer`` (``mediaType``, ``digest``, ``size``, ``from`` omitempty);
- ``cmd/cmd.go`` (``createRequestFileNames``): a lone ``FROM`` file is sent as its base name.
- ``template/template.go`` and ``template/index.json`` (:mod:`pullman.core.ollama_templates`);
  ``fs/ggml/ggml.go``, ``fs/ggml/gguf.go``, ``fs/ggml/type.go``, ``format/format.go``
  (:mod:`pullman.core.gguf_meta`, :mod:`pullman.gguf_facts`).

Which Ollama (:class:`OllamaRelease`): ``V0_24`` is v0.24.0, the last release whose ``create``
keeps the GGUF's bytes as the model blob; what it writes is reproduced byte for byte (pass the
blob's path in the store as ``model_from``, see :func:`model_layer_from`). Since v0.30.0
``create`` rewrites a text-only GGUF through ``llama-quantize`` (``copyLayerWithLlamaQuantize``),
a new blob with another digest; pullman keeps the original instead (zero bytes). ``CURRENT``
writes what Ollama at ``fb30760`` (v0.32.7 and later: no ``rootfs``; more file type names)
writes around that model blob; for a GGUF with embedded vision, audio or draft tensors current
Ollama keeps the file too, and then the whole manifest is its own.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pullman.core import gojson
from pullman.core.digests import Digest, sha256
from pullman.core.gguf_meta import FILE_TYPES, FILE_TYPES_0_24, GgufFacts, file_type_name
from pullman.core.ollama_manifest import CONFIG_TYPE, LAYER_PREFIX, MANIFEST_V2, Layer
from pullman.core.ollama_templates import NamedTemplate, named
from pullman.errors import BadModelFile, UsageError

MODEL_TYPE = LAYER_PREFIX + "model"
TEMPLATE_TYPE = LAYER_PREFIX + "template"
PARAMS_TYPE = LAYER_PREFIX + "params"

ARCH_DEFAULTS: dict[str, tuple[str, str, tuple[str, ...] | None]] = {
    "gemma4": ("gemma4", "gemma4", ("<turn|>",)),
    "laguna": ("laguna", "laguna", None),
    "nemotron_h": ("nemotron-3-nano", "nemotron-3-nano", None),
    "nemotron_h_moe": ("nemotron-3-nano", "nemotron-3-nano", None),
    "nemotron_h_omni": ("nemotron-3-nano", "nemotron-3-nano", None),
}
"""``createModel``'s defaults by architecture: renderer, parser, and ``stop`` when Ollama sets
one (``gemma4RendererLegacy`` is ``gemma4``); the same in v0.24.0 and at ``fb30760``."""


class OllamaRelease(enum.Enum):
    """Whose ``ollama create`` output to write (see the module docstring)."""

    V0_24 = "0.24.0"
    """Config with ``rootfs``; the model layer's ``from`` is the blob's path; v0.24 type names."""
    CURRENT = "0.32.7"
    """No ``rootfs``; ``from`` only where Ollama keeps the file; current type names."""


@dataclass(frozen=True)
class Blob:
    """A small blob pullman writes into the store (config, template, params)."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> Digest:
        return sha256(hashlib.sha256(self.data).hexdigest())

    @property
    def layer(self) -> Layer:
        return Layer(self.media_type, self.digest, len(self.data))


@dataclass(frozen=True)
class OllamaCreation:
    """What ``ollama create`` leaves in the store for one GGUF, the GGUF itself aside."""

    model: Layer
    """The GGUF as the model layer (its digest and size, as given)."""
    config: Blob
    extras: tuple[Blob, ...]
    """The template and params blobs, in manifest order after the model (either may be absent)."""
    manifest: bytes
    """The manifest file's bytes, as ``manifest.WriteManifest`` writes them."""
    template: str | None
    """The name of the bundled template Ollama would pick (``chatml``, ...), or None."""

    @property
    def layers(self) -> tuple[Layer, ...]:
        return (self.model, *(blob.layer for blob in self.extras))

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """Every blob to write beside the GGUF: the config first."""
        return (self.config, *self.extras)


def model_layer_from(
    release: OllamaRelease, facts: GgufFacts, *, blob_path: str, file_name: str
) -> str | None:
    """The ``from`` Ollama writes on the model layer: in v0.24.0 the blob's path as its server
    opened it (``<OLLAMA_MODELS>/blobs/sha256-<hex>``); today the file's base name when it keeps
    the file (embedded compatibility tensors), else none (its layer is a new blob)."""
    if release is OllamaRelease.V0_24:
        return blob_path
    return file_name if facts.compat_tensors else None


def check_linkable(facts: GgufFacts) -> None:
    """Refuse files ``ollama create`` would not turn into a model that is this very file."""
    if facts.role != "model":
        raise BadModelFile(
            f"this GGUF is a {facts.role}, not a model",
            why=f"general.type is {facts.kind!r}; Ollama stores it beside a model, not as one",
            hint="link the model's own GGUF file (its projector is found with it)",
        )
    if facts.split_count > 1:
        raise UsageError(
            f"this GGUF is one of {facts.split_count} split files",
            why="a split model needs all its parts merged, which linking cannot do",
            hint="download a single-file quantisation, or use `ollama create` on the first part",
        )
    if facts.source_fp8 and facts.file_type_name in ("F16", "BF16", "F32"):
        raise UsageError(
            "ollama create would re-quantize this GGUF to Q8_0",
            why="it was converted from an FP8 checkpoint (source_quantization hf_fp8)",
            hint="use `ollama create` for it, or link a Q8_0 file",
        )


def _parameters(facts: GgufFacts, template: NamedTemplate | None) -> dict[str, object]:
    """``setParameters``: the request's (here only gemma4's ``stop``), then the template's."""
    params: dict[str, object] = {}
    stop = ARCH_DEFAULTS.get(facts.architecture, ("", "", None))[2]
    if stop is not None:
        params["stop"] = list(stop)
    for key, value in ((template and template.parameters) or {}).items():
        params.setdefault(key, value)
    return params


def _extras(facts: GgufFacts, template: NamedTemplate | None) -> tuple[Blob, ...]:
    extras = []
    if template is not None:
        extras.append(Blob(TEMPLATE_TYPE, template.gotmpl))
    params = _parameters(facts, template)
    if params:
        extras.append(Blob(PARAMS_TYPE, gojson.encode(params, sort_keys=True)))
    return tuple(extras)


def _config(facts: GgufFacts, layers: Sequence[Layer], release: OllamaRelease) -> Blob:
    """``ConfigV2`` as ``createConfigLayer`` encodes it (fields in the struct's order)."""
    names = FILE_TYPES_0_24 if release is OllamaRelease.V0_24 else FILE_TYPES
    arch = facts.architecture
    config: dict[str, object] = {
        "model_format": "gguf",
        "model_family": arch,
        "model_families": [arch],
        "model_type": facts.parameter_size,
        "file_type": file_type_name(facts.file_type, names),
    }
    if arch in ARCH_DEFAULTS:
        config["renderer"], config["parser"], _ = ARCH_DEFAULTS[arch]
    config["architecture"] = "amd64"
    config["os"] = "linux"
    if release is OllamaRelease.V0_24:
        config["rootfs"] = {"type": "layers", "diff_ids": [str(x.digest) for x in layers]}
    return Blob(CONFIG_TYPE, gojson.encode(config))


def _layer_json(layer: Layer, origin: str | None = None) -> dict[str, object]:
    doc: dict[str, object] = {
        "mediaType": layer.media_type,
        "digest": str(layer.digest),
        "size": layer.size,
    }
    if origin:
        doc["from"] = origin
    return doc


def manifest_bytes(config: Layer, layers: Sequence[Layer], model_from: str | None) -> bytes:
    """``manifest.WriteManifest``; ``model_from`` is the first layer's ``from``."""
    docs = [_layer_json(layer, model_from if i == 0 else None) for i, layer in enumerate(layers)]
    return gojson.encode(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_V2,
            "config": _layer_json(config),
            "layers": docs,
        }
    )


def ollama_from_gguf(
    facts: GgufFacts,
    digest: Digest,
    size: int,
    templates: Sequence[NamedTemplate],
    *,
    release: OllamaRelease = OllamaRelease.V0_24,
    model_from: str | None = None,
) -> OllamaCreation:
    """The model ``ollama create`` makes of this GGUF, the GGUF kept as the model blob.

    ``model_from`` is written as the model layer's ``from`` (see :func:`model_layer_from`);
    files Ollama would not keep as one model raise (:func:`check_linkable`).
    """
    if digest.algorithm != "sha256":
        raise ValueError(f"an Ollama blob is named by its sha256, not {digest.algorithm}")
    check_linkable(facts)
    template = named(facts.chat_template, templates) if facts.chat_template else None
    model = Layer(MODEL_TYPE, digest, size)
    extras = _extras(facts, template)
    layers = (model, *(blob.layer for blob in extras))
    config = _config(facts, layers, release)
    return OllamaCreation(
        model=model,
        config=config,
        extras=extras,
        manifest=manifest_bytes(config.layer, layers, model_from),
        template=template.name if template else None,
    )
