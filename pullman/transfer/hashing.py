"""Hashing a file while it downloads: the contiguous finished prefix is fed to the digest in a
worker thread as it grows, so verification ends moments after the last byte arrives.

Two ways in, one order: a write that lands exactly where the digest has got to is hashed from
the buffers the worker already holds (:meth:`PrefixHasher.feed`, right after the write, in the
write's thread), so most bytes are never read back; bytes written ahead of that point (another
connection's piece) are read back from the page cache by :meth:`PrefixHasher.run` once the
prefix reaches them. A lock keeps the digest's input strictly sequential.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence

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
        self._lock = threading.Lock()
        """Guards the digests and :attr:`verified` (feeds and read-backs run in threads)."""
        self.fed = 0
        """Bytes hashed from a writer's buffers (not read back)."""
        self._main, self._extra = self._digests()

    def _digests(self) -> tuple[Hasher, Hasher | None]:
        expected = self.expected
        main: Hasher = expected.hasher(self.size) if expected else hashlib.sha256()
        # When the expected digest is not sha256 the sha256 of the file is still reported.
        extra: Hasher | None = (
            hashlib.sha256() if expected and expected.algorithm != "sha256" else None
        )
        return main, extra

    def advanced(self) -> None:
        """The finished prefix may have grown: wake :meth:`run`."""
        moved, self._moved = self._moved, anyio.Event()
        moved.set()

    def reset(self) -> None:
        """The data is being fetched again from the start."""
        with self._lock:
            self.verified = self.fed = 0
            self.digest_hex = self.sha256_hex = None
            self._main, self._extra = self._digests()

    def matches(self) -> bool:
        """Whether the data hashed to the expected digest (True when none was expected)."""
        return self.expected is None or self.digest_hex == self.expected.hex

    def feed(self, offset: int, parts: Sequence[bytes | memoryview], nbytes: int) -> bool:
        """``nbytes`` of ``parts`` were just written at ``offset`` (in the writer's thread): hash
        them from memory if they continue the digest exactly; else leave them to :meth:`run`.
        Never waits: while a read-back holds the digest, the bytes are left to it too (a writer
        that waited here would stop its connection's reads)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if offset != self.verified or nbytes <= 0 or self.verified >= self.size:
                return False
            left = nbytes
            for part in parts:
                view = part if len(part) <= left else memoryview(part)[:left]
                self._update(view)
                left -= len(view)
                if left <= 0:
                    break
            self.verified += nbytes
            self.fed += nbytes
            return True
        finally:
            self._lock.release()

    async def run(self, prefix: Callable[[], int]) -> None:
        while self.verified < self.size:
            moved = self._moved
            if prefix() <= self.verified:
                await moved.wait()
                continue
            upto = min(prefix(), self.verified + HASH_SLICE)
            await anyio.to_thread.run_sync(self._hash_span, upto)
        self.digest_hex = self._main.hexdigest()
        extra = self._extra
        self.sha256_hex = extra.hexdigest() if extra is not None else self.digest_hex

    def _update(self, data: bytes | memoryview) -> None:
        self._main.update(data)
        if self._extra is not None:
            self._extra.update(data)

    def _hash_span(self, end: int) -> None:
        """Read back and hash what was written ahead of the digest, up to ``end``."""
        if not self._buffer:  # one buffer per file, no larger than the file
            self._buffer = bytearray(max(1, min(HASH_BLOCK, self.size)))
        view = memoryview(self._buffer)
        while True:
            with self._lock:  # a feed may have moved the digest on meanwhile
                pos = self.verified
                if pos >= end:
                    return
                n = self._read_into(pos, view[: min(len(view), end - pos)])
                if n <= 0:
                    raise IntegrityError(f"{self.name}: partial file shrank while hashing")
                self._update(view[:n])
                self.verified = pos + n
