"""``scripts/chaos``'s arguments: ``soak`` (the default), ``crashloop``, ``many``, and the
soak's internal ``worker``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import chaoslib
from chaoslib.common import KiB
from chaoslib.crashloop import crashloop
from chaoslib.many import many
from chaoslib.runs import RUN_TIMEOUT
from chaoslib.soak import soak
from chaoslib.workers import worker_main

__all__ = ["main", "parser"]

COMMANDS = ("soak", "crashloop", "many", "worker", "-h", "--help")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scripts/chaos",
        description=chaoslib.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("soak", help="seeded fault runs (the default)")
    s.add_argument("--runs", type=int, default=300)
    s.add_argument("--seed", type=int, default=1, help="first seed; runs use seed..seed+runs-1")
    s.add_argument("--only-seed", type=int, help="replay one run, verbosely")
    s.add_argument("--jobs", "-j", type=int, default=2, help="worker processes")
    s.add_argument("--timeout", type=float, default=RUN_TIMEOUT, help="seconds per attempt")
    s.add_argument("--json-out", help="write every run's result here")
    s.add_argument("--quiet", "-q", action="store_true", help="print only failing runs")
    s.add_argument(
        "--no-twins", action="store_true", help="never run two sessions at once on one store"
    )
    c = sub.add_parser("crashloop", help="SIGKILL the CLI and the daemon across a model pull")
    c.add_argument("--kills-cli", type=int, default=25)
    c.add_argument("--kills-daemon", type=int, default=25)
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--layers", type=int, default=4)
    c.add_argument("--layer-size", type=int, default=8, help="MiB per model layer")
    c.add_argument("--rate", type=int, default=1024, help="KiB/s per connection")
    m = sub.add_parser("many", help="N small queued files through the daemon")
    m.add_argument("--files", type=int, default=1000)
    m.add_argument("--size", type=int, default=16 * KiB)
    w = sub.add_parser("worker")
    w.add_argument("--base", required=True)
    w.add_argument("--timeout", type=float, default=RUN_TIMEOUT)
    w.add_argument("--no-twins", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if not words or words[0] not in COMMANDS:
        words = ["soak", *words]
    args = parser().parse_args(words)
    if args.command == "worker":
        worker_main(Path(args.base), args.timeout, twins=not args.no_twins)
        return 0
    if args.command == "crashloop":
        return crashloop(args)
    if args.command == "many":
        return many(args)
    return soak(args)
