"""Reading a bundle: one member after another, from a file or a pipe, trusting nothing.

The tar is read as a stream (``tarfile`` mode ``r|``: no seeking, so stdin works, and nothing
is ever extracted by ``tarfile``): each member must be the one the header announced next, a
regular file of the announced size; links, devices, directories, sparse files and any member
the header did not announce are refused. A stream that ends early is a truncated bundle.
"""

from __future__ import annotations

import io
import os
import select
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from pullman.bundle.format import bad, check_path
from pullman.errors import IntegrityError
from pullman.fsio import disk_errors

CHUNK = 1 << 20
Progress = Callable[[int, int], None]
"""Told ``(bytes so far, bytes in all)`` as a bundle's files stream (a progress line)."""


class Polled(io.RawIOBase):
    """A pipe read so that Ctrl-C and SIGTERM always get through: a blocking ``read`` that
    starts just after a signal arrived would wait for the writer (Python runs its handler
    only between calls, and only an interrupted read calls it), so each read waits in
    ``select`` for at most a quarter second first."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not select.select([self.fd], [], [], 0.25)[0]:
            pass  # the signal handlers run here, between two selects
        return os.readv(self.fd, [buffer])


def polled(stream: BinaryIO) -> BinaryIO:
    """``stream``, read through :class:`Polled` when it is a pipe (stdin); a file as it is."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
        pipe = stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return stream
    return io.BufferedReader(Polled(fd), CHUNK) if pipe else stream


def _truncated(name: str, detail: str) -> IntegrityError:
    return bad(f"the bundle is truncated or damaged: {detail}", why=f"reading {name}")


class BundleReader:
    """The members of the bundle read from ``stream`` (``name`` is what errors call it)."""

    def __init__(self, stream: BinaryIO, name: str, progress: Progress | None = None) -> None:
        self.name = name
        self.progress = progress
        self.done = 0
        self.total = 0
        """The size of the bundle's files, once its header said."""
        with disk_errors(Path(name)):
            try:
                # The reader owns the tar for its whole life (``close``).
                self.tar = tarfile.open(fileobj=polled(stream), mode="r|", bufsize=CHUNK)  # noqa: SIM115
            except tarfile.TarError as exc:
                raise bad(
                    f"{name} is not a pullman bundle",
                    why=f"it is not a plain tar archive ({exc})",
                ) from None

    def close(self) -> None:
        self.tar.close()

    def _next(self) -> tarfile.TarInfo | None:
        with disk_errors(Path(self.name)):
            try:
                return self.tar.next()
            except tarfile.TarError as exc:
                raise _truncated(self.name, str(exc)) from None

    def member(self, expected: str, size: int | None, limit: int | None = None) -> tarfile.TarInfo:
        """The next member, which must be the regular file ``expected`` of ``size`` bytes."""
        member = self._next()
        if member is None:
            raise _truncated(self.name, f"it ends before {expected}")
        if not member.isreg() or member.issparse():
            raise bad(
                f"refusing the bundle: {member.name[:160]!r} is not a regular file",
                why="a bundle holds regular files only (no links, devices or directories)",
            )
        check_path(member.name)
        if member.name != expected:
            raise bad(
                f"refusing the bundle: it holds {member.name[:160]!r} where {expected} belongs",
                why="its members are not the ones its header lists, in that order",
            )
        if (size is not None and member.size != size) or (limit and member.size > limit):
            raise bad(
                f"refusing the bundle: {expected} is {member.size} bytes",
                why=f"its header says {size}" if size is not None else "too large for its kind",
            )
        return member

    def chunks(self, member: tarfile.TarInfo) -> Iterator[bytes]:
        """The member's data, in pieces of at most 1 MiB."""
        f = self.tar.extractfile(member)
        assert f is not None  # a regular file
        left = member.size
        while left:
            with disk_errors(Path(self.name)):
                try:
                    data = f.read(min(CHUNK, left))
                except tarfile.TarError as exc:
                    raise _truncated(self.name, f"{member.name} ends early ({exc})") from None
            if not data:
                raise _truncated(self.name, f"{member.name} ends early")
            left -= len(data)
            self.done += len(data)
            if self.progress is not None:
                self.progress(self.done, self.total)
            yield data

    def read(self, member: tarfile.TarInfo) -> bytes:
        return b"".join(self.chunks(member))

    def end(self) -> None:
        """The bundle must end here: anything more is a member no header announced."""
        extra = self._next()
        if extra is not None:
            raise bad(
                f"refusing the bundle: it holds {extra.name[:160]!r}, which its header does "
                "not list",
                why="a bundle holds exactly the files its header lists",
            )
