"""Entry point of ``scripts/bench`` (run through that wrapper: it makes sure the venv exists).

The harness lives in ``scripts/benchlib/``; ``python scripts/bench.py --help`` lists the options.
``scripts/bench fleet`` is the serving benchmark (``benchlib/fleet.py``: pullman serve vs nginx).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib.cli import entry

if __name__ == "__main__":
    if sys.argv[1:2] == ["fleet"]:  # pullman serve against nginx (docs/fleet.md)
        from benchlib import fleet

        sys.exit(fleet.main(sys.argv[2:]))
    sys.exit(entry())
