"""Hashing a file while it downloads: the contiguous finished prefix is fed to the digest in a
worker thread as it grows, so verification ends moments after the last byte arrives."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import anyio

from pullman.core.digests import Digest, Hasher
from pullman.errors import IntegrityError

MiB = 1 << 20
HASH_BLOCK = 8 * MiB
HASH_SLICE = 64 * MiB
"""At most this much is hashed per thread call, so cancellation stays prompt."""

ReadInto = Callable[[int, memoryview], int]
"""``read_into(offset, buffer)``: positional read into a caller's buffer; bytes read."""


class PrefixHasher:
    """The digest (and the sha256, when the digest is another kind) of one file's bytes.

    :meth:`run` hashes ``[0, size)`` in order, waiting for :meth:`advanced` whenever it caught up
    with ``prefix()``, the end of the contiguous finished data.
    """

    def __init__(self, name: str, size: int, expected: Digest | None, read_into: ReadInto) -> None:
        self.name = name
        self.size = size
        self.expected = expected
        self.verified = 0
        """Bytes hashed so far."""
        self.digest_hex: str | None = None
        self.sha256_hex: str | None = None
        self._read_into = read_into
        self._moved = anyio.Event()
        self._buffer = bytearray()

    def advanced(self) -> None:
        """The finished prefix may have grown: wake :meth:`run`."""
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def reset(self) -> None:
        """The data is being fetched again from the start."""
        self.verified = 0
        self.digest_hex = self.sha256_hex = None

    def matches(self) -> bool:
        """Whether the data hashed to the expected digest (True when none was expected)."""
        return self.expected is None or self.digest_hex == self.expected.hex

    async def run(self, prefix: Callable[[], int]) -> None:
        main: Hasher = self.expected.hasher(self.size) if self.expected else hashlib.sha256()
        # When the expected digest is not sha256 the sha256 of the file is still reported.
        extra: Hasher | None = (
            hashlib.sha256() if self.expected and self.expected.algorithm != "sha256" else None
        )
        pos = 0
        while pos < self.size:
            moved = self._moved
            done = prefix()
            if done <= pos:
                await moved.wait()
                continue
            upto = min(done, pos + HASH_SLICE)
            await anyio.to_thread.run_sync(self._hash_span, main, extra, pos, upto)
            pos = self.verified = upto
        self.digest_hex = main.hexdigest()
        self.sha256_hex = extra.hexdigest() if extra is not None else self.digest_hex

    def _hash_span(self, main: Hasher, extra: Hasher | None, start: int, end: int) -> None:
        if not self._buffer:  # one buffer per file, no larger than the file
            self._buffer = bytearray(max(1, min(HASH_BLOCK, self.size)))
        view = memoryview(self._buffer)
        pos = start
        while pos < end:
            n = self._read_into(pos, view[: min(len(view), end - pos)])
            if n <= 0:
                raise IntegrityError(f"{self.name}: partial file shrank while hashing")
            main.update(view[:n])
            if extra is not None:
                extra.update(view[:n])
            pos += n
