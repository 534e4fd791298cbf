"""Bytes received over time by a contender, for the throughput plot.

Every ``interval`` seconds :class:`ByteTrace` asks the kernel (``ss -tin``) how many bytes each
client-side TCP connection to the data server has received (``bytes_received`` of its
``tcp_info``). A connection's count is kept after it closes, so the sum over every connection
seen is the bytes received so far; what a connection received between the last sample and its
close is missed (at most ``interval`` of its traffic). Only one contender runs at a time and the
data server's port is the bench's own, so every such connection is the contender's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable

_PEER = re.compile(r"\S+\s+\d+\s+\d+\s+(\S+)\s+(\S+)")
_RECEIVED = re.compile(r"bytes_received:(\d+)")


def available() -> bool:
    return shutil.which("ss") is not None


def parse_ss(text: str) -> dict[str, int]:
    """``ss -Htin`` output -> local address:port -> bytes received."""
    out: dict[str, int] = {}
    local: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            m = _PEER.match(line)
            local = m.group(1) if m else None
            continue
        got = _RECEIVED.search(line)
        if local is not None and got is not None:
            out[local] = int(got.group(1))
    return out


class ByteTrace(threading.Thread):
    """Samples ``(seconds since start, bytes received so far)`` until :meth:`stop`."""

    def __init__(self, ports: Iterable[int], interval: float = 0.1) -> None:
        super().__init__(name="byte-trace", daemon=True)
        ports = list(ports)
        clause = " or ".join(f"dport = :{p}" for p in ports)
        self.argv = ["ss", "-Htin", "state", "connected", f"( {clause} )"]
        self.interval = interval
        self.points: list[tuple[float, int]] = []
        self.connections: dict[str, int] = {}
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def sample(self) -> None:
        try:
            text = subprocess.run(
                self.argv, capture_output=True, text=True, timeout=5, check=False
            ).stdout
        except (OSError, subprocess.TimeoutExpired):
            return
        for local, received in parse_ss(text).items():
            self.connections[local] = max(received, self.connections.get(local, 0))
        self.points.append((round(time.monotonic() - self._t0, 3), sum(self.connections.values())))

    def run(self) -> None:
        self._t0 = time.monotonic()
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> list[tuple[float, int]]:
        self._stop_event.set()
        self.join(5)
        self.sample()
        return self.points
