"""The Hugging Face Hub: a repo (or some of its files) to a plan of blobs, links and refs.

Metadata comes from huggingface_hub's ``HfApi`` (commit of the revision, the recursive file
listing with sizes, LFS sha256 and git blob ids, the token from ``HF_TOKEN`` or the saved login,
``HF_ENDPOINT``). The data goes through pullman's engine: each file's ``resolve`` URL on the Hub,
which for LFS files redirects to a CDN host; the token is sent to the Hub host only.
Verification: sha256 for LFS files, the git blob sha1 for small ones.
"""

from __future__ import annotations

import fnmatch
import itertools
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio

from pullman import http
from pullman.digests import Digest
from pullman.errors import (
    AccessDenied,
    NetworkError,
    NotFound,
    PullmanError,
    RateLimited,
    RemoteError,
    ServerError,
    UsageError,
    collapse_groups,
)
from pullman.headers import parse_retry_after
from pullman.layouts import hf_cache
from pullman.plan import FileSpec, Final, Plan, Symlink, WriteFile
from pullman.refs import HfRef
from pullman.retry import RetryPolicy, retrying

DEFAULT_ENDPOINT = "https://huggingface.co"
MAX_FILES = 100_000
MAX_PAGES = 2_000
"""Requests one listing may take (the Hub pages 1,000 entries at a time)."""
DEFAULT_QUANTS = ("Q4_K_M", "Q4_K_S", "Q5_K_M", "Q4_0", "Q8_0")
_QUANT_IN_NAME = re.compile(r"(?<![A-Z0-9])(I?Q\d[A-Z0-9_]*?|F16|BF16|F32)(?=[-.](?!\d)|$|-\d)")


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

    def resolve_url(self, path: str) -> str:
        prefix = "datasets/" if self.ref.repo_type == "dataset" else ""
        commit = quote(self.commit, safe="")
        return f"{self.endpoint}/{prefix}{self.ref.repo_id}/resolve/{commit}/{quote(path)}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def endpoint(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


# ------------------------------------------------------------------------------- metadata


async def resolve(ref: HfRef, policy: RetryPolicy, deadline: float = 60.0) -> Snapshot:
    """The commit of ``ref``'s revision and every file in it (sizes, digests).

    huggingface_hub works synchronously, in a worker thread; a watchdog gives up when no answer
    (no listing entry) has come for ``deadline`` seconds, so a silent or endless Hub cannot hold
    pullman, and Ctrl-C does not wait for it.
    """
    base = endpoint()
    http.configure_hub_client(read_timeout=deadline)
    token = await anyio.to_thread.run_sync(_token)
    return await retrying(lambda: _watched(ref, base, token, deadline), policy)


class _Progress:
    """When huggingface_hub last gave us something (written by its thread, read by ours)."""

    def __init__(self) -> None:
        self.last = time.monotonic()

    def mark(self) -> None:
        self.last = time.monotonic()


async def _watched(ref: HfRef, base: str, token: str | None, deadline: float) -> Snapshot:
    progress = _Progress()
    result: list[Snapshot] = []
    call = http.HubCall(max_requests=MAX_PAGES)

    async def work() -> None:
        token_ctx = http.hub_call.set(call)  # copied into the worker thread's context
        try:
            result.append(
                await anyio.to_thread.run_sync(
                    _list_files, ref, base, token, progress, abandon_on_cancel=True
                )
            )
        finally:
            http.hub_call.reset(token_ctx)

    with collapse_groups():
        async with anyio.create_task_group() as tg:

            async def watchdog() -> None:
                while True:
                    await anyio.sleep(min(1.0, deadline / 4))
                    if time.monotonic() - progress.last > deadline:
                        call.stop()  # the abandoned thread's next request fails: it ends
                        raise NetworkError(
                            f"the Hub at {base} stopped answering for {deadline:g} s",
                            why="no metadata (or no new file in a listing) arrived",
                            hint="try again later",
                        )

            tg.start_soon(watchdog)
            await work()
            tg.cancel_scope.cancel()
    return result[0]


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _list_files(ref: HfRef, base: str, token: str | None, progress: _Progress) -> Snapshot:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=base, token=token or False)
    try:
        info = api.repo_info(ref.repo_id, revision=ref.revision, repo_type=ref.repo_type)
    except Exception as exc:
        raise _translate(exc, ref, base, token) from exc
    progress.mark()
    if getattr(info, "gated", False) and not token:
        raise hf_gated_error(ref, base)
    commit = hf_cache.check_commit(str(info.sha))
    try:
        tree = api.list_repo_tree(
            ref.repo_id, revision=commit, repo_type=ref.repo_type, recursive=True
        )
        entries = []
        for entry in itertools.islice(tree, MAX_FILES + 1):
            progress.mark()
            entries.append(entry)
    except Exception as exc:
        raise _translate(exc, ref, base, token) from exc
    if len(entries) > MAX_FILES:
        raise RemoteError(
            f"{ref.repo_id} lists more than {MAX_FILES} entries",
            why="a listing this long is not plausible for a model repo",
            hint="narrow it with a path (hf://org/repo/path) or --include",
        )
    files = tuple(_hub_file(e) for e in entries if isinstance(e, RepoFile))
    return Snapshot(ref, base, commit, files, token)


def _hub_file(entry: Any) -> HubFile:
    path = hf_cache.check_repo_path(str(entry.path))
    size = entry.size
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RemoteError(f"the Hub listed {path!r} with an invalid size")
    try:
        if entry.lfs is not None:
            return HubFile(path, size, Digest("sha256", str(entry.lfs.sha256)))
        return HubFile(path, size, Digest("git-sha1", str(entry.blob_id)))
    except ValueError:
        raise RemoteError(f"the Hub listed {path!r} with an invalid digest") from None


def hf_gated_error(ref: HfRef, base: str) -> AccessDenied:
    return AccessDenied(
        f"{ref.repo_id} is a gated repo and you are not logged in",
        why="its authors must grant you access, and the Hub must know who you are",
        hint=f"ask for access at {base}/{ref.repo_id}, then log in with `hf auth login` "
        "or set HF_TOKEN",
    )


def _translate(exc: Exception, ref: HfRef, base: str, token: str | None) -> PullmanError:
    """huggingface_hub's errors, in our tree, each with what to do."""
    from huggingface_hub import errors as hf

    repo = ref.repo_id
    login = "log in with `hf auth login` or set HF_TOKEN"
    if isinstance(exc, http.HubCallStopped):
        return RemoteError(
            f"the Hub's answer about {repo} never ended",
            why=str(exc),
            hint="the Hub (or what answers as the Hub) is broken; try again later",
        )
    if isinstance(exc, hf.GatedRepoError):
        return AccessDenied(
            f"{repo} is a gated repo",
            why="its authors must grant you access first"
            + ("" if token else ", and you are not logged in"),
            hint=f"ask for access at {base}/{repo}" + ("" if token else f", then {login}"),
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return NotFound(
            f"repo {repo} not found",
            why="it does not exist, or it is private"
            + (" and your token cannot see it" if token else " and you are not logged in"),
            hint="check the name" + ("" if token else f"; for a private repo, {login}"),
        )
    if isinstance(exc, hf.RevisionNotFoundError):
        return NotFound(
            f"{repo} has no revision {ref.revision!r}",
            hint="check the branch, tag or commit (the default is main)",
        )
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return UsageError(
            "HF_HUB_OFFLINE is set, so the Hub cannot be asked what to download",
            hint="unset HF_HUB_OFFLINE to download",
        )
    if isinstance(exc, hf.HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 429:
            wait = parse_retry_after(exc.response.headers.get("retry-after"))
            return RateLimited(f"the Hub is rate-limiting requests for {repo}", retry_after=wait)
        if status >= 500:
            return ServerError(f"the Hub answered {status} for {repo}")
        return RemoteError(f"the Hub answered {status} for {repo}", why=str(exc).splitlines()[0])
    return http.translate(exc, base)


# ------------------------------------------------------------------------------- selection


def quant_tags(path: str) -> set[str]:
    """Quantisation tags in a GGUF file's path (``Q4_K_M``, ``IQ3_XS``, ``F16`` ...)."""
    return set(_QUANT_IN_NAME.findall(path.upper()))


def _has_quant(path: str, quant: str) -> bool:
    wanted = quant.upper()
    return any(part == wanted for part in re.split(r"[-./]", path.upper())) or wanted in (
        quant_tags(path)
    )


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
    if include:
        chosen = [f for f in chosen if any(fnmatch.fnmatch(f.path, p) for p in include)]
    if exclude:
        chosen = [f for f in chosen if not any(fnmatch.fnmatch(f.path, p) for p in exclude)]
    note = None
    if ref.gguf:
        chosen, note = _pick_gguf(chosen, ref)
    if not chosen:
        raise NotFound(
            f"no file in {ref.repo_id}@{ref.revision} matches what was asked",
            hint="check the path, glob, --include and --exclude",
        )
    return chosen, note


def _pick_gguf(files: list[HubFile], ref: HfRef) -> tuple[list[HubFile], str | None]:
    ggufs = [f for f in files if f.path.lower().endswith(".gguf") and "mmproj" not in f.path]
    if not ggufs:
        if ref.quant:
            raise NotFound(f"{ref.repo_id} has no GGUF files", hint="drop the :QUANT suffix")
        return files, f"{ref.repo_id} has no GGUF files; fetching the whole repo"
    if ref.quant:
        picked = [f for f in ggufs if _has_quant(f.path, ref.quant)]
        if not picked:
            available = sorted({t for f in ggufs for t in quant_tags(f.path)})
            raise NotFound(
                f"{ref.repo_id} has no GGUF file for {ref.quant}",
                why="available: " + (", ".join(available) or "no recognisable tags"),
                hint=f"pick one of those, e.g. hf.co/{ref.repo_id}:{(available or ['Q4_K_M'])[0]}",
            )
        return picked, None
    for quant in DEFAULT_QUANTS:
        picked = [f for f in ggufs if _has_quant(f.path, quant)]
        if picked:
            return picked, f"no quantisation given: picked {quant}"
    first = sorted(ggufs, key=lambda f: f.path)[0]
    tags = quant_tags(first.path)
    group = [f for f in ggufs if tags and quant_tags(f.path) == tags] or [first]
    return group, f"no quantisation given and no {DEFAULT_QUANTS[0]}: picked {first.path}"


# ------------------------------------------------------------------------------- plans


def plan_cache(snapshot: Snapshot, files: Sequence[HubFile], root: Path) -> Plan:
    """Blobs into the HF cache, then the snapshot links, then the ref, in that order."""
    ref = snapshot.ref
    repo = hf_cache.repo_dir(root, ref.repo_id, ref.repo_type)
    specs = tuple(
        FileSpec(
            url=snapshot.resolve_url(f.path),
            dest=hf_cache.blob_path(repo, f.etag),
            key=f"hf-{f.etag}",
            name=f.path,
            size=f.size,
            digest=f.digest,
            auth=snapshot.auth,
            content_addressed=True,
        )
        for f in files
    )
    finals: list[Final] = [
        Symlink(
            hf_cache.snapshot_path(repo, snapshot.commit, f.path),
            hf_cache.link_target(f.path, f.etag),
        )
        for f in files
    ]
    if ref.revision != snapshot.commit:
        finals.append(WriteFile(hf_cache.ref_path(repo, ref.revision), snapshot.commit.encode()))
    return Plan(
        ref=str(ref),
        files=specs,
        root=root,
        staging=hf_cache.staging_dir(repo),
        title=f"{ref.repo_id}@{ref.revision}",
        finals=tuple(finals),
        display=str(ref),
        store="hf",
    )


def plan_local_dir(snapshot: Snapshot, files: Sequence[HubFile], local_dir: Path) -> Plan:
    """Plain files under ``local_dir``, as ``hf download --local-dir`` writes them."""
    ref = snapshot.ref
    specs = tuple(
        FileSpec(
            url=snapshot.resolve_url(f.path),
            dest=local_dir / f.path,
            key=f"hf-{f.etag}",
            name=f.path,
            size=f.size,
            digest=f.digest,
            auth=snapshot.auth,
        )
        for f in files
    )
    return Plan(
        ref=str(ref),
        files=specs,
        root=local_dir,
        staging=local_dir / hf_cache.STAGING,
        title=f"{ref.repo_id}@{ref.revision}",
        display=str(ref),
        store="plain",
    )
