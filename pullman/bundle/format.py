"""The bundle format, and what is checked in a bundle before a byte of it lands. Pure.

A bundle is a plain tar (POSIX pax; no compression) of regular files only, in this order:

1. ``pullman-bundle.json``: the :class:`Header` (JSON): ``format`` (``"pullman-bundle"``),
   ``version`` (:data:`VERSION`), ``pullman`` (the version that wrote it), ``models`` and
   ``files``: every member that follows, in order, with its store, its path in that store, its
   kind, size and sha256.
2. ``SHA256SUMS``: ``<sha256>  <member>`` for the header and for every file, as ``sha256sum``
   writes them, so ``tar x && sha256sum -c SHA256SUMS`` checks a bundle without pullman.
3. The blobs, each as ``<store>/<path in the store>``: ``ollama/blobs/sha256-<hex>``,
   ``hf/models--<org>--<name>/blobs/<etag>``.
4. What a store writes last: ``ollama/manifests/<host>/<namespace>/<model>/<tag>`` (the raw
   manifest) and ``hf/models--<org>--<name>/refs/<revision>`` (the commit).

A Hugging Face snapshot's links are not members (a bundle holds no links): the header lists
each snapshot file with its blob. Every name in a header is untrusted: paths must be relative
and plain, each must be exactly the path its model implies (a blob's is its digest, a
manifest's its name's four parts as :mod:`pullman.core.refs` accepts them), digests are full
lowercase hex, and every file belongs to a model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from pullman.core.digests import SHA1_HEX, SHA256_HEX, from_blob_name
from pullman.core.headers import MAX_SIZE
from pullman.core.names import check_repo_path
from pullman.core.plan import Store
from pullman.core.refs import HfRef, OllamaRef, parse_hf, valid_part
from pullman.errors import IntegrityError, PullmanError, Unsupported

FORMAT = "pullman-bundle"
VERSION = 1
"""The newest bundle format this pullman reads and the one it writes."""
HEADER = "pullman-bundle.json"
SUMS = "SHA256SUMS"
MAX_HEADER = 64 << 20
MAX_SMALL = 4 << 20
"""The largest manifest or ref a bundle may carry (they are read into memory)."""
MAX_FILES = 200_000

Kind = Literal["blob", "manifest", "ref"]
KINDS: tuple[Kind, ...] = ("blob", "manifest", "ref")
STORES = {"ollama": Store.OLLAMA, "hf": Store.HF_CACHE}
_PARTS = ("host", "namespace", "model", "tag")
_HINT = "nothing was imported; copy the bundle again, or export it again on the other machine"


def bad(what: str, why: str | None = None) -> IntegrityError:
    """The error for a bundle that is damaged, altered, truncated or unsafe."""
    return IntegrityError(what, why=why, hint=_HINT)


# ---------------------------------------------------------------------------- the values


@dataclass(frozen=True)
class BundleFile:
    """One member after the checksum list: a file of a store, by its path there."""

    store: Store
    path: str
    kind: Kind
    size: int
    sha256: str

    @property
    def member(self) -> str:
        return f"{self.store.value}/{self.path}"

    def to_json(self) -> dict[str, Any]:
        return {
            "store": self.store.value,
            "path": self.path,
            "kind": self.kind,
            "size": self.size,
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class OllamaEntry:
    """An Ollama model: its name's four parts and its blobs ``(sha256 hex, size)``."""

    parts: tuple[str, str, str, str]
    blobs: tuple[tuple[str, int], ...]

    store = Store.OLLAMA

    @property
    def name(self) -> str:
        return OllamaRef(*self.parts).short()

    @property
    def manifest(self) -> str:
        return "manifests/" + "/".join(self.parts)

    def paths(self) -> dict[str, Kind]:
        """Every store path this model may bring, with its kind."""
        found: dict[str, Kind] = {f"blobs/sha256-{hex_}": "blob" for hex_, _ in self.blobs}
        found[self.manifest] = "manifest"
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "store": "ollama",
            "name": self.name,
            "parts": list(self.parts),
            "manifest": self.manifest,
            "blobs": [{"sha256": h, "size": s} for h, s in self.blobs],
        }


@dataclass(frozen=True)
class HfEntry:
    """A Hugging Face repo at one commit: each snapshot file ``(path, blob name, size)``."""

    repo_id: str
    repo_type: str
    revision: str
    commit: str
    files: tuple[tuple[str, str, int], ...]

    store = Store.HF_CACHE

    @property
    def name(self) -> str:
        return str(HfRef(self.repo_id, self.repo_type, self.revision))

    @property
    def folder(self) -> str:
        """``models--org--name``, as huggingface_hub names a repo's folder in the cache."""
        return "--".join([f"{self.repo_type}s", *self.repo_id.split("/")])

    @property
    def ref(self) -> str | None:
        """The ref file of the revision (none when the revision is the commit itself)."""
        return None if self.revision == self.commit else f"{self.folder}/refs/{self.revision}"

    def blob(self, name: str) -> str:
        return f"{self.folder}/blobs/{name}"

    def paths(self) -> dict[str, Kind]:
        found: dict[str, Kind] = {self.blob(blob): "blob" for _, blob, _ in self.files}
        if self.ref is not None:
            found[self.ref] = "ref"
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "store": "hf",
            "name": self.name,
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "revision": self.revision,
            "commit": self.commit,
            "ref": self.ref,
            "files": [{"path": p, "blob": b, "size": s} for p, b, s in self.files],
        }


Entry = OllamaEntry | HfEntry


@dataclass(frozen=True)
class Header:
    pullman: str
    models: tuple[Entry, ...]
    files: tuple[BundleFile, ...]
    version: int = VERSION

    def encode(self) -> bytes:
        doc = {
            "format": FORMAT,
            "version": self.version,
            "pullman": self.pullman,
            "models": [m.to_json() for m in self.models],
            "files": [f.to_json() for f in self.files],
        }
        return json.dumps(doc, indent=1).encode() + b"\n"

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)


def sums(header: bytes, files: tuple[BundleFile, ...]) -> bytes:
    """The ``SHA256SUMS`` member: the header's line, then one per file, in member order."""
    lines = [f"{hashlib.sha256(header).hexdigest()}  {HEADER}"]
    lines += [f"{f.sha256}  {f.member}" for f in files]
    return ("\n".join(lines) + "\n").encode()


def blob_digest_name(file: BundleFile) -> str:
    """The name a blob is stored under (its digest: ``sha256-<hex>``'s hex, or an etag)."""
    return file.path.rsplit("/", 1)[-1].removeprefix("sha256-")


# ---------------------------------------------------------------------------- parsing


def parse_header(raw: bytes) -> Header:
    """The header of a bundle, every field checked (see the module docstring)."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad("the bundle's header is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad("this is not a pullman bundle", why=f"{HEADER} does not say {FORMAT!r}")
    _check_version(doc.get("version"), doc.get("pullman"))
    models = tuple(_model(m, i) for i, m in enumerate(_list(doc, "models", 1 << 16)))
    files = tuple(_file(f, i) for i, f in enumerate(_list(doc, "files", MAX_FILES)))
    pullman = doc.get("pullman")
    header = Header(pullman if isinstance(pullman, str) else "?", models, files)
    _check_files(header)
    return header


def _check_version(version: object, by: object) -> None:
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad("the bundle's header has no valid format version")
    if version > VERSION:
        raise Unsupported(
            f"this bundle has format version {version}; this pullman reads up to {VERSION}",
            why=f"it was made by a newer pullman ({str(by)[:40]})",
            hint="upgrade pullman on this machine (or export with the same pullman version)",
        )


def _list(doc: dict[str, Any], key: str, limit: int) -> list[Any]:
    value = doc.get(key)
    if not isinstance(value, list) or not value or len(value) > limit:
        raise bad(f"the bundle's header has no valid {key!r} list")
    return value


def _str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise bad(f"the bundle's header is invalid: {where} has no valid {key!r}")
    return value


def _size(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SIZE:
        raise bad(f"the bundle's header is invalid: {where} has no valid {key!r}")
    return value


def _sha256(raw: dict[str, Any], where: str) -> str:
    value = _str(raw, "sha256", where)
    if not SHA256_HEX.fullmatch(value):
        raise bad(f"the bundle's header is invalid: {where} has no 64-hex sha256")
    return value


def check_path(path: str) -> str:
    """A store path from a bundle: relative, plain, no ``..``, nothing odd in it."""
    unsafe = (
        not path
        or len(path) > 4096
        or path.startswith("/")
        or any(ch in path for ch in "\\\0")
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in path)
        or any(part in ("", ".", "..") for part in path.split("/"))
    )
    if unsafe:
        raise bad(
            f"refusing the bundle: it names the unsafe path {path[:160]!r}",
            why="a path in a bundle must stay inside its store",
        )
    return path


def _file(raw: object, i: int) -> BundleFile:
    where = f"file {i}"
    if not isinstance(raw, dict):
        raise bad(f"the bundle's header is invalid: {where} is not an object")
    store = STORES.get(raw.get("store"))  # type: ignore[arg-type]
    kind = raw.get("kind")
    if store is None or kind not in KINDS:
        raise bad(f"the bundle's header is invalid: {where} has an unknown store or kind")
    path = check_path(_str(raw, "path", where))
    size = _size(raw, "size", where)
    if kind != "blob" and size > MAX_SMALL:
        raise bad(f"the bundle's header is invalid: the {kind} {path!r} is too large")
    return BundleFile(store, path, kind, size, _sha256(raw, where))


def _model(raw: object, i: int) -> Entry:
    if not isinstance(raw, dict) or raw.get("store") not in STORES:
        raise bad(f"the bundle's header is invalid: model {i} has no known store")
    return _ollama(raw, i) if raw["store"] == "ollama" else _hf(raw, i)


def _ollama(raw: dict[str, Any], i: int) -> OllamaEntry:
    where = f"model {i}"
    parts = raw.get("parts")
    if not isinstance(parts, list) or len(parts) != 4:
        raise bad(f"the bundle's header is invalid: {where} has no name parts")
    for kind, part in zip(_PARTS, parts, strict=True):
        if not isinstance(part, str) or not valid_part(kind, part):
            raise bad(
                f"refusing the bundle: {where} has an invalid {kind} {str(part)[:80]!r}",
                why="Ollama names become paths in the store; this one is not a name",
            )
    blobs = []
    for j, blob in enumerate(_list(raw, "blobs", 1 << 16)):
        if not isinstance(blob, dict):
            raise bad(f"the bundle's header is invalid: {where} blob {j} is not an object")
        blobs.append((_sha256(blob, f"{where} blob {j}"), _size(blob, "size", where)))
    return OllamaEntry((parts[0], parts[1], parts[2], parts[3]), tuple(blobs))


def _hf(raw: dict[str, Any], i: int) -> HfEntry:
    where = f"model {i}"
    repo_id = _str(raw, "repo_id", where)
    repo_type = _str(raw, "repo_type", where)
    revision = _str(raw, "revision", where)
    commit = _str(raw, "commit", where)
    _check_repo(repo_id, repo_type, revision, where)
    if not SHA1_HEX.fullmatch(commit):
        raise bad(f"the bundle's header is invalid: {where} has no 40-hex commit")
    files = []
    for j, item in enumerate(_list(raw, "files", MAX_FILES)):
        if not isinstance(item, dict):
            raise bad(f"the bundle's header is invalid: {where} file {j} is not an object")
        files.append(_hf_file(item, f"{where} file {j}"))
    if len({path for path, _, _ in files}) != len(files):
        raise bad(f"the bundle's header lists a file of {where} twice")
    return HfEntry(repo_id, repo_type, revision, commit, tuple(files))


def _check_repo(repo_id: str, repo_type: str, revision: str, where: str) -> None:
    prefix = {"model": "", "dataset": "datasets/"}.get(repo_type)
    ref = None
    if prefix is not None:
        try:
            ref = parse_hf(f"hf://{prefix}{repo_id}@{revision}")
        except PullmanError:
            ref = None
    if ref is None or (ref.repo_id, ref.repo_type, ref.revision) != (repo_id, repo_type, revision):
        raise bad(
            f"refusing the bundle: {where} is not a valid Hugging Face repo and revision",
            why=f"{repo_type[:20]} {repo_id[:100]!r} at {revision[:100]!r}",
        )


def _hf_file(raw: dict[str, Any], where: str) -> tuple[str, str, int]:
    path = _str(raw, "path", where)
    blob = _str(raw, "blob", where)
    try:
        check_repo_path(path)
    except PullmanError:
        raise bad(f"refusing the bundle: {where} names the unsafe path {path[:160]!r}") from None
    if from_blob_name(blob) is None:
        raise bad(
            f"refusing the bundle: {where} names the blob {blob[:80]!r}",
            why="a blob is named by its digest: 64 or 40 lowercase hex",
        )
    return path, blob, _size(raw, "size", where)


# ---------------------------------------------------------------------------- consistency


def _check_files(header: Header) -> None:
    """Each file once, blobs before the rest, and each exactly a path one of its models
    implies, of the kind and size that model says (a blob's sha256 is its name)."""
    expected: dict[tuple[Store, str], Kind] = {}
    for model in header.models:
        expected.update({(model.store, p): k for p, k in model.paths().items()})
    seen: set[tuple[Store, str]] = set()
    metadata = False
    for f in header.files:
        key = (f.store, f.path)
        if key in seen:
            raise bad(f"the bundle's header lists {f.member} twice")
        seen.add(key)
        if expected.get(key) != f.kind:
            raise bad(
                f"refusing the bundle: {f.member} belongs to none of its models",
                why="every file must be a blob, manifest or ref of a model listed",
            )
        if f.kind == "blob" and metadata:
            raise bad(f"the bundle's header lists the blob {f.member} after a manifest or ref")
        metadata = metadata or f.kind != "blob"
        _check_blob_name(f)
    _check_models(header, seen)


def _check_blob_name(f: BundleFile) -> None:
    if f.kind != "blob":
        return
    name = blob_digest_name(f)
    if SHA256_HEX.fullmatch(name) and name != f.sha256:
        raise bad(f"refusing the bundle: {f.member} is named by a digest its sha256 is not")


def _check_models(header: Header, present: set[tuple[Store, str]]) -> None:
    """The metadata each model needs is in the bundle, and sizes agree with its files."""
    sizes = {(f.store, f.path): f.size for f in header.files}
    for model in header.models:
        needed = model.manifest if isinstance(model, OllamaEntry) else model.ref
        if needed is not None and (model.store, needed) not in present:
            raise bad(f"the bundle lacks {model.store.value}/{needed} for {model.name}")
        for path, size in _blob_sizes(model):
            if sizes.get((model.store, path), size) != size:
                raise bad(f"the bundle's header gives two sizes for {model.store.value}/{path}")


def _blob_sizes(model: Entry) -> list[tuple[str, int]]:
    if isinstance(model, OllamaEntry):
        return [(f"blobs/sha256-{h}", s) for h, s in model.blobs]
    return [(model.blob(b), s) for _, b, s in model.files]
