"""Where the Ollama store is: the flag, ``OLLAMA_MODELS``, the user's own store, or the store of
the Ollama service installed on this machine.

Linux's official install runs the server as user ``ollama`` from a systemd unit, with its store
in ``/usr/share/ollama/.ollama/models`` (the ``ollama`` user's home) unless the unit, or a
drop-in next to it, sets ``OLLAMA_MODELS``. A user who has no store of their own most likely
wants the one that server reads. Reading the machine is injectable (:class:`Machine`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNIT_DIRS = (
    Path("/etc/systemd/system"),
    Path("/lib/systemd/system"),
    Path("/usr/lib/systemd/system"),
)
UNIT = "ollama.service"
_ENVIRONMENT = re.compile(r"^\s*Environment\s*=\s*(.*)$")
_MODELS = re.compile(r'"?OLLAMA_MODELS=([^"\s]+|"[^"]*")"?')


def _user_home(name: str) -> Path | None:
    try:
        import pwd

        return Path(pwd.getpwnam(name).pw_dir)
    except (ImportError, KeyError):
        return None


@dataclass(frozen=True)
class Machine:
    """What this machine says about an installed Ollama service."""

    unit_dirs: Sequence[Path] = UNIT_DIRS
    user_home: Callable[[str], Path | None] = field(default=_user_home, repr=False)

    def unit_models(self) -> tuple[Path, Path] | None:
        """``(OLLAMA_MODELS, the file that sets it)`` from the unit and its drop-ins."""
        found: tuple[Path, Path] | None = None
        for directory in self.unit_dirs:
            files = [directory / UNIT, *sorted((directory / f"{UNIT}.d").glob("*.conf"))]
            for path in files:
                value = _models_in(path)
                if value is not None:
                    found = (Path(value), path)  # later files override earlier ones
            if found is not None:
                return found
        return None

    def service_store(self) -> tuple[Path, str] | None:
        """The installed service's store, if it exists: ``(path, why we think so)``."""
        from_unit = self.unit_models()
        if from_unit is not None and _is_dir(from_unit[0]):
            return from_unit[0], f"OLLAMA_MODELS in {from_unit[1]}"
        home = self.user_home("ollama")
        if home is not None and _is_dir(home / ".ollama" / "models"):
            return home / ".ollama" / "models", "the ollama user's home (Linux's install)"
        return None


def _is_dir(path: Path) -> bool:
    """Whether ``path`` is a directory this user can see (a store behind a closed home is not)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def _models_in(path: Path) -> str | None:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    value = None
    for line in text.splitlines():
        m = _ENVIRONMENT.match(line)
        if m is None:
            continue
        for assignment in _MODELS.finditer(m.group(1)):
            value = assignment.group(1).strip('"')
    return value


def models_dir(
    flag: str | None, env: Mapping[str, str] | None = None, machine: Machine | None = None
) -> Path:
    """``--ollama-dir``, else ``OLLAMA_MODELS``, else ``~/.ollama/models`` if it exists, else
    the installed service's store if there is one, else ``~/.ollama/models``."""
    env = os.environ if env is None else env
    chosen = flag or env.get("OLLAMA_MODELS")
    if chosen:
        return Path(chosen).expanduser().absolute()
    own = Path(env.get("HOME") or "~").expanduser() / ".ollama" / "models"
    if _is_dir(own):
        return own.absolute()
    service = (machine or Machine()).service_store()
    return service[0] if service is not None else own.absolute()
