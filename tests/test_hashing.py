"""The prefix hasher: bytes that continue the digest are hashed from the writer's buffers (no
read-back from the page cache); bytes written ahead of it are read back once the prefix reaches
them; either way the digest sees every byte once, in order."""

from __future__ import annotations

import hashlib
import random
import threading

import anyio
import anyio.lowlevel
import pytest

from pullman.core.digests import Digest, sha256
from pullman.transfer.hashing import PrefixHasher

KiB = 1 << 10


class Disk:
    """A file in memory that counts what is read back from it."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self.read_back = 0
        self.done: list[tuple[int, int]] = []

    def write(self, offset: int, chunk: bytes) -> None:
        self.data[offset : offset + len(chunk)] = chunk
        self.done.append((offset, offset + len(chunk)))

    def prefix(self) -> int:
        end = 0
        for start, stop in sorted(self.done):
            if start > end:
                break
            end = max(end, stop)
        return end

    def read_into(self, offset: int, view: memoryview) -> int:
        n = min(len(view), len(self.data) - offset)
        view[:n] = self.data[offset : offset + n]
        self.read_back += n
        return n


async def _hash(hasher: PrefixHasher, disk: Disk) -> None:
    await hasher.run(disk.prefix)


def test_in_order_writes_are_hashed_from_memory_and_never_read_back() -> None:
    data = random.Random(1).randbytes(300 * KiB)
    disk = Disk(len(data))
    hasher = PrefixHasher("f", len(data), sha256(hashlib.sha256(data).hexdigest()), disk.read_into)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_hash, hasher, disk)
            for pos in range(0, len(data), 64 * KiB):
                chunk = data[pos : pos + 64 * KiB]
                disk.write(pos, chunk)
                # the parts as a worker holds them: bytes and a memoryview cut short
                parts = [chunk[:1000], memoryview(chunk + b"not written")[1000:]]
                assert hasher.feed(pos, parts, len(chunk))
                hasher.advanced()
                await anyio.lowlevel.checkpoint()

    anyio.run(main)
    assert hasher.matches()
    assert hasher.fed == len(data)
    assert disk.read_back == 0


def test_out_of_order_pieces_are_read_back_and_the_digest_stays_in_order() -> None:
    data = random.Random(2).randbytes(512 * KiB)
    disk = Disk(len(data))
    hasher = PrefixHasher("f", len(data), sha256(hashlib.sha256(data).hexdigest()), disk.read_into)
    pieces = [(pos, data[pos : pos + 32 * KiB]) for pos in range(0, len(data), 32 * KiB)]
    random.Random(3).shuffle(pieces)
    fed = 0

    async def main() -> None:
        nonlocal fed
        async with anyio.create_task_group() as tg:
            tg.start_soon(_hash, hasher, disk)
            for pos, chunk in pieces:
                disk.write(pos, chunk)
                if await anyio.to_thread.run_sync(hasher.feed, pos, [chunk], len(chunk)):
                    fed += len(chunk)
                hasher.advanced()
                await anyio.lowlevel.checkpoint()

    anyio.run(main)
    assert hasher.matches()
    assert hasher.fed == fed
    assert disk.read_back + hasher.fed == len(data)  # every byte hashed exactly once
    assert disk.read_back > 0


def test_a_short_write_is_hashed_only_as_far_as_it_reached_the_file() -> None:
    data = random.Random(4).randbytes(100 * KiB)
    disk = Disk(len(data))
    hasher = PrefixHasher("f", len(data), sha256(hashlib.sha256(data).hexdigest()), disk.read_into)
    assert hasher.feed(0, [data[: 60 * KiB]], 10 * KiB)  # only 10 KiB reached the file
    assert hasher.verified == 10 * KiB
    assert not hasher.feed(40 * KiB, [data[40 * KiB :]], 60 * KiB)  # ahead: left to run()
    disk.write(0, data)

    anyio.run(_hash, hasher, disk)
    assert hasher.matches()
    assert disk.read_back == 90 * KiB


@pytest.mark.parametrize("algorithm", ["sha256", "git-sha1"])
def test_feeds_from_many_threads_give_the_right_digest(algorithm: str) -> None:
    data = random.Random(5).randbytes(256 * KiB)
    if algorithm == "sha256":
        expected = sha256(hashlib.sha256(data).hexdigest())
    else:
        git = hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False)
        expected = Digest("git-sha1", git.hexdigest())
    disk = Disk(len(data))
    hasher = PrefixHasher("f", len(data), expected, disk.read_into)
    step = 16 * KiB
    disk.write(0, data)  # all on disk; feeds race the read-back

    def feeder(first: int) -> None:
        for pos in range(first, len(data), 2 * step):
            hasher.feed(pos, [data[pos : pos + step]], step)

    threads = [threading.Thread(target=feeder, args=(k * step,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    anyio.run(_hash, hasher, disk)
    assert hasher.matches()
    assert hasher.sha256_hex == hashlib.sha256(data).hexdigest()
    assert disk.read_back + hasher.fed == len(data)
