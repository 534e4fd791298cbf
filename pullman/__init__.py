"""pullman: a resilient model download manager.

The Python API (:mod:`pullman.library`), loaded on first use so that ``import pullman`` stays
cheap (it imports nothing)::

    import pullman

    download = await pullman.get("qwen2.5:7b", progress=print)
    download = pullman.get_sync("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M")

Errors are :mod:`pullman.errors`' (``pullman.errors.NotFound``, ...).
"""

from __future__ import annotations

__version__ = "0.1.0"

TYPE_CHECKING = False  # not typing's: `import pullman` imports nothing, not even typing
if TYPE_CHECKING:  # for type checkers only: at run time, __getattr__ loads them on first use
    from pullman.library import Download, DownloadedFile, get, get_sync
    from pullman.progress import ProgressEvent

__all__ = ["Download", "DownloadedFile", "ProgressEvent", "__version__", "get", "get_sync"]

_LAZY = {
    "get": "pullman.library",
    "get_sync": "pullman.library",
    "Download": "pullman.library",
    "DownloadedFile": "pullman.library",
    "ProgressEvent": "pullman.progress",
}
"""The facade: each public name and the module that defines it."""


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pullman' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
