"""Which files of a Hub snapshot to fetch: a path or glob, ``--include`` / ``--exclude``, and
the GGUF file(s) of one quantisation for ``hf.co/org/repo:QUANT``. Pure."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

from pullman.core.digests import Digest
from pullman.core.quants import has_quant, quant_tags
from pullman.core.refs import HfRef
from pullman.errors import NotFound

__all__ = ["DEFAULT_QUANTS", "HubFile", "Snapshot", "quant_tags", "select"]

DEFAULT_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0")


@dataclass(frozen=True)
class HubFile:
    path: str
    size: int
    digest: Digest
    """sha256 for LFS files, the git blob sha1 (``git-sha1``) for small files."""

    @property
    def etag(self) -> str:
        """The blob's name in the cache."""
        return self.digest.hex


@dataclass(frozen=True)
class Snapshot:
    ref: HfRef
    endpoint: str
    commit: str
    files: tuple[HubFile, ...]
    token: str | None = field(default=None, repr=False)
    access: str | None = None
    """``public``, ``private`` or ``gated`` (from the repo's info), None when unknown."""

    def resolve_url(self, path: str) -> str:
        from huggingface_hub import hf_hub_url

        return hf_hub_url(
            self.ref.repo_id,
            path,
            repo_type=self.ref.repo_type,
            revision=self.commit,
            endpoint=self.endpoint,
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def select(
    snapshot: Snapshot, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> tuple[list[HubFile], str | None]:
    """The files to fetch, and a note to show when a default was picked."""
    ref = snapshot.ref
    chosen = list(snapshot.files)
    if ref.pattern:
        prefix = ref.pattern.rstrip("/") + "/"
        chosen = [
            f
            for f in chosen
            if f.path == ref.pattern
            or f.path.startswith(prefix)
            or fnmatch.fnmatch(f.path, ref.pattern)
        ]
    if include or exclude:  # as `hf download` matches them ("onnx/" is "onnx/*")
        from huggingface_hub.utils._paths import filter_repo_objects

        chosen = list(
            filter_repo_objects(
                chosen,
                allow_patterns=list(include) or None,
                ignore_patterns=list(exclude) or None,
                key=lambda f: f.path,
            )
        )
    note = None
    if ref.gguf:
        chosen, note = _pick_gguf(chosen, ref)
    if not chosen:
        raise NotFound(
            f"no file in {ref.repo_id}@{ref.revision} matches what was asked",
            hint="check the path, glob, --include and --exclude",
        )
    return chosen, note


def _is_projector(path: str) -> bool:
    return "mmproj" in path.rsplit("/", 1)[-1].lower()


def _projector(files: list[HubFile]) -> list[HubFile]:
    """The vision projector (``mmproj-*.gguf``) a vision model needs with its weights: one,
    the F16 where there are several (as Ollama's hf.co registry picks it)."""
    found = sorted(
        (f for f in files if f.path.lower().endswith(".gguf") and _is_projector(f.path)),
        key=lambda f: f.path,
    )
    f16 = [f for f in found if "F16" in quant_tags(f.path)]
    return (f16 or found)[:1]


def _pick_gguf(files: list[HubFile], ref: HfRef) -> tuple[list[HubFile], str | None]:
    picked, note = _pick_weights(files, ref)
    if picked is files:
        return picked, note
    return picked + _projector(files), note


def _pick_weights(files: list[HubFile], ref: HfRef) -> tuple[list[HubFile], str | None]:
    ggufs = [f for f in files if f.path.lower().endswith(".gguf") and not _is_projector(f.path)]
    if not ggufs:
        if ref.quant:
            raise NotFound(f"{ref.repo_id} has no GGUF files", hint="drop the :QUANT suffix")
        return files, f"{ref.repo_id} has no GGUF files; fetching the whole repo"
    if ref.quant:
        picked = [f for f in ggufs if has_quant(f.path, ref.quant)]
        if not picked:
            available = sorted({t for f in ggufs for t in quant_tags(f.path)})
            raise NotFound(
                f"{ref.repo_id} has no GGUF file for {ref.quant}",
                why="available: " + (", ".join(available) or "no recognisable tags"),
                hint=f"pick one of those, e.g. hf://{ref.repo_id}:{(available or ['Q4_K_M'])[0]}",
            )
        return picked, None
    for quant in DEFAULT_QUANTS:
        picked = [f for f in ggufs if has_quant(f.path, quant)]
        if picked:
            return picked, f"no quantisation given: picked {quant}"
    first = sorted(ggufs, key=lambda f: f.path)[0]
    tags = quant_tags(first.path)
    group = [f for f in ggufs if tags and quant_tags(f.path) == tags] or [first]
    return group, f"no quantisation given and no {DEFAULT_QUANTS[0]}: picked {first.path}"
