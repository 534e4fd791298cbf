"""``scripts/chaos crashloop``: SIGKILL the foreground CLI and the daemon at random points of one
multi-layer Ollama pull; after every kill each journal must claim only bytes that are on disk
and right, and the store must hold only verified blobs. Reports the bytes fetched twice."""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypedDict

from pullman import config as pconfig
from pullman.core.refs import parse_ollama
from pullman.daemon import daemon_pid
from pullman.index import Index
from pullman.layouts import ollama as store
from pullman.testing import Simulator, Throttle, make_data
from pullman.testing.registry import OllamaRegistry

from chaoslib.checks import check_journals, check_ollama
from chaoslib.common import KiB, MiB, run_cli, sha256_hex, spawn_cli, wait_for
from chaoslib.settings import cli_env

__all__ = ["CrashLoop", "crashloop", "run_crashloop"]

Log = Callable[[str], None]


class Kill(TypedDict):
    who: str
    """``cli`` or ``daemon``."""
    served: int
    """Bytes the registry had served when it was killed."""
    claimed: int
    """Bytes the journals claimed after it."""


def _quiet(_line: str) -> None:
    pass


def crashloop(args: argparse.Namespace) -> int:
    result = run_crashloop(
        kills_cli=args.kills_cli,
        kills_daemon=args.kills_daemon,
        seed=args.seed,
        layers=args.layers,
        layer_size=args.layer_size * MiB,
        rate=args.rate * KiB,
        work=Path(tempfile.mkdtemp(prefix="pullman-crashloop-")),
        log=print,
    )
    print(json.dumps(result, indent=2))
    return 0 if result["ok"] else 1


def run_crashloop(
    *,
    kills_cli: int,
    kills_daemon: int,
    seed: int,
    layers: int,
    layer_size: int,
    rate: int,
    work: Path,
    log: Log = _quiet,
) -> dict[str, Any]:
    """SIGKILL ``pullman get`` then ``pullman daemon`` at random points of one Ollama pull."""
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    with Simulator() as sim:
        loop = CrashLoop(
            sim, rng, work, seed=seed, layers=layers, layer_size=layer_size, rate=rate, log=log
        )
        result = loop.run(kills_cli=kills_cli, kills_daemon=kills_daemon)
    shutil.rmtree(work, ignore_errors=True)
    return result


class CrashLoop:
    """One model on the simulator's registry, the processes pulling it, and what the kills
    left behind."""

    def __init__(
        self,
        sim: Simulator,
        rng: random.Random,
        work: Path,
        *,
        seed: int,
        layers: int,
        layer_size: int,
        rate: int,
        log: Log = _quiet,
    ) -> None:
        self.rng, self.work, self.log = rng, work, log
        self.registry = OllamaRegistry(sim)
        data_layers = [("model", make_data(layer_size + i * 4099, seed + i)) for i in range(layers)]
        data_layers += [("template", b"{{ .Prompt }}"), ("license", b"MIT")]
        self.raw = self.registry.add_model(
            "library/crash", layers=data_layers, throttle=Throttle(burst=0, rate=rate)
        )
        config_blob = b'{"model_format":"gguf","model_family":"llama"}'
        self.blobs = {sha256_hex(d): d for d in [config_blob, *(d for _, d in data_layers)]}
        self.total = sum(len(d) for d in self.blobs.values())
        self.name = self.registry.name("library/crash")
        self.models = work / "models"
        self.manifest = store.manifest_path(self.models, parse_ollama(self.name, insecure=True))
        self.staging = self.models / ".pullman-partial"
        self.env = cli_env(work / "home")
        self.paths = pconfig.Paths.from_env(self.env)
        self.args = [
            *("get", "--insecure", "--ollama-dir", str(self.models), self.name),
            *("--progress", "none"),
        ]
        self.problems: list[str] = []
        self.kills: list[Kill] = []

    def run(self, *, kills_cli: int, kills_daemon: int) -> dict[str, Any]:
        """The kills, the daemon finishing every job, a last run that must fetch nothing."""
        started = time.monotonic()
        with (self.work / "daemon.log").open("ab") as daemon_log:
            # The daemon's job: the same pull, queued once; the foreground runs make their own.
            r = run_cli([*self.args, "--detach"], self.env, 60)
            if r.returncode != 0:
                self.problems.append(f"get --detach failed: {r.stderr}")
            self.kill_in_turn(kills_cli, kills_daemon, daemon_log)
            index = self.finish_with_daemon(daemon_log)
        elapsed = time.monotonic() - started
        try:
            return self.final(index, elapsed)
        finally:
            index.close()

    # ------------------------------------------------------------------------------ bytes

    def served(self) -> int:
        return sum(self.registry.blob(h).bytes_sent for h in self.blobs)

    def on_disk(self) -> int:
        """Bytes that are safe: committed blobs plus what the journals claim."""
        committed = sum(
            len(d)
            for h, d in self.blobs.items()
            if (self.models / "blobs" / f"sha256-{h}").is_file()
        )
        return committed + check_journals(self.staging, self.blobs)[0]

    # ------------------------------------------------------------------------------ kills

    def kill_in_turn(self, kills_cli: int, kills_daemon: int, daemon_log: IO[bytes]) -> None:
        """Start the CLI or the daemon, in a random order, and SIGKILL each at a random point;
        stop early if one finishes first."""
        order = ["cli"] * kills_cli + ["daemon"] * kills_daemon
        self.rng.shuffle(order)
        for n, who in enumerate(order):
            if who == "cli":
                proc = spawn_cli(self.args, self.env)
            else:
                proc = spawn_cli(["daemon"], self.env, daemon_log)
                wait_for(self._holds_lock(proc), 30, "the daemon's lock")
            if not self.kill_when(proc, who, len(order) - n):
                if who == "cli" and proc.returncode != 0:
                    self.problems.append(f"a foreground run failed with exit {proc.returncode}")
                break

    def _holds_lock(self, proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
        return lambda: daemon_pid(self.paths) == proc.pid or proc.poll() is not None

    def kill_when(self, proc: subprocess.Popen[bytes], who: str, kills_left: int) -> bool:
        """SIGKILL ``proc`` after a random share of what is left (spread so that the kills
        cover the whole download); False if it ended first."""
        left = self.total - self.on_disk()
        share = min(0.9, self.rng.uniform(0.3, 1.5) / (kills_left + 1))
        wanted = self.served() + max(64 * KiB, int(left * share))
        deadline = time.monotonic() + 60
        while self.served() < wanted and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0, 0.05))
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.after_kill(who, self.served())
        return True

    def after_kill(self, who: str, at: int) -> None:
        """Check every journal (and its mode) and the store; log the kill."""
        claimed, bad = check_journals(self.staging, self.blobs)
        for journal in self.staging.glob("*.journal") if self.staging.is_dir() else ():
            if stat.S_IMODE(journal.stat().st_mode) != 0o600:
                bad.append(f"{journal.name} has mode {journal.stat().st_mode:o}")
        bad += check_ollama(self.models, self.manifest, self.raw, self.blobs)
        self.problems.extend(f"after kill {len(self.kills) + 1} ({who}): {p}" for p in bad)
        self.kills.append({"who": who, "served": at, "claimed": claimed})
        self.log(
            f"  kill {len(self.kills):>3} ({who:<6}) at {at / MiB:6.2f} MiB served, "
            f"{self.on_disk() / MiB:6.2f} MiB safe on disk (journals claim "
            f"{claimed / MiB:6.2f} MiB), problems: {len(bad)}"
        )

    # ------------------------------------------------------------------------------ the end

    def finish_with_daemon(self, daemon_log: IO[bytes]) -> Index:
        """A daemon left alone until every job has ended, then stopped with SIGTERM; returns
        the index (open: the caller closes it)."""
        proc = spawn_cli(["daemon"], self.env, daemon_log)
        index = Index.open(self.paths.index)

        def jobs_done() -> bool:
            return all(j.state in ("done", "failed", "cancelled") for j in index.jobs())

        try:
            wait_for(jobs_done, 300, "the daemon to finish every job")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        return index

    def final(self, index: Index, elapsed: float) -> dict[str, Any]:
        """A last foreground run must find everything in place and fetch nothing; the result."""
        before = self.served()
        r = run_cli([*self.args, "--json"], self.env, 120)
        if r.returncode != 0:
            self.problems.append(f"final get failed ({r.returncode}): {r.stderr}")
        if self.served() != before:
            self.problems.append("the final get fetched bytes again")
        jobs = index.jobs()
        failed = [j for j in jobs if j.state == "failed"]
        if failed:
            self.problems.append(f"failed jobs: {[(j.id, j.error) for j in failed]}")
        self.problems += check_ollama(self.models, self.manifest, self.raw, self.blobs)
        if not self.manifest.is_file():
            self.problems.append("the model is not complete at the end")
        staging = self.staging
        leftover = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
        refetched = self.served() - self.total
        return {
            "ok": not self.problems,
            "kills": len(self.kills),
            "kills_cli": sum(1 for k in self.kills if k["who"] == "cli"),
            "kills_daemon": sum(1 for k in self.kills if k["who"] == "daemon"),
            "files": len(self.blobs),
            "bytes": self.total,
            "served": self.total + refetched,
            "refetched": refetched,
            "refetched_per_kill": refetched // max(1, len(self.kills)),
            "job_states": dict(Counter(j.state for j in jobs)),
            "staging_leftovers": leftover,
            "seconds": round(elapsed, 1),
            "problems": self.problems,
        }
