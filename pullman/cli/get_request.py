"""What ``pullman get`` was asked: :class:`GetRequest`, one field per flag, and what follows
from it (the job's options, the settings, the progress view, a token)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pullman.config import Settings
from pullman.core.digests import parse_sha256_option
from pullman.core.hooks import parse_command
from pullman.core.jobs import GetOptions, JobOptions
from pullman.core.mirrors import parse_mirror
from pullman.core.units import parse_rate, parse_size
from pullman.core.windows import Window, local_now, until_deadline
from pullman.errors import UsageError
from pullman.fsio import disk_errors
from pullman.index import Index
from pullman.jobqueue import submit
from pullman.layouts import pin as pin_store
from pullman.progress import ProgressView
from pullman.sources import parse
from pullman.sources import pin as pin_source
from pullman.sources.routes import check_to, route

ASK = "-"
"""``--token`` without a file: ask for it."""


@dataclass(frozen=True)
class GetRequest:
    """Everything ``pullman get`` was asked, as typed (one field per flag)."""

    refs: tuple[str, ...]
    sha256: str | None
    output: str | None
    to: tuple[str, ...]
    mirror: tuple[str, ...]
    no_mirror: bool
    ollama_dir: str | None
    lmstudio_dir: str | None
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    local_dir: str | None
    connections: int | None
    force: bool
    verify_existing: bool
    insecure: bool
    via_server: bool
    recycle_after: float
    detach: bool
    priority: int
    window: str | None
    until: str | None
    limit: str | None
    on_done: str | None
    on_failed: str | None
    notify: bool
    as_json: bool
    progress: str
    revision: str | None
    cache_dir: str | None
    token_file: str | None
    dry_run: bool
    quiet: bool
    cwd: str | None = None
    """Where relative paths (and a URL's file without -o) land; default: this process's."""
    hf_endpoint: str | None = None
    """The Hub to use (else ``HF_ENDPOINT`` where the job is queued)."""
    ignore_fit: bool = False
    memory: str | None = None
    context_length: int | None = None

    def check(self) -> None:
        """Usage errors, before anything is queued or fetched."""
        if self.sha256 is not None and len(self.refs) != 1:
            raise UsageError("--sha256 applies to a single URL", hint="run one get per URL")
        if self.output is not None and len(self.refs) != 1:
            raise UsageError("-o applies to a single URL", hint="run one get per URL")
        options = self.options()
        for text in self.refs:
            plain = self.output is not None or self.sha256 is not None
            ref = parse(text, insecure=self.insecure, plain=plain)  # bad refs fail here
            for to in options.to:  # and refs that cannot go where --to says
                route(ref, to, options)
        for mirror in self.mirror:
            parse_mirror(mirror)
        if self.limit is not None:
            parse_rate(self.limit, what="--limit")
        memory_size(self.memory)
        if self.window is not None:
            Window.parse(self.window)
        if self.on_done is not None:
            parse_command(self.on_done, "--on-done")
        if self.on_failed is not None:
            parse_command(self.on_failed, "--on-failed")

    def options(self) -> GetOptions:
        cwd = self.cwd or str(Path.cwd())
        return GetOptions(
            cwd=cwd,
            revision=self.revision,
            hf_cache=_absolute(self.cache_dir, cwd),
            hf_endpoint=self.hf_endpoint,
            out=_absolute(self.output, cwd),
            digest=parse_sha256_option(self.sha256) if self.sha256 else None,
            force=self.force,
            insecure=self.insecure,
            ollama_dir=self.ollama_dir,
            lmstudio_dir=_absolute(self.lmstudio_dir, cwd),
            to=tuple(dict.fromkeys(check_to(t) for t in self.to)),
            mirrors=() if self.no_mirror else self.mirror,
            verify_existing=self.verify_existing,
            include=self.include,
            exclude=self.exclude,
            local_dir=_absolute(self.local_dir, cwd),
            ignore_fit=self.ignore_fit,
            memory=memory_size(self.memory),
            context=self.context_length,
        )

    def job(self) -> JobOptions:
        """What the job row records: the stores and the Hub this process would use."""
        options = pin_source(pin_store(self.options()))
        return JobOptions(
            options,
            self.connections,
            self.limit,
            self.window,
            on_done=self.on_done,
            on_failed=self.on_failed,
            notify=self.notify,
        )

    def deadline(self) -> datetime | None:
        return until_deadline(self.until, local_now()) if self.until else None

    def view(self) -> ProgressView:
        quiet = (self.as_json or self.quiet) and self.progress == "auto"
        return ProgressView("none" if quiet else self.progress)

    def token(self) -> str | None:
        """``--token``: from a file, or asked for without echo; never a command-line value."""
        if self.token_file is None:
            return None
        if self.detach:
            raise UsageError(
                "--token applies to a foreground run (a queued job never stores a token)",
                hint="log in with `hf auth login` or set HF_TOKEN where the daemon runs",
            )
        if self.token_file == ASK:
            value = click.prompt("Hugging Face token", hide_input=True, err=True)
        else:
            with disk_errors(Path(self.token_file)):
                value = Path(self.token_file).read_text()
        token = str(value).strip()
        if not token or any(ch.isspace() for ch in token):
            raise UsageError("--token: that is not a token", hint="a token is one word, hf_...")
        return token

    def with_config(self, settings: Settings) -> GetRequest:
        """``[stores]`` and ``[sources]`` where the flags did not say."""
        return replace(
            self,
            lmstudio_dir=self.lmstudio_dir or settings.stores.lmstudio,
            mirror=self.mirror or settings.sources.mirrors,
        )

    def settings(self, base: Settings) -> Settings:
        if self.connections is None:
            return base
        return replace(base, transfer=replace(base.transfer, connections=self.connections))


def queue_detached(index: Index, settings: Settings, request: GetRequest) -> list[int]:
    """Queue ``request``'s jobs for the daemon: ``get --detach`` here, and ``POST /api/jobs``
    in the daemon (:mod:`pullman.api.submit`). Their ids."""
    request = request.with_config(settings)
    request.check()
    if request.until is not None:
        raise UsageError("--until applies to a foreground run", hint="use --window for the daemon")
    if request.token_file is not None or request.via_server:
        raise UsageError(
            "--token and --via-server apply to a foreground run (a queued job stores no token)",
            hint="give the daemon HF_TOKEN or a login; run --via-server in the foreground",
        )
    return submit(index, request.refs, request.job(), request.priority)


def api_body(request: GetRequest) -> dict[str, Any]:
    """The ``POST /api/jobs`` body for ``request``, with the stores and the Hub settled here
    (pinned in this process's environment, as a job row written here would be)."""
    pinned = request.job().get
    cwd = pinned.cwd or str(Path.cwd())
    body: dict[str, Any] = {
        name: list(value) if isinstance(value, tuple) else value
        for name in _API_FLAGS
        if (value := getattr(request, name)) not in (None, False, ())
    }
    body.update(
        refs=list(request.refs),
        cwd=cwd,
        priority=request.priority,
        ollama_dir=_absolute(pinned.ollama_dir, cwd),
        lmstudio_dir=pinned.lmstudio_dir,
        cache_dir=pinned.hf_cache,
        hf_endpoint=pinned.hf_endpoint,
        context=request.context_length,
    )
    return {k: v for k, v in body.items() if v is not None}


_API_FLAGS = (
    "sha256", "output", "to", "mirror", "no_mirror", "include", "exclude", "local_dir",
    "connections", "force", "verify_existing", "insecure", "window", "limit", "revision",
    "ignore_fit", "memory",
)  # fmt: skip


def memory_size(text: str | None) -> int | None:
    """``--memory``: a size above 0, in bytes (None: not given)."""
    if text is None:
        return None
    size = parse_size(text, what="--memory")
    if size <= 0:
        raise UsageError("--memory must be above 0", hint="e.g. --memory 16GiB")
    return size


def _absolute(path: str | None, cwd: str) -> str | None:
    """Paths go into job rows the daemon reads from another directory: make them absolute."""
    if path is None:
        return None
    full = str(Path(cwd, Path(path).expanduser()))
    return full + "/" if path.endswith("/") and not full.endswith("/") else full
