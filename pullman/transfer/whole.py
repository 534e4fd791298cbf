"""A small file its probe brought whole (:attr:`~pullman.transfer.resolve.Target.body`):
written in one positional write and hashed from the same bytes, with no crew of connections.
Verification and the commit stay the engine's, as for any other file."""

from __future__ import annotations

import anyio

from pullman.transfer.hashing import PrefixHasher
from pullman.transfer.landing import publish
from pullman.transfer.segments import SegmentMap
from pullman.transfer.shared import Shared


async def land_whole(sh: Shared, hasher: PrefixHasher, body: bytes, min_piece: int) -> None:
    """Write ``body`` at offset 0 of the staged file and hash it (the digest is ready when
    this returns). The write is whole or raises (``Staging.write`` retries short writes)."""
    size = len(body)
    sh.fetched += size
    sh.last_byte_at = sh.clock.now()
    written = await anyio.to_thread.run_sync(sh.staging.write, 0, [body])
    hasher.feed(0, [body], written)  # else (it cannot be, at offset 0) it reads them back
    sh.smap = SegmentMap(size, [(0, written)], min_piece=min_piece)
    publish(sh.landing, sh.staging, sh.smap)
    sh.meter.feed(sh.clock.now(), sh.fetched)
    await hasher.run(lambda: sh.smap.done_bytes)
