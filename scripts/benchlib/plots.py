"""The bench's plots (matplotlib, PNG): throughput over time on the traced case (crawl), where
pullman's recycling shows as a saw-tooth and the kill-and-restart loop as its restarts, and CPU
per GiB per contender in every case. Skipped, with a note, when matplotlib is not installed
(``pip install 'pullman[bench]'``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchlib.cases import CASES, GiB, MiB

TRACE_CONTENDERS = ("pullman", "aria2c-k1m", "aria2c-x16-nocheck", "aria2c-x16", "seed")
BIN = 0.25
"""Seconds per throughput bin."""


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def rates(
    points: list[list[float]] | list[tuple[float, int]], bin_s: float = BIN
) -> tuple[list[float], list[float]]:
    """Cumulative ``(t, bytes)`` samples -> bin centres and MiB/s per bin."""
    if len(points) < 2:
        return [], []
    end = points[-1][0]
    nbins = max(1, int(end / bin_s) + 1)
    edges = [i * bin_s for i in range(nbins + 1)]
    at = []
    j = 0
    for edge in edges:  # cumulative bytes at each edge: the last sample at or before it
        while j + 1 < len(points) and points[j + 1][0] <= edge:
            j += 1
        at.append(points[j][1] if points[j][0] <= edge else 0)
    xs = [(edges[i] + edges[i + 1]) / 2 for i in range(nbins)]
    ys = [max(0, at[i + 1] - at[i]) / MiB / bin_s for i in range(nbins)]
    return xs, ys


def _first_traced(doc: dict[str, Any], case: str, contender: str) -> dict[str, Any] | None:
    return next(
        (
            r
            for r in doc["runs"]
            if r["case"] == case and r["contender"] == contender and r.get("trace")
        ),
        None,
    )


def throughput_plot(doc: dict[str, Any], case: str, path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [(c, r) for c in TRACE_CONTENDERS if (r := _first_traced(doc, case, c)) is not None]
    if not runs:
        return False
    fig, (near, whole) = plt.subplots(2, 1, figsize=(9, 7))
    slowest = max(r["trace"][-1][0] for _c, r in runs)
    fastest = min(r["wall"] for _c, r in runs)
    zoom = max(5.0, 3 * fastest)
    for contender, r in runs:
        xs, ys = rates(r["trace"])
        label = f"{contender} ({r['wall']:.1f} s)"
        near.step(xs, ys, where="mid", label=label, linewidth=1)
        whole.step(xs, ys, where="mid", label=label, linewidth=0.8)
    size = next((c["size"] for c in doc["cases"] if c["name"] == case), 0)
    title = f"{case}: {CASES[case].title}, {size / MiB:.0f} MiB (first run of each)"
    near.set_title(title, fontsize=10)
    near.set_xlim(0, zoom)
    near.set_ylabel("MiB/s received")
    near.legend(fontsize=8)
    near.set_ylim(bottom=0)
    whole.set_xlim(0, slowest)
    whole.set_yscale("symlog", linthresh=1)
    whole.set_ylim(bottom=0)
    whole.set_xlabel("seconds since the command started")
    whole.set_ylabel("MiB/s (symlog)")
    whole.set_title(f"the whole of every run (0-{slowest:.0f} s)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def cpu_plot(doc: dict[str, Any], path: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in doc["cases"] if any(r["cpu_s_per_gib"] for r in c["summary"])]
    if not cases:
        return False
    fig, axes = plt.subplots(len(cases), 1, figsize=(9, 1.2 + 1.6 * len(cases)), squeeze=False)
    for ax, case in zip(axes[:, 0], cases, strict=True):
        rows = [r for r in case["summary"] if r["cpu_s_per_gib"] is not None]
        names = [r["contender"] for r in rows]
        values = [r["cpu_s_per_gib"] for r in rows]
        colors = ["tab:red" if n.startswith("pullman") else "tab:gray" for n in names]
        ax.barh(names, values, color=colors)
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.2f}", va="center", fontsize=7)
        ax.invert_yaxis()
        ax.set_title(f"{case['name']} ({case['size'] / GiB:.2f} GiB)", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("CPU s per GiB (user + sys of the process tree, median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def scale_plot(doc: dict[str, Any], path: Path) -> bool:
    """Goal 4: pullman's RSS and journal size over the big sparse file, by GiB read."""
    full = (doc.get("scale") or {}).get("full") or {}
    samples = full.get("samples") or []
    if len(samples) < 2:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    secs = [s[0] for s in samples]
    fig, ax = plt.subplots(figsize=(9, 3.6))
    ax.plot(secs, [s[1] for s in samples], color="tab:red", label="RSS (MiB)")
    ax.set_ylim(0, max(160.0, max(s[1] for s in samples) * 1.1))
    ax.axhline(150, color="tab:gray", linestyle=":", linewidth=1, label="goal: 150 MiB")
    ax.set_xlabel("seconds since the command started")
    ax.set_ylabel("RSS, MiB")
    journal = ax.twinx()
    journal.plot(secs, [s[2] / 1024 for s in samples], color="tab:blue", label="journal (KiB)")
    journal.set_ylabel("journal file, KiB")
    journal.set_ylim(bottom=0)
    size = doc["scale"]["size"] / GiB
    ax.set_title(
        f"scale: a {size:.0f} GiB sparse file, unthrottled (sampled every 0.25 s)", fontsize=10
    )
    lines = ax.get_legend_handles_labels()
    more = journal.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def make_plots(doc: dict[str, Any], directory: Path) -> list[Path]:
    """The PNGs for ``doc`` in ``directory``; the paths made."""
    directory.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    for case in doc["cases"]:
        if CASES[case["name"]].traced:
            path = directory / f"bench-{case['name']}-throughput.png"
            if throughput_plot(doc, case["name"], path):
                made.append(path)
    path = directory / "bench-cpu-per-gib.png"
    if cpu_plot(doc, path):
        made.append(path)
    path = directory / "bench-scale.png"
    if scale_plot(doc, path):
        made.append(path)
    return made
