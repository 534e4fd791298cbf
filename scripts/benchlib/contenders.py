"""The contenders' exact commands, and how to find and judge what each one produced."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.cases import Case

SEED_SCRIPT = r"""#!/usr/bin/env bash
# The seed's method: `curl -C -` time-boxed to N seconds, killed and restarted until the file is
# complete, then checked with sha256sum. Usage: seed.sh URL FILE N SIZE SHA256
url=$1 out=$2 every=$3 size=$4 want=$5
restarts=0
while :; do
  timeout --foreground -s TERM "$every" curl -sS -f -C - -o "$out" "$url"; rc=$?
  have=$(stat -c %s "$out" 2>/dev/null || echo 0)
  [ "$rc" -eq 0 ] && break
  [ "$have" -ge "$size" ] && break
  restarts=$((restarts + 1))
  [ "$rc" -ne 124 ] && sleep 0.2   # curl failed by itself (reset, 5xx): do not spin
done
echo "restarts=$restarts"
echo "$want  $out" | sha256sum --check --status
"""

HF_SCRIPT = """import sys

from huggingface_hub import hf_hub_download

path = hf_hub_download(repo_id=sys.argv[1], filename=sys.argv[2], cache_dir=sys.argv[3])
print(path)
"""


@dataclass
class Target:
    """What one case's contenders fetch."""

    case: Case
    name: str
    size: int
    sha256: str
    source: Path
    """The file nginx / the simulator serves (for openssl and the checks)."""
    data_url: str
    data_ports: list[int]
    sim_url: str | None = None
    ollama_model: str | None = None
    hf_endpoint: str | None = None
    hf_repo: str | None = None
    hf_filename: str | None = None
    ref_url: str | None = None
    """The same bytes from the same server, unthrottled (for ``pullman-ref``)."""


@dataclass
class Tools:
    pullman: str
    python: str
    aria2c: str
    curl: str
    openssl: str
    seed_script: Path
    hf_script: Path
    seed_interval: float
    base_env: dict[str, str]


@dataclass
class Job:
    argv: list[str]
    env: dict[str, str]
    shown: str
    """The command as the report shows it."""
    verifies: str
    """``yes`` if the contender checks the sha256 itself, else ``no`` (``-`` for openssl)."""
    output: Callable[[str], Path | None]
    """Where the produced file is, given the run's stdout."""
    details: Callable[[str], dict[str, Any]] = field(default=lambda _out: {})


def _last_json(stdout: str) -> Any:
    start = stdout.find("[")
    if start < 0:
        return None
    try:
        return json.loads(stdout[start:])
    except ValueError:
        return None


def _pullman_main_file(stdout: str) -> dict[str, Any] | None:
    doc = _last_json(stdout)
    if not isinstance(doc, list) or not doc:
        return None
    files = [d for d in doc if isinstance(d, dict) and "size" in d]
    return max(files, key=lambda d: int(d["size"])) if files else None


def _pullman_output(stdout: str) -> Path | None:
    f = _pullman_main_file(stdout)
    return Path(f["path"]) if f is not None and f.get("path") else None


def _pullman_extra(stdout: str) -> dict[str, Any]:
    f = _pullman_main_file(stdout)
    if f is None:
        return {}
    keys = ("tail_seconds", "elapsed", "recycles", "retries", "fetched", "discarded", "verified")
    return {k: f[k] for k in keys if k in f}


def _seed_extra(stdout: str) -> dict[str, Any]:
    m = re.search(r"restarts=(\d+)", stdout)
    return {"restarts": int(m.group(1))} if m else {}


def build_job(contender: str, t: Target, tools: Tools, run_dir: Path) -> Job:
    out_dir = run_dir / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    out_file = out_dir / t.name
    env = dict(tools.base_env)
    if contender in ("pullman", "pullman-c16"):
        return _pullman_job(contender, t, tools, run_dir, env)
    if contender == "pullman-ref":
        return _pullman_ref_job(t, tools, run_dir, env)
    if contender == "hf_hub_download":
        return _hf_job(t, tools, run_dir, env)
    if contender.startswith("aria2c"):
        return _aria2c_job(contender, t, tools, out_file, env)
    if contender == "curl":
        argv = [tools.curl, "-sS", "-f", "-o", str(out_file), t.data_url]
        return Job(argv, env, "curl -sS -f -o FILE URL", "no", lambda _s: out_file)
    if contender == "curl-sync":
        script = '"$1" -sS -f -o "$2" "$3" && sync "$2"'
        argv = ["bash", "-c", script, "curl-sync", tools.curl, str(out_file), t.data_url]
        return Job(argv, env, "curl -sS -f -o FILE URL && sync FILE", "no", lambda _s: out_file)
    if contender == "seed":
        return _seed_job(t, tools, out_file, env)
    if contender == "curl-sha":
        script = 'curl -sS -f "$1" | tee "$2" | "$3" dgst -sha256'
        argv = ["bash", "-o", "pipefail", "-c", script, "curl-sha", t.data_url, str(out_file)]
        argv.append(tools.openssl)
        shown = "curl -sS -f URL | tee FILE | openssl dgst -sha256 (bash -o pipefail)"
        return Job(argv, env, shown, "yes", lambda _s: out_file)
    if contender == "openssl":
        argv = [tools.openssl, "dgst", "-sha256", str(t.source)]
        return Job(
            argv,
            env,
            "openssl dgst -sha256 FILE (the served file, page-cached)",
            "-",
            lambda _s: None,
        )
    raise ValueError(f"unknown contender {contender!r}")


def _pullman_job(
    contender: str, t: Target, tools: Tools, run_dir: Path, env: dict[str, str]
) -> Job:
    out_dir = run_dir / "out"
    env["PULLMAN_HOME"] = str(run_dir / "pullman-home")
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"  # no Ollama server here
    extra_args: list[str] = []
    shown_extra = ""
    env_note = "  (with PULLMAN_SCHEDULE_PER_HOST=16)"
    if contender == "pullman-c16":
        extra_args = ["-c", "16"]
        # -c is capped by [schedule] per_host (8 by default): lift it, or -c 16 means 8.
        env["PULLMAN_SCHEDULE_PER_HOST"] = "16"
        shown_extra = " -c 16"
    via = t.case.via
    if via == "url":
        argv = [tools.pullman, "get", t.data_url, "--sha256", t.sha256, "-o", f"{out_dir}/"]
        shown = "pullman get URL --sha256 HEX -o DIR/"
    elif via == "ollama":
        assert t.ollama_model is not None
        models = run_dir / "ollama-models"
        argv = [tools.pullman, "get", t.ollama_model, "--insecure", "--ollama-dir", str(models)]
        shown = "pullman get 127.0.0.1:PORT/bench/crawl:latest --insecure --ollama-dir DIR"
    else:
        assert t.hf_endpoint is not None and t.hf_repo is not None
        env["HF_ENDPOINT"] = t.hf_endpoint
        env["HF_HUB_CACHE"] = str(run_dir / "hf-cache")
        argv = [tools.pullman, "get", f"hf://{t.hf_repo}"]
        shown = f"HF_ENDPOINT=SIM pullman get hf://{t.hf_repo}  (fresh HF_HUB_CACHE)"
    return Job(
        [*argv, *extra_args, "--json"],
        env,
        shown + shown_extra + " --json" + (env_note if contender == "pullman-c16" else ""),
        "yes",
        _pullman_output,
        _pullman_extra,
    )


def _pullman_ref_job(t: Target, tools: Tools, run_dir: Path, env: dict[str, str]) -> Job:
    """pullman on the same bytes, unthrottled: its own reference time (issue 17, goal 2)."""
    assert t.ref_url is not None
    env["PULLMAN_HOME"] = str(run_dir / "pullman-home")
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"
    argv = [tools.pullman, "get", t.ref_url, "--sha256", t.sha256, "-o", f"{run_dir}/out/"]
    shown = "pullman get URL --sha256 HEX -o DIR/ --json, URL = the same bytes unthrottled"
    return Job([*argv, "--json"], env, shown, "yes", _pullman_output, _pullman_extra)


def _hf_output(stdout: str) -> Path | None:
    lines = stdout.strip().splitlines()
    return Path(lines[-1]) if lines else None


def _hf_job(t: Target, tools: Tools, run_dir: Path, env: dict[str, str]) -> Job:
    assert t.hf_endpoint is not None and t.hf_repo is not None and t.hf_filename is not None
    env["HF_ENDPOINT"] = t.hf_endpoint
    env["HF_HOME"] = str(run_dir / "hf-home")
    cache = run_dir / "hf-cache"
    argv = [tools.python, str(tools.hf_script), t.hf_repo, t.hf_filename, str(cache)]
    shown = (
        f"hf_hub_download({t.hf_repo!r}, {t.hf_filename!r}, cache_dir=FRESH) "
        "in a python subprocess, HF_ENDPOINT=SIM"
    )
    return Job(argv, env, shown, "no", _hf_output)


def _aria2c_job(
    contender: str, t: Target, tools: Tools, out_file: Path, env: dict[str, str]
) -> Job:
    argv = [tools.aria2c, "--no-conf"]
    shown = "aria2c"
    if contender in ("aria2c-x16", "aria2c-x16-nocheck", "aria2c-k1m"):
        argv += ["-x16", "-s16"]
        shown += " -x16 -s16"
    if contender == "aria2c-k1m":  # issue 17: every advantage (1 MiB pieces, no checksum)
        argv.append("-k1M")
        shown += " -k1M"
    verifies = "no"
    if contender not in ("aria2c-x16-nocheck", "aria2c-k1m"):
        argv.append(f"--checksum=sha-256={t.sha256}")
        shown += " --checksum=sha-256=HEX"
        verifies = "yes"
    argv += [
        "-d",
        str(out_file.parent),
        "-o",
        t.name,
        "--console-log-level=warn",
        "--summary-interval=0",
        "--show-console-readout=false",
        t.data_url,
    ]
    return Job(argv, env, shown + " -d DIR -o NAME URL", verifies, lambda _s: out_file)


def _seed_job(t: Target, tools: Tools, out_file: Path, env: dict[str, str]) -> Job:
    n = f"{tools.seed_interval:g}"
    argv = ["bash", str(tools.seed_script), t.data_url, str(out_file), n, str(t.size), t.sha256]
    shown = (
        f"`curl -sS -f -C - -o FILE URL` under `timeout {n}`, restarted until complete, "
        "then `sha256sum --check`"
    )
    return Job(argv, env, shown, "yes", lambda _s: out_file, _seed_extra)


def applicable(contender: str, case: Case) -> bool:
    if contender == "hf_hub_download":
        return case.via == "hub"
    return True


def python_executable() -> str:
    return sys.executable
