"""Issue 17's goals ("performance to the limit"), each a PASS / FAIL / N/A with the ratio behind
it, judged on the same run's summaries (every ratio is side by side, in one run)."""

from __future__ import annotations

import statistics
from typing import Any

from benchlib.cases import CASES, KiB, MiB, human_size
from benchlib.report import Run, Summary

__all__ = ["CPU_BURST", "CPU_UNTHROTTLED", "issue17_goals"]

CPU_UNTHROTTLED = 2.2
"""Goal 1: CPU s/GiB of pullman on the unthrottled 1 GiB (user + sys of its process tree)."""
CPU_BURST = 3.0
"""Goal 1: CPU s/GiB of pullman on the burst 1 GiB."""
NEAR_CURL = 1.1
"""Goal 1: pullman's wall time / ``curl -o f && sync f``'s, unthrottled."""
INVISIBLE = 1.5
"""Goal 2: a throttled case's wall time / pullman's own unthrottled time (``pullman-ref``)."""
VS_ARIA2C = 10.0
"""Goal 2: aria2c -x16 -s16 -k1M's wall time / pullman's, on crawl."""
NEAR_CAP = 1.05
"""Goal 3: pullman's wall time / (size / aggregate cap)."""

Goal = dict[str, str]


def _goal(goal: str, name: str, status: str, text: str) -> Goal:
    return {"goal": goal, "target": name, "status": status, "text": text}


def _row(summaries: dict[str, list[Summary]], case: str, contender: str) -> Summary | None:
    row = next((r for r in summaries.get(case, []) if r["contender"] == contender), None)
    return row if row is not None and row["ok"] > 0 and not row["censored"] else None


def _size(case: str, sizes: dict[str, int]) -> str:
    want = CASES[case].full_size
    got = sizes.get(case, want)
    return (
        ""
        if got == want
        else f" [measured at {human_size(got)}; the goal is for {human_size(want)}]"
    )


def issue17_goals(
    summaries: dict[str, list[Summary]],
    sizes: dict[str, int],
    runs: list[Run],
    scale: dict[str, Any] | None = None,
) -> list[Goal]:
    goals = [
        _near_curl(summaries, sizes),
        _cpu("unthrottled", CPU_UNTHROTTLED, summaries, sizes),
        _cpu("burst", CPU_BURST, summaries, sizes),
    ]
    goals += [
        _invisible(c, summaries, sizes) for c in ("burst", "crawl-ollama", "decay", "decay-sim")
    ]
    goals += [_vs_aria2c(summaries, sizes), _near_cap(summaries, sizes, runs)]
    return goals + _flat(scale)


def _near_curl(summaries: dict[str, list[Summary]], sizes: dict[str, int]) -> Goal:
    name = f"unthrottled 1 GiB, verified and fsynced: within {NEAR_CURL}x of curl -o f && sync f"
    p, c = _row(summaries, "unthrottled", "pullman"), _row(summaries, "unthrottled", "curl-sync")
    if p is None or c is None:
        return _goal(
            "1", name, "N/A", "not run (needs case unthrottled with pullman and curl-sync)"
        )
    ratio = p["median_wall"] / c["median_wall"]
    return _goal(
        "1",
        name,
        "PASS" if ratio <= NEAR_CURL else "FAIL",
        f"pullman {p['median_wall']:.2f} s / curl-sync {c['median_wall']:.2f} s = {ratio:.2f}x "
        f"(need <= {NEAR_CURL}x)" + _size("unthrottled", sizes),
    )


def _cpu(
    case: str, limit: float, summaries: dict[str, list[Summary]], sizes: dict[str, int]
) -> Goal:
    name = f"{case} 1 GiB: pullman <= {limit} CPU s/GiB"
    p = _row(summaries, case, "pullman")
    if p is None or p["cpu_s_per_gib"] is None:
        return _goal("1", name, "N/A", f"not run (needs pullman in case {case})")
    cpu = p["cpu_s_per_gib"]
    peers = [
        f"{r['contender']} {r['cpu_s_per_gib']:.2f}"
        for r in summaries.get(case, [])
        if r["contender"] in ("curl-sync", "curl", "aria2c-x16") and r["cpu_s_per_gib"] is not None
    ]
    return _goal(
        "1",
        name,
        "PASS" if cpu <= limit else "FAIL",
        f"pullman {cpu:.2f} CPU s/GiB (median of {p['ok']} run(s); need <= {limit:g})"
        + (f"; same run: {', '.join(peers)}" if peers else "")
        + _size(case, sizes),
    )


def _invisible(case: str, summaries: dict[str, list[Summary]], sizes: dict[str, int]) -> Goal:
    name = (
        f"{case}: within {INVISIBLE}x of pullman's own unthrottled time (same bytes, same server)"
    )
    p, ref = _row(summaries, case, "pullman"), _row(summaries, case, "pullman-ref")
    if p is None or ref is None:
        return _goal("2", name, "N/A", f"not run (needs case {case} with pullman and pullman-ref)")
    ratio = p["median_wall"] / ref["median_wall"]
    return _goal(
        "2",
        name,
        "PASS" if ratio <= INVISIBLE else "FAIL",
        f"pullman {p['median_wall']:.2f} s / pullman-ref {ref['median_wall']:.2f} s = "
        f"{ratio:.2f}x (need <= {INVISIBLE}x)" + _size(case, sizes),
    )


def _vs_aria2c(summaries: dict[str, list[Summary]], sizes: dict[str, int]) -> Goal:
    name = f"crawl 192 MiB: >= {VS_ARIA2C:g}x faster than aria2c -x16 -s16 -k1M"
    case = "crawl-ollama"
    p = _row(summaries, case, "pullman")
    a = next((r for r in summaries.get(case, []) if r["contender"] == "aria2c-k1m"), None)
    if p is None or a is None or a["median_wall"] is None:
        return _goal(
            "2", name, "N/A", "not run (needs case crawl-ollama with pullman and aria2c-k1m)"
        )
    ratio = a["median_wall"] / p["median_wall"]
    at_least = ">=" if a["censored"] else ""
    return _goal(
        "2",
        name,
        "PASS" if ratio >= VS_ARIA2C else "FAIL",
        f"aria2c-k1m {a['median_wall']:.2f} s / pullman {p['median_wall']:.2f} s = "
        f"{at_least}{ratio:.2f}x (need >= {VS_ARIA2C:g}x)" + _size(case, sizes),
    )


def _near_cap(summaries: dict[str, list[Summary]], sizes: dict[str, int], runs: list[Run]) -> Goal:
    name = f"aggregate per-client cap: within {NEAR_CAP}x of size / cap, no recycle storm"
    case = "aggregate"
    p = _row(summaries, case, "pullman")
    cap = CASES[case].cap if case in CASES else 0
    if p is None or not cap:
        return _goal("3", name, "N/A", "not run (needs case aggregate with pullman)")
    ideal = sizes[case] / cap
    ratio = p["median_wall"] / ideal
    opened = p.get("opened")
    return _goal(
        "3",
        name,
        "PASS" if ratio <= NEAR_CAP else "FAIL",
        f"pullman {p['median_wall']:.2f} s / ({human_size(sizes[case])} / "
        f"{cap / MiB:g} MiB/s = {ideal:.2f} s) = {ratio:.2f}x (need <= {NEAR_CAP}x); "
        f"connections opened {opened if opened is not None else '?'}, peak {p['peak_conns']}",
    )


RSS_LIMIT_MIB = 150.0
"""Goal 4: pullman's peak RSS on the big file."""
RSS_DRIFT_MIB = 16.0
"""Goal 4: how much RSS may grow from 10-30 % of the file to 70-90 % (flat)."""
JOURNAL_LIMIT = 256 * KiB
"""Goal 4: the journal file's size, at most, whatever the file's size (it is two fixed 64 KiB
slots, grown only when a fragmented map needs more)."""
CPU_FLAT = 1.1
"""Goal 4: CPU s/GiB on the big file / on 1 GiB."""
PER_FILE_MS = 20.0
"""Goal 4: wall and CPU per extra file of a 50-file Hub repo."""


def _flat(scale: dict[str, Any] | None) -> list[Goal]:
    """Goal 4 (benchlib/scale.py's figures): memory, journal, CPU, resume, many files."""
    name = "cost flat at scale (RSS, journal, CPU/GiB, resume after SIGKILL, 50-file repo)"
    if scale is None:
        return [_goal("4", name, "N/A", "not run (needs case scale)")]
    if "error" in scale:
        return [_goal("4", name, "N/A", f"not run: {scale['error']}")]
    full, base = scale["full"], [b for b in scale["base"] if b["status"] == "ok"]
    size = human_size(scale["size"])
    if full["status"] != "ok" or not base:
        what = full["status"] if full["status"] != "ok" else "every 1 GiB run failed"
        return [_goal("4", name, "FAIL", f"the {size} download did not verify: {what}")]
    return [
        _flat_memory(full, size),
        _flat_journal(full, base, size),
        _flat_cpu(full, base, size),
        _flat_resume(scale, size),
        _flat_files(scale.get("hf")),
    ]


def _flat_memory(full: dict[str, Any], size: str) -> Goal:
    peak, early, late = full["rss_peak_mib"], full["rss_early_mib"], full["rss_late_mib"]
    ok = peak <= RSS_LIMIT_MIB and late - early <= RSS_DRIFT_MIB and early > 0
    return _goal(
        "4",
        f"{size} sparse: RSS <= {RSS_LIMIT_MIB:g} MiB and flat",
        "PASS" if ok else "FAIL",
        f"peak {peak:.0f} MiB (need <= {RSS_LIMIT_MIB:g}); median {early:.0f} MiB at 10-30 % "
        f"of the file, {late:.0f} MiB at 70-90 % (need growth <= {RSS_DRIFT_MIB:g} MiB)",
    )


def _flat_journal(full: dict[str, Any], base: list[dict[str, Any]], size: str) -> Goal:
    big, small = full["journal_max"], max(b["journal_max"] for b in base)
    return _goal(
        "4",
        f"{size} sparse: journal bounded (<= {JOURNAL_LIMIT // KiB} KiB)",
        "PASS" if 0 < big <= JOURNAL_LIMIT and big <= small else "FAIL",
        f"largest journal {big} B on {size} against {small} B on 1 GiB (need no larger)",
    )


def _flat_cpu(full: dict[str, Any], base: list[dict[str, Any]], size: str) -> Goal:
    small = statistics.median(b["cpu_s_per_gib"] for b in base)
    ratio = full["cpu_s_per_gib"] / small
    return _goal(
        "4",
        f"{size} sparse: CPU per GiB within {CPU_FLAT}x of 1 GiB's",
        "PASS" if ratio <= CPU_FLAT else "FAIL",
        f"{full['cpu_s_per_gib']:.2f} CPU s/GiB on {size} ({full['wall']:.1f} s) / "
        f"{small:.2f} on 1 GiB (median of {len(base)}) = {ratio:.2f}x (need <= {CPU_FLAT}x)",
    )


def _flat_resume(scale: dict[str, Any], size: str) -> Goal:
    r = scale["resume"]
    bound = scale["connections"] * scale["piece"]
    name = f"{size} sparse: SIGKILL at 90 %, resume refetches <= connections x piece size"
    if r["status"] != "ok":
        return _goal("4", name, "FAIL", f"the resumed download: {r['status']}")
    return _goal(
        "4",
        name,
        "PASS" if r["refetched"] <= bound else "FAIL",
        f"nginx sent {human_size(r['sent_before'] + r['sent_after'])} for {size}: "
        f"{human_size(max(0, r['refetched']))} twice (need <= {scale['connections']} x "
        f"{human_size(scale['piece'])} = {human_size(bound)}); "
        f"{human_size(r['durable_at_kill'])} was in the journal at the kill",
    )


def _flat_files(hf: dict[str, Any] | None) -> Goal:
    name = f"a 50-file Hub repo: under {PER_FILE_MS:g} ms a file (wall and CPU)"
    if hf is None:
        return _goal("4", name, "N/A", "not run (needs the Hub simulator)")
    if "error" in hf:
        return _goal("4", name, "FAIL", hf["error"])
    wall, cpu = hf["wall_per_file_ms"], hf["cpu_per_file_ms"]
    return _goal(
        "4",
        name,
        "PASS" if max(wall, cpu) < PER_FILE_MS else "FAIL",
        f"{hf['files']} files {hf['wall_many']:.2f} s, 1 file {hf['wall_one']:.2f} s: "
        f"{wall:.1f} ms wall and {cpu:.1f} ms CPU per extra file (need < {PER_FILE_MS:g})",
    )
