"""What a model is called in LM Studio's tree: its two folders and its files' names. Pure.

A Hub repo is ``<org>/<repo>/`` with its GGUF files side by side (an MLX repo without GGUF
keeps its own paths); an Ollama model ``<namespace>/<model>/<model>-<tag>.gguf`` (``ollama/``
for Ollama's library, ``<org>/<repo>/`` for ``hf.co`` names) with its projector as
``mmproj-<model>-<tag>.gguf``; a URL's GGUF ``<host>/<stem>/<file>``. Every folder and file name
is one safe path segment: never empty, ``.`` or ``..``, no separators. What ``rm --from
lmstudio REF`` removes is only what REF put there (:func:`owned`).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from pullman.core.plan import Release, RemoteFile
from pullman.core.quants import has_quant
from pullman.core.refs import HF_HOSTS, HfRef, OllamaRef, Ref, UrlRef

MODEL_FILE = ".gguf"
OLLAMA_ROLES = ("model", "projector")
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]")


def segment(text: str, fallback: str) -> str:
    """``text`` as one path segment: other characters become ``-``; never hidden, empty,
    ``.`` or ``..`` (then ``fallback``)."""
    cleaned = _UNSAFE.sub("-", text).lstrip(".")
    return cleaned if cleaned.strip("-") else fallback


def folder(what: Ref | Release) -> tuple[str, str]:
    """``(publisher, repo)``: the two folder levels a model lives under."""
    if isinstance(what, Release):
        if what.repo is not None:
            return _split(what.repo.repo_id)
        if what.model is not None:
            host, namespace, model, _ = what.model.parts
            return _ollama_folder(host, namespace, model)
        return _url_folder(what.ref)
    if isinstance(what, HfRef):
        return _split(what.repo_id)
    if isinstance(what, OllamaRef):
        return _ollama_folder(what.host, what.namespace, what.model)
    return _url_folder(what.url)


def _split(repo_id: str) -> tuple[str, str]:
    publisher, _, repo = repo_id.partition("/")
    return segment(publisher, "hf"), segment(repo, "model")


def _ollama_folder(host: str, namespace: str, model: str) -> tuple[str, str]:
    if host.lower() in HF_HOSTS:
        return segment(namespace, "hf"), segment(model, "model")
    return segment("ollama" if namespace == "library" else namespace, "ollama"), segment(
        model, "model"
    )


def url_file(url: str) -> str:
    return segment(PurePosixPath(unquote(urlsplit(url).path)).name, "model.gguf")


def _url_folder(url: str) -> tuple[str, str]:
    host = segment(urlsplit(url).hostname or "", "web")
    return host, segment(url_file(url).removesuffix(MODEL_FILE), "model")


def _ollama_name(model: str, tag: str, role: str, n: int) -> str:
    prefix = "mmproj-" if role == "projector" else ""
    extra = f"-{n}" if n and role == "model" else ""
    return segment(f"{prefix}{model}-{tag}{extra}{MODEL_FILE}", "model.gguf")


def file_names(release: Release) -> list[tuple[RemoteFile, str]]:
    """Which files of the release LM Studio gets, under which names in the model's folder
    (one segment each, except an MLX repo's own checked paths)."""
    if release.model is not None:
        _, _, model, tag = release.model.parts
        chosen = sorted(
            (f for f in release.files if f.role in OLLAMA_ROLES),
            key=lambda f: OLLAMA_ROLES.index(f.role),
        )
        return [(f, _ollama_name(model, tag, f.role, n)) for n, f in enumerate(chosen)]
    ggufs = [f for f in release.files if f.path.lower().endswith(MODEL_FILE)]
    if ggufs:
        return [(f, segment(PurePosixPath(f.path).name, "model.gguf")) for f in ggufs]
    if release.repo is not None:
        return [(f, f.path) for f in release.files]  # an MLX model: the repo's own tree
    return []


def owned(names: list[str], ref: Ref) -> list[str]:
    """Which of the files in a model's folder (paths relative to it) ``ref`` names: a tag or
    quantisation its files only (and the projector once no other model file is left), a
    file or glob those, a whole repo everything."""
    if isinstance(ref, OllamaRef) and ref.host.lower() not in HF_HOSTS:
        own = re.compile(
            rf"(mmproj-)?{re.escape(ref.model)}-{re.escape(ref.tag)}(-\d+)?{MODEL_FILE}", re.I
        )
        return [n for n in names if own.fullmatch(n)]
    if isinstance(ref, UrlRef):
        return [n for n in names if n == url_file(ref.url)]
    if isinstance(ref, OllamaRef):  # hf.co/org/repo:QUANT
        ref = HfRef(f"{ref.namespace}/{ref.model}", quant=None if ref.tag == "latest" else ref.tag)
    if ref.pattern:
        return [n for n in names if fnmatch.fnmatch(n, PurePosixPath(ref.pattern).name)]
    if not ref.quant:
        return list(names)
    weights = [n for n in names if not _projector(n)]
    mine = [n for n in weights if has_quant(n, ref.quant)]
    rest = [n for n in weights if n not in mine and n.lower().endswith(MODEL_FILE)]
    return mine + ([n for n in names if _projector(n)] if mine and not rest else [])


def _projector(name: str) -> bool:
    return "mmproj" in name.lower() and name.lower().endswith(MODEL_FILE)
