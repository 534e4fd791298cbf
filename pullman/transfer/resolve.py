"""Resolving a file's URL to where its bytes are: redirects, size, validators, range support.

A one-byte probe (``Range: bytes=0-0``) follows redirects by hand, so credentials are sent to the
source's own origin only and never to the CDN it redirects to. For a small file of known size
(:data:`WHOLE_BODY`) the probe asks for every byte instead: one request instead of two, and the
body comes back in :attr:`Target.body` (a 50-file repo of small files is mostly requests).
When a presigned CDN URL expires mid-download, :meth:`Resolver.refresh` probes again (once,
however many connections noticed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import anyio

from pullman.core.headers import parse_content_length, strong_etag
from pullman.core.plan import FileSpec
from pullman.core.proxies import Proxies
from pullman.core.redirects import MAX_REDIRECTS, REDIRECTS, next_hop, too_many_redirects
from pullman.core.urls import redact, same_origin
from pullman.errors import AccessDenied, ProtocolViolation
from pullman.net.client import DIRECT, Connection, Response
from pullman.net.errors import deadline_error, error_for_status
from pullman.transfer.check import content_range, encoded
from pullman.transfer.slots import SMALL_FILE

WHOLE_BODY = SMALL_FILE
"""A file of known size up to this is fetched by its probe (the small lane's files)."""


@dataclass(frozen=True)
class Target:
    """Where the bytes of one file are served right now."""

    url: str
    size: int | None
    ranges: bool
    etag: str | None = None
    last_modified: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    redirected: bool = False
    body: bytes | None = field(default=None, repr=False, compare=False)
    """The whole file, when the probe of a small file asked for all of it and got it."""

    def request_headers(self, start: int | None = None, end: int | None = None) -> dict[str, str]:
        """Headers for a GET of ``[start, end)``: credentials only if this is their origin."""
        out = dict(self.headers)
        if start is not None and end is not None:
            out["Range"] = f"bytes={start}-{end - 1}"
            validator = self.etag or self.last_modified
            if validator:
                out["If-Range"] = validator
        return out


class Resolver:
    """``deadline``: seconds the whole probe (every redirect hop) may take."""

    def __init__(self, spec: FileSpec, deadline: float = 60.0, proxies: Proxies = DIRECT) -> None:
        self.spec = spec
        self.deadline = deadline
        self.proxies = proxies
        self.current: Target | None = None
        self.refreshes = 0
        self._lock = anyio.Lock()

    async def resolve(self) -> Target:
        async with self._lock:
            self.current = await self._probe()
            return self.current

    async def refresh(self, stale: Target) -> Target:
        """A fresh target, unless another connection already refreshed the stale one."""
        async with self._lock:
            if self.current is not None and self.current is not stale:
                return self.current
            self.current = await self._probe()
            self.refreshes += 1
            return self.current

    async def _probe(self) -> Target:
        try:
            with anyio.fail_after(self.deadline):
                return await self._probe_hops()
        except TimeoutError:
            raise deadline_error(self.spec.url, self.deadline) from None

    async def _probe_hops(self) -> Target:
        url = self.spec.url
        conn = Connection(insecure=self.spec.insecure, proxies=self.proxies)
        try:
            whole = self._whole()
            for _ in range(MAX_REDIRECTS + 1):
                headers = self._auth_for(url)
                headers["Range"] = f"bytes=0-{max(0, whole - 1)}"
                async with conn.stream(url, headers) as response:
                    if response.status in REDIRECTS:
                        location = response.headers.get("location")
                        url = next_hop(url, location, insecure=self.spec.insecure)
                        continue
                    target = self._target(url, response)
                    if whole > 1 and target.size == whole:
                        target = replace(target, body=await _whole_body(response, whole))
                    return target
            raise too_many_redirects(self.spec.url)
        finally:
            await conn.aclose()

    def _whole(self) -> int:
        """The bytes the probe asks for: the whole file if it is small and its size known."""
        size = self.spec.size
        return size if size is not None and 1 < size <= WHOLE_BODY else 1

    def _auth_for(self, url: str) -> dict[str, str]:
        """The spec's credentials, for its own origin and the origins it trusts only."""
        spec = self.spec
        trusted = (spec.url, *spec.auth_to)
        if spec.auth and any(same_origin(url, t) for t in trusted):
            return dict(spec.auth)
        return {}

    def _target(self, url: str, response: Response) -> Target:
        status = response.status
        h = response.headers
        etag = strong_etag(h.get("etag"))
        last_modified = h.get("last-modified")
        redirected = url != self.spec.url
        auth = MappingProxyType(self._auth_for(url))

        def target(size: int | None, ranges: bool) -> Target:
            return Target(url, size, ranges, etag, last_modified, auth, redirected)

        if status == 206:
            cr = content_range(url, h.get("content-range"))
            if cr.start != 0:
                raise ProtocolViolation(f"{redact(url)} answered a range we did not ask for")
            return target(cr.total, True)
        if status == 200:
            return target(parse_content_length(h.get("content-length")), False)
        if status == 416:
            return target(content_range(url, h.get("content-range")).total, True)
        error = error_for_status(status, url, h)
        if redirected and isinstance(error, AccessDenied):
            error.why = "the CDN refused the link the source handed out"
            error.hint = "try again later; if it persists the source's CDN is misconfigured"
        raise error


async def _whole_body(response: Response, size: int) -> bytes | None:
    """All ``size`` bytes of a 200 or of a 206 for ``0-(size-1)`` (None if it fell short)."""
    if encoded(response.headers):
        return None  # left to the workers, which refuse it with the reason
    if response.status == 206:
        cr = content_range(response.url, response.headers.get("content-range"))
        if cr.end != size - 1:
            return None
    elif response.status != 200:
        return None
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        n = await response.fill(view[got:], _ignore)
        if n == 0:
            return None
        got += n
    return bytes(buffer)


def _ignore(_n: int) -> None:
    return None
