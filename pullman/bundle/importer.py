"""Importing a bundle: verify everything, then commit, or leave the stores as they were.

1. The header (:func:`~pullman.bundle.format.parse_header`) and ``SHA256SUMS`` (which must be
   exactly what the header implies) are read and checked; a newer format is refused.
2. Each model is planned by its store's layout (:mod:`~pullman.bundle.targets`); the stores
   must be writable, the plans inside them, every blob either in the bundle or already in the
   store, and the disk must have room for what is missing.
3. The members stream through: each blob is hashed as it is copied into this import's own
   directory in the store's staging area (:mod:`~pullman.bundle.workspace`), and checked
   against its size, its sha256 and the digest that names it; blobs the store already has are
   hashed and not written. Manifests and refs arrive last and are checked too: an Ollama
   manifest must name exactly the blobs the header lists for its model.
4. Only then, model by model: blobs renamed into place, then the plan's finals in order
   (manifest; snapshot links, then the ref), so a reader never sees half a model; then what was
   made is given to the store's owner (:func:`~pullman.fsio.adopt`).

Whatever fails before the commit, the staging files this import made (and the directories it
had to create) are removed, and no store has changed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pullman.bundle.format import (
    HEADER,
    MAX_HEADER,
    MAX_SMALL,
    SUMS,
    BundleFile,
    Header,
    OllamaEntry,
    bad,
    blob_digest_name,
    parse_header,
    sums,
)
from pullman.bundle.targets import Key, Target, bundle_files, landing, targets, with_manifest
from pullman.bundle.tarread import BundleReader, Progress
from pullman.bundle.workspace import Workspace
from pullman.core.digests import SHA1_HEX, Digest, Hasher
from pullman.core.jobs import GetOptions
from pullman.core.ollama_manifest import BadManifest, parse_manifest
from pullman.core.units import human
from pullman.errors import DiskFull, NotWritable, StorageError
from pullman.fsio import FS, NOFOLLOW, adopt, disk_errors, free_space
from pullman.layouts import layout_for
from pullman.layouts.common import apply_finals, check_plan, made_paths, move_into_place, vanished
from pullman.session import FileReport, PlanReport

log = logging.getLogger("pullman.bundle")


@dataclass
class Staged:
    """What the stream left, verified: blobs in temp files (by destination), small files."""

    temps: dict[Path, Path] = field(default_factory=dict)
    small: dict[Key, bytes] = field(default_factory=dict)


def import_bundle(
    stream: BinaryIO,
    name: str,
    options: GetOptions,
    *,
    margin: int = 0,
    progress: Progress | None = None,
) -> list[PlanReport]:
    """Import the bundle read from ``stream`` into the stores ``options`` choose."""
    reader = BundleReader(stream, name, progress)
    try:
        header = read_header(reader)
        reader.done, reader.total = 0, header.total_size
        planned = targets(header, options)
        workspace = Workspace()
        failed = True
        try:
            prepare(planned, header, workspace, margin)
            staged = stage(reader, header, planned, workspace)
            reader.end()
            reports = commit(verified(planned, staged), staged)
            failed = False
        finally:
            workspace.close(failed=failed)
    finally:
        reader.close()
    return reports


def read_header(reader: BundleReader) -> Header:
    """The header, and the checksum list that must be exactly what it implies."""
    raw = reader.read(reader.member(HEADER, None, MAX_HEADER))
    header = parse_header(raw)
    expected = sums(raw, header.files)
    if reader.read(reader.member(SUMS, len(expected))) != expected:
        raise bad(f"the bundle's {SUMS} does not match its header")
    return header


# ---------------------------------------------------------------------------- before a byte


def prepare(planned: list[Target], header: Header, workspace: Workspace, margin: int) -> None:
    """Stores writable, plans inside them, every blob at hand, room for the missing ones."""
    for target in planned:
        workspace.claim(target.plan.root, target.plan.staging)
    for target in {t.plan.root: t for t in planned}.values():
        _check_writable(target)
    files = bundle_files(header)
    for target in planned:
        check_plan(target.plan)
        for key in target.needs():
            if key not in files:
                raise bad(
                    f"the bundle lacks {key[0].value}/{key[1]} for {target.entry.name}",
                    why="the store does not have it either",
                )
    _check_space(planned, files, margin)


def _check_writable(target: Target) -> None:
    root = target.plan.root
    try:
        layout_for(target.plan.store).check_writable(root)
    except NotWritable as exc:
        raise NotWritable(
            f"cannot import into {root}",
            why=exc.why,
            hint="run the import as the store's owner, or with sudo (files are given to the "
            "owner); or choose the store with --ollama-dir / --cache-dir",
        ) from None


def _check_space(planned: list[Target], files: dict[Key, BundleFile], margin: int) -> None:
    needed: dict[Path, int] = {}
    for key, places in wanted(planned).items():
        for target in places.values():
            root = target.plan.root
            needed[root] = needed.get(root, 0) + files[key].size
    for root, size in needed.items():
        free = free_space(root)
        if size and free < size + margin:
            raise DiskFull(
                f"not enough free space in {root} for this bundle",
                needed=size + margin,
                free=free,
                why=f"{human(size + margin)} is needed, {human(free)} is free",
                hint="free some space and import again; nothing was imported",
            )


def wanted(planned: list[Target]) -> dict[Key, dict[Path, Target]]:
    """Each bundle blob the stores lack, with the places it goes (two models that share a
    blob share its place) and the model each place is for."""
    found: dict[Key, dict[Path, Target]] = {}
    for target in planned:
        for key, specs in target.needs().items():
            for spec in specs:
                found.setdefault(key, {}).setdefault(spec.dest, target)
    return found


# ---------------------------------------------------------------------------- the stream


def stage(
    reader: BundleReader, header: Header, planned: list[Target], workspace: Workspace
) -> Staged:
    """Every member, verified as it streams; the blobs the stores lack land in staging."""
    places = wanted(planned)
    staged = Staged()
    for f in header.files:
        member = reader.member(f.member, f.size, None if f.kind == "blob" else MAX_SMALL)
        if f.kind != "blob":
            data = reader.read(member)
            _check_digests(f, [hashlib.sha256(data)])
            staged.small[(f.store, f.path)] = data
            continue
        mine = places.get((f.store, f.path), {})
        temps = {dest: workspace.temp(t.plan.staging) for dest, t in mine.items()}
        _copy(reader.chunks(member), f, list(temps.values()))
        staged.temps.update(temps)
    return staged


def _hashers(f: BundleFile) -> list[Hasher]:
    """sha256 for every file; a git blob id too for a blob named by one (the Hub's small
    files), so the name the store will use is checked as well."""
    hashers: list[Hasher] = [hashlib.sha256()]
    name = blob_digest_name(f)
    if f.kind == "blob" and SHA1_HEX.fullmatch(name):
        hashers.append(Digest("git-sha1", name).hasher(f.size))
    return hashers


def _copy(chunks: Iterable[bytes], f: BundleFile, outs: list[Path]) -> None:
    """Hash the member's data, writing it to each of ``outs`` (none: hash only)."""
    hashers = _hashers(f)
    files = []
    try:
        for out in outs:
            with disk_errors(out, needed=f.size):
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o644)
            files.append((out, os.fdopen(fd, "wb")))
        for data in chunks:
            for h in hashers:
                h.update(data)
            for out, handle in files:
                with disk_errors(out, needed=f.size):
                    handle.write(data)
        for out, handle in files:
            with disk_errors(out, needed=f.size):
                handle.flush()
                FS.sync(handle.fileno())
    finally:
        for _, handle in files:
            handle.close()
    _check_digests(f, hashers)


def _check_digests(f: BundleFile, hashers: list[Hasher]) -> None:
    actual = hashers[0].hexdigest()
    if actual != f.sha256:
        raise bad(
            f"{f.member} in the bundle does not match its sha256",
            why=f"it hashes to {actual}; the header says {f.sha256}",
        )
    if len(hashers) > 1 and hashers[1].hexdigest() != blob_digest_name(f):
        raise bad(f"{f.member} in the bundle does not match the git blob id that names it")


def verified(planned: list[Target], staged: Staged) -> list[Target]:
    """The targets with their manifests, each checked against its model in the header."""
    done = []
    for target in planned:
        entry = target.entry
        if isinstance(entry, OllamaEntry):
            raw = staged.small[(entry.store, entry.manifest)]
            _check_manifest(entry, raw)
            target = with_manifest(target, raw)
        elif (
            entry.ref is not None
            and staged.small[(entry.store, entry.ref)] != entry.commit.encode()
        ):
            raise bad(f"the bundle's {entry.ref} does not name the commit {entry.commit}")
        done.append(target)
    return done


def _check_manifest(entry: OllamaEntry, raw: bytes) -> None:
    try:
        manifest = parse_manifest(raw)
    except BadManifest as exc:
        raise bad(f"the manifest of {entry.name} in the bundle is invalid", why=exc.why) from None
    named = {(layer.digest.hex, layer.size) for layer in manifest.blobs}
    if named != set(entry.blobs):
        raise bad(
            f"the manifest of {entry.name} names other blobs than the bundle's header",
            why="a manifest must name exactly the blobs its model brings",
        )


# ---------------------------------------------------------------------------- commit


def commit(planned: list[Target], staged: Staged) -> list[PlanReport]:
    """Model by model: blobs into place, then the finals in order, then ownership."""
    for target in planned:  # nothing moves if a file relied on has gone meanwhile
        for path in target.present:
            if not path.is_file():
                raise vanished(path)
    return [_commit(target, staged) for target in planned]


def _commit(target: Target, staged: Staged) -> PlanReport:
    plan = target.plan
    check_plan(plan)  # again: a directory swapped for a link meanwhile is refused here too
    report = PlanReport(plan)
    try:
        for spec in target.specs():
            temp = staged.temps.pop(spec.dest, None)
            if temp is not None:
                assert spec.size is not None
                move_into_place(temp, spec.dest, spec.size)
            status = "imported" if temp is not None else "present"
            digest = str(spec.digest) if spec.digest else None
            size = spec.size or 0
            report.files.append(
                FileReport(plan.ref, spec.name, landing(spec), size, status, True, digest)
            )
        apply_finals(plan)
    finally:
        try:
            adopt(made_paths(plan), plan.root)
        except StorageError as exc:  # never hides the real outcome (NFS root squash, say)
            log.warning("could not give %s to its owner: %s", plan.root, exc)
    return report
