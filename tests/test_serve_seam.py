"""The seam a pull-through plugs into: a :class:`~pullman.serve.catalog.Catalog` that wraps the
local one and answers with bytes still arriving (``Content.read``). The server streams them
with the right ``Content-Length`` / ``Content-Range``, and cuts the connection (never a short
200) when the reader fails. In-process: the real aiohttp server on a loopback socket, urllib
as the client in a worker thread. Also the pure parts the handlers rely on."""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from pullman.core.byte_ranges import UNSATISFIABLE, parse_range
from pullman.core.digests import Digest, sha256
from pullman.core.hub_entries import valid_path, valid_repo_id, valid_revision
from pullman.core.listen import Listen, allowed, default_allow, parse_allow, parse_listen
from pullman.core.oci_names import parse_reference, valid_name
from pullman.errors import UsageError
from pullman.serve.app import ServeSettings, bind, serve
from pullman.serve.catalog import Catalog, Content
from pullman.serve.local import LocalCatalog
from pullman.testing import make_data

DATA = make_data(300_000, 51)
DIGEST = sha256(hashlib.sha256(DATA).hexdigest())
MANIFEST = (
    b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",'
    b'"config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:'
    + hashlib.sha256(b"{}").hexdigest().encode()
    + b'","size":2},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"'
    + str(DIGEST).encode()
    + b'","size":'
    + str(len(DATA)).encode()
    + b"}]}"
)


class Arriving:
    """A pull-through stand-in: the local catalog first; a blob it lacks is "downloading"
    and read in small chunks, each after a pause; ``fail_at``: the reader breaks there."""

    def __init__(self, local: LocalCatalog, fail_at: int | None = None) -> None:
        self.local = local
        self.fail_at = fail_at
        self.reads: list[tuple[int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.local, name)

    async def blob(self, name: str, digest: Digest) -> Content | None:
        found = await self.local.blob(name, digest)
        if found is not None or digest != DIGEST:
            return found
        return Content(len(DATA), DIGEST, read=self._read)

    async def _read(self, start: int, end: int) -> AsyncIterator[bytes]:
        self.reads.append((start, end))
        for offset in range(start, end, 40_000):
            if self.fail_at is not None and offset >= self.fail_at:
                raise OSError("the upstream went away")
            await anyio.sleep(0.001)
            yield DATA[offset : min(offset + 40_000, end)]


def _store(root: Path) -> Path:
    models = root / "models"
    tag = models / "manifests" / "registry.ollama.ai" / "library" / "tiny"
    tag.mkdir(parents=True)
    (tag / "latest").write_bytes(MANIFEST)
    (models / "blobs").mkdir()
    return models


def run_against(catalog: Catalog, client: Callable[[str], Any]) -> Any:
    """Serve ``catalog`` on a free loopback port while ``client(base_url)`` runs in a thread."""
    listen = parse_listen("127.0.0.1:0")
    settings = ServeSettings(listen, default_allow(listen))
    sock = bind(listen)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    out: list[Any] = []

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            ready = anyio.Event()
            tg.start_soon(lambda: serve(catalog, settings, sock, started=ready.set))
            await ready.wait()
            out.append(await anyio.to_thread.run_sync(client, base))
            tg.cancel_scope.cancel()

    anyio.run(main)
    return out[0]


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Any:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_bytes_still_arriving_are_streamed_with_the_right_length_and_range(tmp_path: Path) -> None:
    catalog = Arriving(LocalCatalog(_store(tmp_path), None))
    blob = f"/v2/library/tiny/blobs/{DIGEST}"

    def client(base: str) -> list[Any]:
        return [
            _get(base + blob),
            _get(base + blob, {"Range": "bytes=100000-199999"}),
            _get(base + blob, method="HEAD"),
        ]

    whole, part, head = run_against(catalog, client)
    assert whole[0] == 200 and whole[2] == DATA and whole[1]["Content-Length"] == str(len(DATA))
    assert whole[1]["Docker-Content-Digest"] == str(DIGEST)
    assert part[0] == 206 and part[2] == DATA[100_000:200_000]
    assert part[1]["Content-Range"] == f"bytes 100000-199999/{len(DATA)}"
    assert head[0] == 200 and head[2] == b"" and head[1]["Content-Length"] == str(len(DATA))
    assert catalog.reads == [(0, len(DATA)), (100_000, 200_000)]  # HEAD reads nothing


def test_a_failing_reader_cuts_the_answer_short_never_a_complete_looking_200(
    tmp_path: Path,
) -> None:
    catalog = Arriving(LocalCatalog(_store(tmp_path), None), fail_at=120_000)

    def client(base: str) -> tuple[int, bytes, str]:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
        conn.request("GET", f"/v2/library/tiny/blobs/{DIGEST}")
        response = conn.getresponse()
        try:
            body = response.read()
            error = ""
        except http.client.IncompleteRead as exc:
            body, error = exc.partial, "incomplete"
        ok = _get(base + "/v2/")[0]  # the server is still there
        return response.status, body, f"{error} {ok}"

    status, body, after = run_against(catalog, client)
    assert status == 200 and len(body) < len(DATA) and after == "incomplete 200"


def test_the_manifest_route_reads_through_the_catalog(tmp_path: Path) -> None:
    catalog = Arriving(LocalCatalog(_store(tmp_path), None))
    got = run_against(catalog, lambda base: _get(base + "/v2/library/tiny/manifests/latest"))
    assert (
        got[2] == MANIFEST
        and got[1]["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(MANIFEST).hexdigest()
    )


# ---------------------------------------------------------------------- the pure parts


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=10-", (10, 100)),
        ("bytes=-5", (95, 100)),
        ("bytes=90-1000", (90, 100)),
        ("bytes=100-", UNSATISFIABLE),
        ("bytes=-0", UNSATISFIABLE),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=a-b", None),
        ("bytes=" + "9" * 30 + "-", None),
    ],
)
def test_range_parsing(header: str | None, expected: object) -> None:
    assert parse_range(header, 100) == expected


def test_names_references_and_paths_are_strict() -> None:
    assert valid_name("library/qwen2.5") and valid_name("a/b/c") and not valid_name("Library/x")
    assert not valid_name("../x") and not valid_name("a//b") and not valid_name("a/")
    assert parse_reference("7b-q4_K_M") is not None and parse_reference("..") is None
    assert parse_reference("sha256:" + "0" * 64) is not None
    assert (
        parse_reference("sha256:../../x") is None and parse_reference("sha256:" + "0" * 63) is None
    )
    assert valid_repo_id("org/name") and valid_repo_id("gpt2") and not valid_repo_id("a/b/c")
    assert not valid_repo_id("org--x/y") and not valid_repo_id("../x") and not valid_repo_id(".x")
    assert valid_revision("main") and valid_revision("refs/pr/1") and valid_revision("a" * 40)
    assert not valid_revision("../main") and not valid_revision("x/../y") and not valid_revision("")
    assert valid_path("a/b.json") and not valid_path("/etc/passwd") and not valid_path("a/../b")
    assert not valid_path("a\\b") and not valid_path("a//b") and not valid_path("a\x00b")


def test_listen_and_allow() -> None:
    assert parse_listen("127.0.0.1:11435") == Listen("127.0.0.1", 11435)
    assert parse_listen("[::1]:8080") == Listen("::1", 8080) and parse_listen(":9").port == 9
    assert parse_listen("0.0.0.0").port == 11435
    for bad in ("host.example:80", "1.2.3.4:x", "1.2.3.4:70000"):
        with pytest.raises(UsageError):
            parse_listen(bad)
    loop = default_allow(parse_listen("127.0.0.1:1"))
    assert allowed("127.0.0.1", loop) and not allowed("192.168.1.5", loop)
    lan = default_allow(parse_listen("0.0.0.0:1"))
    assert allowed("192.168.1.5", lan) and allowed("::ffff:10.0.0.1", lan)
    assert not allowed("8.8.8.8", lan) and not allowed(None, lan)
    assert allowed("10.1.2.3", parse_allow(["10.1.2.0/24"]))
    with pytest.raises(UsageError):
        parse_allow(["nope"])


def test_content_has_a_path_or_a_reader() -> None:
    with pytest.raises(ValueError, match="either"):
        Content(1, DIGEST)
    with pytest.raises(ValueError, match="either"):
        replace(Content(1, DIGEST, path=Path("/x")), read=lambda a, b: None)  # type: ignore[arg-type,return-value]
