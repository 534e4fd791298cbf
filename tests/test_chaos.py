"""A short, seeded slice of the chaos soak (``scripts/chaos soak``, docs/reliability.md).

Each seed picks a target (a plain URL, an Ollama model or a Hugging Face repo), an engine
configuration and a mix of the simulator's faults, runs pullman in-process, and checks every
final path against the served bytes; a failed run must end in one of our errors and finish once
the faults are gone. A failing seed replays with ``scripts/chaos soak --only-seed N``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import load_chaoslib

ROOT = Path(__file__).resolve().parents[1]
SEEDS = range(7001, 7025)
TWINS = True
"""Two sessions at once on one store, like two terminals (FINDING 12, fixed in 2aba698)."""


@pytest.mark.parametrize("seed", SEEDS)
def test_seeded_chaos_run(seed: int, tmp_path: Path) -> None:
    chaos = load_chaoslib()
    result = chaos.run_seed(seed, tmp_path, timeout=40, twins=TWINS)
    verdict = chaos.verdict(result)
    assert verdict in ("ok", "clean"), json.dumps(result, indent=1)
    assert result["first"]["problems"] == []
    assert not result["token_to_cdn"]


def test_the_soak_entry_point_reports_its_counts(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "chaoslib"),
            "soak",
            "--runs",
            "3",
            "--seed",
            "42",
            "--jobs",
            "1",
            "--json-out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    for key in (
        "runs",
        "faults_injected",
        "recycles",
        "retries",
        "completions",
        "clean_failures",
        "corrupt_commits",
    ):
        assert key in r.stdout
    summary = json.loads(out.read_text())["summary"]
    assert summary["runs"] == 3 and summary["corrupt_commits"] == 0
