"""Medians and ratios to pullman per case, and the Markdown / console tables and document
(the targets are judged in :mod:`benchlib.targets`)."""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from benchlib.cases import CASES, PROFILES, GiB, MiB, human_size

Run = dict[str, Any]
Summary = dict[str, Any]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(runs: list[Run], case: str, size: int, timeout: float) -> list[Summary]:
    """One row per contender of ``case``, in the order they first ran."""
    order: list[str] = []
    for r in runs:
        if r["case"] == case and r["contender"] not in order:
            order.append(r["contender"])
    rows = [
        _summarize_one(
            [r for r in runs if r["case"] == case and r["contender"] == c], size, timeout
        )
        for c in order
    ]
    base = next((row for row in rows if row["contender"] == "pullman"), None)
    for row in rows:
        row["ratio"], row["ratio_bound"] = _ratio(row, base)
    return rows


def _summarize_one(rs: list[Run], size: int, timeout: float) -> Summary:
    ok = [r for r in rs if r["status"] == "ok"]
    timed = [r for r in rs if r["status"] == "timeout"]
    walls = [r["wall"] for r in ok] + [math.inf for _ in timed]
    med = _median(walls)
    censored = med is not None and math.isinf(med)
    cpus = [r["cpu"] / (size / GiB) for r in ok if r.get("cpu") is not None]
    rss = [r["maxrss_mib"] for r in rs if r.get("maxrss_mib") is not None]
    conns = [r["peak_conns"] for r in rs if r.get("peak_conns") is not None]
    opened = [r["opened"] for r in ok if r.get("opened") is not None]
    row: Summary = {
        "contender": rs[0]["contender"],
        "shown": rs[0]["shown"],
        "verifies": rs[0]["verifies"],
        "runs": len(rs),
        "ok": len(ok),
        "statuses": dict(Counter(r["status"] for r in rs)),
        "median_wall": (timeout if censored else med),
        "censored": censored,
        "mib_s": (size / MiB / med) if med and not censored else None,
        "cpu_s_per_gib": _median(cpus),
        "peak_rss_mib": max(rss) if rss else None,
        "peak_conns": max(conns) if conns else None,
        "opened": _median([float(x) for x in opened]),
        "errors": sorted({r["error"] for r in rs if r.get("error")}),
    }
    for key in ("elapsed", "tail_seconds", "recycles", "retries", "restarts"):
        vals = [float(r["extra"][key]) for r in ok if key in r.get("extra", {})]
        if vals:
            row[key] = _median(vals)
            row[key + "_max"] = max(vals)
    return row


def _ratio(row: Summary, base: Summary | None) -> tuple[float | None, str]:
    """contender median / pullman median; ``bound`` is ``>=`` when the contender timed out,
    ``<=`` when pullman did."""
    if base is None or row["median_wall"] is None or base["median_wall"] is None:
        return None, ""
    if base["median_wall"] <= 0:
        return None, ""
    ratio = row["median_wall"] / base["median_wall"]
    if row["censored"] and base["censored"]:
        return None, ""
    return ratio, (">=" if row["censored"] else "<=" if base["censored"] else "")


# ---------------------------------------------------------------------- tables


def _fmt(v: float | None, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _notes(row: Summary) -> str:
    parts: list[str] = []
    if "elapsed" in row:
        parts.append(f"engine {row['elapsed']:.2f} s")
    if "tail_seconds" in row:
        parts.append(f"tail {row['tail_seconds']:.3f} s (max {row['tail_seconds_max']:.3f})")
    if "recycles" in row:
        parts.append(f"{row['recycles']:.0f} recycled")
    if row.get("retries"):
        parts.append(f"{row['retries']:.0f} retried")
    if "restarts" in row:
        parts.append(f"{row['restarts']:.0f} restarts")
    bad = {k: v for k, v in row["statuses"].items() if k != "ok"}
    if bad:
        parts.append(", ".join(f"{v} {k}" for k, v in bad.items()))
    if row["errors"]:
        parts.append("error: " + "; ".join(row["errors"])[:160])
    return "; ".join(parts)


def table_rows(rows: list[Summary]) -> list[list[str]]:
    out = []
    for row in rows:
        wall = row["median_wall"]
        if wall is None:
            wall_s = "failed"
        elif row["censored"]:
            wall_s = f">{wall:.0f}"
        else:
            wall_s = f"{wall:.2f}"
        ratio = row["ratio"]
        ratio_s = "-" if ratio is None else f"{row['ratio_bound']}{ratio:.2f}x"
        conns = "-"
        if row["peak_conns"] is not None and row["contender"] != "openssl":
            conns = f"{row['peak_conns']}"
            if row["opened"] is not None:
                conns += f" / {row['opened']:.0f}"
        out.append(
            [
                row["contender"],
                row["verifies"],
                f"{row['ok']}/{row['runs']}",
                wall_s,
                ratio_s,
                _fmt(row["mib_s"], ".0f"),
                _fmt(row["cpu_s_per_gib"], ".2f"),
                _fmt(row["peak_rss_mib"], ".0f"),
                conns,
                _notes(row),
            ]
        )
    return out


HEADER = [
    "contender",
    "verifies",
    "ok",
    "median wall s",
    "vs pullman",
    "MiB/s",
    "CPU s/GiB",
    "peak RSS MiB",
    "conns peak / opened",
    "notes",
]


def markdown_table(rows: list[Summary]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for cells in table_rows(rows):
        cells = [c.replace("|", "\\|") for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def console_table(rows: list[Summary]) -> str:
    cells = [HEADER[:-1], *[r[:-1] for r in table_rows(rows)]]
    notes = ["notes", *[r[-1] for r in table_rows(rows)]]
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = []
    for row, note in zip(cells, notes, strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + "  " + note)
    return "\n".join(lines)


# ---------------------------------------------------------------------- the document


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB"


def markdown(doc: dict[str, Any]) -> str:
    out = [
        *_md_head(doc),
        *_md_results(doc),
        *_md_scale(doc.get("scale")),
        *_md_profiles(doc),
        *_md_servers(doc),
        *_md_contenders(doc),
        *_md_machine(doc),
    ]
    return "\n".join([*out, "", *HOW_TO_RUN])


QUICK_NOTE = [
    "> **QUICK RUN (`--quick`)** — CI-sized files, one round, short time-outs. These",
    "> numbers only show that the harness works end to end; they are **not** the",
    "> benchmark. The targets below are judged on the full run (`scripts/bench`), which",
    "> the integrator still has to do on an otherwise idle machine.",
    "",
]


def _md_head(doc: dict[str, Any]) -> list[str]:
    """The title, the quick-run warning, the command and the targets."""
    out: list[str] = ["# Benchmarks: pullman against its peers", ""]
    if doc["settings"]["quick"]:
        out += QUICK_NOTE
    out += [
        f"Command: `{doc['command']}`  ",
        f"Started {doc['started']}, took {doc['duration_s']:.0f} s; "
        f"{doc['settings']['rounds']} round(s), contenders alternating (the order rotates "
        f"every round); per-run time-out {doc['settings']['timeout']:.0f} s; the seed's "
        f"restart interval {doc['settings']['seed_interval']:g} s.",
        "",
        "## Targets (issue 6)",
        "",
    ]
    for t in doc["targets"]:
        out.append(f"- **{t['status']}** {t['target']}: {t['text']}")
    out += ["", "## Goals (issue 17: performance to the limit)", ""]
    for g in doc.get("goals", []):
        out.append(f"- **{g['status']}** goal {g['goal']}, {g['target']}: {g['text']}")
    for png in doc.get("plots", []):
        out += ["", f"![{Path(png).stem}]({png})"]
    return out


RESULTS_NOTE = (
    "Wall time is from starting the command to its exit with the file complete (and "
    "verified where *verifies* says yes). *vs pullman* = the contender's median / "
    "pullman's median (above 1: pullman is faster). CPU is user+sys of the whole process "
    "tree per GiB of the file (including interpreter start-up); peak RSS is the largest "
    "single process (GNU time `%M`); *conns peak* is the most TCP connections to the data "
    "server that the contender held at once (sampled every 25 ms: the ESTABLISHED "
    "sockets in /proc/net/tcp that its processes hold), "
    "*opened* how many the server saw it open. For pullman, *tail* is `tail_seconds` from "
    "`pullman get --json`: last byte received to the verified, committed file; *engine* is "
    "its `elapsed` (the file's transfer, start to commit), so wall minus engine is "
    "interpreter start-up, metadata and bookkeeping. Every "
    "produced file was also re-hashed by the harness afterwards (not timed)."
)
"""What the results' columns mean."""


def _md_results(doc: dict[str, Any]) -> list[str]:
    """One table per case."""
    out = ["", "## Results", "", RESULTS_NOTE, ""]
    for case in doc["cases"]:
        c = CASES[case["name"]]
        prof = PROFILES[c.profile]
        out += [
            f"### {c.name}: {c.title} ({human_size(case['size'])})",
            "",
            f"Profile `{c.profile}` ({prof.server}): {prof.summary}.",
            "",
            markdown_table(case["summary"]),
            "",
        ]
    return out


def _md_scale(scale: dict[str, Any] | None) -> list[str]:
    """Goal 4's runs (benchlib/scale.py), as a table."""
    if not scale or "error" in scale:
        return []
    size = human_size(scale["size"])
    out = [
        f"### scale: a {size} sparse file, 1 GiB for reference, a 50-file Hub repo",
        "",
        "nginx serves sparse files unthrottled (sendfile); pullman's RSS and journal size are "
        "sampled every 0.25 s; the kill comes once its sockets received 90 % of the file. "
        "*refetched* is what nginx sent for the killed "
        "run and its resume together, less the file's size.",
        "",
        "| run | status | wall s | CPU s/GiB | peak RSS MiB | journal B |",
        "|---|---|---|---|---|---|",
    ]
    for r in [*scale.get("base", []), scale["full"]]:
        cpu = f"{r['cpu_s_per_gib']:.2f}" if r.get("cpu_s_per_gib") is not None else "-"
        out.append(
            f"| {r['label']} | {r['status']} | {r['wall']:.2f} | {cpu} | "
            f"{r['rss_peak_mib']:.0f} | {r['journal_max']} |"
        )
    res = scale["resume"]
    out += [
        "",
        f"SIGKILL at {human_size(res['received_at_kill'] or 0)} received "
        f"({human_size(res['durable_at_kill'])} in the journal), resume {res['status']} in "
        f"{res['resume_wall']:.1f} s: nginx sent {human_size(res['sent_before'])} + "
        f"{human_size(res['sent_after'])}, refetched {human_size(max(0, res['refetched']))}.",
    ]
    hf = scale.get("hf") or {}
    if "wall_many" in hf:
        out.append(
            f"A {hf['files']}-file Hub repo ({human_size(hf['file_size'])} LFS files): "
            f"{hf['wall_many']:.2f} s wall / {hf['cpu_many']:.2f} s CPU against "
            f"{hf['wall_one']:.2f} / {hf['cpu_one']:.2f} for 1 file (medians): "
            f"{hf['wall_per_file_ms']:.1f} ms wall, {hf['cpu_per_file_ms']:.1f} ms CPU a file."
        )
    return [*out, ""]


NGINX_NOTE = (
    "nginx's `limit_rate_after` counts per *request*: every new request, even on a "
    'keep-alive connection, starts with a fresh burst (so "per connection" here means per '
    "request, as nginx does it). Its limiter also grants one second of credit when a "
    "response starts, so a response runs at full speed for `limit_rate_after + limit_rate` "
    "bytes (27 MiB for burst, 4.5 MiB for crawl) and nginx times the rest in whole "
    "seconds."
)
"""How nginx's limiter counts."""

DECAY_NOTE = (
    "The decaying profile: nginx fixes a request's rate when the request starts, so "
    "it cannot slow a response down as it goes. `decay` approximates it with `map`s on "
    "`$connection_requests` and `$connection_time` (the connection's age when the "
    "request starts): the first request on a connection gets 16 MiB fast then 4 MiB/s "
    "for the rest of that response; later requests on the same connection get no burst "
    "and 4 / 2 / 1 / 0.5 / 0.25 MiB/s when the connection is under 2 / 5 / 10 / 20 / "
    "over 20 s old. A client that sends one long request sees only burst then 4 MiB/s. "
    "`decay-sim` is the real thing, served by pullman's simulator "
    "(`Throttle(decay=...)`): the rate halves every "
    "10 s of a connection's life, within a response too, down to 1 MiB/s."
)
"""How the decaying profiles approximate a decaying connection."""


def _md_profiles(doc: dict[str, Any]) -> list[str]:
    """The profiles that ran, with their nginx directives or simulator code."""
    out = [
        "## Profiles",
        "",
        "| profile | served by | what | directives / code |",
        "|---|---|---|---|",
    ]
    for name in doc["profiles"]:
        p = PROFILES[name]
        how = "<br>".join(f"`{d}`" for d in p.directives) if p.directives else ""
        if p.sim:
            how = f"`{p.sim}`"
        if not how:
            how = "(none: plain `alias`)"
        out.append(f"| `{name}` | {p.server} | {p.summary} | {how} |")
    out += ["", NGINX_NOTE, ""]
    if {"decay", "decay-sim"} & set(doc["profiles"]):
        out += [DECAY_NOTE, ""]
    return out


METADATA_NOTE = (
    "Metadata: the Ollama registry (`pullman.testing.registry.OllamaRegistry`) and the Hub "
    "(`pullman.testing.hub.HubSimulator`) run in pullman's simulator, in a subprocess; their "
    "data redirects (the registry's 307 for the model blob, the Hub's 302 for the LFS file) "
    "point at nginx, so the bytes come from nginx with the case's profile. The other "
    "contenders fetch that nginx URL directly (the blob / LFS file alone). `lossy` and "
    "`decay-sim` bytes come from the simulator itself (Python, on the same 2 cores)."
)
"""Where the registry's and the Hub's metadata come from."""


def _md_servers(doc: dict[str, Any]) -> list[str]:
    """The metadata servers and the generated nginx config."""
    workdir = doc["machine"]["workdir"]
    return [
        METADATA_NOTE,
        "",
        f"The generated nginx config (`WORK` is the run's temp dir, {workdir}):",
        "",
        "```nginx",
        doc["nginx_config"].rstrip().replace(workdir, "WORK"),
        "```",
        "",
    ]


CONTENDERS_NOTE = (
    "Each pullman run gets a fresh `PULLMAN_HOME` (defaults otherwise: 8 connections); "
    "each hf_hub_download and Hub pullman run a fresh cache. `pullman-c16` lifts "
    "`[schedule] per_host` to 16 with `PULLMAN_SCHEDULE_PER_HOST=16`: with the default "
    "per-host cap of 8, `-c 16` alone still opens at most 8 connections to one host."
)
"""What each contender's run starts from."""


def _md_contenders(doc: dict[str, Any]) -> list[str]:
    out = ["## Contenders (exact commands)", "", "| contender | command |", "|---|---|"]
    for name, shown in doc["contenders"].items():
        out.append(f"| `{name}` | {shown.replace('|', chr(92) + '|')} |")
    return [*out, "", CONTENDERS_NOTE, ""]


def _md_machine(doc: dict[str, Any]) -> list[str]:
    m = doc["machine"]
    out = [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; SHA extensions: "
        f"{'yes' if m['sha_extensions'] else 'no'}",
        f"- RAM: {_gib(m['ram_bytes'])}; kernel {m['kernel']} ({m['os']})",
        f"- temp dir {m['workdir']}: {m['disk']['fstype']} on {m['disk']['device']} "
        f"({m['disk']['kind']}), {_gib(m['disk']['free_bytes'])} free of "
        f"{_gib(m['disk']['size_bytes'])}",
        "- load average at start: "
        + ", ".join(f"{x:.2f}" for x in m["load_at_start"])
        + "; at the end: "
        + ", ".join(f"{x:.2f}" for x in doc["load_at_end"])
        + " (the machine is shared: other work may run at the same time)",
    ]
    for k, v in m["versions"].items():
        out.append(f"- {k}: {v}")
    return out


HOW_TO_RUN = [
    "## How to run it",
    "",
    "```sh",
    "apt-get install -y nginx-light aria2 curl time   # once (Debian/Ubuntu, as root)",
    "scripts/bench --quick                  # CI-sized: small files, 1 round, ~2 minutes",
    "scripts/bench --out docs/benchmarks.md --json bench.json   # the full run",
    "scripts/bench --profiles burst --contenders pullman,aria2c-x16 --rounds 5",
    "scripts/bench --profiles crawl-ollama --size 64MiB --seed-interval 5",
    "```",
    "",
    "`scripts/bench` makes sure the venv exists (like `scripts/demo`), then runs "
    "`scripts/bench.py` (the harness is in `scripts/benchlib/`). Cases (`--profiles`): "
    "`unthrottled`, `burst`, `burst-hub`, `crawl-ollama`, `decay`, `decay-sim`, `aggregate`, "
    "`lossy`; contenders (`--contenders`): `pullman`, `pullman-ref` (pullman on the same "
    "bytes from the same server, unthrottled: its own reference time), `pullman-c16`, "
    "`aria2c-x16`, `aria2c-x16-nocheck`, `aria2c-k1m` (`-x16 -s16 -k1M`), `aria2c`, `curl`, "
    "`curl-sync` (`curl -o f && sync f`), `seed`, `hf_hub_download`, `curl-sha`, "
    "`openssl`. Full-run sizes: 1 GiB (unthrottled, burst), 64 MiB (burst-hub), "
    "192 MiB (crawl-ollama, aggregate), 256 MiB (decay, decay-sim, lossy); 3 rounds; the "
    "crawl case also records the first round's received bytes over time (`ss -tin`, every 0.1 s) "
    "for the throughput plot; with `--out` (or `--plots DIR`) the PNG plots are written "
    "beside the report (needs matplotlib: `pip install 'pullman[bench]'`); a run is killed "
    "after `--timeout` (600 s) and a "
    "contender whose first run took over `--once-over` (120 s) runs only once, so the "
    "single-stream contenders on the throttled profiles (minutes each) do not triple the "
    "run. Expect the full run to take about an hour, most of it curl, aria2c's defaults and "
    "the seed loop on burst, crawl and the decaying profiles; run it on an otherwise idle "
    "machine. Exit status: 0, or 1 if a pullman run did not produce a verified file (and, "
    "with `--strict`, if a target FAILs), 2 for a usage or set-up problem (a missing tool is "
    "named with the package to install).",
    "",
]
