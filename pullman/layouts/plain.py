"""A plain directory: the file at the path the user chose, staged beside it."""

from __future__ import annotations

import os
from pathlib import Path

STAGING = ".pullman-partial"


def destination(out: str | None, filename: str, downloads: Path) -> Path:
    """``-o PATH`` (a file, or a directory, existing or ending in ``/``, to put ``filename``
    in), else the downloads folder."""
    if out is None:
        return downloads / filename
    path = Path(out).expanduser()
    if path.is_dir() or out.endswith(("/", os.sep)):
        return path / filename
    return path


def staging_dir(dest: Path) -> Path:
    """Partial data lives next to its destination, on the same filesystem (rename commits)."""
    return dest.parent / STAGING
