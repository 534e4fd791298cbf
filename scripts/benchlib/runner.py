"""One bench run: the files, nginx and the simulator, every contender on every case in
alternating order for the rounds, and the document the report is made from."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import machine, procs, report, scale, trace
from benchlib.cases import CASES, PROFILES, Case, human_size
from benchlib.contenders import HF_SCRIPT, SEED_SCRIPT, Target, Tools, build_job
from benchlib.files import make_file, sha256_file
from benchlib.goals import issue17_goals
from benchlib.nginx import Nginx
from benchlib.options import BenchError, Plan, log
from benchlib.targets import targets

HERE = Path(__file__).resolve().parent


# ---------------------------------------------------------------------- files and servers


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
    *,
    traced: bool = False,
) -> dict[str, Any]:
    job = build_job(contender, target, tools, run_dir)
    on_sim = PROFILES[target.case.profile].server == "sim"
    if on_sim and sim is not None:
        sim.get("/_bench/rearm")
        sim.get("/_bench/stats")
    nginx.mark()
    m, points = _measured(job.argv, job.env, target, run_dir, timeout, traced=traced)
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
    if points is not None:
        record["trace"] = points
    return record


def _measured(
    argv: list[str],
    env: dict[str, str],
    target: Target,
    run_dir: Path,
    timeout: float,
    *,
    traced: bool,
) -> tuple[procs.Measured, list[tuple[float, int]] | None]:
    """The measured run, and its bytes over time when ``traced``."""
    traced = traced and trace.available()
    tracer = trace.ByteTrace(target.data_ports) if traced else None
    if tracer is not None:
        tracer.start()
    try:
        m = procs.run_measured(
            argv, run_dir=run_dir, env=env, timeout=timeout, ports=target.data_ports
        )
    finally:
        points = tracer.stop() if tracer is not None else None
    return m, points


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


def target_for(
    case: Case, name: str, digest: str, size: int, www: Path, nginx: Nginx, sim: Sim | None
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
    t.ref_url = (
        f"{sim.info['origin']}/files/full-{name}"
        if on_sim and sim is not None
        else nginx.file_url("unthrottled", name)
    )
    if case.via == "ollama":
        assert sim is not None
        t.ollama_model = sim.info["ollama"]["model"]
    if case.via == "hub":
        assert sim is not None
        t.hf_endpoint = sim.info["origin"]
        t.hf_repo = sim.info["hub"]["repo"]
        t.hf_filename = sim.info["hub"]["filename"]
    return t


class Bench:
    """The servers and the runs of one ``scripts/bench``; :meth:`stop` stops the servers."""

    def __init__(self, plan: Plan, found: dict[str, str | None], work: Path, *, keep: bool) -> None:
        self.plan, self.found, self.work, self.keep = plan, found, work, keep
        self.www = work / "www"
        self.files: dict[int, tuple[str, str]] = {}
        """Size -> (name, sha256) of the file every case of that size fetches."""
        self.nginx: Nginx | None = None
        self.sim: Sim | None = None
        self.runs: list[dict[str, Any]] = []
        self.scale: dict[str, Any] | None = None
        """Goal 4's figures (benchlib/scale.py), if the plan has the scale case."""

    # ------------------------------------------------------------------ set-up

    def start(self) -> tuple[dict[str, Any], Nginx, Tools]:
        """Make the files, start nginx (and the simulator if a case needs it); returns the
        machine's description, nginx and the contenders' tools."""
        self.www.mkdir()
        for c in self.plan.cases:
            size = self.plan.sizes[c]
            if size not in self.files:
                name = f"data-{human_size(size).replace(' ', '')}.bin"
                log(f"==> making {name} ({human_size(size)})")
                self.files[size] = (name, make_file(self.www / name, size, seed=1))
        mach = machine.describe(self.work, self.found)
        nginx_profiles = [p for p, prof in PROFILES.items() if prof.server == "nginx"]
        nginx = Nginx(str(self.found["nginx"]), self.work / "nginx", self.www, nginx_profiles)
        self.nginx = nginx
        nginx.start()
        log(f"==> nginx on {nginx.url} (profiles: {', '.join(nginx_profiles)})")
        spec = self.sim_spec(nginx)
        if self.plan.scale:
            spec["hub_many"] = {"count": scale.HF_FILES}
        if spec["files"] or "ollama" in spec or "hub" in spec or "hub_many" in spec:
            self.sim = Sim(self.work / "sim", spec)
            log("==> starting pullman's simulator (registry / Hub metadata, lossy and decay-sim)")
            self.sim.start()
        return mach, nginx, self.tools()

    def sim_spec(self, nginx: Nginx) -> dict[str, Any]:
        """What the simulator serves: the sim profiles' files, the registry's model and the
        Hub's repo (their data redirects point at nginx)."""
        spec: dict[str, Any] = {"host": "127.0.0.1", "seed": 1, "files": []}
        for c in self.plan.cases:
            case = CASES[c]
            name, digest = self.files[self.plan.sizes[c]]
            entry = {"path": str(self.www / name), "sha256": digest}
            if PROFILES[case.profile].server == "sim":
                spec["files"].append(
                    {"name": f"{case.profile}-{name}", "profile": case.profile, **entry}
                )
                full = {"name": f"full-{name}", "profile": "full", **entry}
                if full not in spec["files"]:  # the same bytes unthrottled, for pullman-ref
                    spec["files"].append(full)
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
        return spec

    def tools(self) -> Tools:
        found = self.found
        (self.work / "seed.sh").write_text(SEED_SCRIPT)
        (self.work / "hf_download.py").write_text(HF_SCRIPT)
        return Tools(
            pullman=str(found["pullman"]),
            python=sys.executable,
            aria2c=str(found.get("aria2c") or "aria2c"),
            curl=str(found["curl"]),
            openssl=str(found["openssl"]),
            seed_script=self.work / "seed.sh",
            hf_script=self.work / "hf_download.py",
            seed_interval=self.plan.interval,
            base_env=base_env(),
        )

    # ------------------------------------------------------------------ the runs

    def run(self, nginx: Nginx, tools: Tools) -> list[dict[str, Any]]:
        for c, contenders in self.plan.cases.items():
            self.run_case(c, contenders, nginx, tools)
        if self.plan.scale:
            log(
                f"==> scale: issue 17's goal 4 ({human_size(self.plan.scale)} sparse, "
                f"killed at {scale.KILL_AT:.0%}; a {scale.HF_FILES}-file Hub repo)"
            )
            hub = self.sim.info["origin"] if self.sim is not None else None
            self.scale = scale.ScaleRun(
                self.work,
                self.www,
                nginx,
                tools.pullman,
                tools.base_env,
                self.plan.scale,
                hub,
                self.plan.timeout,
            ).run()
        return self.runs

    def run_case(self, c: str, contenders: list[str], nginx: Nginx, tools: Tools) -> None:
        """The case's rounds, the contenders' order rotating every round; a contender whose
        first run was too slow (``--once-over``) is not repeated."""
        plan = self.plan
        case = CASES[c]
        name, digest = self.files[plan.sizes[c]]
        target = target_for(case, name, digest, plan.sizes[c], self.www, nginx, self.sim)
        log(
            f"==> {c}: {case.title}, {human_size(plan.sizes[c])}, {plan.rounds} round(s): "
            + ", ".join(contenders)
        )
        skip: set[str] = set()
        for rnd in range(plan.rounds):
            k = rnd % len(contenders)
            order = contenders[k:] + contenders[:k]
            for contender in order:
                if contender in skip:
                    continue
                run_dir = self.work / "runs" / c / f"{contender}-r{rnd + 1}"
                # Only the first round is traced (the plot draws it): ``ss`` every 0.1 s is a
                # process start each time, CPU taken from a contender on two cores.
                traced = case.traced and rnd == 0
                r = run_one(
                    contender, target, tools, run_dir, plan.timeout, nginx, self.sim, traced=traced
                )
                r["round"] = rnd + 1
                self.runs.append(r)
                log(f"    r{rnd + 1} {contender:<19} {fmt_run(r)}")
                if not self.keep:
                    shutil.rmtree(run_dir, ignore_errors=True)
                slow = r["status"] == "timeout" or r["wall"] > plan.once_over
                if plan.once_over and rnd == 0 and slow:
                    skip.add(contender)
                    if plan.rounds > 1:
                        log(f"      ({contender} took over {plan.once_over:g} s: not repeated)")

    # ------------------------------------------------------------------ the end

    def document(
        self, head: dict[str, Any], mach: dict[str, Any], nginx: Nginx, quick: bool
    ) -> dict[str, Any]:
        """Everything the report shows (and ``--json`` writes), after ``head`` (the command,
        when it started, how long it took)."""
        plan, runs = self.plan, self.runs
        summaries = {c: report.summarize(runs, c, plan.sizes[c], plan.timeout) for c in plan.cases}
        goals = targets(summaries, plan.sizes, runs)
        perf_goals = issue17_goals(summaries, plan.sizes, runs, self.scale)
        shown: dict[str, str] = {}
        for r in runs:
            shown.setdefault(r["contender"], r["shown"])
        return {
            **head,
            "settings": {
                "quick": quick,
                "rounds": plan.rounds,
                "timeout": plan.timeout,
                "once_over": plan.once_over,
                "seed_interval": plan.interval,
                "sizes": plan.sizes,
            },
            "machine": mach,
            "load_at_end": list(os.getloadavg()),
            "profiles": sorted({CASES[c].profile for c in plan.cases}, key=list(PROFILES).index),
            "nginx_config": nginx.config,
            "contenders": shown,
            "cases": [
                {"name": c, "size": plan.sizes[c], "summary": summaries[c]} for c in plan.cases
            ],
            "targets": goals,
            "goals": perf_goals,
            "scale": self.scale,
            "runs": runs,
        }

    def stop(self) -> None:
        if self.sim is not None:
            self.sim.stop()
        if self.nginx is not None:
            self.nginx.stop()
