"""Fan-out of server-sent events to the clients of ``GET /api/events``, in bounded memory.

Each subscriber has a queue of at most :data:`QUEUE` messages. A client too slow to keep up
(its queue full) is dropped, not buffered without end: its stream ends, and a browser's
``EventSource`` reconnects and gets a fresh snapshot (the ``hello`` event). At most
:data:`MAX_SUBSCRIBERS` streams are open at once; one more gets a 503.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

QUEUE: Final = 256
MAX_SUBSCRIBERS: Final = 512


class TooManySubscribers(Exception):
    pass


def sse(name: str, data: Any, seq: int | None = None) -> bytes:
    """One event in the text/event-stream format (``data`` as one line of JSON)."""
    head = f"id: {seq}\n" if seq is not None else ""
    body = json.dumps(data, separators=(",", ":"), default=str)
    return f"{head}event: {name}\ndata: {body}\n\n".encode()


class Subscriber:
    def __init__(self) -> None:
        self._send: MemoryObjectSendStream[bytes]
        self._recv: MemoryObjectReceiveStream[bytes]
        self._send, self._recv = anyio.create_memory_object_stream[bytes](QUEUE)
        self.dropped = False

    def offer(self, message: bytes) -> None:
        if self.dropped:
            return
        try:
            self._send.send_nowait(message)
        except anyio.WouldBlock:  # too slow: end its stream rather than grow without bound
            self.dropped = True
            self._send.close()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self.dropped = True

    async def receive(self) -> bytes | None:
        """The next message, or None when the stream is over (dropped or the hub closed)."""
        try:
            return await self._recv.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            return None

    def close(self) -> None:
        self._send.close()
        self._recv.close()


class Hub:
    def __init__(self, max_subscribers: int = MAX_SUBSCRIBERS) -> None:
        self._subscribers: set[Subscriber] = set()
        self._max = max_subscribers
        self.seq = 0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, name: str, data: Any) -> None:
        self.seq += 1
        message = sse(name, data, self.seq)
        for subscriber in list(self._subscribers):
            subscriber.offer(message)

    @contextmanager
    def subscribe(self) -> Iterator[Subscriber]:
        if len(self._subscribers) >= self._max:
            raise TooManySubscribers(f"{len(self._subscribers)} event streams are open already")
        subscriber = Subscriber()
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)
            subscriber.close()

    def close(self) -> None:
        """End every stream (the daemon is stopping)."""
        for subscriber in list(self._subscribers):
            subscriber.close()
