"""The journal of one partial download: which byte ranges are safely on disk, and of what.

Pure (de)serialisation. The journal names the file it belongs to (size, digest, validators) so a
resume never mixes bytes of two different versions of a file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pullman.transfer.segments import Span, spans_from_json, spans_to_json

VERSION = 1


@dataclass(frozen=True)
class Journal:
    size: int
    digest: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    source: str = ""
    done: tuple[Span, ...] = field(default=())

    def to_bytes(self) -> bytes:
        doc = {
            "version": VERSION,
            "size": self.size,
            "digest": self.digest,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "source": self.source,
            "done": spans_to_json(self.done),
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Journal:
        """Parse a journal; raises ``ValueError`` for anything damaged or foreign."""
        try:
            doc = json.loads(raw)
        except RecursionError:
            raise ValueError("journal nests too deep") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ValueError("not a pullman journal of this version")
        size = doc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("bad size")
        texts = {}
        for key in ("digest", "etag", "last_modified"):
            value = doc.get(key)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"bad {key}")
            texts[key] = value
        source = doc.get("source", "")
        return cls(
            size=size,
            digest=texts["digest"],
            etag=texts["etag"],
            last_modified=texts["last_modified"],
            source=source if isinstance(source, str) else "",
            done=tuple(spans_from_json(doc.get("done"), size)),
        )

    def matches(
        self, size: int, digest: str | None, etag: str | None, last_modified: str | None
    ) -> bool:
        """Whether the partial data belongs to the file the server serves now."""
        if size != self.size:
            return False
        if digest and self.digest and digest != self.digest:
            return False
        if etag and self.etag:
            return etag == self.etag
        return not (last_modified and self.last_modified and last_modified != self.last_modified)
