"""``scripts/chaos soak``: seeded runs in worker processes, a line per run, and the summary that
docs/reliability.md quotes; ``--only-seed N`` replays one run in-process, verbosely."""

from __future__ import annotations

import argparse
import json
import logging
import queue
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from chaoslib.runs import Result, run_seed
from chaoslib.workers import Worker

__all__ = ["BAD", "SUMMARY_KEYS", "soak", "summarise", "verdict"]

BAD = ("corrupt", "leak", "crash", "timeout", "hang", "unhealed", "harness")
"""The verdicts that fail the soak."""

SUMMARY_KEYS = (
    "runs",
    "by_kind",
    "faults_injected",
    "recycles",
    "retries",
    "link_refreshes",
    "completions",
    "clean_failures",
    "clean_failure_types",
    "healed",
    "interrupted",
    "resumed_bytes_after_interrupt",
    "resumed_bytes_in_heals",
    "discarded_bytes",
    "corrupt_commits",
    "journal_claimed_bytes_checked",
    "token_leaks",
    "crashes",
    "timeouts",
    "hangs_killed",
    "unhealed",
    "harness_errors",
    "bytes_served",
    "bytes_of_files",
    "wall_seconds",
)
"""What the summary prints, in this order."""

ATTEMPTS = ("interrupted", "first", "heal")


def verdict(result: Result) -> str:
    """``ok`` / ``clean`` (failed cleanly, then healed) or what went wrong."""
    if "killed" in result:
        return "hang"
    if "harness_error" in result:
        return "harness"
    first, heal = result["first"], result.get("heal")
    stopped = result.get("interrupted")
    if first["problems"] or (heal and heal["problems"]) or (stopped and stopped["problems"]):
        return "corrupt"
    if stopped and stopped["outcome"] == "crash":
        return "crash"
    if result.get("token_to_cdn"):
        return "leak"
    if first["outcome"] == "crash" or (heal and heal["outcome"] == "crash"):
        return "crash"
    if first["outcome"] == "timeout":
        return "timeout"
    if heal is not None and heal["outcome"] != "ok":
        return "unhealed"
    return "ok" if first["outcome"] == "ok" else "clean"


def _attempts(results: list[Result]) -> list[dict[str, Any]]:
    """Every attempt of every run (interrupted, first, heal)."""
    return [r[k] for r in results for k in ATTEMPTS if isinstance(r.get(k), dict)]


def summarise(results: list[Result]) -> dict[str, Any]:
    verdicts = Counter(verdict(r) for r in results)
    firsts = [r["first"] for r in results if "first" in r]
    heals = [r["heal"] for r in results if "heal" in r]
    stopped = [r["interrupted"] for r in results if isinstance(r.get("interrupted"), dict)]
    return {
        "runs": len(results),
        "by_kind": dict(Counter(r.get("kind", "?") for r in results)),
        "faults_injected": sum(f.get("faults_used", 0) for f in firsts),
        "recycles": sum(f.get("recycles", 0) for f in firsts + heals),
        "retries": sum(f.get("retries", 0) for f in firsts + heals),
        "link_refreshes": sum(f.get("refreshes", 0) for f in firsts + heals),
        "completions": sum(1 for f in firsts if f["outcome"] == "ok"),
        "clean_failures": sum(1 for f in firsts if f["outcome"] == "clean"),
        "clean_failure_types": dict(
            Counter(
                f"{f['error']} (exit {f['exit_code']})" for f in firsts if f["outcome"] == "clean"
            )
        ),
        "healed": sum(1 for h in heals if h["outcome"] == "ok"),
        "interrupted": sum(1 for i in stopped if i["outcome"] == "interrupted"),
        "resumed_bytes_after_interrupt": sum(
            r["first"].get("resumed", 0)
            for r in results
            if isinstance(r.get("interrupted"), dict)
            and r["interrupted"]["outcome"] == "interrupted"
        ),
        "resumed_bytes_in_heals": sum(h.get("resumed", 0) for h in heals),
        "discarded_bytes": sum(f.get("discarded", 0) for f in firsts + heals),
        "corrupt_commits": sum(len(a["problems"]) for a in _attempts(results)),
        "journal_claimed_bytes_checked": sum(
            a.get("journal_claimed", 0) for a in _attempts(results)
        ),
        "token_leaks": sum(1 for r in results if r.get("token_to_cdn")),
        **_failures(verdicts),
        "bytes_served": sum(r.get("bytes_sent", 0) for r in results),
        "bytes_of_files": sum(r.get("size", 0) for r in results if "first" in r),
        "verdicts": dict(verdicts),
    }


def _failures(verdicts: Counter[str]) -> dict[str, int]:
    return {
        "crashes": verdicts.get("crash", 0),
        "timeouts": verdicts.get("timeout", 0),
        "hangs_killed": verdicts.get("hang", 0),
        "unhealed": verdicts.get("unhealed", 0),
        "harness_errors": verdicts.get("harness", 0),
    }


# ---------------------------------------------------------------------------------- the command


def soak(args: argparse.Namespace) -> int:
    base = Path(tempfile.mkdtemp(prefix="pullman-chaos-"))
    if args.only_seed is not None:
        return _replay(args, base)
    seeds = list(range(args.seed, args.seed + args.runs))
    started = time.monotonic()
    results = _Soak(args, seeds, base).run()
    summary = summarise(results)
    summary["seeds"] = f"{seeds[0]}..{seeds[-1]}"
    summary["wall_seconds"] = round(time.monotonic() - started, 1)
    bad = sorted((r["seed"], verdict(r)) for r in results if verdict(r) in BAD)
    summary["failing_seeds"] = bad
    _print_summary(summary, bad)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "runs": results}, indent=1))
    shutil.rmtree(base, ignore_errors=True)
    return 1 if bad else 0


def _replay(args: argparse.Namespace, base: Path) -> int:
    """``--only-seed N``: one run in this process, with pullman's INFO log."""
    logging.basicConfig(level=logging.INFO, format="  %(name)s: %(message)s")
    started = time.monotonic()
    result = run_seed(args.only_seed, base, timeout=args.timeout, twins=not args.no_twins)
    shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(result, indent=2))
    print(f"verdict: {verdict(result)} in {time.monotonic() - started:.1f} s")
    return 1 if verdict(result) in BAD else 0


def _print_summary(summary: dict[str, Any], bad: list[tuple[int, str]]) -> None:
    print()
    print("chaos soak summary")
    for key in SUMMARY_KEYS:
        print(f"  {key:<24} {summary[key]}")
    for seed, v in bad:
        print(f"  FAILING seed {seed}: {v}; replay: scripts/chaos soak --only-seed {seed}")


class _Soak:
    """The seeds, shared by ``--jobs`` threads, each driving one worker process."""

    def __init__(self, args: argparse.Namespace, seeds: list[int], base: Path) -> None:
        self.args, self.seeds, self.base = args, seeds, base
        self.todo: queue.Queue[int] = queue.Queue()
        for s in seeds:
            self.todo.put(s)
        self.results: list[Result] = []
        self.lock = threading.Lock()
        self.deadline = 2 * args.timeout + 30

    def run(self) -> list[Result]:
        threads = [threading.Thread(target=self.drive, args=(n,)) for n in range(self.args.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return self.results

    def drive(self, n: int) -> None:
        args = self.args
        worker = Worker(
            self.base, args.timeout, self.base / f"worker-{n}.log", twins=not args.no_twins
        )
        try:
            while True:
                try:
                    seed = self.todo.get_nowait()
                except queue.Empty:
                    return
                result = worker.run(seed, self.deadline)
                with self.lock:
                    self.results.append(result)
                    self.report(seed, result)
        finally:
            worker.stop()

    def report(self, seed: int, result: Result) -> None:
        """The run's line (only failing runs with ``--quiet``), and a failing run's record."""
        v = verdict(result)
        first = result.get("first", {})
        line = (
            f"[{len(self.results):>4}/{len(self.seeds)}] seed {seed:<8} "
            f"{result.get('kind', '?'):<6} {v:<8} "
            f"faults={first.get('faults_used', '-'):<3} "
            f"recycles={first.get('recycles', '-'):<3} "
            f"retries={first.get('retries', '-'):<3} "
            f"{first.get('elapsed', 0):6.2f}s"
        )
        if first.get("outcome") == "clean":
            line += f"  {first['error']} (exit {first['exit_code']})"
        if not self.args.quiet or v in BAD:
            print(line, flush=True)
        if v in BAD:
            print("    " + json.dumps(result)[:4000], flush=True)
