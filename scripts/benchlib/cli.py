"""``scripts/bench``: pullman against aria2c, curl, huggingface_hub and the seed's restart loop.

Starts nginx (and, when a case needs it, pullman's simulator) on loopback, makes the test files,
runs every contender on the same file in alternating order for several rounds, and reports
medians, ratios to pullman, CPU per GiB, peak RSS, connections and the issue's targets.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchlib import plots, procs, report
from benchlib.cases import human_size
from benchlib.options import BenchError, check_tools, log, make_plan, parse_args
from benchlib.runner import Bench

__all__ = ["BenchError", "entry", "main"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "scripts/bench" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    plan = make_plan(args)
    found = check_tools(list(plan.cases), {x for xs in plan.cases.values() for x in xs})

    parent = Path(args.workdir) if args.workdir else None
    work = Path(tempfile.mkdtemp(prefix="pullman-bench.", dir=parent))
    work.chmod(0o755)
    log(f"==> scripts/bench: work dir {work}")
    bench = Bench(plan, found, work, keep=args.keep)
    try:
        mach, nginx, tools = bench.start()
        bench.run(nginx, tools)
        head = {
            "command": command,
            "started": started_at,
            "duration_s": time.monotonic() - started,
        }
        doc = bench.document(head, mach, nginx, args.quick)
    finally:
        bench.stop()
        procs.kill_all()
        if args.keep:
            log(f"==> kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    _plots(doc, args.plots or (str(Path(args.out).parent) if args.out else None), args.out)
    return _report(doc, args.quick, args.out, args.json, strict=args.strict)


def _plots(doc: dict[str, Any], directory: str | None, out: str | None) -> None:
    """Make the PNGs; ``doc["plots"]`` names them relative to the Markdown report."""
    doc["plots"] = []
    if directory is None:
        return
    if not plots.available():
        log("==> no plots: matplotlib is not installed (pip install 'pullman[bench]')")
        return
    base = Path(out).parent if out else Path(directory)
    for path in plots.make_plots(doc, Path(directory)):
        log(f"==> wrote {path}")
        try:
            doc["plots"].append(str(path.resolve().relative_to(base.resolve())))
        except ValueError:
            doc["plots"].append(str(path.resolve()))


def _report(
    doc: dict[str, Any], quick: bool, out: str | None, to_json: str | None, *, strict: bool
) -> int:
    """The tables and the targets (to stderr if the JSON goes to stdout), the Markdown and JSON
    files; the exit status."""
    to_stdout_json = to_json == "-"
    show = (lambda s: print(s, file=sys.stderr)) if to_stdout_json else print
    for case in doc["cases"]:
        show(f"\n## {case['name']} ({human_size(case['size'])})")
        show(report.console_table(case["summary"]))
    show("\n## targets (issue 6)" + ("  [QUICK RUN: indicative only]" if quick else ""))
    for t in doc["targets"]:
        show(f"{t['status']}: {t['target']}: {t['text']}")
    show("\n## goals (issue 17)" + ("  [QUICK RUN: indicative only]" if quick else ""))
    for g in doc["goals"]:
        show(f"{g['status']}: goal {g['goal']}: {g['target']}: {g['text']}")
    if out:
        path = Path(out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.markdown(doc))
        log(f"==> wrote {path}")
    if to_json:
        text = json.dumps(doc, indent=2, default=str)
        if to_stdout_json:
            print(text)
        else:
            Path(to_json).write_text(text + "\n")
            log(f"==> wrote {to_json}")
    runs = doc["runs"]
    pullman_broken = any(r["contender"].startswith("pullman") and r["status"] != "ok" for r in runs)
    if pullman_broken:
        log("==> some pullman runs did not produce a verified file (see above)")
        return 1
    if strict and any(t["status"] == "FAIL" for t in [*doc["targets"], *doc["goals"]]):
        return 1
    return 0


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def entry() -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    try:
        return main()
    except BenchError as exc:
        log(f"scripts/bench: error: {exc}")
        return 2
    except KeyboardInterrupt:
        log("scripts/bench: interrupted; servers and contenders stopped")
        return 130
    finally:
        with contextlib.suppress(Exception):
            procs.kill_all()
