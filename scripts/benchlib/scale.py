"""Issue 17's goal 4, cost flat at scale, measured (``scripts/bench --profiles scale``).

- A sparse file of ``size`` (16 GiB by default: a 100 GiB one does not fit beside its copy on
  this machine's disk), served by nginx unthrottled with sendfile (the simulator is Python and
  would share the two cores with pullman; nginx serves holes for almost nothing), fetched once
  whole while :class:`Usage` samples pullman's RSS, its journal's size and the bytes it has
  read, every 0.25 s. Its CPU per GiB is set against the median of three 1 GiB runs of the same
  kind of file.
- The same file again, SIGKILLed once pullman has read 90 % of it, then resumed by the same
  command: what nginx sent for both runs together, less the file's size, is what was fetched
  twice (it counts what was in flight in the kernel's buffers at the kill, too).
- A 50-file Hugging Face repo against a 1-file one through the Hub simulator (LFS files of
  16 KiB: each is a Hub HEAD, a redirect and a CDN GET): the difference in wall time over the
  49 extra files is the per-file cost (plan, request, verify, commit, index).

Judged in :mod:`benchlib.goals`; shown by :mod:`benchlib.report` and :mod:`benchlib.plots`.
"""

from __future__ import annotations

import random
import shutil
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pullman.layouts.common import STAGING  # beside a plain download

from benchlib import procs, trace
from benchlib.cases import GiB, KiB, human_size
from benchlib.files import sha256_file, sparse_file
from benchlib.nginx import Nginx
from benchlib.options import log

BASE_SIZE = 1 * GiB
BASE_ROUNDS = 3
KILL_AT = 0.9
HF_FILES = 50
HF_FILE_SIZE = 16 * KiB
HF_ROUNDS = 3
MANY_REPO, ONE_REPO = "bench/many-files", "bench/one-file"
SAMPLE_EVERY = 0.25
DISK_MARGIN = 2 * GiB


def many_files(count: int) -> dict[str, bytes]:
    """A repo of ``count`` distinct seeded files (the same bytes in the bench and the sim)."""
    return {
        f"shard-{i:02d}.bin": random.Random(f"pullman-bench-many-{i}").randbytes(HF_FILE_SIZE)
        for i in range(count)
    }


class Usage(threading.Thread):
    """Samples a process tree: the largest RSS of one process in it (as GNU time's ``%M``) and
    the largest journal file in ``staging``."""

    def __init__(self, staging: Path, root: int | None = None) -> None:
        super().__init__(name="usage-sampler", daemon=True)
        self.staging, self.root = staging, root
        self.samples: list[tuple[float, float, int]] = []
        """(seconds, RSS MiB, journal bytes)."""
        self._stop_event = threading.Event()
        self._t0 = time.monotonic()

    def watch(self, pid: int) -> None:
        self.root = pid
        self._t0 = time.monotonic()

    def rss(self) -> float:
        rss_kib = 0
        for pid in procs.tree(self.root):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    rss_kib = max(rss_kib, int(line.split()[1]))
        return rss_kib / 1024

    def journal(self) -> int:
        sizes = [0]
        for j in self.staging.glob("*.journal") if self.staging.is_dir() else []:
            try:
                sizes.append(j.stat().st_size)
            except OSError:
                continue
        return max(sizes)

    def run(self) -> None:
        while not self._stop_event.is_set():
            if self.root is not None and (rss := self.rss()):
                self.samples.append((time.monotonic() - self._t0, rss, self.journal()))
            self._stop_event.wait(SAMPLE_EVERY)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(2)


def rss_drift(samples: list[tuple[float, float, int]]) -> tuple[float, float]:
    """Median RSS over 10-30 % of the run's time, and over 70-90 % (unthrottled, time runs
    with the bytes)."""
    end = samples[-1][0] if samples else 0.0

    def between(lo: float, hi: float) -> float:
        xs = [rss for t, rss, _j in samples if lo * end <= t <= hi * end]
        return statistics.median(xs) if xs else 0.0

    return between(0.1, 0.3), between(0.7, 0.9)


@dataclass
class ScaleRun:
    """The runs of goal 4; :meth:`run` returns what the report and the goals use."""

    work: Path
    www: Path
    nginx: Nginx
    pullman: str
    env: dict[str, str]
    size: int
    hub_endpoint: str | None
    timeout: float
    doc: dict[str, Any] = field(default_factory=dict)

    def run(self) -> dict[str, Any]:
        from pullman.transfer.config import TransferConfig  # the defaults pullman runs with

        cfg = TransferConfig()
        self.doc = {"size": self.size, "connections": cfg.connections, "piece": cfg.piece_size}
        free = shutil.disk_usage(self.work).free
        if free < self.size + BASE_SIZE + DISK_MARGIN:
            self.doc["error"] = (
                f"the disk is short: {human_size(free)} free, the run needs "
                f"{human_size(self.size + BASE_SIZE + DISK_MARGIN)} (pass --size scale=SIZE)"
            )
            return self.doc
        log(
            f"==> scale: hashing sparse files of {human_size(BASE_SIZE)} and "
            f"{human_size(self.size)}"
        )
        base = ("scale-base.bin", sparse_file(self.www / "scale-base.bin", BASE_SIZE))
        big = ("scale-big.bin", sparse_file(self.www / "scale-big.bin", self.size))
        if self.hub_endpoint is not None:
            self.doc["hf"] = self.hf_files()
        self.doc["base"] = [
            self.whole(base, BASE_SIZE, f"base-r{i + 1}") for i in range(BASE_ROUNDS)
        ]
        self.doc["full"] = self.whole(big, self.size, "full", keep_samples=True)
        self.doc["resume"] = self.killed_and_resumed(big)
        return self.doc

    # ------------------------------------------------------------------ the runs

    def _job(self, label: str, url: str, digest: str) -> tuple[Path, list[str], dict[str, str]]:
        run_dir = self.work / "scale" / label
        (run_dir / "out").mkdir(parents=True, exist_ok=True)
        env = dict(self.env)
        env["PULLMAN_HOME"] = str(run_dir / "pullman-home")
        env["OLLAMA_HOST"] = "http://127.0.0.1:9"
        argv = [self.pullman, "get", url, "--sha256", digest, "-o", f"{run_dir / 'out'}/"]
        return run_dir, [*argv, "--json"], env

    def whole(
        self, file: tuple[str, str], size: int, label: str, *, keep_samples: bool = False
    ) -> dict[str, Any]:
        """One whole download of ``file`` (name, sha256), sampled."""
        name, digest = file
        run_dir, argv, env = self._job(label, self.nginx.file_url("unthrottled", name), digest)
        usage = Usage(run_dir / "out" / STAGING)
        usage.start()
        try:
            m = procs.run_measured(
                argv,
                run_dir=run_dir,
                env=env,
                timeout=self.timeout,
                ports=[self.nginx.port],
                on_start=usage.watch,
            )
        finally:
            usage.stop()
        status = checked(m, run_dir / "out" / name, size, digest)
        cpu = m.cpu
        early, late = rss_drift(usage.samples)
        result: dict[str, Any] = {
            "label": label,
            "status": status,
            "wall": round(m.wall, 3),
            "cpu": cpu,
            "cpu_s_per_gib": cpu / (size / GiB) if cpu is not None else None,
            "maxrss_mib": m.maxrss_kib / 1024 if m.maxrss_kib is not None else None,
            "rss_peak_mib": max((s[1] for s in usage.samples), default=0.0),
            "rss_early_mib": early,
            "rss_late_mib": late,
            "journal_max": max((s[2] for s in usage.samples), default=0),
        }
        if keep_samples:
            result["samples"] = [[round(t, 2), round(r, 1), j] for t, r, j in usage.samples]
        log(
            f"    scale {label}: {status}, {m.wall:.2f} s, cpu {cpu} s, "
            f"rss peak {result['rss_peak_mib']:.0f} MiB, journal {result['journal_max']} B"
        )
        shutil.rmtree(run_dir, ignore_errors=True)
        return result

    def killed_and_resumed(self, file: tuple[str, str]) -> dict[str, Any]:
        """SIGKILL at 90 % read, then the same command again: bytes fetched twice."""
        name, digest = file
        run_dir, argv, env = self._job("resume", self.nginx.file_url("unthrottled", name), digest)
        staging = run_dir / "out" / STAGING
        self.nginx.mark()
        read = kill_at(argv, env, run_dir, KILL_AT * self.size, self.timeout, self.nginx.port)
        time.sleep(0.5)  # nginx logs a response cut short once it notices
        sent_before = self.nginx.since_mark().body_bytes
        durable = journal_done(staging)
        self.nginx.mark()
        m = procs.run_measured(
            argv, run_dir=run_dir, env=env, timeout=self.timeout, ports=[self.nginx.port]
        )
        sent_after = self.nginx.since_mark().body_bytes
        status = checked(m, run_dir / "out" / name, self.size, digest)
        refetched = sent_before + sent_after - self.size
        result: dict[str, Any] = {
            "status": status if read is not None else "not-killed",
            "received_at_kill": read,
            "durable_at_kill": durable,
            "sent_before": sent_before,
            "sent_after": sent_after,
            "refetched": refetched,
            "resume_wall": round(m.wall, 3),
        }
        log(
            f"    scale resume: {result['status']}, killed at {human_size(read or 0)} received, "
            f"{human_size(durable)} in the journal; refetched {human_size(max(0, refetched))}"
        )
        shutil.rmtree(run_dir, ignore_errors=True)
        return result

    def hf_files(self) -> dict[str, Any]:
        """The 50-file repo against the 1-file one, alternating, fresh caches."""
        assert self.hub_endpoint is not None
        want = many_files(HF_FILES)
        runs: dict[str, list[tuple[float, float]]] = {"many": [], "one": []}
        for rnd in range(HF_ROUNDS):
            for which, repo, count in (("many", MANY_REPO, HF_FILES), ("one", ONE_REPO, 1)):
                run_dir = self.work / "scale" / f"hf-{which}-r{rnd + 1}"
                env = dict(self.env)
                env.update(HF_ENDPOINT=self.hub_endpoint, HF_HUB_CACHE=str(run_dir / "hf-cache"))
                env["PULLMAN_HOME"] = str(run_dir / "pullman-home")
                argv = [self.pullman, "get", f"hf://{repo}", "--json"]
                m = procs.run_measured(argv, run_dir=run_dir, env=env, timeout=self.timeout)
                if (
                    m.rc == 0
                    and m.cpu is not None
                    and hf_complete(run_dir / "hf-cache", repo, dict(list(want.items())[:count]))
                ):
                    runs[which].append((m.wall, m.cpu))
                shutil.rmtree(run_dir, ignore_errors=True)
        return hf_summary(runs)


def hf_summary(runs: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"files": HF_FILES, "file_size": HF_FILE_SIZE, "runs": runs}
    if len(runs["many"]) < HF_ROUNDS or len(runs["one"]) < HF_ROUNDS:
        out["error"] = "a repo download failed or was incomplete (see the run logs)"
        return out
    for i, what in enumerate(("wall", "cpu")):
        many = statistics.median(r[i] for r in runs["many"])
        one = statistics.median(r[i] for r in runs["one"])
        out[f"{what}_many"], out[f"{what}_one"] = many, one
        out[f"{what}_per_file_ms"] = (many - one) / (HF_FILES - 1) * 1000
    log(
        f"    scale hf: {HF_FILES} files {out['wall_many']:.2f} s, 1 file {out['wall_one']:.2f} s: "
        f"{out['wall_per_file_ms']:.1f} ms wall, {out['cpu_per_file_ms']:.1f} ms CPU per file"
    )
    return out


def checked(m: procs.Measured, path: Path, size: int, digest: str) -> str:
    if m.timed_out:
        return "timeout"
    if m.rc != 0:
        return f"failed (exit {m.rc})"
    if not path.exists() or path.stat().st_size != size:
        return "bad-output"
    return "ok" if sha256_file(path) == digest else "bad-output"


def kill_at(
    argv: list[str], env: dict[str, str], run_dir: Path, at: float, timeout: float, port: int
) -> int | None:
    """Start ``argv``, SIGKILL its tree once its connections to ``port`` have received ``at``
    bytes (``ss``: the kernel's count, sampled every 20 ms); what they had received then (None
    if it ended first)."""
    proc = procs.start(
        argv, env=env, cwd=run_dir, stdout=run_dir / "killed.out", stderr=run_dir / "killed.err"
    )
    received = trace.ByteTrace([port], interval=0.02)
    received.start()
    deadline = time.monotonic() + timeout
    got: int | None = None
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if received.points and received.points[-1][1] >= at:
                got = received.points[-1][1]
                break
            time.sleep(0.005)
    finally:
        procs.kill_tree(proc)
        received.stop()
    return got


def journal_done(staging: Path) -> int:
    """Bytes the journals in ``staging`` claim are safe."""
    from pullman.transfer.staging import Staging

    total = 0
    for j in staging.glob("*.journal") if staging.is_dir() else []:
        journal = Staging(staging, j.stem).load_journal()
        if journal is not None:
            total += sum(end - start for start, end in journal.done)
    return total


def hf_complete(cache: Path, repo: str, want: dict[str, bytes]) -> bool:
    """Every file of ``want`` in the repo's snapshot in the HF cache, with its bytes."""
    snaps = list((cache / ("models--" + repo.replace("/", "--")) / "snapshots").glob("*"))
    if len(snaps) != 1:
        return False
    return all(
        (snaps[0] / n).is_file() and (snaps[0] / n).read_bytes() == b for n, b in want.items()
    )
