"""The invariants every run's final paths must hold (see the package's docstring), and the
journals' claims after every run and every kill. Each check returns the problems it found."""

from __future__ import annotations

from pathlib import Path

from pullman.transfer.staging import Staging

from chaoslib.common import git_sha1, sha256_hex

__all__ = ["check_hf_cache", "check_journals", "check_local_dir", "check_ollama", "check_plain"]


def check_plain(dest: Path, data: bytes) -> list[str]:
    if dest.is_symlink():
        return [f"{dest} is a symlink"]
    if dest.exists() and dest.read_bytes() != data:
        return [f"{dest}: wrong bytes at a final path"]
    return []


# ---------------------------------------------------------------------------------- Ollama


def check_ollama(models: Path, manifest: Path, raw: bytes, blobs: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    blob_dir = models / "blobs"
    if blob_dir.is_symlink():
        problems.append("blobs/ is a symlink")
    if blob_dir.is_dir():
        problems += _ollama_blobs(blob_dir, blobs)
    if manifest.exists() or manifest.is_symlink():
        problems += _ollama_manifest(blob_dir, manifest, raw, blobs)
    for p in models.iterdir() if models.is_dir() else ():
        if p.name not in ("blobs", "manifests", ".pullman-partial"):
            problems.append(f"stray entry in the store: {p.name}")
    return problems


def _ollama_blobs(blob_dir: Path, blobs: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    for p in blob_dir.iterdir():
        if p.is_symlink() or not p.is_file():
            problems.append(f"{p} is not a regular file")
            continue
        hex_digest = p.name.removeprefix("sha256-")
        if not p.name.startswith("sha256-") or hex_digest not in blobs:
            problems.append(f"unexpected file in blobs/: {p.name}")
            continue
        if sha256_hex(p.read_bytes()) != hex_digest:
            problems.append(f"{p.name}: wrong bytes at a final path")
    return problems


def _ollama_manifest(
    blob_dir: Path, manifest: Path, raw: bytes, blobs: dict[str, bytes]
) -> list[str]:
    problems: list[str] = []
    if manifest.is_symlink() or manifest.read_bytes() != raw:
        problems.append("the manifest is not the registry's bytes")
    for hex_digest, data in blobs.items():
        blob = blob_dir / f"sha256-{hex_digest}"
        if not blob.is_file() or blob.stat().st_size != len(data):
            problems.append(f"manifest written before blob {hex_digest[:12]} was in place")
    return problems


# ---------------------------------------------------------------------------------- HF


def check_hf_cache(repo: Path, commit: str, files: dict[str, bytes], wanted: set[str]) -> list[str]:
    problems: list[str] = []
    blob_dir = repo / "blobs"
    if blob_dir.is_dir():
        problems += _hf_blobs(blob_dir, files)
    snap = repo / "snapshots"
    if snap.is_dir():
        for link in snap.rglob("*"):
            if link.is_dir() and not link.is_symlink():
                continue
            problems += _hf_snapshot_entry(link, snap, blob_dir, commit, files)
    ref = repo / "refs" / "main"
    if ref.exists():
        if ref.read_text() != commit:
            problems.append("refs/main does not name the commit")
        for path in wanted:
            if not (snap / commit / path).is_symlink():
                problems.append(f"refs/main written before the link {path}")
    return problems


def _hf_blobs(blob_dir: Path, files: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    by_name = {}
    for data in files.values():
        by_name[sha256_hex(data) if len(data) >= 1024 else git_sha1(data)] = data
    for p in blob_dir.iterdir():
        if p.is_symlink() or not p.is_file():
            problems.append(f"{p} is not a regular file")
            continue
        data = p.read_bytes()
        if p.name not in by_name:
            problems.append(f"unexpected blob {p.name}")
        elif (sha256_hex(data) if len(p.name) == 64 else git_sha1(data)) != p.name:
            problems.append(f"blob {p.name}: wrong bytes at a final path")
    return problems


def _hf_snapshot_entry(
    link: Path, snap: Path, blob_dir: Path, commit: str, files: dict[str, bytes]
) -> list[str]:
    rel = link.relative_to(snap)
    if rel.parts[0] != commit:
        return [f"snapshot of an unknown commit: {rel}"]
    path = "/".join(rel.parts[1:])
    if not link.is_symlink():
        return [f"snapshot entry {path} is not a link"]
    problems: list[str] = []
    target = str(link.readlink())
    if target.startswith("/"):
        problems.append(f"snapshot link {path} is absolute")
    resolved = link.resolve()
    if not resolved.is_relative_to(blob_dir.resolve()):
        problems.append(f"snapshot link {path} points outside blobs/")
    elif path not in files or not resolved.is_file():
        problems.append(f"snapshot link {path}: unknown path or dangling")
    elif resolved.read_bytes() != files[path]:
        problems.append(f"snapshot link {path}: wrong bytes at a final path")
    return problems


def check_local_dir(local: Path, files: dict[str, bytes]) -> list[str]:
    problems: list[str] = []
    if not local.is_dir():
        return problems
    for p in local.rglob("*"):
        rel = p.relative_to(local)
        if rel.parts[0] == ".pullman-partial" or (p.is_dir() and not p.is_symlink()):
            continue
        path = "/".join(rel.parts)
        if rel.parts[:2] == (".cache", "huggingface"):
            problems += _check_download_metadata(local, rel, files)
            continue
        if p.is_symlink():
            problems.append(f"{path} is a symlink")
        elif path not in files:
            problems.append(f"unexpected file {path}")
        elif p.read_bytes() != files[path]:
            problems.append(f"{path}: wrong bytes at a final path")
    return problems


def _check_download_metadata(local: Path, rel: Path, files: dict[str, bytes]) -> list[str]:
    """huggingface_hub's ``download/<path>.metadata`` exists only once ``<path>`` is right."""
    if rel.parts[2:3] != ("download",) or rel.suffix != ".metadata":
        return [f"unexpected file {'/'.join(rel.parts)}"]
    path = "/".join(rel.parts[3:]).removesuffix(".metadata")
    target = local / path
    if path not in files or not target.is_file() or target.read_bytes() != files[path]:
        return [f"metadata for {path} before the file is right"]
    lines = (local / rel).read_text().splitlines()
    return [] if len(lines) == 3 else [f"{'/'.join(rel.parts)} is not huggingface_hub's format"]


# ---------------------------------------------------------------------------------- journals


def check_journals(
    staging: Path, blobs: dict[str, bytes], flips: dict[str, set[int]] | None = None
) -> tuple[int, list[str]]:
    """Every journal claims only bytes that are on disk and right; returns (claimed, problems).

    ``flips``: offsets where the server sent a flipped byte (FlipByte). The journal records what
    arrived, so those may differ (the digest check throws such data away); nothing else may.
    """
    problems: list[str] = []
    claimed = 0
    if not staging.is_dir():
        return 0, problems
    for journal in staging.glob("*.journal"):
        key = journal.name.removesuffix(".journal")
        n, bad = _check_journal(Staging(staging, key), key, blobs, (flips or {}).get(key, set()))
        claimed += n
        problems += bad
    return claimed, problems


def _check_journal(
    st: Staging, key: str, blobs: dict[str, bytes], allowed: set[int]
) -> tuple[int, list[str]]:
    """One journal: the bytes it claims, and its problems."""
    loaded = st.load_journal()
    if loaded is None:  # no slot saved yet (or its data file is gone): claims nothing
        return 0, []
    data = blobs.get(key, blobs.get(key.removeprefix("sha256-")))
    if data is None:
        return 0, [f"{key}: journal of an unknown file"]
    if not loaded.done:
        return 0, []
    if loaded.size != len(data):
        return 0, [f"{key}: journal size {loaded.size} != {len(data)}"]
    claimed = 0
    problems: list[str] = []
    with st.part.open("rb") as f:
        for start, end in loaded.done:
            f.seek(start)
            got = f.read(end - start)
            claimed += end - start
            if got == data[start:end]:
                continue
            wrong = {
                start + i
                for i, (a, b) in enumerate(zip(got, data[start:end], strict=False))
                if a != b
            }
            if len(got) != end - start or not wrong <= allowed:
                problems.append(
                    f"{key}: journal claims [{start},{end}) but the bytes on disk differ"
                    f" at {sorted(wrong - allowed)[:5]}"
                )
    return claimed, problems
