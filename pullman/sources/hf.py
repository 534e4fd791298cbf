"""The Hugging Face Hub: a repo (or some of its files) to a release of files at one commit.

Metadata comes from huggingface_hub's ``HfApi`` (commit of the revision, the recursive file
listing with sizes, LFS sha256 and git blob ids, the token from ``HF_TOKEN`` or the saved login,
``HF_ENDPOINT``). The data goes through pullman's engine: each file's ``resolve`` URL on the Hub,
which for LFS files redirects to a CDN host; the token is sent to the Hub host only.
Verification: sha256 for LFS files, the git blob sha1 for small ones. Which files:
:mod:`pullman.sources.hf_select`.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import anyio

from pullman.core.digests import Digest
from pullman.core.jobs import GetOptions
from pullman.core.names import check_commit, check_repo_path
from pullman.core.plan import HubRepo, Release, RemoteFile, Store
from pullman.core.refs import HfRef, Ref
from pullman.errors import (
    AccessDenied,
    NetworkError,
    NotFound,
    PullmanError,
    RemoteError,
    UsageError,
)
from pullman.net.errors import LOGIN, error_for_status, translate
from pullman.net.hub_client import HubCall, HubCallStopped, run_call
from pullman.net.retry import retrying
from pullman.sources import SourceContext
from pullman.sources.hf_select import HubFile, Snapshot, select

log = logging.getLogger("pullman.sources")

DEFAULT_ENDPOINT = "https://huggingface.co"
HUB_ORIGINS = ("https://huggingface.co", "https://hub-ci.huggingface.co", "https://hf.co")
"""The origins huggingface_hub trusts with the token, besides ``HF_ENDPOINT``'s
(``huggingface_hub.utils._http._HUB_ORIGINS``); never a CDN."""
MAX_FILES = 100_000
MAX_PAGES = 2_000
"""Requests one listing may take (the Hub pages 1,000 entries at a time)."""


def endpoint(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


class HfSource:
    name = "hf"
    options = frozenset({"include", "exclude", "local_dir", "revision"})

    def pinned(self, options: GetOptions) -> GetOptions:
        return replace(options, hf_endpoint=options.hf_endpoint or endpoint())

    def store(self, ref: Ref, options: GetOptions) -> Store:
        return Store.PLAIN if options.local_dir is not None else Store.HF_CACHE

    async def resolve(self, ref: Ref, ctx: SourceContext) -> Release:
        assert isinstance(ref, HfRef)
        if ctx.options.revision is not None:
            ref = replace(ref, revision=ctx.options.revision, revision_given=True)
        base = ctx.mirror or ctx.options.hf_endpoint or endpoint()
        snapshot = await list_snapshot(ref, ctx, base)
        chosen, note = select(snapshot, ctx.options.include, ctx.options.exclude)
        if note:
            log.warning("%s: %s", ref, note)
        files = tuple(
            RemoteFile(
                url=snapshot.resolve_url(f.path),
                path=f.path,
                name=f.path,
                size=f.size,
                digest=f.digest,
                key=f"hf-{f.etag}",
                auth=snapshot.auth,
                auth_to=(snapshot.endpoint,) if ctx.mirror else (snapshot.endpoint, *HUB_ORIGINS),
            )
            for f in chosen
        )
        repo = HubRepo(
            ref.repo_id, ref.repo_type, ref.revision, snapshot.commit, access=snapshot.access
        )
        return Release(str(ref), f"{ref.repo_id}@{ref.revision}", str(ref), files, repo=repo)


# ------------------------------------------------------------------------------- metadata


async def list_snapshot(ref: HfRef, ctx: SourceContext, base: str) -> Snapshot:
    """The commit of ``ref``'s revision and every file in it (sizes, digests).

    huggingface_hub works synchronously, in a worker thread; a watchdog gives up when no answer
    (no listing entry) has come for ``deadline`` seconds, so a silent or endless Hub cannot hold
    pullman, and Ctrl-C does not wait for it.
    """
    deadline = ctx.deadline
    # Never the Hub's token to a mirror: only the mirror's own, if it has one.
    own = ctx.mirror_token if ctx.mirror else None
    token = own if ctx.mirror else ctx.token or await anyio.to_thread.run_sync(_token)

    def stalled() -> NetworkError:
        return NetworkError(
            f"the Hub at {base} stopped answering for {deadline:g} s",
            why="no metadata (or no new file in a listing) arrived",
            hint="try again later",
        )

    async def once() -> Snapshot:
        return await run_call(
            lambda call: _list_files(ref, base, token, call),
            deadline=deadline,
            max_requests=MAX_PAGES,
            stalled=stalled,
            proxies=ctx.proxies,
        )

    return await retrying(once, ctx.policy)


def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _list_files(ref: HfRef, base: str, token: str | None, call: HubCall) -> Snapshot:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=base, token=token or False)
    try:
        info = api.repo_info(ref.repo_id, revision=ref.revision, repo_type=ref.repo_type)
    except Exception as exc:
        raise _translate(exc, ref, base, token) from exc
    call.mark()
    if getattr(info, "gated", False) and not token:
        raise hf_gated_error(ref, base)
    commit = check_commit(str(info.sha))
    try:
        tree = api.list_repo_tree(
            ref.repo_id, revision=commit, repo_type=ref.repo_type, recursive=True
        )
        entries = []
        for entry in itertools.islice(tree, MAX_FILES + 1):
            call.mark()
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
    return Snapshot(ref, base, commit, files, token, access_of(info))


def access_of(info: Any) -> str | None:
    """What the repo info says about who may read it; None when it does not say."""
    private, gated = getattr(info, "private", None), getattr(info, "gated", None)
    if private is True:
        return "private"
    if gated not in (None, False):
        return "gated"
    if private is False and gated is False:
        return "public"
    return None


def _hub_file(entry: Any) -> HubFile:
    path = check_repo_path(str(entry.path))
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
        hint=f"ask for access at {base}/{ref.repo_id}, then {LOGIN}",
    )


def _translate(exc: Exception, ref: HfRef, base: str, token: str | None) -> PullmanError:
    """huggingface_hub's errors, in our tree, each with what to do; other errors are bugs."""
    from huggingface_hub import errors as hf

    repo = ref.repo_id
    if isinstance(exc, HubCallStopped):
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
            hint=f"ask for access at {base}/{repo}" + ("" if token else f", then {LOGIN}"),
        )
    if isinstance(exc, hf.RepositoryNotFoundError):
        return NotFound(
            f"repo {repo} not found",
            why="it does not exist, or it is private"
            + (" and your token cannot see it" if token else " and you are not logged in"),
            hint="check the name" + ("" if token else f"; for a private repo, {LOGIN}"),
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
        response = exc.response
        why = str(exc).splitlines()[0] if str(exc) else None
        return error_for_status(
            response.status_code, base, response.headers, subject=f"the Hub ({repo})", why=why
        )
    return translate(exc, base)
