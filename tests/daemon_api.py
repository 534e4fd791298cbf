"""A real ``pullman daemon`` with its API, for the API tests: started as a subprocess, reached
over its Unix socket and its TCP listener with a real HTTP client, and an SSE reader thread that
timestamps every event it receives."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2

from pullman import config

Event = tuple[float, str, dict[str, Any]]
"""(monotonic arrival time, event name, data)."""


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class ApiDaemon:
    def __init__(self, env: dict[str, str], log: Path, listen: str | None = "127.0.0.1:0") -> None:
        self.env = env
        self.log = log
        self.listen = listen
        self.paths = config.Paths.from_env(env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    @property
    def socket(self) -> Path:
        return self.paths.api_socket

    @property
    def token(self) -> str:
        return (self.paths.data / "api-token").read_text().strip()

    def start(self) -> None:
        args = ["daemon"] + (["--listen", self.listen] if self.listen else [])
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pullman", *args], env=self.env, stdout=out, stderr=out
            )
        health = wait_for("the daemon's API to answer", self._health)
        self.url = (health.get("listen") or "").rstrip("/")

    def _health(self) -> dict[str, Any] | None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            code, log = self.proc.returncode, self.log.read_text()
            raise AssertionError(f"the daemon exited {code}: {log}")
        if not self.socket.is_socket():
            return None
        try:
            with self.unix() as client:
                return client.get("/api/health").json()  # type: ignore[no-any-return]
        except httpx2.TransportError:
            return None

    def unix(self) -> httpx2.Client:
        transport = httpx2.HTTPTransport(uds=str(self.socket))
        return httpx2.Client(transport=transport, base_url="http://pullman", timeout=10)

    def tcp(self, *, token: bool = True, csrf: bool = True) -> httpx2.Client:
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {self.token}"
        if csrf:
            headers["X-Pullman-CSRF"] = "1"
        return httpx2.Client(base_url=self.url, headers=headers, timeout=10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.proc = None
        return code


class SseReader:
    """Reads ``GET /api/events`` in a thread; every event lands in :attr:`events`, timed."""

    def __init__(self, client: httpx2.Client, path: str = "/api/events") -> None:
        self.client = client
        self.path = path
        self.events: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []
        self.status: int | None = None
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._stop = threading.Event()

    def __enter__(self) -> SseReader:
        self._thread.start()
        self.next(lambda name, _data: name == "hello", timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.client.close()
        self._thread.join(5)

    def _read(self) -> None:
        name, data = "message", ""
        try:
            with self.client.stream("GET", self.path, timeout=httpx2.Timeout(10, read=None)) as r:
                self.status = r.status_code
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and data:
                        self.events.put((time.monotonic(), name, json.loads(data)))
                        name, data = "message", ""
        except Exception:  # closed by __exit__, or the daemon stopped
            return

    def next(self, match: Callable[[str, dict[str, Any]], bool], timeout: float = 10) -> Event:
        """The first event (from now on) that ``match``es, or AssertionError at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no matching event within {timeout}s; saw {self.names()}")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(event)
            if match(event[1], event[2]):
                return event

    def names(self) -> list[str]:
        return [name for _, name, _ in self.seen[-20:]]


def state_change(job_id: int, to: str) -> Callable[[str, dict[str, Any]], bool]:
    return lambda name, data: name == "job" and data["job"]["id"] == job_id and data["to"] == to
