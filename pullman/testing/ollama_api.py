"""A scripted stand-in for a running Ollama server's HTTP API, on loopback.

The Ollama server binary cannot be installed here, so ``pullman --via-server`` is tested against
this stand-in instead. It speaks the part of the API that the ``ollama`` Python client uses for a
pull (``POST /api/pull``, ``POST /api/show``, ``GET /api/tags``, ``GET /api/version``) with the
same wire format as Ollama: a 200 answer, then NDJSON progress lines in HTTP/1.1 chunks
(``pulling manifest``; per layer ``{"status": "pulling <12 hex>", "digest", "total",
"completed"}`` about every 50 ms, ``completed`` omitted while zero as Go's ``omitempty`` does;
``verifying sha256 digest``; ``writing manifest``; ``success``), or an ``{"error": ...}`` line.

Nothing is really downloaded. Models are registered with :meth:`OllamaAPI.add_model`; each layer
remembers how many bytes it "has", so a new pull resumes where the last one stopped (Ollama keeps
partial downloads). Every pull stream moves bytes at the :class:`PullScript`'s per-stream profile:
``burst_bytes`` at ``fast_rate`` bytes/s, then ``slow_rate`` bytes/s: the CDN slow-down that a fresh
pull fixes. The script can also stall chosen pull attempts (no lines at all), end them with an
error line, or answer them with an HTTP error. Attempts are numbered from 1 in arrival order.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pullman.testing.runner import ServerRunner
from pullman.testing.server import ConnState, Origin, Request, send_simple

TICK = 0.05
"""Seconds between progress lines (Ollama's ticker uses 60 ms)."""
NO_SUCH_MODEL = "pull model manifest: file does not exist"
VERSION = "0.0.0-pullman-standin"


@dataclass
class PullScript:
    """How each pull stream behaves."""

    fast_rate: float = 256.0 * (1 << 20)
    burst_bytes: int = 1 << 62
    """Bytes each stream gets at ``fast_rate`` before it drops to ``slow_rate``."""
    slow_rate: float = 64.0 * (1 << 10)
    stall_on: set[int] = field(default_factory=set)
    """Pull attempts that stall: no more lines after ``stall_after`` bytes of the stream."""
    stall_after: int = 0
    """0: stall right after the response headers, before any line."""
    error_on: dict[int, str] = field(default_factory=dict)
    """Pull attempts that end with this error line after ``error_after`` bytes of the stream."""
    error_after: int = 0
    http_error_on: dict[int, int] = field(default_factory=dict)
    """Pull attempts answered with this HTTP status (and an ``{"error"}`` body) instead."""

    def bytes_in(self, moved: float, seconds: float) -> float:
        """Bytes a stream that already moved ``moved`` bytes gets in the next ``seconds``."""
        fast_left = max(0.0, self.burst_bytes - moved)
        fast_time = fast_left / self.fast_rate
        if seconds <= fast_time:
            return seconds * self.fast_rate
        return fast_left + (seconds - fast_time) * self.slow_rate


@dataclass
class Layer:
    digest: str
    size: int
    have: float = 0.0
    """Bytes "downloaded" so far, kept across pulls."""

    @property
    def short(self) -> str:
        return self.digest[7:19]


@dataclass
class Model:
    name: str
    layers: list[Layer]
    installed: bool = False
    modified: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def digest(self) -> str:
        joined = "".join(layer.digest for layer in self.layers)
        return hashlib.sha256(joined.encode()).hexdigest()


def full_name(name: str) -> str:
    """``llama3`` → ``llama3:latest``, as Ollama names models."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class _ClientGone(Exception):
    """The client closed the stream before it ended."""


class _Stream:
    """The NDJSON body of one pull answer, in HTTP/1.1 chunks."""

    def __init__(self, conn: ConnState) -> None:
        self.conn = conn

    def gone(self) -> bool:
        reader = getattr(self.conn.writer, "_reader", None)  # the peer's FIN shows as EOF here
        at_eof = isinstance(reader, asyncio.StreamReader) and reader.at_eof()
        return at_eof or self.conn.writer.transport.is_closing()

    async def line(self, obj: dict[str, Any]) -> None:
        if self.gone():
            raise _ClientGone
        data = json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        try:
            await self.conn.send(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        except ConnectionError as exc:
            raise _ClientGone from exc

    async def wait(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        if self.gone():
            raise _ClientGone

    async def stall(self) -> None:
        while True:
            await self.wait(TICK)

    async def end(self) -> None:
        await self.conn.send(b"0\r\n\r\n")


class OllamaAPI(ServerRunner):
    """The stand-in server; :meth:`start` serves it from a background thread."""

    thread_name = "pullman-ollama-api"

    def __init__(
        self, script: PullScript | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__()
        self.origin = Origin("ollama", host, port)
        self.script = script or PullScript()
        self.models: dict[str, Model] = {}
        self.pulls = 0
        """Pull requests (connections) so far."""
        self.closed_early: list[int] = []
        """Pull attempts whose stream the client closed before it ended."""
        self.pull_bodies: list[dict[str, Any]] = []
        self.origin.route("POST", r"/api/pull", self._pull)
        self.origin.route("POST", r"/api/show", self._show)
        self.origin.route("GET", r"/api/tags", self._tags)
        self.origin.route("GET", r"/api/version", self._version)

    @property
    def url(self) -> str:
        return self.origin.url

    def add_model(self, name: str, layer_sizes: list[int], *, installed: bool = False) -> Model:
        """Register a model the "registry" has; ``installed`` models are already pulled."""
        name = full_name(name)
        layers = []
        for i, size in enumerate(layer_sizes):
            hexdigest = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()
            layers.append(Layer(f"sha256:{hexdigest}", size, float(size) if installed else 0.0))
        model = Model(name, layers, installed=installed)
        self.models[name] = model
        return model

    # ------------------------------------------------------------------ handlers

    async def _pull(self, request: Request) -> None:
        self.pulls += 1
        attempt = self.pulls
        body = _body(request)
        self.pull_bodies.append(body)
        name = full_name(str(body.get("model") or body.get("name") or ""))
        status = self.script.http_error_on.get(attempt)
        if status is not None:
            error = json.dumps({"error": f"scripted failure of pull attempt {attempt}"})
            await send_simple(request, status, error.encode())
            return
        head = [("Content-Type", "application/x-ndjson"), ("Transfer-Encoding", "chunked")]
        await request.conn.send_head(200, head)
        stream = _Stream(request.conn)
        try:
            await self._stream_pull(stream, attempt, self.models.get(name))
            await stream.end()
        except _ClientGone:
            self.closed_early.append(attempt)
            request.conn.close()

    async def _stream_pull(self, out: _Stream, attempt: int, model: Model | None) -> None:
        script = self.script
        stall_at = script.stall_after if attempt in script.stall_on else None
        error = script.error_on.get(attempt)
        if stall_at == 0:
            await out.stall()
        await out.line({"status": "pulling manifest"})
        if model is None:
            await out.line({"error": NO_SUCH_MODEL})
            return
        if error is not None and script.error_after == 0:
            await out.line({"error": error})
            return
        loop = asyncio.get_running_loop()
        moved = 0.0
        for layer in model.layers:
            await out.line(_progress(layer))
            last = loop.time()
            while layer.have < layer.size:
                await out.wait(TICK)
                now = loop.time()
                step = min(script.bytes_in(moved, now - last), layer.size - layer.have)
                last = now
                moved += step
                layer.have = min(float(layer.size), layer.have + step)
                await out.line(_progress(layer))
                if stall_at is not None and moved >= stall_at:
                    await out.stall()
                if error is not None and moved >= script.error_after:
                    await out.line({"error": error})
                    return
        await out.line({"status": "verifying sha256 digest"})
        await out.line({"status": "writing manifest"})
        model.installed = True
        await out.line({"status": "success"})

    async def _show(self, request: Request) -> None:
        body = _body(request)
        name = full_name(str(body.get("model") or body.get("name") or ""))
        model = self.models.get(name)
        if model is None or not model.installed:
            error = json.dumps({"error": f"model '{name}' not found"})
            await send_simple(request, 404, error.encode())
            return
        answer = {
            "modelfile": f"# Modelfile generated by the pullman stand-in\nFROM {name}\n",
            "parameters": "",
            "template": "{{ .Prompt }}",
            "details": _details(),
            "model_info": {"general.architecture": "standin"},
            "capabilities": ["completion"],
            "modified_at": model.modified,
        }
        await send_simple(request, 200, json.dumps(answer).encode())

    async def _tags(self, request: Request) -> None:
        models = [
            {
                "name": m.name,
                "model": m.name,
                "modified_at": m.modified,
                "size": m.size,
                "digest": m.digest,
                "details": _details(),
            }
            for m in self.models.values()
            if m.installed
        ]
        await send_simple(request, 200, json.dumps({"models": models}).encode())

    async def _version(self, request: Request) -> None:
        await send_simple(request, 200, json.dumps({"version": VERSION}).encode())

    # ------------------------------------------------------------------ lifecycle

    def origins(self) -> list[Origin]:
        return [self.origin]


def _progress(layer: Layer) -> dict[str, Any]:
    line: dict[str, Any] = {
        "status": f"pulling {layer.short}",
        "digest": layer.digest,
        "total": layer.size,
    }
    if int(layer.have):
        line["completed"] = int(layer.have)
    return line


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "standin",
        "families": ["standin"],
        "parameter_size": "1B",
        "quantization_level": "Q4_K_M",
    }


def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
