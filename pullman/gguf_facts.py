"""The facts ``ollama create`` reads from a GGUF file, from its header alone. I/O.

:func:`read_gguf_facts` maps the file read-only and walks the header (magic, version, key/value
metadata, tensor infos) with the GGUF format's own constants from the ``gguf`` package
(llama.cpp's ``gguf-py``: value types, the magic, each quantization's block and byte sizes). No
tensor byte is read, so a multi-GB file costs what its header costs.

Why not ``gguf.GGUFReader``: it builds a numpy view for every element of every array, and a real
vocabulary (150,000 tokens, scores, types and merges) takes it about ten seconds before it
returns; here an array of fixed-size values is skipped in one step and a string array by its
lengths. ``tests/test_ollama_from_gguf.py`` checks that both readers agree.

The rules follow Ollama's decoder (``fs/ggml/gguf.go``, ``fs/ggml/ggml.go``, commit ``fb30760``):
typed lookups (a value of another type counts as absent), ``<architecture>.`` in front of keys
outside ``general.`` and ``tokenizer.``, the last of two equal keys wins, the parameter count is
the sum of the tensors' element counts, tensor data must lie inside the file (Ollama refuses a
truncated file), arrays of arrays are refused. GGUF versions 2 and 3, little-endian, are read
(what llama.cpp has written since 2023); version 1 and big-endian files are refused.

:func:`fit_header` reads what a memory estimate needs (:class:`~pullman.core.gguf_fit.FitHeader`:
the tensor table's byte sizes, layers, heads, head dims, vocabulary) from the first bytes of a
file of known size, a prefix fetched with range requests (:mod:`pullman.gguf_remote`); it says
"not enough bytes yet" (None) rather than failing while the header runs past the prefix, and
holds tensors to llama.cpp's rule that each starts where the previous one ended, padded.

Every failure is a :class:`~pullman.errors.BadModelFile` (a :class:`~pullman.errors.StorageError`
when the disk refuses the read), never an exception from the parsing.
"""

from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from pullman.core.gguf_fit import FitHeader
from pullman.core.gguf_meta import COMPAT_TENSOR_PREFIXES, GgufFacts, ollama_key
from pullman.core.gojson import go_text
from pullman.errors import BadModelFile, StorageError

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_KEPT_ARRAY = 4096
"""Integer arrays up to this long are kept (one value per layer), longer ones skipped."""
_SCALAR_FORMATS = {
    GGUFValueType.UINT8: "B",
    GGUFValueType.INT8: "b",
    GGUFValueType.UINT16: "H",
    GGUFValueType.INT16: "h",
    GGUFValueType.UINT32: "I",
    GGUFValueType.INT32: "i",
    GGUFValueType.FLOAT32: "f",
    GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "Q",
    GGUFValueType.INT64: "q",
    GGUFValueType.FLOAT64: "d",
}
_INTEGERS = {t for t, f in _SCALAR_FORMATS.items() if f in "BbHhIiQq"}
_U64 = struct.Struct("<Q")
_UINT64 = 2**64
_COMPAT = tuple(p.encode() for p in COMPAT_TENSOR_PREFIXES)
_KNOWN_KINDS = frozenset(int(t) for t in GGML_QUANT_SIZES)


class _Malformed(Exception):
    """A header that breaks the format; ``short`` when it runs past the end of the file."""

    def __init__(self, why: str, *, short: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.short = short


def _past_end(pos: int) -> _Malformed:
    return _Malformed(f"the header runs past the end of the file at byte {pos}", short=True)


@dataclass(frozen=True)
class _Array:
    item_type: GGUFValueType
    count: int
    values: tuple[int, ...] | None = None
    """The items of a short integer array (per-layer head counts), else None."""


@dataclass(frozen=True)
class _Span:
    """A string value, left in the file until someone asks for it."""

    start: int
    length: int


@dataclass
class _Cursor:
    """Reads little-endian GGUF values from a mapped file, checking every bound."""

    buf: mmap.mmap | bytes
    size: int
    pos: int = 0
    kv: dict[str, tuple[GGUFValueType, object]] = field(default_factory=dict)

    def unpack(self, fmt: str) -> tuple[object, ...]:
        s = struct.Struct("<" + fmt)
        if self.pos + s.size > self.size:
            raise _past_end(self.pos)
        values = s.unpack_from(self.buf, self.pos)
        self.pos += s.size
        return values

    def u32(self) -> int:
        (value,) = self.unpack("I")
        assert isinstance(value, int)
        return value

    def u64(self) -> int:
        (value,) = self.unpack("Q")
        assert isinstance(value, int)
        return value

    def skip(self, n: int) -> None:
        if self.pos + n > self.size:
            raise _past_end(self.pos)
        self.pos += n

    def span(self) -> _Span:
        length = self.u64()
        start = self.pos
        self.skip(length)
        return _Span(start, length)

    def raw(self, span: _Span) -> bytes:
        return bytes(self.buf[span.start : span.start + span.length])

    def skip_strings(self, count: int) -> None:
        """``count`` strings, by their lengths alone (the vocabulary's hot loop)."""
        pos, size, buf, unpack = self.pos, self.size, self.buf, _U64.unpack_from
        try:
            for _ in range(count):
                pos += 8 + unpack(buf, pos)[0]
                if pos > size:
                    break
        except struct.error:
            pos = size + 1
        if pos > size:
            raise _Malformed("a string array runs past the end of the file", short=True)
        self.pos = pos


def _value_type(raw: int, key: str) -> GGUFValueType:
    try:
        return GGUFValueType(raw)
    except ValueError:
        raise _Malformed(f"key {key!r} has an unknown value type {raw}") from None


def _value(cur: _Cursor, vtype: GGUFValueType, key: str) -> object:
    if vtype == GGUFValueType.STRING:
        return cur.span()
    if vtype == GGUFValueType.ARRAY:
        item = _value_type(cur.u32(), key)
        count = cur.u64()
        if item == GGUFValueType.ARRAY:
            raise _Malformed(f"key {key!r} is an array of arrays, which Ollama refuses")
        if item == GGUFValueType.STRING:
            cur.skip_strings(count)
            return _Array(item, count)
        if item in _INTEGERS and count <= MAX_KEPT_ARRAY:
            values = cur.unpack(_SCALAR_FORMATS[item] * count)
            return _Array(item, count, tuple(int(v) for v in values))  # type: ignore[call-overload]
        cur.skip(count * struct.calcsize("<" + _SCALAR_FORMATS[item]))
        return _Array(item, count)
    (value,) = cur.unpack(_SCALAR_FORMATS[vtype])
    return value


def _read_kv(cur: _Cursor, count: int) -> None:
    for _ in range(count):
        key = go_text(cur.raw(cur.span()))
        vtype = _value_type(cur.u32(), key)
        cur.kv[key] = (vtype, _value(cur, vtype, key))


@dataclass(frozen=True)
class _Tensors:
    count: int = 0
    parameters: int = 0
    compat: bool = False
    ends: tuple[tuple[str, int, int], ...] = ()
    """(name, offset in the data section, bytes) of each tensor."""
    kinds_known: bool = True
    """Every tensor's type is one ``gguf`` knows the size of."""


def _tensor_bytes(kind: int, elements: int) -> int:
    """``Tensor.Size()``: elements by the type's bytes per block (0 for a type unknown here)."""
    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(kind)]
    except (ValueError, KeyError):
        return 0
    return elements * type_size // block


def _read_tensors(cur: _Cursor, count: int) -> _Tensors:
    parameters, compat, ends, known = 0, False, [], True
    for _ in range(count):
        name = cur.raw(cur.span())
        dims = cur.u32()
        if dims * 8 > cur.size - cur.pos:
            raise _Malformed(f"a tensor claims {dims} dimensions", short=True)
        elements = 1
        for _ in range(dims):
            elements = elements * cur.u64() % _UINT64  # Go's uint64, as Tensor.Elements
        kind, offset = cur.u32(), cur.u64()
        known = known and kind in _KNOWN_KINDS
        parameters = (parameters + elements) % _UINT64
        compat = compat or name.startswith(_COMPAT)
        ends.append((go_text(name), offset, _tensor_bytes(kind, elements)))
    return _Tensors(count, parameters, compat, tuple(ends), known)


def _typed(cur: _Cursor, key: str, *types: GGUFValueType) -> object | None:
    """Ollama's ``kv[key].(T)``: the value if its GGUF type is one of ``types``."""
    found = cur.kv.get(key)
    if found is None or found[0] not in types:
        return None
    return found[1]


def _string(cur: _Cursor, key: str) -> str | None:
    span = _typed(cur, key, GGUFValueType.STRING)
    return go_text(cur.raw(span)) if isinstance(span, _Span) else None


def _uint32(cur: _Cursor, key: str) -> int | None:
    value = _typed(cur, key, GGUFValueType.UINT32)
    return value if isinstance(value, int) else None


def _bool(cur: _Cursor, key: str) -> bool:
    return _typed(cur, key, GGUFValueType.BOOL) is True


def _split_count(cur: _Cursor, arch: str) -> int:
    """``splitGGUFUint``: ``split.count`` (or under the architecture) of any integer type."""
    for key in ("split.count", f"{arch}.split.count"):
        value = _typed(cur, key, *_INTEGERS)
        if isinstance(value, int) and 0 <= value <= 0xFFFF:
            return value
    return 0


def _source_fp8(cur: _Cursor, arch: str) -> bool:
    """``hasSourceFP8Tensors``: converted from an FP8 checkpoint, with the tensors named."""
    if _string(cur, ollama_key(arch, "source_quantization")) != "hf_fp8":
        return False
    tensors = _typed(cur, ollama_key(arch, "source_fp8_tensors"), GGUFValueType.ARRAY)
    if not isinstance(tensors, _Array):
        return False
    return tensors.item_type == GGUFValueType.STRING and tensors.count > 0


def _check_data(cur: _Cursor, tensors: _Tensors) -> int:
    """Where tensor data starts; every tensor must end inside the file, as Ollama checks."""
    alignment = _uint32(cur, "general.alignment")
    alignment = DEFAULT_ALIGNMENT if alignment is None else alignment
    if alignment == 0:
        raise _Malformed("general.alignment is 0")
    start = cur.pos + (-cur.pos % alignment)
    for name, offset, size in tensors.ends:
        if start + offset + size > cur.size:
            raise _Malformed(
                f"tensor {name[:80]!r} ends at byte {start + offset + size}, past the file's "
                f"{cur.size} bytes",
                short=True,
            )
    return start


def _facts(cur: _Cursor, version: int, tensors: _Tensors) -> GgufFacts:
    arch = _string(cur, "general.architecture") or "unknown"
    return GgufFacts(
        version=version,
        architecture=arch,
        file_type=_uint32(cur, "general.file_type"),
        parameter_count=tensors.parameters,
        tensor_count=tensors.count,
        data_offset=_check_data(cur, tensors),
        chat_template=_string(cur, "tokenizer.chat_template"),
        kind=_string(cur, "general.type") or "unknown",
        block_count=_uint32(cur, ollama_key(arch, "block_count")) or 0,
        vision_block_count=_uint32(cur, ollama_key(arch, "vision.block_count")) or 0,
        has_vision_encoder=_bool(cur, ollama_key(arch, "has_vision_encoder")),
        has_audio_encoder=_bool(cur, ollama_key(arch, "has_audio_encoder")),
        split_count=_split_count(cur, arch),
        source_fp8=_source_fp8(cur, arch),
        compat_tensors=tensors.compat,
    )


def parse_header(buf: mmap.mmap | bytes) -> GgufFacts:
    """The facts in a whole file's bytes (mapped or not); raises ``_Malformed``."""
    cur, version = _opened(buf)
    tensor_count, kv_count = cur.u64(), cur.u64()
    _read_kv(cur, kv_count)
    return _facts(cur, version, _read_tensors(cur, tensor_count))


def _opened(buf: mmap.mmap | bytes) -> tuple[_Cursor, int]:
    """A cursor past the magic and the version (2 or 3, little-endian); ``_Malformed`` else."""
    cur = _Cursor(buf, len(buf))
    if bytes(buf[:4]) != MAGIC:
        raise _Malformed("it does not start with the GGUF magic bytes")
    cur.pos = len(MAGIC)
    version = cur.u32()
    if version not in VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        if swapped in VERSIONS:
            raise _Malformed("it is a big-endian GGUF file")
        raise _Malformed(f"it is GGUF version {version}; pullman reads versions 2 and 3")
    return cur, version


def _bad(path: Path, problem: _Malformed) -> BadModelFile:
    if problem.short:
        return BadModelFile(
            f"{path} is cut short",
            why=problem.why,
            hint="the download did not finish or the file was damaged: fetch it again",
        )
    return BadModelFile(
        f"{path} is not a GGUF model pullman can read",
        why=problem.why,
        hint="point at a .gguf file as llama.cpp writes them (safetensors need `ollama create`)",
    )


def _parse_file(fd: int) -> GgufFacts:
    if os.fstat(fd).st_size == 0:
        raise _Malformed("it is empty")
    with mmap.mmap(fd, 0, access=mmap.ACCESS_READ) as buf:
        return parse_header(buf)


def read_gguf_facts(path: Path) -> GgufFacts:
    """What ``ollama create`` would read from the GGUF at ``path`` (header only)."""
    try:
        with path.open("rb") as f:
            return _parse_file(f.fileno())
    except _Malformed as problem:
        raise _bad(path, problem) from None
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise BadModelFile(
            f"{path} is not a file", why=exc.strerror, hint="check the path to the .gguf file"
        ) from exc
    except OSError as exc:
        raise StorageError(
            f"cannot read {path}", why=exc.strerror or str(exc), hint="check its permissions"
        ) from exc


# ---------------------------------------------------------------------- what an estimate needs


def _integer(cur: _Cursor, key: str) -> int | None:
    """An integer value of any integer type (llama.cpp reads these keys as ``uint32``)."""
    found = cur.kv.get(key)
    if found is None or found[0] not in _INTEGERS or isinstance(found[1], bool):
        return None
    value = found[1]
    return value if isinstance(value, int) else None


def _integers(cur: _Cursor, key: str) -> tuple[int, ...] | None:
    """One integer, or an integer array (``head_count_kv`` per layer), as a tuple."""
    single = _integer(cur, key)
    if single is not None:
        return (single,)
    found = cur.kv.get(key)
    if found is None or not isinstance(found[1], _Array):
        return None
    return found[1].values


def _vocab_size(cur: _Cursor, arch: str) -> int | None:
    tokens = _typed(cur, "tokenizer.ggml.tokens", GGUFValueType.ARRAY)
    if isinstance(tokens, _Array) and tokens.count > 0:
        return tokens.count
    return _integer(cur, f"{arch}.vocab_size")


def _weights(tensors: _Tensors, kinds_known: bool) -> int | None:
    return sum(size for _, _, size in tensors.ends) if kinds_known else None


def _fit_header(cur: _Cursor, tensors: _Tensors, known: bool, file_size: int) -> FitHeader:
    arch = _string(cur, "general.architecture") or "unknown"
    alignment = _uint32(cur, "general.alignment") or DEFAULT_ALIGNMENT
    start = cur.pos + (-cur.pos % alignment)
    expected = 0
    for name, offset, size in tensors.ends:
        if start + offset + size > file_size:
            raise _Malformed(f"tensor {name[:80]!r} ends past the file's {file_size} bytes")
        if known and offset != expected:  # gguf_init_from_file_impl's rule
            raise _Malformed(f"tensor {name[:80]!r} is at offset {offset}, expected {expected}")
        expected = offset + size + (-size % alignment)
    a = f"{arch}."
    return FitHeader(
        architecture=arch,
        file_type=_uint32(cur, "general.file_type"),
        weights=_weights(tensors, known),
        tensor_count=tensors.count,
        header_size=start,
        block_count=_integer(cur, a + "block_count"),
        embedding_length=_integer(cur, a + "embedding_length"),
        head_count=_integers(cur, a + "attention.head_count"),
        head_count_kv=_integers(cur, a + "attention.head_count_kv"),
        key_length=_integer(cur, a + "attention.key_length"),
        value_length=_integer(cur, a + "attention.value_length"),
        rope_dimensions=_integer(cur, a + "rope.dimension_count"),
        vocab_size=_vocab_size(cur, arch),
        context_length=_integer(cur, a + "context_length"),
        split_count=_split_count(cur, arch),
    )


def parse_fit_header(buf: bytes, file_size: int) -> FitHeader:
    """The fit-relevant header of a file of ``file_size`` bytes from its first bytes ``buf``;
    raises ``_Malformed`` (``short`` when ``buf`` ends before the header does)."""
    cur, _version = _opened(buf)
    tensor_count, kv_count = cur.u64(), cur.u64()
    if tensor_count > file_size // 24 or kv_count > file_size // 12:
        raise _Malformed(f"it claims {tensor_count} tensors and {kv_count} keys")
    _read_kv(cur, kv_count)
    tensors = _read_tensors(cur, tensor_count)
    return _fit_header(cur, tensors, tensors.kinds_known, file_size)


def fit_header(buf: bytes, file_size: int, name: str) -> FitHeader | None:
    """:func:`parse_fit_header`, None when ``buf`` is too short for the header and the file
    has more bytes; a header that breaks the format is a :class:`BadModelFile`."""
    try:
        return parse_fit_header(buf, file_size)
    except _Malformed as problem:
        if problem.short and len(buf) < file_size:
            return None
        raise BadModelFile(f"{name} has no GGUF header pullman can read", why=problem.why) from None
    except (ValueError, OverflowError, MemoryError, struct.error) as exc:
        raise BadModelFile(f"{name} has no GGUF header pullman can read", why=str(exc)) from None
