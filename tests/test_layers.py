"""The architecture as tests: import direction, the seams, and the size of things.

Layers (docs/architecture.md): a module imports only modules of its own layer or below.

- 0 pure core: ``pullman`` (its version), ``pullman.errors``, ``pullman.core``;
- 1 adapters: ``pullman.net`` (the only importer of the HTTP clients), ``pullman.fsio``,
  ``pullman.procs``, ``pullman.sources``, ``pullman.layouts``, ``pullman.index``,
  ``pullman.copies``;
- 2 engines: ``pullman.transfer``, ``pullman.session``, ``pullman.scheduler``, ...;
- 3 edges: ``pullman.cli``, ``pullman.daemon``, ``pullman.progress``, ``pullman.service``, ...

And the seams: sources never import layouts and layouts never import sources or the network;
the core imports no I/O library; nothing but ``pullman.testing`` imports ``pullman.testing``.
Every rule is also run on a planted violation, so a checker that cannot fail fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pullman"

LAYERS: dict[str, int] = {
    "pullman": 0,
    "pullman.__main__": 3,
    "pullman.errors": 0,
    "pullman.core": 0,
    "pullman.net": 1,
    "pullman.fsio": 1,
    "pullman.gguf_facts": 1,
    "pullman.gguf_remote": 1,
    "pullman.machine": 1,
    "pullman.templates": 1,
    "pullman.procs": 1,
    "pullman.sources": 1,
    "pullman.layouts": 1,
    "pullman.index": 1,
    "pullman.copies": 1,
    "pullman.hostmemory": 1,
    "pullman.transfer": 2,
    "pullman.config": 2,
    "pullman.session": 2,
    "pullman.scheduler": 2,
    "pullman.jobqueue": 2,
    "pullman.jobrecord": 2,
    "pullman.hooks": 2,
    "pullman.maintenance": 2,
    "pullman.linking": 2,
    "pullman.gguf_ollama": 2,
    "pullman.fitcheck": 2,
    "pullman.bundle": 2,
    "pullman.push": 2,
    "pullman.jobcontrol": 2,
    "pullman.jobrun": 2,
    "pullman.api": 3,
    "pullman.serve": 2,
    "pullman.cli": 3,
    "pullman.daemon": 3,
    "pullman.progress": 3,
    "pullman.service": 3,
    "pullman.tuning": 3,
    "pullman.library": 3,
    "pullman.testing": 3,
}
FACADE: dict[str, tuple[str, ...]] = {"pullman": ("pullman.library", "pullman.progress")}
"""The package's lazy facade (``pullman.get``...): names for type checkers only, loaded on first
use (``__getattr__``); ``test_import_pullman_imports_nothing`` holds it to that."""
HTTP_CLIENTS = ("httpx", "httpx2", "httpcore", "httpcore2")
IO_LIBRARIES = (*HTTP_CLIENTS, "sqlite3", "socket", "subprocess", "huggingface_hub", "ollama")
SEAMS: dict[str, tuple[str, ...]] = {
    "pullman.sources": ("pullman.layouts",),
    "pullman.layouts": ("pullman.sources", "pullman.net", *HTTP_CLIENTS),
}
"""Packages that must not import each other across the source/layout seam."""


def module_name(path: Path, base: Path = ROOT) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(source: str) -> Iterator[str]:
    """Every module a source imports, lazily or not (``from a import b`` yields ``a.b`` too)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def owner(name: str, table: dict[str, int] | dict[str, tuple[str, ...]]) -> str | None:
    """The longest key of ``table`` that is ``name`` or a package containing it."""
    best = None
    for key in table:
        if (name == key or name.startswith(key + ".")) and (best is None or len(key) > len(best)):
            best = key
    return best


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(name: str, source: str) -> list[str]:
    """What the module ``name`` with this ``source`` imports against the rules."""
    found = []
    mine = owner(name, LAYERS)
    assert mine is not None, f"{name} is in no layer: add it to LAYERS"
    layer = LAYERS[mine]
    for imported in sorted(set(imports(source))):
        theirs = owner(imported, LAYERS) if imported.startswith("pullman") else None
        if under(imported, FACADE.get(name, ())):
            continue
        if theirs is not None and LAYERS[theirs] > layer and theirs != "pullman.testing":
            found.append(f"{name} (layer {layer}) imports {imported} (layer {LAYERS[theirs]})")
        if under(imported, HTTP_CLIENTS) and not under(name, ("pullman.net",)):
            found.append(f"{name} imports the HTTP client {imported} outside pullman.net")
        if layer == 0 and under(imported, IO_LIBRARIES):
            found.append(f"{name} is pure core but imports {imported}")
        if under(imported, ("pullman.testing",)) and not under(name, ("pullman.testing",)):
            found.append(f"{name} imports the test simulator {imported}")
        seam = owner(name, SEAMS)
        if seam is not None and under(imported, SEAMS[seam]):
            found.append(f"{name} crosses the source/layout seam: imports {imported}")
    return found


def product_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_module_keeps_to_its_layer_and_the_seams() -> None:
    found = [v for p in product_modules() for v in violations(module_name(p), p.read_text())]
    assert not found, "\n".join(found)


@pytest.mark.parametrize(
    ("name", "source", "needle"),
    [
        ("pullman.core.refs", "from pullman.index import Index", "layer 0"),
        ("pullman.core.refs", "import sqlite3", "pure core"),
        ("pullman", "from pullman.index import Index", "layer 0"),
        ("pullman.core.jobs", "from pullman.library import get", "layer 0"),
        ("pullman.layouts.plain", "from pullman.transfer import engine", "layer 1"),
        ("pullman.session", "import httpx2", "outside pullman.net"),
        ("pullman.transfer.worker", "def f():\n    import httpcore2\n", "outside pullman.net"),
        ("pullman.cli.app", "from pullman.testing import Simulator", "test simulator"),
        ("pullman.sources.url", "from pullman.layouts import plain", "seam"),
        ("pullman.layouts.ollama", "from pullman.net.client import fetch", "seam"),
    ],
)
def test_the_checker_catches_a_planted_violation(name: str, source: str, needle: str) -> None:
    found = violations(name, source)
    assert any(needle in v for v in found), found


def test_import_pullman_imports_nothing() -> None:
    """``import pullman`` (the facade) loads no other module: the API comes on first use."""
    import subprocess
    import sys

    code = (
        "import sys; before = set(sys.modules); import pullman; "
        "print(sorted(set(sys.modules) - before)); pullman.get; "
        "print('anyio' in sys.modules, 'pullman.library' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["['pullman']", "True True"]


def test_the_http_clients_are_banned_outside_net_for_ruff_too() -> None:
    """ruff's TID251 reports the same imports while editing (pyproject.toml)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    banned = config["tool"]["ruff"]["lint"]["flake8-tidy-imports"]["banned-api"]
    assert {"httpx", "httpx2", "httpcore", "httpcore2"} <= set(banned)
    ignores = config["tool"]["ruff"]["lint"]["per-file-ignores"]
    allowed = [pattern for pattern, rules in ignores.items() if "TID251" in rules]
    assert [p for p in allowed if not p.startswith("tests/")] == ["pullman/net/*"]


# ---------------------------------------------------------------------- sizes

MAX_FUNCTION = 60
MAX_CLASS = 300


def oversized(path: Path, base: Path = ROOT) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        assert node.end_lineno is not None
        size = node.end_lineno - node.lineno + 1
        limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
        if size > limit:
            found.append(f"{path.relative_to(base)}:{node.lineno} {node.name}: {size} lines")
    return found


def sized_modules() -> list[Path]:
    product = [p for p in product_modules() if "testing" not in p.relative_to(PACKAGE).parts]
    return product + sorted((ROOT / "scripts").rglob("*.py"))


def test_no_function_over_60_lines_and_no_class_over_300() -> None:
    found = [v for p in sized_modules() for v in oversized(p)]
    assert not found, "\n".join(found)


def test_the_size_check_catches_a_long_function(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("def f():\n" + "    x = 1\n" * 61)
    found = oversized(long, tmp_path)
    assert found and "62 lines" in found[0]
