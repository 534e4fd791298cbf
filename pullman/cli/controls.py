"""Where the CLI's controls go: the daemon's API when a daemon runs, else the index itself.

Both are views of the same rules (:mod:`pullman.jobcontrol`): the daemon applies them behind
its API; without a daemon the CLI applies them to the index and wakes a daemon that may start
later. A daemon that does not answer on its socket (an older one, or one still starting) is
treated as no API: the index path works whatever runs.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from pullman.config import Paths
from pullman.core.jobs import Job
from pullman.daemon import daemon_pid, poke
from pullman.errors import JobConflict
from pullman.index import Index
from pullman.jobcontrol import Action, Limit, apply, current_limit, set_limit, set_priority
from pullman.net.daemon_client import Answer, DaemonUnreachable, call, checked, error_of

log = logging.getLogger("pullman.cli")
_JOB_FIELDS = frozenset(f.name for f in dataclasses.fields(Job))


def job_from_json(doc: Mapping[str, Any]) -> Job:
    """A job as the API sends it (its extra fields, ``progress`` and ``eta``, left out)."""
    return Job(**{k: v for k, v in doc.items() if k in _JOB_FIELDS})


class Controls(Protocol):
    def jobs(self) -> list[Job]: ...
    def apply(self, job_id: int, action: Action) -> Job: ...
    def set_priority(self, job_id: int, priority: int) -> Job: ...
    def set_limit(self, text: str) -> Limit: ...


class IndexControls:
    """No daemon API: the rules applied to the index here; a daemon is woken to see them."""

    def __init__(self, index: Index, paths: Paths) -> None:
        self.index = index
        self.paths = paths

    def jobs(self) -> list[Job]:
        return self.index.jobs()

    def apply(self, job_id: int, action: Action) -> Job:
        try:
            return apply(self.index, job_id, action)
        finally:
            poke(self.paths)

    def set_priority(self, job_id: int, priority: int) -> Job:
        job = set_priority(self.index, job_id, priority)
        poke(self.paths)
        return job

    def set_limit(self, text: str) -> Limit:
        limit = set_limit(self.index, text)
        poke(self.paths)
        return limit

    def limit(self, default: str) -> Limit:
        return current_limit(self.index, default)


class ApiControls:
    """The running daemon's API, over its Unix socket."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Answer:
        return call(self.socket, method, path, body)

    def jobs(self) -> list[Job]:
        doc = checked(self._call("GET", "/api/jobs"))
        return [job_from_json(j) for j in doc["jobs"]]

    def apply(self, job_id: int, action: Action) -> Job:
        answer = self._call("POST", f"/api/jobs/{job_id}/{action}")
        if answer.status == 409:
            error = answer.doc.get("error") or {}
            raise JobConflict(job_id, str(error.get("current", "changed")), action)
        return job_from_json(checked(answer)["job"])

    def set_priority(self, job_id: int, priority: int) -> Job:
        answer = self._call("PUT", f"/api/jobs/{job_id}/priority", {"priority": priority})
        return job_from_json(checked(answer)["job"])

    def set_limit(self, text: str) -> Limit:
        doc = checked(self._call("PUT", "/api/limit", {"limit": text}))
        return Limit(doc["limit"], doc["shown"])


def daemon_socket(paths: Paths) -> Path | None:
    """The running daemon's API socket, if a daemon runs and answers on it."""
    if daemon_pid(paths) is None or not paths.api_socket.is_socket():
        return None
    try:
        answer = call(paths.api_socket, "GET", "/api/health", timeout=5)
    except DaemonUnreachable:
        return None
    if not answer.ok:
        raise error_of(answer)
    return paths.api_socket


def controls(index: Callable[[], Index], paths: Paths) -> Controls:
    """The daemon's API if one answers, else the index (``index()`` opens it only then)."""
    socket = daemon_socket(paths)
    if socket is not None:
        log.info("via the daemon's API on %s", socket)
        return ApiControls(socket)
    return IndexControls(index(), paths)
