"""Templates shipped as package data: the systemd user unit, the launchd LaunchAgent, and
Ollama's chat templates (``ollama/``, vendored from Ollama under its MIT license; see
``ollama/README.md``)."""

from __future__ import annotations

import functools
from importlib import resources

from pullman.core.ollama_templates import NamedTemplate, parse_catalog
from pullman.errors import InternalError

OLLAMA_DIR = "ollama"


def _read(name: str) -> bytes | None:
    path = resources.files(__name__).joinpath(OLLAMA_DIR, name)
    return path.read_bytes() if path.is_file() else None


@functools.cache
def ollama_templates() -> tuple[NamedTemplate, ...]:
    """Ollama's ``template/index.json`` with its Go templates and parameters, in index order."""
    index = _read("index.json")
    if index is None:
        raise InternalError(
            "Ollama's chat templates are missing from this pullman install",
            why=f"{__name__}/{OLLAMA_DIR}/index.json is not in the package",
            hint="reinstall pullman",
        )
    return parse_catalog(index, _read)
