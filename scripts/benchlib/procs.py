"""Subprocesses: measured runs under ``/usr/bin/time``, timeouts, and killing whole trees.

Every child starts in its own session (so its process group holds its whole tree) and is
tracked in :data:`LIVE`; :func:`kill_all` (run on exit and on SIGINT / SIGTERM / SIGHUP) kills
every tracked tree. A timed-out run has its descendants killed first, so ``/usr/bin/time``
itself survives long enough to report the CPU time and peak RSS of what ran until then.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TIME = "/usr/bin/time"
LIVE: dict[int, subprocess.Popen[bytes]] = {}
"""Children still running, by pid (each one the leader of its own process group)."""


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, pgrp) for every process we can see."""
    table: dict[int, tuple[int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        with contextlib.suppress(IndexError, ValueError):
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first found, grandchildren after)."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for child, (ppid, _pgrp) in table.items():
        children.setdefault(ppid, []).append(child)
    out: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def group_members(pgid: int) -> list[int]:
    return [pid for pid, (_ppid, pgrp) in _proc_table().items() if pgrp == pgid]


def _kill_pids(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def kill_below(pid: int, sig: int = signal.SIGKILL) -> None:
    """Kill every descendant of ``pid`` (and what they fork meanwhile), but not ``pid``."""
    for _ in range(20):
        below = descendants(pid)
        if not below:
            return
        _kill_pids(below, sig)
        time.sleep(0.02)


def kill_tree(proc: subprocess.Popen[bytes], *, term_first: float = 0.0) -> None:
    """Stop ``proc`` and everything it started; wait for it."""
    if proc.poll() is None and term_first > 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(term_first)
    kill_below(proc.pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    _kill_pids(group_members(proc.pid), signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    LIVE.pop(proc.pid, None)


def kill_all() -> None:
    for proc in list(LIVE.values()):
        kill_tree(proc, term_first=1.0)


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    stdout: Path | None = None,
    stderr: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start a tracked child in its own session, output to files (or discarded)."""
    out = stdout.open("wb") if stdout is not None else subprocess.DEVNULL
    err = stderr.open("wb") if stderr is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    finally:
        for f in (out, err):
            if not isinstance(f, int):
                f.close()
    LIVE[proc.pid] = proc
    return proc


# ---------------------------------------------------------------------- connection sampling


class ConnSampler(threading.Thread):
    """Counts ESTABLISHED client-side TCP connections to ``ports`` on loopback, every
    ``interval`` seconds: the peak is how many connections a contender kept open at once.

    /proc/net/tcp is not read atomically: while connections open and close, one socket can be
    listed twice in a read, or a closed one beside its successor. So a sample counts distinct
    socket inodes, and only those the contender's process tree holds (its fds), once
    :meth:`watch` has named the tree's root.
    """

    def __init__(self, ports: Iterable[int], interval: float = 0.025) -> None:
        super().__init__(name="conn-sampler", daemon=True)
        self.ports = {f"{p:04X}" for p in ports}
        self.interval = interval
        self.peak = 0
        self.seen: set[str] = set()
        self.root: int | None = None
        self._stop_event = threading.Event()

    def watch(self, pid: int) -> None:
        self.root = pid

    def sample(self) -> int:
        owned = _socket_inodes(tree(self.root)) if self.root is not None else None
        inodes: set[str] = set()
        try:
            with Path("/proc/net/tcp").open() as f:
                next(f, None)
                for line in f:
                    parts = line.split()
                    if len(parts) < 10 or parts[3] != "01":  # 01: ESTABLISHED
                        continue
                    local, remote, inode = parts[1], parts[2], parts[9]
                    if remote[-4:] not in self.ports:  # the client's end of the connection
                        continue
                    if owned is not None and inode not in owned:
                        continue
                    inodes.add(inode)
                    self.seen.add(local)
        except OSError:
            return 0
        return len(inodes)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(2)
        return self.peak


def tree(root: int | None) -> list[int]:
    """``root`` and its descendants (from /proc/PID/task/TID/children)."""
    out: list[int] = []
    todo = [root] if root is not None else []
    while todo:
        pid = todo.pop()
        out.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return out


def _socket_inodes(pids: Iterable[int]) -> set[str]:
    inodes: set[str] = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                link = str(fd.readlink())
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    return inodes


# ---------------------------------------------------------------------- measured runs


@dataclass
class Measured:
    argv: list[str]
    rc: int | None
    timed_out: bool
    wall: float
    user: float | None
    sys: float | None
    maxrss_kib: int | None
    stdout: str
    stderr: str
    peak_conns: int
    client_ports: int
    """Distinct client ports the sampler saw (a lower bound of connections opened)."""

    @property
    def cpu(self) -> float | None:
        if self.user is None or self.sys is None:
            return None
        return self.user + self.sys


def _parse_time(path: Path) -> tuple[float | None, float | None, int | None]:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None, None, None
    for line in reversed(lines):
        if line.startswith("BENCH "):
            _, _wall, user, sys_, rss = line.split()
            return float(user), float(sys_), int(rss)
    return None, None, None


def run_measured(
    argv: Sequence[str],
    *,
    run_dir: Path,
    env: Mapping[str, str],
    timeout: float,
    ports: Iterable[int] = (),
    cwd: Path | None = None,
    on_start: Callable[[int], None] | None = None,
) -> Measured:
    """Run ``argv`` under ``/usr/bin/time``: wall time, user+sys CPU and peak RSS of the tree
    (GNU time's ``%M`` is the largest single process of it), and its peak connections.
    ``on_start`` is told the pid of ``/usr/bin/time`` (the tree's root) once it runs."""
    run_dir.mkdir(parents=True, exist_ok=True)
    timefile = run_dir / "time.txt"
    out, err = run_dir / "stdout.txt", run_dir / "stderr.txt"
    full = [TIME, "-f", "BENCH %e %U %S %M", "-o", str(timefile), *argv]
    sampler = ConnSampler(ports)
    sampler.start()
    t0 = time.monotonic()
    proc = start(full, env=env, cwd=cwd or run_dir, stdout=out, stderr=err)
    sampler.watch(proc.pid)
    if on_start is not None:
        on_start(proc.pid)
    timed_out = False
    try:
        rc: int | None = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        kill_below(proc.pid)  # /usr/bin/time survives and reports what ran until now
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            kill_tree(proc)
        rc = None
    finally:
        wall = time.monotonic() - t0
        peak = sampler.stop()
        if proc.poll() is None:
            kill_tree(proc)
        LIVE.pop(proc.pid, None)
    user, sys_, rss = _parse_time(timefile)
    return Measured(
        argv=list(argv),
        rc=rc,
        timed_out=timed_out,
        wall=wall,
        user=user,
        sys=sys_,
        maxrss_kib=rss,
        stdout=out.read_text(errors="replace"),
        stderr=err.read_text(errors="replace"),
        peak_conns=peak,
        client_ports=len(sampler.seen),
    )
