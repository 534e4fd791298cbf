"""``POST /api/jobs``: the options of ``pullman get --detach``, as JSON, queued the same way.

The body names the flags of ``get`` (their long names, ``-`` as ``_``)::

    {"refs": ["qwen2.5:7b"], "priority": 5, "window": "01:00-07:00", "limit": "20MB/s",
     "to": ["ollama"], "include": ["*.gguf"], "insecure": false, "cwd": "/home/me"}

Accepted: ``refs`` (required), ``sha256``, ``output``, ``to``, ``mirror``, ``no_mirror``,
``ollama_dir``, ``lmstudio_dir``, ``include``, ``exclude``, ``local_dir``, ``connections``,
``force``, ``verify_existing``, ``insecure``, ``priority``, ``window``, ``limit``, ``revision``,
``cache_dir``, ``ignore_fit``, ``memory``, ``context``, and ``cwd`` (where relative paths and
a URL's file without ``output`` land) and ``hf_endpoint``. Paths must be absolute unless ``cwd``
is given. Anything else is a 400: the foreground-only flags (``--until``, ``--token``,
``--via-server``) do not apply to a queued job.

The request becomes a :class:`~pullman.cli.get_request.GetRequest`, checked and turned into job
options by the same code as the command's (:func:`pullman.cli.get_request.queue_detached`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from pullman.cli.get_request import GetRequest, queue_detached
from pullman.config import Settings
from pullman.errors import UsageError
from pullman.index import Index

_TEXT: Final = (str, type(None))
FIELDS: Final[Mapping[str, tuple[type, ...]]] = {
    "refs": (list,),
    "sha256": _TEXT,
    "output": _TEXT,
    "to": (list,),
    "mirror": (list,),
    "no_mirror": (bool,),
    "ollama_dir": _TEXT,
    "lmstudio_dir": _TEXT,
    "include": (list,),
    "exclude": (list,),
    "local_dir": _TEXT,
    "connections": (int, type(None)),
    "force": (bool,),
    "verify_existing": (bool,),
    "insecure": (bool,),
    "priority": (int,),
    "window": _TEXT,
    "limit": _TEXT,
    "revision": _TEXT,
    "cache_dir": _TEXT,
    "cwd": _TEXT,
    "hf_endpoint": _TEXT,
    "ignore_fit": (bool,),
    "memory": _TEXT,
    "context": (int, type(None)),
}
RENAMED: Final[Mapping[str, str]] = {"context": "context_length"}
"""Fields whose request attribute has another name than the flag (``--context``)."""
PATHS: Final = ("output", "ollama_dir", "lmstudio_dir", "local_dir", "cache_dir")
DEFAULTS: Final[Mapping[str, Any]] = {
    "sha256": None,
    "output": None,
    "to": (),
    "mirror": (),
    "no_mirror": False,
    "ollama_dir": None,
    "lmstudio_dir": None,
    "include": (),
    "exclude": (),
    "local_dir": None,
    "connections": None,
    "force": False,
    "verify_existing": False,
    "insecure": False,
    "via_server": False,
    "recycle_after": 120.0,
    "detach": True,
    "priority": 0,
    "window": None,
    "until": None,
    "limit": None,
    "as_json": True,
    "progress": "none",
    "revision": None,
    "cache_dir": None,
    "token_file": None,
    "dry_run": False,
    "quiet": True,
    "ignore_fit": False,
    "memory": None,
    "context_length": None,
    # Hooks are commands the daemon would run: not accepted from an HTTP client (the fields
    # are not in FIELDS); `pullman get --on-done` writes them into its job row itself.
    "on_done": None,
    "on_failed": None,
    "notify": False,
}


def request_from_json(doc: Mapping[str, Any]) -> GetRequest:
    """The ``get`` request a body asks for; UsageError (400) for what is not one."""
    unknown = sorted(set(doc) - set(FIELDS))
    if unknown:
        raise UsageError(
            f"unknown field{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}",
            hint="the fields are the long flags of `pullman get --detach`: " + ", ".join(FIELDS),
        )
    for name, value in doc.items():
        _check_type(name, value)
    if not doc.get("refs"):
        raise UsageError('"refs" must list at least one ref', hint='{"refs": ["qwen2.5:7b"]}')
    cwd = doc.get("cwd")
    if cwd is not None and not Path(cwd).is_absolute():
        raise UsageError(f'"cwd" must be an absolute path, not {cwd!r}')
    for name in PATHS:
        value = doc.get(name)
        if cwd is None and value is not None and not Path(value).expanduser().is_absolute():
            raise UsageError(f'"{name}" must be an absolute path (or give "cwd"), not {value!r}')
    fields = dict(DEFAULTS)
    fields.update({
        RENAMED.get(k, k): tuple(v) if isinstance(v, list) else v for k, v in doc.items()
    })  # fmt: skip
    if fields["connections"] is not None and not 1 <= fields["connections"] <= 64:
        raise UsageError('"connections" must be between 1 and 64')
    fields["refs"] = tuple(fields["refs"])
    return GetRequest(**fields)


def _check_type(name: str, value: Any) -> None:
    kinds = FIELDS[name]
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if ok and isinstance(value, list):
        ok = all(isinstance(item, str) for item in value)
    if not ok:
        wanted = " or ".join("null" if k is type(None) else k.__name__ for k in kinds)
        wanted = wanted.replace("list", "a list of strings")
        raise UsageError(f'"{name}": expected {wanted}, got {value!r}')


def queue_from_json(
    index: Index, settings: Settings, doc: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """Queue the jobs a body asks for; ``[{"id", "ref", "state"}]``."""
    request = request_from_json(doc)
    ids = queue_detached(index, settings, request)
    return [{"id": i, "ref": r, "state": "queued"} for i, r in zip(ids, request.refs, strict=True)]
