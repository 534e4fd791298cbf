"""What a host taught about its throttle, remembered so the next download from it starts tuned
(issue 17): the byte box (how much a connection gets before the crawl), whether a kept-alive
request gets a fresh burst, and whether recycling for speed pays off there at all. Pure: the
index stores the JSON (:mod:`pullman.hostmemory`); the engine applies and updates it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Protocol

from pullman.core.urls import origin

MIN_BOX = 64 << 10
MAX_BOX = 1 << 40


@dataclass(frozen=True)
class HostLessons:
    box: int | None = None
    """Bytes a connection gets at full speed before the host slows it (None: none seen)."""
    keepalive_resets: bool | None = None
    """A new request on a kept-alive connection gets a fresh burst (None: not known)."""
    futile: bool = False
    """Recycling slow connections did not pay off (an aggregate cap)."""
    first_only: bool = False
    """Only a connection's first request gets a burst: one request per connection."""

    @property
    def empty(self) -> bool:
        nothing = self.box is None and self.keepalive_resets is None
        return nothing and not self.futile and not self.first_only

    def to_json(self) -> str:
        doc = {"box": self.box, "keepalive_resets": self.keepalive_resets, "futile": self.futile}
        return json.dumps({**doc, "first_only": self.first_only}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HostLessons | None:
        """Parse what the index holds; None for anything malformed (it is only a hint)."""
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        box, keep, futile = doc.get("box"), doc.get("keepalive_resets"), doc.get("futile", False)
        if box is not None and (type(box) is not int or not MIN_BOX <= box <= MAX_BOX):
            return None
        if keep is not None and not isinstance(keep, bool):
            return None
        first_only = doc.get("first_only", False)
        if not isinstance(futile, bool) or not isinstance(first_only, bool):
            return None
        return cls(box, keep, futile, first_only)


def host_key(url: str) -> str:
    """Where a host's lessons are kept: its origin (scheme, host, port), never a path or query
    (a signed CDN link's query is a secret)."""
    scheme, host, port = origin(url)
    return f"host:{scheme}://{host}:{port}"


class HostMemory(Protocol):
    def recall(self, url: str) -> HostLessons | None: ...

    def learn(self, url: str, lessons: HostLessons) -> None: ...
