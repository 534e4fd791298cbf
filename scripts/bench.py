"""Entry point of ``scripts/bench`` (run through that wrapper: it makes sure the venv exists).

The harness lives in ``scripts/benchlib/``; ``python scripts/bench.py --help`` lists the options.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.cli import entry

if __name__ == "__main__":
    sys.exit(entry())
