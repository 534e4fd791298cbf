"""``scripts/bench``'s options, what they resolve to (a :class:`Plan`), and the tools the plan
needs (each missing one named with the Debian package to install)."""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from benchlib import procs
from benchlib.cases import CASES, CONTENDERS, SCALE_SIZE, human_size, parse_size
from benchlib.contenders import applicable
from benchlib.nginx import find_nginx

SCALE = "scale"
"""The pseudo-case of issue 17's goal 4 (benchlib/scale.py): not a contender race."""
APT_HINT = "install it with: apt-get install -y {pkg}   (Debian/Ubuntu; as root)"


class BenchError(Exception):
    """A problem the user can fix (missing tool, bad option): printed without a traceback."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------- options


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Benchmark pullman against aria2c, curl, huggingface_hub and the seed's "
        "curl restart loop, on nginx throttle profiles and pullman's simulator (loopback).",
        epilog="cases: "
        + "; ".join(f"{c.name} ({c.title}, {human_size(c.full_size)})" for c in CASES.values())
        + ". contenders: "
        + ", ".join(CONTENDERS),
    )
    _what_to_run(parser)
    _how_to_run(parser)
    _where_results_go(parser)
    return parser.parse_args(argv)


def _what_to_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized run: small files, 1 round, 30 s time-out, seed restarts every 3 s",
    )
    parser.add_argument(
        "--profiles",
        metavar="LIST",
        help="comma-separated cases to run (default: all): "
        + ",".join(CASES)
        + ",scale (issue 17's goal 4: a 16 GiB sparse file whole and killed at 90 %%, and a "
        "50-file Hub repo; not in --quick runs)",
    )
    parser.add_argument(
        "--contenders",
        metavar="LIST",
        help="comma-separated contenders (default: each case's own set): " + ",".join(CONTENDERS),
    )
    parser.add_argument("--rounds", type=int, help="rounds per case (default 3; --quick: 1)")
    parser.add_argument(
        "--size",
        metavar="SIZE|CASE=SIZE,...",
        help="file size for every case (e.g. 256MiB) or per case (burst=1GiB,lossy=64MiB)",
    )


def _how_to_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timeout",
        type=float,
        help="seconds one contender run may take before it is killed and counted as timed "
        "out (default 600; --quick: 30)",
    )
    parser.add_argument(
        "--once-over",
        type=float,
        metavar="SECONDS",
        help="a contender whose first run took longer than this (or timed out) is not "
        "repeated in later rounds (default 120; --quick: off)",
    )
    parser.add_argument(
        "--seed-interval",
        type=float,
        metavar="N",
        help="the seed's method restarts curl every N seconds (default 10; --quick: 3)",
    )


def _where_results_go(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", metavar="PATH", help="write the Markdown report here (e.g. docs/benchmarks.md)"
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="machine-readable results: to PATH, or to stdout without one (the tables then go "
        "to stderr)",
    )
    parser.add_argument(
        "--workdir", metavar="DIR", help="where the temp dir goes (default: $TMPDIR)"
    )
    parser.add_argument(
        "--plots",
        metavar="DIR",
        help="write the PNG plots here (default: beside --out; none without either); needs "
        "matplotlib (pip install 'pullman[bench]')",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (files, logs)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a target FAILs (not only on errors)"
    )


@dataclass
class Plan:
    """What the options resolve to."""

    cases: dict[str, list[str]]
    """Case -> its contenders, in the order they run (cases without any are left out)."""
    sizes: dict[str, int]
    """Every chosen case's file size."""
    rounds: int
    timeout: float
    once_over: float
    interval: float
    """The seed's restart interval."""
    scale: int = 0
    """The ``scale`` case's file size (0: not run)."""


def make_plan(args: argparse.Namespace) -> Plan:
    chosen = _csv(args.profiles, [*CASES, SCALE], "case")
    cases = [c for c in chosen if c != SCALE] if chosen is not None else list(CASES)
    scale = 0
    if (chosen is None and not args.quick) or (chosen is not None and SCALE in chosen):
        scale = _scale_size(args.size)
    only = _csv(args.contenders, CONTENDERS, "contender")
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    timeout = args.timeout if args.timeout is not None else (30.0 if args.quick else 600.0)
    once_over = args.once_over if args.once_over is not None else (0 if args.quick else 120.0)
    interval = args.seed_interval or (3.0 if args.quick else 10.0)
    if rounds < 1 or timeout <= 0 or interval <= 0:
        raise BenchError("--rounds, --timeout and --seed-interval must be positive")
    sizes = resolve_sizes(args.size, cases, args.quick)
    plan = {
        c: [x for x in CASES[c].contenders if (only is None or x in only)]
        + [x for x in (only or []) if x not in CASES[c].contenders and applicable(x, CASES[c])]
        for c in cases
    }
    plan = {c: xs for c, xs in plan.items() if xs}
    if not plan and not scale:
        raise BenchError("nothing to run: no case has any of the chosen contenders")
    return Plan(plan, sizes, rounds, timeout, once_over, interval, scale)


def _scale_size(text: str | None) -> int:
    """``--size scale=SIZE`` (the other parts of ``--size`` are for the other cases)."""
    for part in (text or "").split(","):
        name, _, value = part.strip().partition("=")
        if name == SCALE and value:
            try:
                return parse_size(value)
            except ValueError as exc:
                raise BenchError(f"--size: {exc}") from exc
    return SCALE_SIZE


def _csv(text: str | None, known: list[str] | tuple[str, ...], what: str) -> list[str] | None:
    if text is None:
        return None
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in known]
    if bad:
        raise BenchError(f"unknown {what}: {', '.join(bad)} (known: {', '.join(known)})")
    return items


def resolve_sizes(text: str | None, cases: list[str], quick: bool) -> dict[str, int]:
    sizes = {c: (CASES[c].quick_size if quick else CASES[c].full_size) for c in cases}
    if not text:
        return sizes
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "=" in part:
                name, value = part.split("=", 1)
                if name == SCALE:
                    continue
                if name not in CASES:
                    raise BenchError(f"--size: unknown case {name!r}")
                if name in sizes:
                    sizes[name] = parse_size(value)
            else:
                size = parse_size(part)
                sizes = dict.fromkeys(sizes, size)
        except ValueError as exc:
            raise BenchError(f"--size: {exc}") from exc
    return sizes


# ---------------------------------------------------------------------- prerequisites


def need_tool(name: str, pkg: str, path: str | None = None) -> str:
    found = path if path and Path(path).exists() else shutil.which(name)
    if not found:
        raise BenchError(f"{name} is not installed; " + APT_HINT.format(pkg=pkg))
    return found


def check_tools(cases: list[str], contenders: set[str]) -> dict[str, str | None]:
    tools: dict[str, str | None] = {}
    nginx = find_nginx()
    if nginx is None:
        raise BenchError("nginx is not installed; " + APT_HINT.format(pkg="nginx-light"))
    tools["nginx"] = nginx
    tools["time"] = need_tool("time", "time", procs.TIME)
    tools["curl"] = need_tool("curl", "curl")
    tools["openssl"] = need_tool("openssl", "openssl")
    for core in ("sha256sum", "timeout", "stat"):
        need_tool(core, "coreutils")
    tools["aria2c"] = None
    if any(c.startswith("aria2c") for c in contenders):
        tools["aria2c"] = need_tool("aria2c", "aria2")
    pullman = Path(sys.executable).parent / "pullman"
    if not pullman.exists():
        raise BenchError(
            f"pullman is not installed in {sys.prefix}; run scripts/bench (it "
            "creates the venv) or pip install -e ."
        )
    tools["pullman"] = str(pullman)
    needs_hf = "hf_hub_download" in contenders or any(CASES[c].via == "hub" for c in cases)
    if needs_hf:
        try:
            import huggingface_hub  # noqa: F401
        except ImportError as exc:
            raise BenchError(
                f"huggingface_hub is not installed in {sys.prefix}; "
                f"{sys.executable} -m pip install huggingface_hub"
            ) from exc
    return tools
