"""Issue 17's goals ("performance to the limit"), each a PASS / FAIL / N/A with the ratio behind
it, judged on the same run's summaries (every ratio is side by side, in one run)."""

from __future__ import annotations

from benchlib.cases import CASES, GiB, MiB, human_size
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
    summaries: dict[str, list[Summary]], sizes: dict[str, int], runs: list[Run]
) -> list[Goal]:
    goals = [
        _near_curl(summaries, sizes),
        _cpu("unthrottled", CPU_UNTHROTTLED, summaries, sizes),
        _cpu("burst", CPU_BURST, summaries, sizes),
    ]
    goals += [
        _invisible(c, summaries, sizes) for c in ("burst", "crawl-ollama", "decay", "decay-sim")
    ]
    goals += [_vs_aria2c(summaries, sizes), _near_cap(summaries, sizes, runs), _flat()]
    return goals


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


def _flat() -> Goal:
    return _goal(
        "4",
        f"cost flat at scale (100 GiB sparse, RSS <= 150 MiB, CPU/GiB as at {GiB // GiB} GiB)",
        "N/A",
        "not implemented in the bench yet",
    )
