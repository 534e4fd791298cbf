"""The one exception tree of pullman.

Every error carries three things a user needs: *what* happened, *why* (when known), and a *hint*
saying what to do about it. The CLI maps each family to an exit code in one place
(:func:`exit_code_for`), and nowhere else decides an exit code.

::

    PullmanError                      exit 1  something failed
    ├── UsageError                    exit 2  bad flags, bad ref, bad config
    │   ├── RefError                  exit 2  a ref that cannot be parsed
    │   └── BadModelFile              exit 2  a local model file that is not what it must be
    ├── RemoteError                   exit 1  the server side
    │   ├── NotFound                  exit 3  404 / 410: the thing is not there
    │   ├── AccessDenied              exit 6  401 / 403 from the origin: auth or permission
    │   ├── RemoteChanged             exit 1  the remote file changed while we were fetching it
    │   ├── TLSFailure                exit 1  certificate or handshake failure (never retried)
    │   └── TransientError            exit 1  worth retrying
    │       ├── NetworkError                  DNS, refused, reset, truncated body, timeouts
    │       │   └── Unreachable               no connection at all (DNS, refused, proxy down)
    │       ├── ServerError                   5xx
    │       ├── RateLimited                   429 (carries retry_after)
    │       ├── ProtocolViolation             the server broke HTTP rules (wrong Content-Range)
    │       └── LinkExpired                   a signed CDN URL stopped working (re-resolve it)
    ├── IntegrityError                exit 4  bytes did not match the expected digest or size
    ├── StorageError                  exit 5  the local disk said no
    │   ├── DiskFull                          carries the bytes needed and free
    │   └── NotWritable                       permission denied / read-only destination
    ├── Unsupported                   exit 7  a newer pullman made it (a later bundle format)
    ├── JobConflict                   exit 1  a job is not in a state it can move from (a race)
    ├── NoDaemon                      exit 8  no daemon runs, or it has no TCP listener (web)
    ├── InternalError                 exit 70 a bug in pullman (EX_SOFTWARE): never retried
    └── Interrupted                   exit 75 stopped early on purpose (signal, deadline); resumable

Third-party exceptions are translated into this tree in exactly one place per adapter:
:mod:`pullman.net.errors` for the HTTP clients (and huggingface_hub's status errors),
:mod:`pullman.fsio` for ``OSError``, :mod:`pullman.index` for SQLite, always with
``raise ... from`` so the original stays attached for debugging. An exception that is not in
this tree is a bug: the CLI exits 70 for it, so a retry loop in cron never spins on one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTEGRITY = 4
EXIT_STORAGE = 5
EXIT_ACCESS = 6
EXIT_UNSUPPORTED = 7  # a newer pullman wrote it (a bundle format): upgrade this one
EXIT_NO_DAEMON = 8  # `pullman web`: no daemon, or one without --listen
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an internal error (a bug); retrying will not help
EXIT_INTERRUPTED = 75  # EX_TEMPFAIL: stopped early, run the same command again to resume


class PullmanError(Exception):
    """Base of every error pullman raises on purpose."""

    exit_code = EXIT_FAILED

    def __init__(self, what: str, *, why: str | None = None, hint: str | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.why = why
        self.hint = hint

    def __str__(self) -> str:
        return self.what

    def with_code(self, code: int) -> PullmanError:
        """The same error, exiting with ``code`` (for errors read back from a job row)."""
        self.exit_code = code
        return self

    def explain(self) -> str:
        """The full, multi-line message shown to users: what, why, and what to do."""
        lines = [self.what]
        if self.why:
            lines.append(f"  why: {self.why}")
        if self.hint:
            lines.append(f"  fix: {self.hint}")
        return "\n".join(lines)


class UsageError(PullmanError):
    """Bad flags, values or configuration."""

    exit_code = EXIT_USAGE


class RefError(UsageError):
    """A ref (URL, model name, repo) that cannot be parsed."""


class BadModelFile(UsageError):
    """A local file given as a model that cannot be one: not GGUF, a header cut short, tensor
    data past the end of the file, or a GGUF of a kind that is not a model by itself."""


class RemoteError(PullmanError):
    """The remote side failed or refused."""


class NotFound(RemoteError):
    exit_code = EXIT_NOT_FOUND


class AccessDenied(RemoteError):
    exit_code = EXIT_ACCESS


class RemoteChanged(RemoteError):
    """The remote file changed (size or validator) while we were downloading it."""


class TLSFailure(RemoteError):
    """Certificate verification or handshake failed. Never retried."""


class TransientError(RemoteError):
    """A failure that may heal by itself: retried with backoff."""

    def __init__(
        self,
        what: str,
        *,
        why: str | None = None,
        hint: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(what, why=why, hint=hint)
        self.retry_after = retry_after


class NetworkError(TransientError):
    """DNS failure, refused or reset connection, truncated body, timeout."""


class Unreachable(NetworkError):
    """Not even a connection: the name did not resolve, nothing listens, the proxy is down.

    A host never reached in this run gets only a couple of quick retries in the foreground (a
    typo or no network should not take a minute to report); the daemon waits for the network.
    """

    def __init__(
        self, what: str, *, url: str, why: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(what, why=why, hint=hint)
        self.url = url


class ServerError(TransientError):
    """A 5xx answer."""


class RateLimited(TransientError):
    """A 429 answer; ``retry_after`` says how long the server asked us to wait."""


class ProtocolViolation(TransientError):
    """The server answered something HTTP does not allow for our request; never used, retried."""


class LinkExpired(TransientError):
    """A signed CDN URL stopped working; the source must resolve a fresh one."""


class IntegrityError(PullmanError):
    exit_code = EXIT_INTEGRITY


class StorageError(PullmanError):
    exit_code = EXIT_STORAGE


class DiskFull(StorageError):
    def __init__(
        self, what: str, *, needed: int, free: int, why: str | None = None, hint: str | None = None
    ) -> None:
        super().__init__(what, why=why, hint=hint)
        self.needed = needed
        self.free = free


class NotWritable(StorageError):
    """Permission denied or a read-only destination."""


class Unsupported(PullmanError):
    """Something a newer pullman wrote (a bundle of a later format): this one cannot read it."""

    exit_code = EXIT_UNSUPPORTED


class JobConflict(PullmanError, ValueError):
    """A job was not in a state it may move from: another process changed it first.

    Also a ``ValueError``: asking for a move the job model never allows is a bad value.
    """

    def __init__(self, job_id: int, current: str, wanted: str) -> None:
        super().__init__(
            f"job {job_id} cannot go from {current} to {wanted}",
            why="another command changed it first" if current != wanted else None,
            hint="`pullman status` shows its state now",
        )
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class NoDaemon(PullmanError):
    """What needs a running daemon (its dashboard) found none, or one without a TCP listener."""

    exit_code = EXIT_NO_DAEMON


class InternalError(PullmanError):
    """A bug: an exception pullman did not expect. Never retried."""

    exit_code = EXIT_SOFTWARE


class Interrupted(PullmanError):
    """Stopped early on purpose (signal, deadline). Progress is kept; rerun to resume."""

    exit_code = EXIT_INTERRUPTED


def exit_code_for(error: BaseException) -> int:
    """The process exit code for an error; an exception outside the tree is a bug (70)."""
    if isinstance(error, PullmanError):
        return error.exit_code
    return EXIT_SOFTWARE


EXIT_CODES: dict[int, str] = {
    EXIT_OK: "done: every file is verified and in place",
    EXIT_FAILED: "failed: network or server kept failing (progress is kept; rerun to resume)",
    EXIT_USAGE: "bad usage: a flag, value, ref or config entry is wrong",
    EXIT_NOT_FOUND: "not found: the server says the file, model or tag does not exist",
    EXIT_INTEGRITY: "verification failed: the data did not match its digest, twice",
    EXIT_STORAGE: "local storage: disk full, or the destination is not writable (progress kept)",
    EXIT_ACCESS: "access denied: the server wants credentials or refuses them",
    EXIT_UNSUPPORTED: "unsupported: a newer pullman made this bundle; upgrade pullman here",
    EXIT_NO_DAEMON: "no daemon: none runs, or it serves no dashboard (pullman daemon --listen)",
    EXIT_SOFTWARE: "internal error: a bug in pullman (rerun with --debug and report it)",
    EXIT_INTERRUPTED: "stopped early (Ctrl-C, SIGTERM or --until); rerun the command to resume",
}


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """Every non-group exception inside ``group``, depth first."""
    out: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            out.extend(leaves(exc))
        else:
            out.append(exc)
    return out


def most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one error of a task group worth showing: ours first, the non-transient ones first."""
    found = leaves(group)
    ours = [e for e in found if isinstance(e, PullmanError)]
    lasting = [e for e in ours if not isinstance(e, TransientError)]
    for pick in (lasting, ours, found):
        if pick:
            return pick[0]
    return group


@contextlib.contextmanager
def collapse_groups() -> Iterator[None]:
    """Re-raise the most telling error of an exception group raised by a task group."""
    try:
        yield
    except BaseExceptionGroup as group:
        raise most_telling(group) from None
