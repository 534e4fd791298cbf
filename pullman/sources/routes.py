"""``--to``: where one ref lands, and which ref (so which source) fetches it for that store.

============  ==================================  =====================================
the ref       ``--to ollama``                     ``--to hf`` / ``--to lmstudio``
============  ==================================  =====================================
hf://org/r    ``hf.co/org/r:QUANT`` from the      the repo's files (LM Studio: its GGUF
              Hub's Ollama registry               files side by side)
hf.co/org/r   as it is                            ``hf://org/r:QUANT`` (real file names)
llama3:8b     as it is                            LM Studio only: the GGUF layer(s)
a URL         refused                             LM Studio only: a ``.gguf`` URL
============  ==================================  =====================================

``--to DIR`` is ``--local-dir DIR`` for a Hub repo and ``-o DIR/`` for a URL. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from pullman.core.jobs import GetOptions
from pullman.core.plan import Store
from pullman.core.quants import quant_tags
from pullman.core.refs import HF_HOSTS, HfRef, OllamaRef, Ref, UrlRef, valid_part
from pullman.core.urls import shown_ref
from pullman.errors import UsageError

APPS = {"hf": Store.HF_CACHE, "ollama": Store.OLLAMA, "lmstudio": Store.LMSTUDIO}
"""The stores ``--to`` names; anything else is a directory."""


@dataclass(frozen=True)
class Route:
    ref: Ref
    store: Store | None
    """None: the ref's own source decides (a directory: plain files)."""
    options: GetOptions


def check_to(to: str) -> str:
    """A ``--to`` value: an app's name (any case), or a directory, made absolute: a path with
    a ``/`` in it, or one that exists (a typo of an app's name is not a new directory)."""
    if to.lower() in APPS:
        return to.lower()
    path = Path(to).expanduser()
    if not to or to.startswith("-") or ("/" not in to and not path.is_dir()):
        raise UsageError(f"--to {to!r} is not a destination", hint=_HINT)
    return str(path.absolute())


_HINT = (
    "--to takes hf, ollama, lmstudio or a directory (./models, ~/models, /data/models), "
    "and may be given more than once"
)


def route(ref: Ref, to: str | None, options: GetOptions) -> Route:
    """How ``ref`` reaches the destination ``to`` (None: its own store, as without --to)."""
    if to is None:
        return Route(ref, None, options)
    if to not in APPS:
        return _to_directory(ref, to, options)
    if options.local_dir is not None or options.out is not None:
        raise UsageError(
            f"--to {to} and --local-dir / -o both say where it goes",
            hint=f"--to {to} puts it where {to} looks; --to DIR is the plain-directory one",
        )
    store = APPS[to]
    if store is Store.OLLAMA:
        return Route(as_ollama(ref), store, options)
    if isinstance(ref, OllamaRef) and ref.host.lower() in HF_HOSTS:
        ref = _as_hub(ref)  # the Hub's own file names, and its cache
    if store is Store.HF_CACHE and not isinstance(ref, HfRef):
        raise UsageError(
            f"{_shown(ref)} cannot go to the Hugging Face cache",
            why="the HF cache holds Hugging Face repos",
            hint="--to hf takes hf://org/repo refs (or hf.co/org/repo names)",
        )
    if store is Store.LMSTUDIO and isinstance(ref, UrlRef) and not _gguf(ref.url):
        raise UsageError(
            f"{shown_ref(ref.url)} is not a GGUF file",
            why="LM Studio loads GGUF files",
            hint="give the URL of a .gguf file, or an hf:// repo",
        )
    return Route(ref, store, options)


def _to_directory(ref: Ref, to: str, options: GetOptions) -> Route:
    if options.local_dir is not None or options.out is not None:
        raise UsageError("--to DIR and --local-dir / -o both say where", hint="give one of them")
    if isinstance(ref, UrlRef):
        return Route(ref, None, replace(options, out=to.rstrip("/") + "/"))
    if isinstance(ref, OllamaRef) and ref.host.lower() in HF_HOSTS:
        ref = _as_hub(ref)
    if isinstance(ref, HfRef):
        return Route(ref, None, replace(options, local_dir=to))
    raise UsageError(
        f"{_shown(ref)} cannot go to a plain directory",
        why="an Ollama model is its store's blobs and manifest",
        hint="--to ollama or --to lmstudio; `pullman export` packs it into one file",
    )


def as_ollama(ref: Ref) -> OllamaRef:
    """An Ollama name for the ref: itself, or ``hf.co/<org>/<repo>:<quant>`` for a Hub repo."""
    if isinstance(ref, OllamaRef):
        return ref
    if isinstance(ref, UrlRef):
        raise UsageError(
            f"{shown_ref(ref.url)} cannot go to the Ollama store",
            why="Ollama models come from a registry (a manifest and its blobs)",
            hint="use hf://org/repo:QUANT, or `pullman link FILE --to ollama` for a GGUF file",
        )
    org, _, repo = ref.repo_id.partition("/")
    tag = ref.quant or _quant_of(ref.pattern) or "latest"
    parts = {"namespace": org, "model": repo, "tag": tag}
    bad = [kind for kind, part in parts.items() if not valid_part(kind, part)]
    if ref.repo_type != "model" or bad:
        raise UsageError(
            f"{ref} has no Ollama name",
            why=f"its {' and '.join(bad) or 'type'} is not valid in an Ollama name"
            if bad
            else "only model repos are Ollama models",
            hint="pull it into the HF cache or LM Studio instead",
        )
    return OllamaRef("hf.co", org, repo, tag)


def _quant_of(pattern: str | None) -> str | None:
    """The quantisation a file name says (``model-Q4_K_M.gguf``), if it says exactly one."""
    if not pattern or not _gguf(pattern):
        return None
    tags = quant_tags(pattern)
    return next(iter(tags)) if len(tags) == 1 else None


def _as_hub(ref: OllamaRef) -> HfRef:
    quant = None if ref.tag.lower() == "latest" else ref.tag
    return HfRef(f"{ref.namespace}/{ref.model}", quant=quant, gguf=True)


def _gguf(path: str) -> bool:
    return path.lower().split("?")[0].endswith(".gguf")


def _shown(ref: Ref) -> str:
    return shown_ref(ref.url) if isinstance(ref, UrlRef) else str(ref)
