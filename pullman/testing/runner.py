"""Running loopback origins: in the foreground (``serve``) or from a background thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Self

from pullman.testing.server import Origin


class ServerRunner:
    """Base of the simulator and the Ollama API stand-in: subclasses list their origins."""

    thread_name = "pullman-testing"

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def origins(self) -> list[Origin]:
        raise NotImplementedError

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Run until :meth:`stop` (or cancellation), in the current event loop."""
        self._stopping = asyncio.Event()
        for origin in self.origins():
            await origin.start()
        if ready is not None:
            ready()
        try:
            await self._stopping.wait()
        finally:
            for origin in self.origins():
                await origin.stop()

    def start(self) -> Self:
        """Serve from a background thread (for tests in the same process)."""
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.thread_name} did not start")
        if self._error is not None:
            raise RuntimeError(f"{self.thread_name} failed to start") from self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self._loop = loop
        try:
            loop.run_until_complete(self.serve(ready=self._ready.set))
        except BaseException as exc:  # report startup failures to the starting thread
            self._error = exc
            self._ready.set()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
