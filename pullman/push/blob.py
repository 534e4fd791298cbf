"""One blob into a registry: skipped if it is there, mounted if another repository has it,
else uploaded in chunks that survive an interruption.

1. ``HEAD /v2/<repo>/blobs/<digest>``: 200, nothing to send.
2. An upload this pullman left unfinished (:mod:`pullman.push.state`): ``GET`` on its URL says
   how much the registry holds (``Range: 0-<last>``); the upload continues from there. If the
   registry forgot it (404, or it no longer accepts its state: distribution cancels an upload
   whose data grew past the state it handed out, as a chunk cut short does), the blob starts
   again.
3. ``POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<repo>`` for each repository known to
   have the blob: 201 is a mount (no data sent); 202 is an upload session, used.
4. ``POST .../uploads/`` -> 202 + ``Location``; a blob no larger than a chunk goes in one ``PUT
   <location>?digest=``; a larger one in ``PATCH`` chunks (``Content-Range``), each answer's
   ``Location`` and ``Range`` saved before the next, then an empty ``PUT ...?digest=``.

A chunk in flight when the push is stopped (SIGINT, SIGTERM) gets ``grace`` seconds to finish,
so that an interrupted push loses nothing it could keep. Transient failures are retried with
the project's policy; a retry resumes as in 2.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import anyio
import anyio.lowlevel

from pullman.core.ollama_manifest import Layer
from pullman.core.push_target import PushTarget
from pullman.core.uploads import content_range, next_location, offset_from_range, with_query
from pullman.errors import IntegrityError, NetworkError, TransientError, collapse_groups
from pullman.fsio import disk_errors
from pullman.net.registry_client import Body, RegistryClient, Reply, registry_error
from pullman.net.retry import RetryNote, RetryPolicy, retrying
from pullman.push.state import PushState

T = TypeVar("T")
READ_BLOCK = 1 << 20
OCTETS = "application/octet-stream"
MAX_MOUNT_TRIES = 3
FORGOTTEN = frozenset({"BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID", "RANGE_INVALID"})


@dataclass
class BlobReport:
    """What happened to one blob (shown while it runs, and in ``--json``)."""

    layer: Layer
    action: str = "waiting"
    """``waiting``, ``checking``, ``uploading``, then ``skipped``, ``mounted`` or ``uploaded``."""
    held: int = 0
    """Bytes the registry holds of it (the whole size once skipped, mounted or uploaded)."""
    sent: int = 0
    """Body bytes sent, including any sent again after a failure."""
    resumed_from: int = 0
    """Where this run's upload of it began (an earlier run's offset, when one was resumed)."""
    restarted: int = 0
    """Times the registry had forgotten an upload and the blob started again."""
    mounted_from: str | None = None
    retries: int = 0
    note: str = ""
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class BlobContext:
    client: RegistryClient
    target: PushTarget
    state: PushState
    policy: RetryPolicy
    chunk: int
    grace: float


class UploadForgotten(TransientError):
    """The registry no longer has the upload session: the blob starts again."""


class BlobPush:
    def __init__(self, ctx: BlobContext, layer: Layer, path: Path, sources: list[str]) -> None:
        self.ctx = ctx
        self.layer = layer
        self.path = path
        self.sources = [s for s in sources if s != ctx.target.repo]
        self.report = BlobReport(layer)
        self._first = True
        self._mounts_tried = False

    @property
    def digest(self) -> str:
        return str(self.layer.digest)

    @property
    def blob_url(self) -> str:
        target = self.ctx.target
        return f"{target.base}/v2/{target.repo}/blobs/{self.digest}"

    async def run(self) -> BlobReport:
        report = self.report
        report.action = "checking"
        if await self._retrying(self._exists):
            report.action, report.held = "skipped", self.layer.size
        else:
            report.action = "uploading"
            while True:
                before = report.held
                try:
                    await self._retrying(self._attempt)
                    break
                except TransientError:
                    if report.held <= before:  # no progress in a whole retry budget
                        raise
            if report.action == "uploading":
                report.action = "uploaded"
        report.note = ""
        self.ctx.state.remember(self.ctx.target.repo, [self.digest])
        return report

    async def _retrying(self, fn: Callable[[], Awaitable[T]]) -> T:
        def noted(note: RetryNote) -> None:
            self.report.retries += 1
            self.report.note = str(note)

        return await retrying(fn, self.ctx.policy, on_retry=noted)

    # ------------------------------------------------------------------ steps

    async def _exists(self) -> bool:
        reply = await self.ctx.client.send("HEAD", self.blob_url)
        if reply.status == 200:
            return True
        if reply.status == 404:
            return False
        raise self._error(reply)

    async def _attempt(self) -> None:
        url = await self._session()
        if url is None:
            return
        size = self.layer.size
        if self.report.held == 0 and size <= self.ctx.chunk:  # one PUT, as one chunk
            await self._guarded(functools.partial(self._commit, url, self._body(0, size), size))
            return
        while self.report.held < self.layer.size:
            url = await self._guarded(functools.partial(self._patch, url))
        await self._commit(url, None, 0)

    async def _session(self) -> str | None:
        """The upload URL to continue (``report.held`` set), or None once mounted."""
        ctx, report = self.ctx, self.report
        saved = ctx.state.upload(ctx.target.repo, self.digest)
        if saved is not None and saved.size == self.layer.size:
            resumed = await self._status(saved.url)
            if resumed is not None:
                if self._first:
                    report.resumed_from = report.held
                self._first = False
                return resumed
            ctx.state.drop_upload(ctx.target.repo, self.digest)
            report.restarted += 1
        self._first = False
        report.held = 0
        if not self._mounts_tried:
            self._mounts_tried = True
            for i, source in enumerate(self.sources[:MAX_MOUNT_TRIES]):
                url = await self._start(source)
                if url is None or i == len(self.sources[:MAX_MOUNT_TRIES]) - 1:
                    return url
                await self._cancel(url)  # not in that repository: try the next one
        return await self._start(None)

    async def _cancel(self, url: str) -> None:
        """Give up an upload session (best effort: the registry purges it anyway)."""
        await self.ctx.client.send("DELETE", url)
        self.ctx.state.drop_upload(self.ctx.target.repo, self.digest)

    async def _status(self, url: str) -> str | None:
        """Ask how far a saved upload got; None if the registry forgot it."""
        reply = await self.ctx.client.send("GET", url)
        if reply.status in (200, 204):
            held = offset_from_range(reply.headers.get("range"), size=self.layer.size, url=url)
            current = next_location(url, reply.headers.get("location"))
            self._save(current, held)
            return current
        if reply.status in (401, 403, 429) or reply.status >= 500:
            raise self._error(reply)
        return None

    async def _start(self, source: str | None) -> str | None:
        """``POST`` an upload (a mount from ``source``): its URL, or None once mounted."""
        target = self.ctx.target
        url = f"{target.base}/v2/{target.repo}/blobs/uploads/"
        if source is not None:
            url = with_query(url, mount=self.digest, **{"from": source})
        reply = await self.ctx.client.send("POST", url, {"Content-Length": "0"}, b"")
        if reply.status == 201 and source is not None:
            self.report.action, self.report.mounted_from = "mounted", source
            self.report.held = self.layer.size
            return None
        if reply.status != 202:
            raise self._error(reply)
        location = next_location(url, reply.headers.get("location"))
        if location == url:
            raise registry_error(reply, f"{target.host}: an upload without a Location")
        self._save(location, 0)
        return location

    async def _patch(self, url: str) -> str:
        """Send the next chunk; the URL for the one after."""
        start = self.report.held
        length = min(self.ctx.chunk, self.layer.size - start)
        headers = {
            "Content-Type": OCTETS,
            "Content-Range": content_range(start, length),
            "Content-Length": str(length),
        }
        reply = await self.ctx.client.send("PATCH", url, headers, self._body(start, length))
        if reply.status != 202:
            raise self._forgotten(reply) or self._error(reply)
        held = offset_from_range(reply.headers.get("range"), size=self.layer.size, url=url)
        if held > start + length:
            raise registry_error(reply, f"{self.ctx.target.host}: it holds more than was sent")
        following = next_location(url, reply.headers.get("location"))
        self._save(following, held)
        return following

    async def _commit(self, url: str, body: Body | None, length: int) -> None:
        headers = {"Content-Type": OCTETS, "Content-Length": str(length)}
        reply = await self.ctx.client.send(
            "PUT", with_query(url, digest=self.digest), headers, body if body else b""
        )
        if reply.status not in (201, 204):
            raise self._forgotten(reply) or self._error(reply)
        answered = reply.headers.get("docker-content-digest")
        if answered and answered != self.digest:
            raise IntegrityError(
                f"{self.ctx.target.host} stored blob {self.digest} as {answered[:80]}",
                hint="the registry is broken or rewrites data; nothing was tagged",
            )
        self.report.held = self.layer.size

    # ------------------------------------------------------------------ helpers

    def _save(self, url: str, held: int) -> None:
        self.report.held = held
        self.ctx.state.save_upload(self.ctx.target.repo, self.digest, url, held, self.layer.size)

    def _forgotten(self, reply: Reply) -> UploadForgotten | None:
        if reply.status in (404, 416) or reply.codes() & FORGOTTEN:
            self.ctx.state.drop_upload(self.ctx.target.repo, self.digest)
            self.report.restarted += 1
            self.report.held = 0
            return UploadForgotten(
                f"{self.ctx.target.host} no longer has the upload of {self.digest[:19]}",
                why=reply.message() or f"it answered {reply.status}",
                hint="the blob is sent again from its start",
            )
        return None

    def _error(self, reply: Reply) -> Exception:
        if reply.status in (401, 403):
            return self.ctx.client.denied(reply.status, why=reply.message())
        return registry_error(reply, f"{self.ctx.target}: blob {self.digest[:19]}")

    def _body(self, start: int, length: int) -> Body:
        """A factory of the byte stream of ``length`` bytes at ``start`` of the blob file."""

        async def stream() -> AsyncIterator[bytes]:
            with disk_errors(self.path):
                async with await anyio.open_file(self.path, "rb") as f:
                    await f.seek(start)
                    left = length
                    while left > 0:
                        block = await f.read(min(READ_BLOCK, left))
                        if not block:
                            raise NetworkError(f"{self.path} ended early", why="it shrank")
                        left -= len(block)
                        self.report.sent += len(block)
                        yield block

        return stream

    async def _guarded(self, work: Callable[[], Awaitable[T]]) -> T:
        """``work`` shielded from a stop, which gives it ``grace`` seconds to finish."""
        shield = anyio.CancelScope(shield=True)
        result: list[T] = []

        async def on_stop() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                shield.deadline = anyio.current_time() + self.ctx.grace

        with collapse_groups():  # the chunk's own error, not a group of one
            async with anyio.create_task_group() as tg:
                tg.start_soon(on_stop)
                with shield:
                    result.append(await work())
                tg.cancel_scope.cancel()
        # Outside the shield: a stop that came meanwhile lands here (the next chunk would be
        # shielded again before it could).
        await anyio.lowlevel.checkpoint()
        if not result:  # pragma: no cover - the grace ran out, so a stop is pending
            raise NetworkError("stopped in the middle of a chunk")
        return result[0]
