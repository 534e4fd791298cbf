"""``scripts/bench``: pullman against aria2c, curl, huggingface_hub and the seed's restart loop.

Starts nginx (and, when a case needs it, pullman's simulator) on loopback, makes the test files,
runs every contender on the same file in alternating order for several rounds, and reports
medians, ratios to pullman, CPU per GiB, peak RSS, connections and the issue's targets.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from benchlib import machine, procs, report
from benchlib.cases import CASES, CONTENDERS, PROFILES, MiB, human_size, parse_size
from benchlib.contenders import HF_SCRIPT, SEED_SCRIPT, Target, Tools, applicable, build_job
from benchlib.nginx import Nginx, find_nginx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI-sized run: small files, 1 round, 30 s time-out, seed restarts every 3 s",
    )
    parser.add_argument(
        "--profiles",
        metavar="LIST",
        help="comma-separated cases to run (default: all): " + ",".join(CASES),
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
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (files, logs)")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 if a target FAILs (not only on errors)"
    )
    return parser.parse_args(argv)


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


# ---------------------------------------------------------------------- files and servers


def make_file(path: Path, size: int, seed: int) -> str:
    """Incompressible bytes, seeded (a rerun serves the very same file); returns the sha256."""
    h = hashlib.sha256()
    block = 4 * MiB
    with path.open("wb") as f:
        for counter, done in enumerate(range(0, size, block)):
            rng = random.Random(f"pullman-bench-{seed}-{counter}")  # noqa: S311 - test data
            chunk = rng.randbytes(min(block, size - done))
            f.write(chunk)
            h.update(chunk)
    return h.hexdigest()


class Sim:
    """pullman's simulator in a subprocess (benchlib/simserver.py)."""

    def __init__(self, base: Path, spec: dict[str, Any]) -> None:
        self.base = base
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def start(self, timeout: float = 180.0) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        info_file = self.base / "sim.json"
        self.spec["info_file"] = str(info_file)
        spec_file = self.base / "spec.json"
        spec_file.write_text(json.dumps(self.spec))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(HERE.parent) + os.pathsep + env.get("PYTHONPATH", "")
        argv = [sys.executable, str(HERE / "simserver.py"), str(spec_file)]
        self.proc = procs.start(
            argv, env=env, stdout=self.base / "sim.log", stderr=self.base / "sim.err"
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if info_file.exists():
                self.info = json.loads(info_file.read_text())
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        err = (self.base / "sim.err").read_text(errors="replace")
        raise BenchError(f"the simulator did not start:\n{err[-2000:]}")

    def get(self, path: str) -> dict[str, Any]:
        url = self.info["origin"] + path
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback
            doc: dict[str, Any] = json.loads(resp.read())
            return doc

    def stop(self) -> None:
        if self.proc is not None:
            procs.kill_tree(self.proc, term_first=3.0)
            self.proc = None


# ---------------------------------------------------------------------- the run


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def base_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PULLMAN_", "HF_", "HUGGINGFACE_", "OLLAMA_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_one(
    contender: str,
    target: Target,
    tools: Tools,
    run_dir: Path,
    timeout: float,
    nginx: Nginx,
    sim: Sim | None,
) -> dict[str, Any]:
    job = build_job(contender, target, tools, run_dir)
    on_sim = PROFILES[target.case.profile].server == "sim"
    if on_sim and sim is not None:
        sim.get("/_bench/rearm")
        sim.get("/_bench/stats")
    nginx.mark()
    m = procs.run_measured(
        job.argv, run_dir=run_dir, env=job.env, timeout=timeout, ports=target.data_ports
    )
    opened: int | None = None
    requests: int | None = None
    if on_sim and sim is not None:
        stats = sim.get("/_bench/stats")
        opened = int(stats["origin"]["connections"])
    else:
        logged = nginx.since_mark()
        opened, requests = logged.connections, logged.requests
    status, error = "ok", ""
    if m.timed_out:
        status, error = "timeout", ""
    elif m.rc != 0:
        status = "failed"
        tail = (m.stderr.strip().splitlines() or m.stdout.strip().splitlines() or ["?"])[-1]
        error = f"exit {m.rc}: {tail[:200]}"
    else:
        status, error = check_output(contender, job.output(m.stdout), m.stdout, target)
    extra = job.details(m.stdout) if status == "ok" else {}
    record: dict[str, Any] = {
        "case": target.case.name,
        "contender": contender,
        "status": status,
        "error": error,
        "rc": m.rc,
        "wall": round(m.wall, 4),
        "user": m.user,
        "sys": m.sys,
        "cpu": m.cpu,
        "maxrss_mib": (m.maxrss_kib / 1024) if m.maxrss_kib is not None else None,
        "peak_conns": m.peak_conns,
        "opened": opened,
        "requests": requests,
        "shown": job.shown,
        "verifies": job.verifies,
        "extra": extra,
        "argv": m.argv,
    }
    return record


def check_output(contender: str, path: Path | None, stdout: str, target: Target) -> tuple[str, str]:
    if contender == "openssl":
        return ("ok", "") if target.sha256 in stdout else ("bad-output", "wrong digest")
    if contender == "curl-sha" and target.sha256 not in stdout:
        return "bad-output", "the pipeline printed the wrong digest"
    if path is None or not path.exists():
        return "bad-output", f"no output file ({path})"
    size = path.stat().st_size
    if size != target.size:
        return "bad-output", f"output has {size} bytes, want {target.size}"
    if sha256_file(path) != target.sha256:
        return "bad-output", "output does not match the sha256"
    return "ok", ""


def fmt_run(r: dict[str, Any]) -> str:
    what = f"{r['wall']:.2f} s" if r["status"] == "ok" else f"{r['status']} after {r['wall']:.1f} s"
    cpu = f", cpu {r['cpu']:.2f} s" if r.get("cpu") is not None else ""
    rss = f", rss {r['maxrss_mib']:.0f} MiB" if r.get("maxrss_mib") is not None else ""
    extra = ""
    if "tail_seconds" in r["extra"]:
        extra = f", tail {r['extra']['tail_seconds']:.3f} s"
    if "restarts" in r["extra"]:
        extra = f", {r['extra']['restarts']} restarts"
    err = f"  [{r['error']}]" if r["error"] else ""
    return f"{what}{cpu}{rss}, conns {r['peak_conns']}{extra}{err}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = "scripts/bench" + ("" if not sys.argv[1:] else " " + shlex.join(sys.argv[1:]))
    cases = _csv(args.profiles, list(CASES), "case") or list(CASES)
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
    if not plan:
        raise BenchError("nothing to run: no case has any of the chosen contenders")
    contenders_used = {x for xs in plan.values() for x in xs}
    found = check_tools(list(plan), contenders_used)

    parent = Path(args.workdir) if args.workdir else None
    work = Path(tempfile.mkdtemp(prefix="pullman-bench.", dir=parent))
    work.chmod(0o755)
    log(f"==> scripts/bench: work dir {work}")
    nginx: Nginx | None = None
    sim: Sim | None = None
    try:
        www = work / "www"
        www.mkdir()
        files: dict[int, tuple[str, str]] = {}
        for c in plan:
            size = sizes[c]
            if size not in files:
                name = f"data-{human_size(size).replace(' ', '')}.bin"
                log(f"==> making {name} ({human_size(size)})")
                files[size] = (name, make_file(www / name, size, seed=1))
        mach = machine.describe(work, found)

        nginx_profiles = [p for p, prof in PROFILES.items() if prof.server == "nginx"]
        nginx = Nginx(str(found["nginx"]), work / "nginx", www, nginx_profiles)
        nginx.start()
        log(f"==> nginx on {nginx.url} (profiles: {', '.join(nginx_profiles)})")

        spec: dict[str, Any] = {"host": "127.0.0.1", "seed": 1, "files": []}
        for c in plan:
            case = CASES[c]
            name, digest = files[sizes[c]]
            entry = {"path": str(www / name), "sha256": digest}
            if PROFILES[case.profile].server == "sim":
                spec["files"].append(
                    {"name": f"{case.profile}-{name}", "profile": case.profile, **entry}
                )
            redirect = nginx.file_url(case.profile, name)
            if case.via == "ollama":
                spec["ollama"] = {"repo": "bench/crawl", "redirect": redirect, **entry}
            if case.via == "hub":
                spec["hub"] = {
                    "repo": "bench/burst-model",
                    "filename": "model.safetensors",
                    "redirect": redirect,
                    **entry,
                }
        if spec["files"] or "ollama" in spec or "hub" in spec:
            sim = Sim(work / "sim", spec)
            log("==> starting pullman's simulator (registry / Hub metadata, lossy and decay-sim)")
            sim.start()

        (work / "seed.sh").write_text(SEED_SCRIPT)
        (work / "hf_download.py").write_text(HF_SCRIPT)
        tools = Tools(
            pullman=str(found["pullman"]),
            python=sys.executable,
            aria2c=str(found.get("aria2c") or "aria2c"),
            curl=str(found["curl"]),
            openssl=str(found["openssl"]),
            seed_script=work / "seed.sh",
            hf_script=work / "hf_download.py",
            seed_interval=interval,
            base_env=base_env(),
        )

        runs: list[dict[str, Any]] = []
        for c, contenders in plan.items():
            case = CASES[c]
            name, digest = files[sizes[c]]
            target = _target(case, name, digest, sizes[c], www, nginx, sim)
            log(
                f"==> {c}: {case.title}, {human_size(sizes[c])}, {rounds} round(s): "
                + ", ".join(contenders)
            )
            skip: set[str] = set()
            for rnd in range(rounds):
                k = rnd % len(contenders)
                order = contenders[k:] + contenders[:k]
                for contender in order:
                    if contender in skip:
                        continue
                    run_dir = work / "runs" / c / f"{contender}-r{rnd + 1}"
                    r = run_one(contender, target, tools, run_dir, timeout, nginx, sim)
                    r["round"] = rnd + 1
                    runs.append(r)
                    log(f"    r{rnd + 1} {contender:<19} {fmt_run(r)}")
                    if not args.keep:
                        shutil.rmtree(run_dir, ignore_errors=True)
                    slow = r["status"] == "timeout" or r["wall"] > once_over
                    if once_over and rnd == 0 and slow:
                        skip.add(contender)
                        if rounds > 1:
                            log(f"      ({contender} took over {once_over:g} s: not repeated)")

        summaries = {c: report.summarize(runs, c, sizes[c], timeout) for c in plan}
        goals = report.targets(summaries, sizes, runs)
        shown: dict[str, str] = {}
        for r in runs:
            shown.setdefault(r["contender"], r["shown"])
        doc: dict[str, Any] = {
            "command": command,
            "started": started_at,
            "duration_s": time.monotonic() - started,
            "settings": {
                "quick": args.quick,
                "rounds": rounds,
                "timeout": timeout,
                "once_over": once_over,
                "seed_interval": interval,
                "sizes": sizes,
            },
            "machine": mach,
            "load_at_end": list(os.getloadavg()),
            "profiles": sorted({CASES[c].profile for c in plan}, key=list(PROFILES).index),
            "nginx_config": nginx.config,
            "contenders": shown,
            "cases": [{"name": c, "size": sizes[c], "summary": summaries[c]} for c in plan],
            "targets": goals,
            "runs": runs,
        }
    finally:
        if sim is not None:
            sim.stop()
        if nginx is not None:
            nginx.stop()
        procs.kill_all()
        if args.keep:
            log(f"==> kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    to_stdout_json = args.json == "-"
    show = (lambda s: print(s, file=sys.stderr)) if to_stdout_json else print
    for case in doc["cases"]:
        show(f"\n## {case['name']} ({human_size(case['size'])})")
        show(report.console_table(case["summary"]))
    show("\n## targets (issue 6)" + ("  [QUICK RUN: indicative only]" if args.quick else ""))
    for t in goals:
        show(f"{t['status']}: {t['target']}: {t['text']}")
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report.markdown(doc))
        log(f"==> wrote {out}")
    if args.json:
        text = json.dumps(doc, indent=2, default=str)
        if to_stdout_json:
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            log(f"==> wrote {args.json}")
    pullman_broken = any(r["contender"].startswith("pullman") and r["status"] != "ok" for r in runs)
    if pullman_broken:
        log("==> some pullman runs did not produce a verified file (see above)")
        return 1
    if args.strict and any(t["status"] == "FAIL" for t in goals):
        return 1
    return 0


def _target(
    case: Any, name: str, digest: str, size: int, www: Path, nginx: Nginx, sim: Sim | None
) -> Target:
    on_sim = PROFILES[case.profile].server == "sim"
    if on_sim:
        assert sim is not None
        url = f"{sim.info['origin']}/files/{case.profile}-{name}"
        ports = [int(sim.info["ports"][0])]
    else:
        url = nginx.file_url(case.profile, name)
        ports = [nginx.port]
    t = Target(case, name, size, digest, www / name, url, ports)
    if case.via == "ollama":
        assert sim is not None
        t.ollama_model = sim.info["ollama"]["model"]
    if case.via == "hub":
        assert sim is not None
        t.hf_endpoint = sim.info["origin"]
        t.hf_repo = sim.info["hub"]["repo"]
        t.hf_filename = sim.info["hub"]["filename"]
    return t


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
