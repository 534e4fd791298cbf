"""A plain directory: the file at the path the user chose, staged beside it."""

from __future__ import annotations

from pathlib import Path

STAGING = ".pullman-partial"


def destination(out: Path | None, filename: str, downloads: Path) -> Path:
    """``-o PATH`` (a file, or a directory to put ``filename`` in), else the downloads folder."""
    if out is None:
        return downloads / filename
    out = out.expanduser()
    if out.is_dir() or str(out).endswith(("/", "\\")):
        return out / filename
    return out


def staging_dir(dest: Path) -> Path:
    """Partial data lives next to its destination, on the same filesystem (rename commits)."""
    return dest.parent / STAGING
