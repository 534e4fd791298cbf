"""scripts/bench's pure parts: the ``ss`` parser behind the throughput trace, the binning
behind the plot, and issue 17's goal verdicts (the bench itself is run by hand: it is long)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from benchlib import goals, plots, trace
from benchlib.cases import GiB, MiB

SS = """ESTAB 0      0      127.0.0.1:50044 127.0.0.1:48857
\t bbr wscale:10,10 rto:204 bytes_sent:93 bytes_acked:94 bytes_received:4718855 segs_out:57
ESTAB 0      0      127.0.0.1:50046 127.0.0.1:48857
\t cubic wscale:7,7 rto:204 bytes_sent:93 bytes_acked:94 segs_out:3
FIN-WAIT-1 0 0 127.0.0.1:50048 127.0.0.1:48857
\t cubic bytes_received:12 lastsnd:4
"""


def test_ss_output_gives_bytes_received_per_client_socket() -> None:
    assert trace.parse_ss(SS) == {"127.0.0.1:50044": 4718855, "127.0.0.1:50048": 12}
    assert trace.parse_ss("") == {}


def test_a_closed_connection_keeps_its_count(tmp_path: Path) -> None:
    listing = tmp_path / "ss.txt"
    t = trace.ByteTrace([48857])
    t.argv = ["cat", str(listing)]  # what ss would print, sample by sample
    listing.write_text(SS)
    t.sample()
    listing.write_text(SS.replace("4718855", "5000000").split("FIN-WAIT-1")[0])
    t.sample()  # the third socket has gone: its 12 bytes still count
    assert [n for _t, n in t.points] == [4718855 + 12, 5000000 + 12]


def test_rates_bin_cumulative_samples() -> None:
    points = [(0.0, 0), (0.1, 0), (0.3, 2 * MiB), (0.6, 2 * MiB), (1.0, 3 * MiB)]
    xs, ys = plots.rates(points, bin_s=0.5)
    assert xs == [0.25, 0.75, 1.25]
    assert ys[0] == pytest.approx(4.0)  # 2 MiB in the first half second
    assert ys[1] == pytest.approx(2.0)  # 1 MiB in the second
    assert ys[2] == pytest.approx(0.0)
    assert plots.rates([(0.0, 0)]) == ([], [])


def _row(contender: str, wall: float, cpu: float | None = None) -> dict[str, Any]:
    return {
        "contender": contender,
        "ok": 3,
        "censored": False,
        "median_wall": wall,
        "cpu_s_per_gib": cpu,
        "peak_conns": 8,
        "opened": 9.0,
    }


def _verdicts(summaries: dict[str, list[dict[str, Any]]], sizes: dict[str, int]) -> dict[str, str]:
    return {g["target"]: g["status"] for g in goals.issue17_goals(summaries, sizes, [])}


def test_goals_pass_fail_and_not_run() -> None:
    summaries = {
        "unthrottled": [_row("pullman", 2.5, 2.1), _row("curl-sync", 2.4, 1.8)],
        "burst": [_row("pullman", 4.0, 3.2), _row("pullman-ref", 2.5)],
        "crawl-ollama": [_row("pullman", 1.5), _row("pullman-ref", 1.1), _row("aria2c-k1m", 16.0)],
        "aggregate": [_row("pullman", 25.0)],
    }
    sizes = {"unthrottled": GiB, "burst": GiB, "crawl-ollama": 192 * MiB, "aggregate": 192 * MiB}
    got = _verdicts(summaries, sizes)
    by_start = {k.split(":")[0].split(" (")[0]: v for k, v in got.items()}
    assert [v for k, v in got.items() if k.startswith("unthrottled 1 GiB, verified")] == ["PASS"]
    assert got["unthrottled 1 GiB: pullman <= 2.2 CPU s/GiB"] == "PASS"
    assert got["burst 1 GiB: pullman <= 3.0 CPU s/GiB"] == "FAIL"
    assert [v for k, v in got.items() if k.startswith("burst: within")] == ["FAIL"]  # 1.6x
    assert [v for k, v in got.items() if k.startswith("crawl-ollama: within")] == ["PASS"]
    assert [v for k, v in got.items() if k.startswith("crawl 192 MiB")] == ["PASS"]  # 10.7x
    assert [v for k, v in got.items() if k.startswith("decay: within")] == ["N/A"]
    # 192 MiB at 8 MiB/s is 24 s: 25 s is 1.04x
    assert [v for k, v in got.items() if k.startswith("aggregate")] == ["PASS"]
    assert any(v == "N/A" for k, v in by_start.items() if k.startswith("cost flat"))


def _scale(**changes: Any) -> dict[str, Any]:
    base = {"status": "ok", "cpu_s_per_gib": 4.0, "journal_max": 131072, "label": "base"}
    full = {
        "status": "ok",
        "wall": 60.0,
        "cpu_s_per_gib": 4.2,
        "rss_peak_mib": 70.0,
        "rss_early_mib": 64.0,
        "rss_late_mib": 66.0,
        "journal_max": 131072,
    }
    resume = {
        "status": "ok",
        "refetched": 64 * MiB,
        "sent_before": 15 * GiB,
        "sent_after": GiB + 64 * MiB,
        "durable_at_kill": 14 * GiB,
    }
    hf = {"files": 50, "wall_many": 1.9, "wall_one": 1.0, "wall_per_file_ms": 18.4}
    hf["cpu_per_file_ms"] = 12.0
    doc: dict[str, Any] = {"size": 16 * GiB, "connections": 8, "piece": 32 * MiB}
    doc.update(base=[base] * 3, full=full, resume=resume, hf=hf)
    for key, value in changes.items():
        part, _, field = key.partition("__")
        doc[part][field] = value
    return doc


def _goal4(scale: dict[str, Any] | None) -> list[str]:
    return [g["status"] for g in goals.issue17_goals({}, {}, [], scale) if g["goal"] == "4"]


def test_goal_4_judges_memory_journal_cpu_resume_and_many_files() -> None:
    assert _goal4(None) == ["N/A"]
    assert _goal4({"error": "the disk is short"}) == ["N/A"]
    assert _goal4(_scale()) == ["PASS"] * 5
    assert _goal4(_scale(full__rss_late_mib=90.0)) == ["FAIL"] + ["PASS"] * 4  # it grows
    assert _goal4(_scale(full__rss_peak_mib=151.0))[0] == "FAIL"
    assert _goal4(_scale(full__journal_max=262144))[1] == "FAIL"  # larger than on 1 GiB
    assert _goal4(_scale(full__cpu_s_per_gib=4.5))[2] == "FAIL"  # 1.12x
    assert _goal4(_scale(resume__refetched=257 * MiB))[3] == "FAIL"  # over 8 x 32 MiB
    assert _goal4(_scale(resume__status="bad-output"))[3] == "FAIL"
    assert _goal4(_scale(hf__cpu_per_file_ms=21.0))[4] == "FAIL"
    assert _goal4(_scale(full__status="timeout")) == ["FAIL"]
