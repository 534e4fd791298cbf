"""``scripts/chaos many``: N small files queued with one ``get --detach`` and run by the daemon;
checks every file and the per-host connection budget, and reports the daemon's peak RSS."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pullman import config as pconfig
from pullman.daemon import daemon_pid
from pullman.index import Index
from pullman.testing import Simulator

from chaoslib.common import MiB, run_cli, spawn_cli, wait_for
from chaoslib.settings import cli_env

__all__ = ["many", "run_many"]

Log = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def many(args: argparse.Namespace) -> int:
    result = run_many(
        files=args.files,
        size=args.size,
        log=print,
        work=Path(tempfile.mkdtemp(prefix="pullman-many-")),
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def _vm_hwm(pid: int) -> int:
    """Peak resident set size of a live process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class _Watched:
    """What watching the daemon saw."""

    done: int
    peak: int
    """The daemon's peak RSS, bytes."""
    seconds: float


def run_many(
    *,
    files: int,
    size: int,
    work: Path,
    log: Log = _quiet,
    schedule: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``files`` small URL jobs queued with one ``get --detach``, run by the daemon."""
    work.mkdir(parents=True, exist_ok=True)
    sched = {"connections": "16", "per_host": "8", "jobs": "4"} | (schedule or {})
    env = cli_env(work / "home", **{f"PULLMAN_SCHEDULE_{k.upper()}": v for k, v in sched.items()})
    problems: list[str] = []
    with Simulator() as sim:
        datas = _serve(sim, files, size)
        t0 = time.monotonic()
        r = run_cli(["get", "--detach", *(sim.url(n) for n in datas)], env, 120)
        if r.returncode != 0:
            problems.append(f"get --detach failed: {r.stderr}")
        queued_in = time.monotonic() - t0
        log(f"  queued {files} jobs in {queued_in:.1f} s")
        paths = pconfig.Paths.from_env(env)
        with (work / "daemon.log").open("ab") as out:
            proc = spawn_cli(["daemon"], env, out)
        wait_for(lambda: daemon_pid(paths) == proc.pid, 30, "the daemon's lock")
        index = Index.open(paths.index)
        watched = _watch(proc, index, sim, files, log)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        problems += _check(index, paths, datas)
        max_active = sim.origin.max_active
        if max_active > int(sched["per_host"]):
            problems.append(f"{max_active} connections open at once > per_host {sched['per_host']}")
        index.close()
    shutil.rmtree(work, ignore_errors=True)
    elapsed = watched.seconds
    return {
        "ok": not problems,
        "files": files,
        "done": watched.done,
        "queue_seconds": round(queued_in, 1),
        "run_seconds": round(elapsed, 1),
        "files_per_second": round(files / elapsed, 1) if elapsed else None,
        "peak_rss_mib": round(watched.peak / MiB, 1),
        "max_connections_open": max_active,
        "per_host_budget": int(sched["per_host"]),
        "problems": problems,
    }


def _serve(sim: Simulator, files: int, size: int) -> dict[str, bytes]:
    """``files`` seeded files of about ``size`` bytes on the simulator, by name."""
    datas = {}
    for i in range(files):
        data = random.Random(i).randbytes(size + i % 7)
        name = f"f{i:05d}.bin"
        sim.add_file(name, data)
        datas[name] = data
    return datas


def _watch(
    proc: subprocess.Popen[bytes], index: Index, sim: Simulator, files: int, log: Log
) -> _Watched:
    """Poll the jobs (and the daemon's RSS) until all ``files`` are done or failed, logging
    every 5 s; give up after max(120 s, 0.5 s a file)."""
    t1 = time.monotonic()
    peak = 0
    deadline = t1 + max(120.0, files * 0.5)
    done = 0
    last = 0.0
    while time.monotonic() < deadline:
        peak = max(peak, _vm_hwm(proc.pid))
        states = Counter(j.state for j in index.jobs())
        done = states.get("done", 0)
        if time.monotonic() - last > 5:
            log(
                f"  {time.monotonic() - t1:6.1f} s: {dict(states)}  peak RSS "
                f"{peak / MiB:.0f} MiB, max connections {sim.origin.max_active}"
            )
            last = time.monotonic()
        if states.get("done", 0) + states.get("failed", 0) == files:
            break
        time.sleep(0.25)
    elapsed = time.monotonic() - t1
    peak = max(peak, _vm_hwm(proc.pid))
    return _Watched(done, peak, elapsed)


def _check(index: Index, paths: pconfig.Paths, datas: dict[str, bytes]) -> list[str]:
    """Every job done, every file there with the served bytes."""
    problems: list[str] = []
    failed = [j for j in index.jobs() if j.state != "done"]
    if failed:
        problems.append(f"{len(failed)} jobs not done, e.g. {failed[0].state} {failed[0].error}")
    wrong = [
        n
        for n, d in datas.items()
        if not (paths.downloads / n).is_file() or (paths.downloads / n).read_bytes() != d
    ]
    if wrong:
        problems.append(f"{len(wrong)} files missing or wrong, e.g. {wrong[:3]}")
    return problems
