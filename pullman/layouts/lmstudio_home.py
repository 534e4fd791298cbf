"""Where LM Studio keeps its models: the flag (or ``[stores] lmstudio``), else its home's
``models/``, found as LM Studio finds its home.

From lmstudio-js ``packages/lms-common-server/src/findLMStudioHome.ts``: ``LMSTUDIO_HOME``;
else the path written in ``~/.lmstudio-home-pointer``; else ``~/.cache/lm-studio`` if it exists
(older installs); else ``~/.lmstudio``. The user can move the models folder in the app's
settings, which is what ``--lmstudio-dir`` is for. Nothing here writes (LM Studio writes the
pointer file itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

POINTER = ".lmstudio-home-pointer"


def lmstudio_home(env: Mapping[str, str] | None = None) -> Path:
    """LM Studio's home directory, as LM Studio itself finds it."""
    env = os.environ if env is None else env
    given = env.get("LMSTUDIO_HOME")
    if given:
        return Path(given).expanduser().absolute()
    home = Path(env.get("HOME") or "~").expanduser()
    try:
        pointed = (home / POINTER).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        pointed = ""
    if pointed:
        return Path(pointed).expanduser().absolute()
    old = home / ".cache" / "lm-studio"
    if _is_dir(old):
        return old.absolute()
    return (home / ".lmstudio").absolute()


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory this user can see (one behind a closed home is not)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def models_dir(flag: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``--lmstudio-dir`` (or ``[stores] lmstudio``), else ``<LM Studio home>/models``."""
    if flag:
        return Path(flag).expanduser().absolute()
    return lmstudio_home(env) / "models"
