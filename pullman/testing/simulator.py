"""The local registry / CDN simulator: two origins on loopback, in a thread or in the foreground.

``origin`` plays the web server, registry or Hub; ``cdn`` plays the CDN that serves presigned,
expiring URLs. Files are added with :meth:`Simulator.add_file` and served at
``{origin}/files/{name}``; with ``via_cdn=True`` the origin answers 307 to a signed CDN URL.
Later modules add Ollama registry and Hub endpoints on the same origins.
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import time
from collections.abc import Callable, Iterable
from urllib.parse import quote

from pullman.testing.faults import Fault, Throttle
from pullman.testing.files import Data, SimFile, serve_file
from pullman.testing.runner import ServerRunner
from pullman.testing.server import Origin, Request, send_simple

_SECRET = b"pullman-simulator"


class Simulator(ServerRunner):
    thread_name = "pullman-simulator"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__()
        self.origin = Origin("origin", host, port, tls=tls)
        self.cdn = Origin("cdn", host, cdn_port, tls=tls)
        self.files: dict[str, SimFile] = {}
        self.cdn_throttle: Throttle | None = None
        self.origin_throttle: Throttle | None = None
        self.clock: Callable[[], float] = time.time
        self.origin.route("GET", r"/files/(?P<name>.+)", self._serve_origin)
        self.cdn.route("GET", r"/cdn/(?P<name>.+)", self._serve_cdn)

    # ------------------------------------------------------------------ content

    def add_file(
        self,
        name: str,
        data: Data,
        *,
        faults: Iterable[Fault] = (),
        throttle: Throttle | None = None,
        via_cdn: bool = False,
        cdn_expires: float | None = None,
        etag: bool = True,
        last_modified: bool = True,
        bad_links: int = 0,
    ) -> SimFile:
        f = SimFile(
            name=name,
            data=data,
            faults=list(faults),
            throttle=throttle,
            via_cdn=via_cdn,
            cdn_expires=cdn_expires,
            etag=etag,
            last_modified=last_modified,
            bad_links=bad_links,
        )
        self.files[name] = f
        return f

    def url(self, name: str) -> str:
        return f"{self.origin.url}/files/{quote(name)}"

    def signed_url(self, name: str, expires_in: float | None) -> str:
        # Expiry in milliseconds since the epoch (0: never), so sub-second links work in tests.
        exp = int((self.clock() + expires_in) * 1000) if expires_in is not None else 0
        sig = self._sign(name, exp)
        return f"{self.cdn.url}/cdn/{quote(name)}?X-Amz-Expires={exp}&X-Amz-Signature={sig}"

    def total_bytes_sent(self) -> int:
        return sum(f.bytes_sent for f in self.files.values())

    # ------------------------------------------------------------------ handlers

    async def _serve_origin(self, request: Request) -> None:
        f = self._file(request)
        if f is None:
            await send_simple(request, 404, b'{"error": "no such file"}')
            return
        if f.via_cdn:
            location = self.signed_url(f.name, f.cdn_expires)
            await send_simple(request, 307, b"", [("Location", location)])
            return
        await serve_file(request, f, f.throttle or self.origin_throttle)

    async def _serve_cdn(self, request: Request) -> None:
        f = self._file(request)
        exp = _first(request.query.get("X-Amz-Expires"))
        sig = _first(request.query.get("X-Amz-Signature"))
        if f is None or exp is None or sig is None or not exp.isdigit():
            await send_simple(request, 403, b"<Error><Code>AccessDenied</Code></Error>")
            return
        if not hmac.compare_digest(sig, self._sign(f.name, int(exp))):
            await send_simple(request, 403, b"<Error><Code>SignatureDoesNotMatch</Code></Error>")
            return
        if int(exp) and self.clock() * 1000 > int(exp):
            body = b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
            await send_simple(request, 403, body, content_type="application/xml")
            return
        bad = f.corrupt_via(sig)
        await serve_file(request, f, f.throttle or self.cdn_throttle, corrupt=bad)

    def _file(self, request: Request) -> SimFile | None:
        assert request.match is not None
        return self.files.get(request.match.group("name"))

    def _sign(self, name: str, exp: int) -> str:
        return hmac.new(_SECRET, f"{name}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]

    # ------------------------------------------------------------------ lifecycle

    def origins(self) -> list[Origin]:
        return [self.origin, self.cdn]


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None
