"""GGUF models for the fit tests: real headers written with ``gguf.GGUFWriter`` (llama.cpp's
writer), tensor data left as a hole (:class:`pullman.testing.Sparse`), so an 8B costs no disk.

The 8B is Llama-3.1-8B's shape: 32 layers, 4096 embedding, 32 heads, 8 KV heads (head dim
128), feed-forward 14336, a 128,256-token vocabulary (the token strings are short stand-ins;
the header is still about 2 MiB, so reading it takes more than one range request). Tensor
types follow llama.cpp's mixes (``llama_tensor_get_type``): Q4_K_M keeps ``attn_v`` and
``ffn_down`` at Q6_K in the layers ``use_more_bits`` picks and the output at Q6_K.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import gguf
import numpy as np
from gguf.constants import GGML_QUANT_SIZES
from gguf.constants import GGMLQuantizationType as T

from pullman.testing import Sparse

FILE_TYPES = {"F16": 1, "Q8_0": 7, "Q2_K": 10, "Q4_K_M": 15}


@dataclass(frozen=True)
class Shape:
    layers: int = 32
    embd: int = 4096
    heads: int = 32
    kv_heads: int = 8
    ff: int = 14336
    vocab: int = 128256
    context: int = 131072


LLAMA_8B = Shape()
TINY = Shape(layers=2, embd=64, heads=4, kv_heads=2, ff=128, vocab=256, context=2048)


def _more_bits(i: int, n: int) -> bool:
    """llama.cpp's ``use_more_bits``: the first and last eighth, and every third between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _types(quant: str, name: str, layer: int, n: int) -> T:
    if name.endswith("norm.weight"):
        return T.F32
    if quant in ("F16", "Q8_0"):
        return T.F16 if quant == "F16" else T.Q8_0
    if name == "output.weight":
        return T.Q6_K
    more = _more_bits(layer, n)
    if quant == "Q4_K_M":
        return T.Q6_K if name.endswith(("attn_v.weight", "ffn_down.weight")) and more else T.Q4_K
    assert quant == "Q2_K"
    if name.endswith("attn_v.weight"):
        return T.Q4_K if more else T.Q3_K
    return T.Q3_K if name.endswith("ffn_down.weight") else T.Q2_K


def tensors(shape: Shape, quant: str) -> Iterator[tuple[str, tuple[int, ...], T]]:
    """(name, numpy shape, type) of every tensor of a llama model of ``shape``."""
    e, kv = shape.embd, shape.embd // shape.heads * shape.kv_heads
    yield "token_embd.weight", (shape.vocab, e), _types(quant, "token_embd.weight", 0, 1)
    for i in range(shape.layers):
        for name, dims in (
            ("attn_norm.weight", (e,)),
            ("attn_q.weight", (e, e)),
            ("attn_k.weight", (kv, e)),
            ("attn_v.weight", (kv, e)),
            ("attn_output.weight", (e, e)),
            ("ffn_norm.weight", (e,)),
            ("ffn_gate.weight", (shape.ff, e)),
            ("ffn_up.weight", (shape.ff, e)),
            ("ffn_down.weight", (e, shape.ff)),
        ):
            yield f"blk.{i}.{name}", dims, _types(quant, name, i, shape.layers)
    yield "output_norm.weight", (e,), T.F32
    yield "output.weight", (shape.vocab, e), _types(quant, "output.weight", 0, 1)


def nbytes(dims: tuple[int, ...], kind: T) -> int:
    block, size = GGML_QUANT_SIZES[kind]
    return int(np.prod(dims)) * size // block


@dataclass
class Written:
    head: bytes
    size: int
    weights: int
    """The sum of the tensors' byte sizes, counted here from the tensor list."""
    meta: dict[str, object] = field(default_factory=dict)

    def sparse(self) -> Sparse:
        stand_in = hashlib.sha256(self.head + str(self.size).encode()).hexdigest()
        return Sparse(self.head, self.size, announced_sha256=stand_in)

    def write(self, path: Path) -> Path:
        """On disk as a sparse file: the header, then a hole."""
        with path.open("wb") as f:
            f.write(self.head)
            f.truncate(self.size)
        return path


def gguf_model(
    workdir: Path,
    shape: Shape = LLAMA_8B,
    quant: str = "Q4_K_M",
    *,
    uint32s: Mapping[str, int] | None = None,
    arrays: Mapping[str, list[int]] | None = None,
    split: tuple[int, int, range] | None = None,
) -> Written:
    """A GGUF header for ``shape`` in ``quant`` (``split``: (number, count, tensor indices)
    for one file of a split model; only the first carries the metadata)."""
    path = workdir / f"h-{quant}-{id(shape)}-{split[0] if split else 0}.gguf"
    w = gguf.GGUFWriter(path, "llama")
    first = split is None or split[0] == 1
    if first:
        w.add_uint32("general.file_type", FILE_TYPES[quant])
        w.add_block_count(shape.layers)
        w.add_context_length(shape.context)
        w.add_embedding_length(shape.embd)
        w.add_feed_forward_length(shape.ff)
        w.add_head_count(shape.heads)
        w.add_head_count_kv(shape.kv_heads)
        w.add_rope_dimension_count(shape.embd // shape.heads)
        w.add_token_list([f"t{i}" for i in range(shape.vocab)])
        for key, value in (uint32s or {}).items():
            w.add_uint32(key, value)
        for key, values in (arrays or {}).items():
            w.add_array(key, values)
    if split is not None:
        w.add_uint16("split.no", split[0] - 1)
        w.add_uint16("split.count", split[1])
    all_tensors = list(tensors(shape, quant))
    chosen = [all_tensors[i] for i in split[2]] if split is not None else all_tensors
    weights = 0
    for name, dims, kind in chosen:
        n = nbytes(dims, kind)
        weights += n
        w.add_tensor_info(name, dims, np.dtype(np.float32), n, raw_dtype=kind)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    w.close()
    head = path.read_bytes()
    path.unlink()
    head += bytes(w.ggml_pad(len(head), 32) - len(head))
    size = len(head) + sum(w.ggml_pad(nbytes(d, k), 32) for _, d, k in chosen)
    return Written(head, size, weights)
