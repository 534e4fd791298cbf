"""What a GGUF header says, read the way Ollama reads it. Pure.

:class:`GgufFacts` holds the header values ``ollama create`` looks at when it is given a GGUF
(``server/create.go``, ``fs/ggml/ggml.go``, ``fs/ggml/gguf.go`` at Ollama commit ``fb30760``);
:mod:`pullman.gguf_facts` fills it from a file. Ollama reads values with typed lookups
(``kv[key].(uint32)`` and so on): a value of another GGUF type counts as absent, and a key that
does not start with ``general.`` or ``tokenizer.`` is looked up under ``<architecture>.``. The
reader applies those rules; this module keeps the names Ollama shows:

- :func:`file_type_name`: ``FileType.String()`` (``fs/ggml/type.go``). ``general.file_type`` is
  read as a ``uint32`` and only a value above 0 counts (``KV.FileType``), so ``F32`` (0) shows
  as ``unknown``, as in Ollama.
- :func:`human_number`: ``format.HumanNumber`` (``format/format.go``), e.g. ``7.6B``.
- the parameter count is the sum of every tensor's element count: Ollama overwrites
  ``general.parameter_count`` with it while decoding (``gguf.Decode``), whatever the file says.
"""

from __future__ import annotations

from dataclasses import dataclass

FILE_TYPES: tuple[str | None, ...] = (
    "F32", "F16", "Q4_0", "Q4_1", None, None, None, "Q8_0", "Q5_0", "Q5_1",
    "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    "IQ2_XXS", "IQ2_XS", "Q2_K_S", "IQ3_XS", "IQ3_XXS", "IQ1_S", "IQ4_NL", "IQ3_S", "IQ3_M",
    "IQ2_S", "IQ2_M", "IQ4_XS", "IQ1_M", "BF16", None, None, None, "TQ1_0", "TQ2_0",
    "MXFP4_MOE", "NVFP4", "Q1_0",
)  # fmt: skip
"""``FileType.String()`` by value (llama.cpp's ``llama_ftype``) in current Ollama (commit
``fb30760``); None: Ollama says ``unknown`` (4-6 were removed from GGUF, 33-35 are unused)."""

FILE_TYPES_0_24: tuple[str | None, ...] = (
    "F32", "F16", "Q4_0", "Q4_1", "MXFP4", None, None, "Q8_0", "Q5_0", "Q5_1",
    "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    None, None, "Q2_K_S", None, None, None, None, None, None, None, None, None, None, "BF16",
)  # fmt: skip
"""The same in Ollama v0.24.0, which named fewer types (the IQ and TQ ones were ``unknown``) and
called 4 ``MXFP4``."""

COMPAT_TENSOR_PREFIXES = ("a.", "mm.", "mtp.", "s.", "v.")
"""``isEmbeddedCompatibilityTensor``: tensors of a vision, audio or draft part kept in the model
file (``server/create.go``)."""

_THOUSAND, _MILLION, _BILLION = 1_000, 1_000_000, 1_000_000_000


def file_type_name(file_type: int | None, names: tuple[str | None, ...] = FILE_TYPES) -> str:
    """Ollama's name for ``general.file_type`` (None: absent or not a ``uint32``)."""
    if file_type is None or file_type <= 0 or file_type >= len(names):
        return "unknown"
    return names[file_type] or "unknown"


def human_number(n: int) -> str:
    """``format.HumanNumber``: ``7.6B``, ``8B``, ``494.03M``, ``12M``, ``35K``, ``999``."""
    if n >= _BILLION:
        number = n / _BILLION
        return f"{number:.0f}B" if number.is_integer() else f"{number:.1f}B"
    if n >= _MILLION:
        number = n / _MILLION
        return f"{number:.0f}M" if number.is_integer() else f"{number:.2f}M"
    if n >= _THOUSAND:
        return f"{n / _THOUSAND:.0f}K"
    return str(n)


def ollama_key(architecture: str, key: str) -> str:
    """The key Ollama's typed lookups read: ``<arch>.<key>`` unless general or tokenizer."""
    if key.startswith(("tokenizer.", "general.")):
        return key
    return f"{architecture}.{key}"


@dataclass(frozen=True)
class GgufFacts:
    """The header values ``ollama create`` uses, with Ollama's defaults for absent ones."""

    version: int
    architecture: str
    """``general.architecture`` (Ollama: ``unknown`` when absent or not a string)."""
    file_type: int | None
    """``general.file_type`` as stored, when it is a ``uint32``."""
    parameter_count: int
    """Sum of the tensors' element counts (modulo 2**64, as Go's ``uint64``)."""
    tensor_count: int
    data_offset: int
    """Where tensor data starts: after the header, padded to ``general.alignment``."""
    chat_template: str | None = None
    """``tokenizer.chat_template`` when it is a string."""
    kind: str = "unknown"
    """``general.type`` (``model``, ``adapter``, ``projector``, ``mmproj``, ...)."""
    block_count: int = 0
    vision_block_count: int = 0
    has_vision_encoder: bool = False
    has_audio_encoder: bool = False
    split_count: int = 0
    """``split.count`` of a split GGUF (llama.cpp's ``gguf-split``), 0 when not split."""
    source_fp8: bool = False
    """Converted from an FP8 checkpoint (``source_quantization`` ``hf_fp8`` with a non-empty
    ``source_fp8_tensors``): ``ollama create`` re-quantizes such an F16/BF16/F32 file to Q8_0."""
    compat_tensors: bool = False
    """Some tensor's name starts with one of :data:`COMPAT_TENSOR_PREFIXES`."""

    @property
    def file_type_name(self) -> str:
        """What ``ollama show`` prints as the quantization (``Q4_K_M``, ``BF16``, ...)."""
        return file_type_name(self.file_type)

    @property
    def parameter_size(self) -> str:
        """What ``ollama show`` prints as the parameter count (``7.6B``)."""
        return human_number(self.parameter_count)

    @property
    def role(self) -> str:
        """``model``, ``adapter`` or ``projector``: the layer Ollama makes of this file
        (``ggufLayers`` and ``isProjectorGGUF`` in ``server/create.go``)."""
        if self.kind == "adapter":
            return "adapter"
        if self.kind in ("projector", "mmproj"):
            return "projector"
        if self.block_count == 0 and self.vision_block_count > 0:
            return "projector"
        encoder = self.has_vision_encoder or self.has_audio_encoder
        if self.architecture == "clip" and self.block_count == 0 and encoder:
            return "projector"
        return "model"
