"""Will a GGUF model fit this machine? Estimates from header values, and verdicts. Pure.

The header of a GGUF file (its metadata and tensor table) says what loading it costs before a
single weight byte is fetched (:mod:`pullman.gguf_facts` reads it, from a file or a prefix
fetched with range requests). What llama.cpp allocates to run a model (``src/llama-model.cpp``,
``src/llama-kv-cache.cpp``, ``src/llama-context.cpp``):

- **weights**: every tensor as stored, the sum of the tensor table's byte sizes (elements x the
  type's bytes per block / block size, ``gguf.constants.GGML_QUANT_SIZES``); split files each
  carry their own table, summed.
- **KV cache**: per layer, ``context x (n_embd_k_gqa + n_embd_v_gqa)`` elements of the cache
  type (f16 by default: 2 bytes), where ``n_embd_k_gqa = n_embd_head_k x n_head_kv(layer)``
  (``llama_hparams::n_embd_k_gqa``; ``llama_kv_cache`` makes one K and one V tensor of that
  width per layer). ``n_embd_head_k`` is ``<arch>.attention.key_length``, else
  ``embedding_length / head_count`` (``llama_model::load_hparams``), else
  ``rope.dimension_count``; ``head_count_kv`` may be one value or one per layer (GQA), and a
  layer with 0 KV heads (a recurrent or shared-KV layer) holds no cache. For 2 x layers x
  context x kv_heads x head_dim x 2 bytes this is the textbook formula.
- **compute**: the graph's scratch buffer, reserved for the worst-case batch of ``n_ubatch``
  (512) tokens when the context is made (``llama_context``'s graph reserve). With flash
  attention (``-fa auto``, llama.cpp's default now) no ``context x heads`` score matrix is
  kept, and the largest live tensors are the output logits and the last hidden state,
  ``4 x n_ubatch x (n_embd + n_vocab)`` bytes: 258.5 MiB for a Llama-3-8B, the same
  expression as Ollama's "vocab graph" in ``GraphSize`` (``fs/ggml/ggml.go``). To that we add
  one layer's attention activations, ``4 x n_ubatch x (1 + 4 x n_embd)``, and the f16 KQ mask,
  ``2 x n_ubatch x context``. (Without flash attention llama.cpp also holds the
  ``4 x n_ubatch x context x n_head`` scores: 2 GiB for an 8B at 32k; Ollama's
  ``fullOffload`` counts that case.)
- **overhead**: what else a loaded model holds: 2% of the weights (the output buffer, the
  small per-backend buffers, alignment padding), at least 64 MiB.

``need = weights + kv_cache + compute + overhead``; for Llama-3.1-8B from Q2_K to F16 at 4k
to 32k context that is 1.03x to 1.10x of weights + KV cache, inside the 1.0-1.35x band a
rule of thumb allows.

Metadata that is missing or absurd (0 layers, a head dimension of a million, more KV heads than
heads, a context of 2**40) gives no estimate at all: the verdict is ``unknown``, never a guess.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pullman.core.units import human

UBATCH = 512
"""llama.cpp's default ``n_ubatch``: the tokens one graph evaluates at most."""
DEFAULT_CONTEXT = 4096
"""llama.cpp's default ``--ctx-size`` (``common_params.n_ctx``) and Ollama's default."""
F16_BYTES = 2
OVERHEAD_SHARE = 0.02
MIN_OVERHEAD = 64 << 20

MAX_LAYERS = 4096
MAX_EMBEDDING = 1 << 20
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 16
MAX_CONTEXT = 1 << 24
MAX_VOCAB = 1 << 24

Verdict = Literal["full GPU", "partial offload", "CPU only", "fits", "will not fit", "unknown"]
FITTING: frozenset[str] = frozenset({"full GPU", "partial offload", "CPU only", "fits"})


@dataclass(frozen=True)
class FitHeader:
    """The header values an estimate needs, as one GGUF file (or split) states them."""

    architecture: str
    file_type: int | None
    weights: int | None
    """The sum of the tensor table's byte sizes (None: a tensor type this gguf does not know)."""
    tensor_count: int
    header_size: int
    """Where tensor data starts: the bytes the header takes."""
    block_count: int | None = None
    embedding_length: int | None = None
    head_count: tuple[int, ...] | None = None
    head_count_kv: tuple[int, ...] | None = None
    key_length: int | None = None
    value_length: int | None = None
    rope_dimensions: int | None = None
    vocab_size: int | None = None
    context_length: int | None = None
    split_count: int = 0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("head_count", "head_count_kv"):
            value = out[key]
            out[key] = list(value) if value is not None else None
        return out

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> FitHeader:
        values = dict(doc)
        for key in ("head_count", "head_count_kv"):
            if values.get(key) is not None:
                values[key] = tuple(int(v) for v in values[key])
        return cls(**values)


@dataclass(frozen=True)
class Estimate:
    weights: int
    kv_cache: int
    compute: int
    overhead: int

    @property
    def need(self) -> int:
        return self.weights + self.kv_cache + self.compute + self.overhead


def _plausible(value: int | None, top: int, low: int = 1) -> int | None:
    if value is None or not low <= value <= top:
        return None
    return value


def _per_layer(values: tuple[int, ...] | None, layers: int, top: int, low: int) -> list[int] | None:
    """One value per layer: a single value for all, or an array as long as the layers."""
    if not values or (len(values) != 1 and len(values) != layers):
        return None
    if any(not low <= v <= top for v in values):
        return None
    return list(values) * layers if len(values) == 1 else list(values)


def _head_dims(first: FitHeader, heads: list[int]) -> tuple[int, int] | None:
    """``n_embd_head_k`` and ``n_embd_head_v``, as llama.cpp loads them."""
    embd = _plausible(first.embedding_length, MAX_EMBEDDING)
    derived = embd // max(heads) if embd is not None and max(heads) > 0 else None
    key = first.key_length if first.key_length is not None else derived
    key = key if key is not None else first.rope_dimensions
    value = first.value_length if first.value_length is not None else key
    key, value = _plausible(key, MAX_HEAD_DIM), _plausible(value, MAX_HEAD_DIM)
    if key is None or value is None:
        return None
    return key, value


def kv_cache_bytes(first: FitHeader, context: int, element: int = F16_BYTES) -> int | None:
    """The K and V cache at ``context`` tokens, per layer summed (None: metadata unusable)."""
    layers = _plausible(first.block_count, MAX_LAYERS)
    if layers is None or _plausible(context, MAX_CONTEXT) is None:
        return None
    heads = _per_layer(first.head_count, layers, MAX_HEADS, 0)
    kv_heads = _per_layer(first.head_count_kv or first.head_count, layers, MAX_HEADS, 0)
    if heads is None or kv_heads is None or max(heads) == 0:
        return None
    if any(kv > h for kv, h in zip(kv_heads, heads, strict=True) if h):
        return None
    dims = _head_dims(first, heads)
    if dims is None:
        return None
    k_dim, v_dim = dims
    return sum(context * kv * (k_dim + v_dim) * element for kv in kv_heads)


def compute_bytes(first: FitHeader, context: int) -> int | None:
    """The compute buffer llama.cpp reserves for one ``n_ubatch`` graph (flash attention)."""
    embd = _plausible(first.embedding_length, MAX_EMBEDDING)
    vocab = _plausible(first.vocab_size, MAX_VOCAB)
    if embd is None or vocab is None:
        return None
    logits = 4 * UBATCH * (embd + vocab)
    attention = 4 * UBATCH * (1 + 4 * embd) + 2 * UBATCH * context
    return logits + attention


def estimate(parts: list[FitHeader], context: int) -> Estimate | None:
    """What one model (all its split files; the first carries the metadata) needs loaded."""
    if not parts or any(p.weights is None for p in parts):
        return None
    weights = sum(p.weights or 0 for p in parts)
    first = parts[0]
    kv = kv_cache_bytes(first, context)
    compute = compute_bytes(first, context)
    if kv is None or compute is None or weights <= 0:
        return None
    overhead = max(MIN_OVERHEAD, int(weights * OVERHEAD_SHARE))
    return Estimate(weights, kv, compute, overhead)


# ---------------------------------------------------------------------- the budget


@dataclass(frozen=True)
class Budget:
    """The memory a model may use on the machine it is meant for.

    ``ram``: system memory (all of it, for a given ``--memory``); ``vram``: dedicated GPU
    memory (NVIDIA, summed over devices); ``gpu_share``: on Apple silicon, what Metal lets
    the GPU wire of the unified memory. ``source`` says where the numbers came from.
    """

    ram: int | None
    vram: int | None = None
    gpu_share: int | None = None
    source: str = "given"
    notes: tuple[str, ...] = field(default=())

    @property
    def known(self) -> bool:
        return self.ram is not None or self.vram is not None

    @property
    def total(self) -> int | None:
        """The most a model could use: GPU and system memory together (unified: RAM)."""
        if not self.known:
            return None
        return (self.ram or 0) + (self.vram or 0)

    def describe(self) -> str:
        parts = []
        if self.vram is not None:
            parts.append(f"{human(self.vram)} GPU")
        if self.gpu_share is not None and self.ram is not None:
            parts.append(f"{human(self.ram)} unified ({human(self.gpu_share)} for the GPU)")
        elif self.ram is not None:
            parts.append(f"{human(self.ram)} {'RAM' if self.source != 'given' else 'memory'}")
        return " + ".join(parts) or "unknown"


def verdict(need: int | None, budget: Budget) -> Verdict:
    """LM Studio's words where there is a GPU; ``fits`` against a plain given budget."""
    if need is None or not budget.known:
        return "unknown"
    ram = budget.ram or 0
    if budget.vram is not None:
        if need <= budget.vram:
            return "full GPU"
        return "partial offload" if need <= budget.vram + ram else "will not fit"
    if budget.gpu_share is not None:
        if need <= budget.gpu_share:
            return "full GPU"
        return "partial offload" if need <= ram else "will not fit"
    if need > ram:
        return "will not fit"
    return "fits" if budget.source == "given" else "CPU only"


SMALL_SHARE = 8
"""A model under 1/8 of the budget is not measured before a plain ``get``."""


def worth_measuring(size: int, budget: Budget, *, asked: bool) -> bool:
    """Whether ``get`` reads a model's header before fetching it: always when a budget or a
    context was asked for, else when the files are at least 1/8 of the machine's memory.

    Below that even a small model's worst case (a 262k vocabulary's 0.5 GiB logits buffer on a
    few hundred MB of weights, under 8x its size at the default context) fits, and the header
    read would cost a noticeable share of a small download.
    """
    total = budget.total
    if total is None:
        return False
    return asked or size * SMALL_SHARE >= total


def fits(v: Verdict) -> bool | None:
    return None if v == "unknown" else v in FITTING


def apple_gpu_share(ram: int, wired_limit_mb: int | None = None) -> int:
    """What Metal lets the GPU use of a Mac's unified memory (``recommendedMaxWorkingSetSize``).

    ``iogpu.wired_limit_mb`` overrides it when set (above 0). Otherwise macOS gives about two
    thirds of RAM on machines up to 36 GiB and three quarters above (what llama.cpp reads from
    ``MTLDevice.recommendedMaxWorkingSetSize`` and logs as ``recommendedMaxWorkingSetSize``).
    """
    if wired_limit_mb:
        return min(ram, wired_limit_mb << 20)
    return ram * 2 // 3 if ram <= 36 << 30 else ram * 3 // 4


def meminfo_bytes(text: str, key: str = "MemTotal") -> int | None:
    """A ``/proc/meminfo`` line's value in bytes (``MemTotal:  16314428 kB``)."""
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == key:
            fields = rest.split()
            if fields and fields[0].isdigit():
                unit = fields[1].lower() if len(fields) > 1 else "b"
                return int(fields[0]) * (1024 if unit == "kb" else 1)
    return None
