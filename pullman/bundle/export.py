"""Writing a bundle: the header, the checksum list, then every file, streamed as a plain tar.

Memory stays constant whatever the size: each blob is copied in 1 MiB reads, and hashed as it
is read, so a blob that rotted in the store (or changed while it was read) fails the export
rather than shipping. A bundle written to a file goes to a temp name beside it, synced and
renamed at the end: the final name never holds half a bundle. On stdout it streams (a pipe to
``pullman import -``); a failure there leaves the reader a truncated bundle, which it refuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pullman.bundle.contents import Contents, Piece
from pullman.bundle.format import HEADER, SUMS, sums
from pullman.bundle.tarread import Progress
from pullman.errors import IntegrityError, PullmanError, UsageError
from pullman.fsio import FS, NOFOLLOW, disk_errors, fsync_dir, storage_error, temp_name

CHUNK = 1 << 20


@dataclass(frozen=True)
class Exported:
    """What an export wrote."""

    path: str
    """The bundle's path, or ``-`` for stdout."""
    models: tuple[str, ...]
    files: int
    size: int
    """Bytes of the files carried (the tar adds its headers and padding)."""

    def to_json(self) -> dict[str, object]:
        return {
            "bundle": self.path,
            "models": list(self.models),
            "files": self.files,
            "size": self.size,
        }


class Sink:
    """Where the tar goes; errors from it are about the bundle, not the store."""

    def __init__(
        self, out: BinaryIO, name: str, progress: Progress | None = None, total: int = 0
    ) -> None:
        self.out = out
        self.name = name
        self.progress = progress
        self.total = total
        self.done = 0

    def write(self, data: bytes) -> int:
        self.done += len(data)
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)
        try:
            return self.out.write(data)
        except BrokenPipeError:
            raise PullmanError(
                "the reader of the bundle went away before it ended",
                hint="the other side of the pipe failed; its error says why",
            ) from None
        except OSError as exc:
            raise storage_error(exc, Path(self.name)) from exc

    def flush(self) -> None:
        self.out.flush()


class _HashingReader:
    """A store file read for the tar: hashed as it goes, refused if it ends early."""

    def __init__(self, f: BinaryIO, piece: Piece) -> None:
        self.f = f
        self.piece = piece
        self.left = piece.file.size
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        want = self.left if n < 0 else min(n, self.left)
        with disk_errors(self.f_path):
            data = self.f.read(want)
        if want and not data:
            raise IntegrityError(
                f"{self.f_path} shrank while it was exported",
                hint="something changed the store; export again",
            )
        self.left -= len(data)
        self.hash.update(data)
        return data

    @property
    def f_path(self) -> Path:
        assert self.piece.source is not None
        return self.piece.source


def _info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uname = info.gname = ""
    return info


def _add_blob(tar: tarfile.TarFile, piece: Piece, mtime: int) -> None:
    assert piece.source is not None
    with disk_errors(piece.source), piece.source.open("rb") as f:
        reader = _HashingReader(f, piece)
        tar.addfile(_info(piece.file.member, piece.file.size, mtime), reader)
    if reader.hash.hexdigest() != piece.file.sha256:
        raise IntegrityError(
            f"{piece.source} does not match its digest: the store's copy is corrupt",
            why=f"it hashes to {reader.hash.hexdigest()}, not {piece.file.sha256}",
            hint="`pullman verify --repair` fetches it again; then export again",
        )


def export(
    contents: Contents, output: str, stdout: BinaryIO, progress: Progress | None = None
) -> Exported:
    """Write the bundle to the file ``output``, or to ``stdout`` when it is ``-``."""
    header = contents.header
    if output == "-":
        write_bundle(contents, Sink(stdout, "standard output", progress, header.total_size))
    else:
        path = Path(output).absolute()
        with bundle_file(path) as f:
            write_bundle(contents, Sink(f, str(path), progress, header.total_size))
        output = str(path)
    names = tuple(m.name for m in header.models)
    return Exported(output, names, len(header.files), header.total_size)


def write_bundle(contents: Contents, out: Sink) -> None:
    """The whole bundle, streamed to ``out``."""
    header = contents.header.encode()
    checksums = sums(header, contents.header.files)
    mtime = int(time.time())
    with tarfile.open(
        fileobj=out,  # type: ignore[call-overload]  # stream mode (w|) only writes
        mode="w|",
        format=tarfile.PAX_FORMAT,
        bufsize=CHUNK,
    ) as tar:
        tar.copybufsize = CHUNK
        for name, data in ((HEADER, header), (SUMS, checksums)):
            tar.addfile(_info(name, len(data), mtime), io.BytesIO(data))
        for piece in contents.pieces:
            if piece.data is not None:
                info = _info(piece.file.member, len(piece.data), mtime)
                tar.addfile(info, io.BytesIO(piece.data))
            else:
                _add_blob(tar, piece, mtime)


@contextlib.contextmanager
def bundle_file(path: Path) -> Iterator[BinaryIO]:
    """A temp file beside ``path``, renamed to it once the body succeeded (removed if not)."""
    if path.is_dir():
        raise UsageError(f"{path} is a directory", hint="give -o a file name, e.g. models.tar")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent} does not exist", hint="create it, or choose another -o")
    tmp = temp_name(path)
    with disk_errors(path):
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
    f = os.fdopen(fd, "wb", buffering=CHUNK)
    try:
        yield f
        with disk_errors(path):
            f.flush()
            FS.sync(f.fileno())
            f.close()
            tmp.replace(path)
            fsync_dir(path.parent)
    finally:
        f.close()
        tmp.unlink(missing_ok=True)
