"""Names from the network that become paths: repo file paths and commit ids. Pure, strict.

(Ollama name parts are checked by :mod:`pullman.core.refs`; digests by
:mod:`pullman.core.digests`.)
"""

from __future__ import annotations

import posixpath

from pullman.core.digests import SHA1_HEX
from pullman.errors import RemoteError


def check_repo_path(path: str) -> str:
    """A file path from a repo listing, refused unless it stays inside the repo folder."""
    bad = (
        not path
        or len(path) > 1024
        or path.startswith("/")
        or "\\" in path
        or "\0" in path
        or any(ord(ch) < 32 for ch in path)
        or posixpath.normpath(path) != path
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    if bad:
        raise RemoteError(
            f"refusing the repo file path {path[:120]!r}",
            why="it would not stay inside the repo folder",
            hint="the Hub (or what answers as the Hub) is broken or hostile; nothing was written",
        )
    return path


def is_commit(text: str) -> bool:
    """Whether a revision is already a commit id (40 hex)."""
    return SHA1_HEX.fullmatch(text) is not None


def check_commit(commit: str) -> str:
    """A 40-hex commit id from the Hub (it names a ``snapshots/`` directory)."""
    if not SHA1_HEX.fullmatch(commit):
        raise RemoteError(f"the Hub sent an invalid commit id {commit[:60]!r}")
    return commit
