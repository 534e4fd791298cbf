"""``python scripts/chaoslib ARGS`` (what ``scripts/chaos`` runs) or, with ``scripts/`` on the
path, ``python -m chaoslib ARGS``."""

from __future__ import annotations

import sys
from pathlib import Path


def _run() -> int:
    if not __package__:
        # Run as a directory or a file: the path starts at this package's own directory; put
        # scripts/ there instead, so that ``chaoslib`` is importable (and its modules are not
        # importable as top-level names).
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from chaoslib.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(_run())
