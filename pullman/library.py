"""The Python API: ``await pullman.get(ref)`` and ``pullman.get_sync(ref)``.

What ``pullman get REF`` does in the foreground, as a coroutine: the ref is planned, fetched
resumably over several connections, verified and put in place, and a job row in the index
records it (``pullman status`` sees it; calling again after an interruption resumes). It runs
in the calling process, whether a daemon runs or not. Progress goes to ``progress=``, with the
fields of ``pullman get --progress json`` (:class:`pullman.progress.ProgressEvent`). Errors
are those of :mod:`pullman.errors` (``NotFound``, ``IntegrityError``, ``UsageError``, ...);
a cancelled call leaves its job paused, its bytes on disk.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio

from pullman import config
from pullman.config import Settings
from pullman.core.digests import parse_sha256_option
from pullman.core.hooks import parse_command
from pullman.core.jobs import GetOptions, JobOptions
from pullman.core.units import parse_rate
from pullman.errors import Interrupted, UsageError
from pullman.index import Index
from pullman.jobqueue import take
from pullman.jobrun import JobResult
from pullman.layouts import pin as pin_store
from pullman.progress import Emit, ProgressView, with_view
from pullman.scheduler import Scheduler, Watched
from pullman.session import PlanReport
from pullman.sources import parse
from pullman.sources import pin as pin_source
from pullman.sources.routes import check_to, route

P = ParamSpec("P")
T = TypeVar("T")

__all__ = ["Download", "DownloadedFile", "get", "get_sync"]


@dataclass(frozen=True)
class DownloadedFile:
    """One file of a download, where it is and how it got there."""

    name: str
    path: Path
    size: int
    digest: str | None
    verified: bool
    status: str
    """``downloaded``, ``present`` (already there), ``linked``, ``cloned`` or ``copied``."""


@dataclass(frozen=True)
class Download:
    """What :func:`get` put in place."""

    ref: str
    job: int
    """The job's id in the index (``pullman status JOB``)."""
    path: Path | None
    """Where the model is: the store entry (a manifest, a snapshot directory) or the file."""
    files: tuple[DownloadedFile, ...]

    @classmethod
    def of(cls, ref: str, job: int, reports: Sequence[PlanReport]) -> Download:
        files = tuple(
            DownloadedFile(f.name, f.path, f.size, f.digest, f.verified, f.status)
            for r in reports
            for f in r.files
        )
        where = next((r.where for r in reports if r.where is not None), None)
        return cls(ref, job, where, files)


async def get(
    ref: str,
    *,
    progress: Emit | None = None,
    to: str | Sequence[str] = (),
    output: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    revision: str | None = None,
    local_dir: str | os.PathLike[str] | None = None,
    connections: int | None = None,
    limit: str | None = None,
    force: bool = False,
    insecure: bool = False,
    token: str | None = None,
    on_done: str | None = None,
    on_failed: str | None = None,
    notify: bool = False,
    settings: Settings | None = None,
    progress_interval: float = 0.5,
) -> Download:
    """Download ``ref`` (an Ollama name, ``hf://`` / ``hf.co/`` ref or a URL) and put it in
    place; the flags are those of ``pullman get`` (``output`` is ``-o``, ``to`` is ``--to``).

    ``progress``: called (or awaited, if it is a coroutine function) with a
    :class:`~pullman.progress.ProgressEvent` for each file that changed, every
    ``progress_interval`` seconds, and an ``end`` event per file at the end.
    ``token``: a Hugging Face token for this call (never stored). ``settings``: default
    :func:`pullman.config.load` (``pullman.toml``, ``PULLMAN_*``, ``PULLMAN_HOME``).
    """
    if settings is None:
        settings = await anyio.to_thread.run_sync(config.load)
    options = GetOptions(
        cwd=str(Path.cwd()),
        out=_absolute(output),
        digest=parse_sha256_option(sha256) if sha256 else None,
        include=tuple(include),
        exclude=tuple(exclude),
        revision=revision,
        local_dir=_absolute(local_dir),
        to=tuple(dict.fromkeys(check_to(t) for t in ((to,) if isinstance(to, str) else to))),
        force=force,
        insecure=insecure,
        lmstudio_dir=settings.stores.lmstudio,  # [stores] and [sources], as `pullman get`
        mirrors=settings.sources.mirrors,
    )
    parsed = parse(ref, insecure=insecure, plain=output is not None or sha256 is not None)
    for where in options.to:  # a bad ref, or one that cannot go there: UsageError, here
        route(parsed, where, options)
    job = JobOptions(
        pin_source(pin_store(options)), connections, limit, foreground=os.getpid(),
        on_done=on_done, on_failed=on_failed, notify=notify,
    )  # fmt: skip
    _check(job)
    view = ProgressView(
        "json" if progress else "none", emit=progress, event_interval=progress_interval
    )
    return await _run(settings, ref, job, view, token)


def _check(job: JobOptions) -> None:
    if job.limit is not None:
        parse_rate(job.limit, what="limit")
    if job.connections is not None and not 1 <= job.connections <= 64:
        raise UsageError(f"connections={job.connections}: expected 1 to 64")
    for name in ("on_done", "on_failed"):
        line = getattr(job, name)
        if line is not None:
            parse_command(line, name)


async def _run(
    settings: Settings, ref: str, job: JobOptions, view: ProgressView, token: str | None
) -> Download:
    """Take (or resume) the job for ``ref`` and run it here, as a foreground ``get`` does."""
    if job.connections is not None:
        transfer = replace(settings.transfer, connections=job.connections)
        settings = replace(settings, transfer=transfer)
    await anyio.to_thread.run_sync(settings.paths.ensure)
    index = await anyio.to_thread.run_sync(Index.open, settings.paths.index)
    try:
        [job_id] = await anyio.to_thread.run_sync(take, index, [ref], job, 0)
        scheduler = Scheduler(
            settings,
            index,
            on_stop=("paused", "stopped by its caller; call pullman.get again to resume"),
            wait_for_disk=False,
            token=token,
        )
        results = await with_view(view, Watched(scheduler), scheduler.run(only=[job_id]))
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(index.close)
    result = results.get(job_id) or JobResult(job_id, ref, "queued")
    if result.error is not None:
        raise result.error
    if result.state != "done":
        raise Interrupted(f"{ref}: stopped ({result.state}); progress is saved", hint="call again")
    return Download.of(ref, job_id, result.reports)


def _absolute(path: str | os.PathLike[str] | None) -> str | None:
    if path is None:
        return None
    text = os.fspath(path)
    full = str(Path(text).expanduser().absolute())
    return full + "/" if text.endswith("/") and not full.endswith("/") else full


def _blocking(fn: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """``fn`` run on an event loop of its own; refused inside a running one."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if _in_event_loop():
            raise UsageError(
                f"pullman.{fn.__name__}_sync cannot run inside a running event loop",
                hint=f"use `await pullman.{fn.__name__}(...)` there",
            )
        return anyio.run(functools.partial(fn, *args, **kwargs))

    run.__name__ = run.__qualname__ = f"{fn.__name__}_sync"
    return run


def _in_event_loop() -> bool:
    """Whether this thread runs an event loop now (asyncio's, or trio's if trio is loaded)."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return True
    trio = sys.modules.get("trio")
    if trio is None:
        return False
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return False
    return True


get_sync = _blocking(get)
"""``pullman.get_sync(ref, ...)``: :func:`get` for code without an event loop; it blocks until
the download is in place and returns the same :class:`Download`."""
