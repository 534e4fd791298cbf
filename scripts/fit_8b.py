#!/usr/bin/env python3
"""``pullman fit`` on the simulator's 8B repo (Llama-3.1-8B's shape in Q2_K, Q4_K_M, Q8_0 and
F16; real GGUF headers, tensor data a hole) at 8 and 16 GiB, 4096 and 32768 context.

    PULLMAN_VENV=... scripts/fit_8b.py          # the tables, as a user sees them
    scripts/fit_8b.py --json                    # the JSON

Nothing is downloaded but headers (about 1.8 MiB per file, then from the index's cache).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pullman.testing import Simulator  # noqa: E402
from pullman.testing.hub import HubSimulator  # noqa: E402

from fit_models import LLAMA_8B, gguf_model  # noqa: E402

REPO = "sim/Llama-3.1-8B-GGUF"
QUANTS = ("Q2_K", "Q4_K_M", "Q8_0", "F16")


def main() -> int:
    extra = sys.argv[1:]
    with tempfile.TemporaryDirectory() as tmp, Simulator() as sim:
        work = Path(tmp)
        hub = HubSimulator(sim, page_size=100)
        files = {f"Llama-3.1-8B-{q}.gguf": gguf_model(work, LLAMA_8B, q).sparse() for q in QUANTS}
        hub.add_repo(REPO, dict(files))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULLMAN_", "HF_"))}
        env.update(PULLMAN_HOME=str(work / "home"), HF_ENDPOINT=hub.endpoint, COLUMNS="160")
        for memory in ("8GiB", "16GiB"):
            for context in ("4096", "32768"):
                print(f"$ pullman fit hf://{REPO} --memory {memory} --context {context}", *extra)
                args = ["fit", f"hf://{REPO}", "--memory", memory, "--context", context, *extra]
                done = subprocess.run(
                    [sys.executable, "-m", "pullman", *args], env=env, check=False, text=True
                )
                if done.returncode:
                    return done.returncode
                print()
        sent = {name: hub.file(REPO, name).sim_file.bytes_sent for name in files}
        print("CDN bytes read per file (all four runs):", sent)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
