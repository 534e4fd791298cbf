"""Pull-through (``pullman serve --pull-through``): what the store lacks is fetched once, through
the engine, and streamed to every client that asks while its bytes land.

A request for a model the store does not have starts a job for it, or joins the one running:
one job per model in this process, however many clients ask (a dict of jobs in flight, each
owned by the task group of :meth:`PullThrough.run`, which lives as long as the server). The job
is an ordinary ``get`` run by the :class:`~pullman.scheduler.Scheduler` (recorded in the index,
verified, committed into this box's store); its session tells :attr:`PullThrough.landings` of
the plan (the manifest can be answered at once) and of every byte written, and a client's range
is answered from a :class:`~pullman.transfer.landing.Landing` as soon as it is on disk. The
clients verify digests themselves (Ollama, huggingface_hub and registries all do).

A job that fails fails the requests waiting on it (its error; the server answers an error
status, or ends a response early); the next request for the model starts it again, and it
resumes from what is on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field

import anyio
import anyio.abc

from pullman.config import Settings
from pullman.core.jobs import GetOptions, JobOptions
from pullman.core.oci_names import split_name
from pullman.core.plan import Plan, WriteFile
from pullman.core.refs import DEFAULT_HOST, HfRef, valid_part
from pullman.core.urls import shown_ref
from pullman.errors import InternalError, NetworkError, NotFound, PullmanError
from pullman.index import Index
from pullman.jobqueue import take_job
from pullman.scheduler import Scheduler
from pullman.session import Session
from pullman.transfer.landing import Landing, Landings

log = logging.getLogger("pullman.serve")
_PARTS = ("namespace", "model", "tag")


@dataclass(frozen=True)
class Fetched:
    """An Ollama manifest fetched for a pull-through: its exact bytes, and their digest."""

    raw: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.raw).hexdigest()


@dataclass
class _Job:
    """One model being fetched, and the requests waiting for its plan."""

    text: str
    name: str
    """The repository it is served as (``library/tiny``)."""
    planned: anyio.Event = field(default_factory=anyio.Event)
    ended: anyio.Event = field(default_factory=anyio.Event)
    plan: Plan | None = None
    error: PullmanError | None = None


class PullThrough:
    """Start-or-join downloads for a serving process, and the landings of their files.

    ``registry``: the Ollama registry whose models are served under plain names (``--registry``;
    the default registry otherwise); ``options``: the stores and flags every job uses
    (``--ollama-dir``, ``--hf-cache``, ``--insecure``).
    """

    def __init__(
        self,
        settings: Settings,
        index: Index,
        *,
        options: GetOptions | None = None,
        registry: str | None = None,
        token: str | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.options = options or GetOptions()
        self.registry = registry or DEFAULT_HOST
        self.landings = Landings(on_plan=self._on_plan)
        self.started = 0
        """Jobs started so far (each one download of a model, however many asked)."""
        self._token = token
        self._jobs: dict[str, _Job] = {}
        self._owners: dict[str, dict[str, str]] = {}
        """Which models a file belongs to (its landing key to repository names, each to its
        job's ref): blobs are scoped to their repository, and a request for a file whose job
        failed starts that job again."""
        self._manifests: dict[str, Fetched] = {}
        self._repos: dict[tuple[str, str, str], Plan] = {}
        """Hub repos fetched here, by kind, repo id and revision (also by commit)."""
        self._metadata: dict[tuple[str, str, str], Plan] = {}
        self._metadata_locks: dict[tuple[str, str, str], anyio.Lock] = {}
        self._tg: anyio.abc.TaskGroup | None = None

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Own every job until cancelled (the server stops): jobs then pause, resumable."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            task_status.started()
            try:
                await anyio.sleep_forever()
            finally:
                self._tg = None

    def jobs(self) -> list[str]:
        """The refs being fetched right now."""
        return list(self._jobs)

    # ------------------------------------------------------------------ Ollama

    def ollama_ref(self, name: str, tag: str) -> str | None:
        """The ref a plain name (``library/tiny``, or ``tiny``) and tag mean on the upstream
        registry; None for a name that is not an Ollama model's (deeper than two parts)."""
        split = split_name(name)
        if split is None or not all(
            valid_part(k, p) for k, p in zip(_PARTS, (*split, tag), strict=True)
        ):
            return None
        namespace, model = split
        return f"{self.registry}/{namespace}/{model}:{tag}"

    async def ollama_manifest(self, name: str, reference: str) -> Fetched:
        """The manifest of ``name:reference`` from upstream; its model is being fetched.

        ``reference`` is a tag, or the digest of a manifest some job here fetched. Raises the
        upstream's error (a :class:`~pullman.errors.NotFound`, say) when there is none.
        """
        if reference.startswith("sha256:"):
            known = self._manifests.get(reference)
            if known is None:
                raise _unknown_manifest(name, reference)
            return known
        text = self.ollama_ref(name, reference)
        if text is None:
            raise _unknown_manifest(name, reference)
        job = await self.start_or_join(text, canonical(name))
        await job.planned.wait()
        if job.plan is None:
            assert job.error is not None
            raise job.error
        return self._remember(job.plan)

    def _remember(self, plan: Plan) -> Fetched:
        raw = next(
            f.data
            for f in plan.finals
            if isinstance(f, WriteFile) and plan.location and f.path == plan.location[1]
        )
        fetched = Fetched(raw, _media_type(raw))
        self._manifests[fetched.digest] = fetched
        return fetched

    async def file(self, key: str, name: str) -> Landing | None:
        """The landing of a file of ``name`` some job here fetches or fetched (``key``:
        ``sha256:<hex>`` for a blob); one whose job failed is asked for again. None: no job
        of ``name`` knows it."""
        landing = self.landings.get(key)
        owner = self._owners.get(key, {}).get(canonical(name))
        if landing is None or owner is None:
            return None
        if landing.state == "failed":
            failing = self._jobs.get(owner)
            if failing is not None and failing.planned.is_set():
                await failing.ended.wait()  # the job that failed it is still winding down
            job = await self.start_or_join(owner, name)
            await job.planned.wait()
        return landing

    # ------------------------------------------------------------------ Hugging Face

    def hf_known(self, kind: str, repo_id: str, revision: str) -> Plan | None:
        """The plan of a repo some job here fetches or fetched, at ``revision`` (or its commit)."""
        return self._repos.get((kind, repo_id, revision))

    async def hf_metadata(self, kind: str, repo_id: str, revision: str) -> Plan:
        """What the Hub says of ``repo_id`` at ``revision`` (files, commit, access), without
        fetching anything: a dry-run plan, asked once per server."""
        key = (kind, repo_id, revision)
        async with self._metadata_locks.setdefault(key, anyio.Lock()):  # asked once at a time
            known = self.hf_known(kind, repo_id, revision) or self._metadata.get(key)
            if known is not None:
                return known
            ref = HfRef(repo_id, repo_type=kind, revision=revision, revision_given=True)
            session = Session(self.settings, token=self._token)
            plan = await session.plan(str(ref), self.options, dry_run=True)
            self._metadata[key] = plan
            return plan

    def hf_any(self, kind: str, repo_id: str) -> Plan | None:
        """A plan of ``repo_id`` at any revision some job here fetches or fetched."""
        return next((p for (k, r, _), p in self._repos.items() if (k, r) == (kind, repo_id)), None)

    async def hf_repo(self, kind: str, repo_id: str, revision: str) -> Plan:
        """The plan of ``repo_id`` at ``revision`` from the upstream Hub (its files, sizes,
        digests and commit); the repo is being fetched. Raises the Hub's error (a
        :class:`~pullman.errors.NotFound`, say) when there is none."""
        known = self.hf_known(kind, repo_id, revision)
        if known is not None:
            return known
        ref = HfRef(repo_id, repo_type=kind, revision=revision, revision_given=True)
        job = await self.start_or_join(str(ref), hub_name(kind, repo_id))
        await job.planned.wait()
        if job.plan is None:
            assert job.error is not None
            raise job.error
        plan = job.plan
        self._repos[(kind, repo_id, revision)] = plan
        if plan.location is not None:  # the snapshot directory is named by the commit
            self._repos[(kind, repo_id, plan.location[1].name)] = plan
        return plan

    # ------------------------------------------------------------------ jobs

    async def start_or_join(self, text: str, name: str) -> _Job:
        """The job fetching ``text`` (served as ``name``): the one in flight, else a new one
        (never two: nothing awaits between the look-up and the insert, so no other request
        runs in between; the event loop is the lock)."""
        job = self._jobs.get(text)
        if job is not None:
            return job
        if self._tg is None:
            raise InternalError("the pull-through is not running")
        job = self._jobs[text] = _Job(text, name)
        self.started += 1
        log.info("pull-through: fetching %s", shown_ref(text))
        self._tg.start_soon(self._run, job)
        return job

    def _on_plan(self, text: str, plan: Plan) -> None:
        job = self._jobs.get(text)
        if job is None:
            return
        for spec in plan.files:
            self._owners.setdefault(self.landings.landing_for(spec).key, {})[job.name] = text
        job.plan = plan
        job.planned.set()

    async def _run(self, job: _Job) -> None:
        try:
            job.error = await self._fetch(job.text)
        except Exception as exc:  # a bug: fail this job's requests, keep the server
            log.exception("pull-through %s: internal error", shown_ref(job.text))
            job.error = InternalError(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self._jobs.pop(job.text, None)
            if job.plan is None and job.error is None:
                job.error = NetworkError(f"{shown_ref(job.text)}: the download stopped")
            job.planned.set()
            job.ended.set()
        if job.error is not None:
            log.warning("pull-through %s: %s", shown_ref(job.text), job.error.what)

    async def _fetch(self, text: str) -> PullmanError | None:
        """One ``get`` of ``text`` through the scheduler (so the index records it); its error."""
        request = JobOptions(get=self.options, window="always", foreground=os.getpid())
        job_id = await anyio.to_thread.run_sync(take_job, self.index, text, request, 0)
        scheduler = Scheduler(
            self.settings,
            self.index,
            on_stop=("paused", "the server stopped; it resumes when asked again"),
            wait_for_disk=False,
            token=self._token,
            landings=self.landings,
        )
        results = await scheduler.run(only=[job_id])
        result = results.get(job_id)
        if result is None:
            return NetworkError(f"{shown_ref(text)}: the download did not run")
        return result.error


def canonical(name: str) -> str:
    """An OCI repository name as its jobs know it (``tiny`` is ``library/tiny``)."""
    split = split_name(name)
    return "/".join(split) if split is not None else name


def hub_name(kind: str, repo_id: str) -> str:
    """What files of a Hub repo are scoped to (as blobs are to their OCI repository)."""
    return f"{kind}s/{repo_id}"


def _media_type(raw: bytes) -> str:
    try:
        doc = json.loads(raw)
        kind = doc.get("mediaType") if isinstance(doc, dict) else None
    except ValueError:
        kind = None
    return kind if isinstance(kind, str) else "application/vnd.docker.distribution.manifest.v2+json"


def _unknown_manifest(name: str, reference: str) -> PullmanError:
    return NotFound(
        f"no manifest {reference} for {name}",
        why="not an Ollama model's name, or a digest no manifest fetched here has",
        hint="ask for the model by its tag",
    )
