"""Hostile requests to ``pullman serve``: traversal in every spelling, links out of the stores,
hostile digests, a 1 MiB header, slowloris, and 200 connections at once. Each is refused or
served, the server stays up, and its memory stays bounded (VmRSS, printed: run with ``-s``)."""

from __future__ import annotations

import hashlib
import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from pullman.testing import Simulator

from serve_fixtures import MODEL, Served, Stores, fill_stores, serving

SECRET = b"TOPSECRET-" * 100
MiB_KiB = 1024


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    with Simulator() as sim:
        stores = fill_stores(sim, tmp_path_factory.mktemp("stores"))
    plant_hostile_links(stores)
    yield stores


def plant_hostile_links(stores: Stores) -> None:
    """A secret outside the stores, and links to it planted inside them."""
    secret = stores.root / "secret.txt"
    secret.write_bytes(SECRET)
    repo = stores.cache / "models--org--tiny"
    snapshot = repo / "snapshots" / stores.commits["org/tiny"]
    (snapshot / "evil.txt").symlink_to(secret)  # absolute link out of the store
    (snapshot / "rel.txt").symlink_to(Path("../../../../secret.txt"))  # relative link out
    sha1_name = hashlib.sha1(SECRET, usedforsecurity=False).hexdigest()
    (repo / "blobs" / sha1_name).symlink_to(secret)  # a "blob" that is a link out
    (snapshot / "sneaky.bin").symlink_to(Path(f"../../blobs/{sha1_name}"))
    (repo / "refs" / "escape").symlink_to(secret)
    (snapshot / "other-repo").symlink_to(stores.cache)  # a directory link: never walked
    # Ollama: a blob file that is a link out, named by a manifest of library/evil
    hex_secret = hashlib.sha256(SECRET).hexdigest()
    (stores.models / "blobs" / f"sha256-{hex_secret}").symlink_to(secret)
    tiny = stores.models / "manifests" / stores.registry_host / "library" / "tiny"
    evil = tiny.parent / "evil"
    evil.mkdir()
    doc = stores.manifest.replace(
        hashlib.sha256(MODEL).hexdigest().encode(), hex_secret.encode()
    ).replace(str(len(MODEL)).encode(), str(len(SECRET)).encode())
    (evil / "latest").write_bytes(doc)
    (tiny / "linked").symlink_to(secret)  # a tag file that is a link out
    elsewhere = stores.root / "elsewhere" / "tiny"  # a namespace that is a link out
    elsewhere.mkdir(parents=True)
    (elsewhere / "latest").write_bytes(stores.manifest)
    (tiny.parent.parent / "outns").symlink_to(elsewhere.parent)


def raw_get(s: Served, path: str) -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as written (no client-side normalisation)."""
    conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


HOSTILE = [
    "/v2/library/tiny/blobs/sha256:../../x",
    "/v2/library/tiny/blobs/sha256:..%2f..%2fsecret.txt",
    "/v2/library/tiny/blobs/sha256:" + "0" * 63,
    "/v2/library/tiny/blobs/sha256:" + "0" * 65,
    "/v2/library/tiny/blobs/sha256:" + "g" * 64,
    "/v2/library/tiny/blobs/sha256%3a" + hashlib.sha256(SECRET).hexdigest(),
    "/v2/library/evil/blobs/sha256:" + hashlib.sha256(SECRET).hexdigest(),
    "/v2/library/tiny/manifests/linked",
    "/v2/outns/tiny/manifests/latest",
    f"/v2/outns/tiny/blobs/sha256:{hashlib.sha256(MODEL).hexdigest()}",
    "/v2/library/tiny/manifests/..%2f..%2f..%2f..%2fsecret.txt",
    "/v2/%2e%2e/%2e%2e/manifests/latest",
    "/v2/..%2F..%2Fsecret.txt/tags/list",
    "/v2/library/tiny/../../../secret.txt",
    "/org/tiny/resolve/main/%2e%2e/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/org/tiny/resolve/main/..%2F..%2F..%2F..%2Fsecret.txt",
    "/org/tiny/resolve/main//etc/passwd",
    "/org/tiny/resolve/main/%2Fetc%2Fpasswd",
    "/org/tiny/resolve/main/weights/..%5c..%5c..%5csecret.txt",
    "/org/tiny/resolve/main/config.json%00.txt",
    "/org/tiny/resolve/main/evil.txt",
    "/org/tiny/resolve/main/rel.txt",
    "/org/tiny/resolve/main/sneaky.bin",
    "/org/tiny/resolve/main/other-repo/models--org--tiny/refs/main",
    "/org/tiny/resolve/escape/config.json",
    "/org/tiny/resolve/..%2F..%2Frefs/config.json",
    "/org/tiny/resolve/%2e%2e/config.json",
    "/%2e%2e/%2e%2e/resolve/main/secret.txt",
    "/api/models/..%2F..%2Fsecret.txt/revision/main",
    "/api/models/org/tiny/tree/main/..%2f..%2f..",
    "/api/models/org--tiny/revision/main",
    "/datasets/%2e%2e/org/resolve/main/config.json",
]


def test_nothing_outside_the_stores_is_reachable(stores: Stores) -> None:
    with serving(stores, "--registry", stores.registry_host) as s:
        for path in HOSTILE:
            status, body = raw_get(s, path)
            assert 400 <= status < 500, (path, status)
            assert b"TOPSECRET" not in body, path
        status, body = raw_get(s, "/api/models/org/tiny/tree/main?recursive=true")
        assert status == 200
        for name in (b"evil.txt", b"rel.txt", b"sneaky.bin", b"other-repo"):
            assert name not in body  # links out of the repo's blobs are not files of it
        assert raw_get(s, "/org/tiny/resolve/main/config.json")[0] == 200
        assert s.alive()


def _rss(s: Served) -> int:
    return s.rss_kib()


def test_a_huge_header_is_refused_and_the_server_stays_up(stores: Stores) -> None:
    with serving(stores) as s:
        before = _rss(s)
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                try:
                    sock.sendall(
                        b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
                    )
                    answer = sock.recv(200)
                except (BrokenPipeError, ConnectionResetError):
                    answer = b""  # cut off mid-header: refused too
                assert answer == b"" or answer.startswith(
                    (b"HTTP/1.0 400", b"HTTP/1.1 400", b"HTTP/1.1 431")
                )
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                many = b"".join(b"X-%d: y\r\n" % i for i in range(2000))
                try:
                    sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
                    answer = sock.recv(200)
                except (BrokenPipeError, ConnectionResetError):
                    answer = b""
                assert answer == b"" or answer.startswith(
                    (b"HTTP/1.0 400", b"HTTP/1.1 400", b"HTTP/1.1 431")
                )
        assert s.alive()
        after = _rss(s)
        print(f"\nhuge headers: VmRSS {before} KiB before, {after} KiB after")
        assert after - before < 50 * MiB_KiB


def test_slowloris_connections_are_closed_after_the_idle_timeout(stores: Stores) -> None:
    timeout = 1.0
    request = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"z" * 200 + b"\r\n\r\n"
    with serving(stores, "--idle-timeout", str(timeout)) as s:
        socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(20)]
        opened = time.monotonic()
        closed: dict[int, float] = {}
        sent = 0
        deadline = opened + timeout + 8
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for i, sock in enumerate(socks):  # one more byte on each, about every 0.25 s
                if i in closed:
                    continue
                try:
                    sock.sendall(request[sent : sent + 1])
                    sock.setblocking(False)
                    try:
                        if sock.recv(1) == b"":
                            closed[i] = time.monotonic() - opened
                    except BlockingIOError:
                        pass
                    finally:
                        sock.setblocking(True)
                except (BrokenPipeError, ConnectionResetError):
                    closed[i] = time.monotonic() - opened
            sent += 1
            assert s.get("/v2/")[0] == 200  # others are served meanwhile
            time.sleep(0.25)  # the attacker's pace: one byte per tick, never a whole head
        for sock in socks:
            sock.close()
        assert len(closed) == len(socks), f"{len(socks) - len(closed)} slow connections still open"
        assert max(closed.values()) < timeout + 3, closed
        low, high = min(closed.values()), max(closed.values())
        print(f"\nslowloris: 20 connections closed after {low:.2f}..{high:.2f} s", end="")
        print(f" (--idle-timeout {timeout} s, {sent} bytes sent on each)")
        assert s.alive()


async def _one(port: int, path: str, start: anyio.Event) -> tuple[str, bytes]:
    """Connect, wait until every client is connected, ask, read the whole answer."""
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return "refused", b""
    async with stream:
        await start.wait()
        try:
            await stream.send(
                f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            chunks = []
            while True:
                try:
                    chunks.append(await stream.receive(1 << 16))
                except anyio.EndOfStream:
                    break
        except (anyio.BrokenResourceError, OSError):
            return "reset", b""
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode() if head else "empty"
    return status, body


def hammer(port: int, path: str, n: int) -> list[tuple[str, bytes]]:
    async def main() -> list[tuple[str, bytes]]:
        results: list[tuple[str, bytes]] = []
        start = anyio.Event()

        async def client() -> None:
            results.append(await _one(port, path, start))

        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(client)
            await anyio.sleep(0.5)  # let every client connect first (connections at once)
            start.set()
        return results

    return anyio.run(main)


def test_200_concurrent_connections_are_served_or_refused_cleanly(stores: Stores) -> None:
    path = f"/v2/library/tiny/blobs/sha256:{hashlib.sha256(MODEL).hexdigest()}"
    with serving(stores, "--registry", stores.registry_host) as s:
        before = _rss(s)
        rounds = []
        for _ in range(3):
            results = hammer(s.port, path, 200)
            served = sum(1 for status, body in results if status == "200" and body == MODEL)
            rounds.append(served)
            assert len(results) == 200
            assert served == 200, sorted({st for st, _ in results})
        after = _rss(s)
        assert s.alive()
    growth = after - before
    print(f"\n200 concurrent x3 (700 KiB blob each): served {rounds};", end="")
    print(f" VmRSS {before} KiB before, {after} KiB after (+{growth} KiB)")
    assert after - before < 50 * MiB_KiB
    with serving(stores, "--registry", stores.registry_host, "--max-connections", "50") as s:
        results = hammer(s.port, path, 200)
        served = sum(1 for status, body in results if status == "200" and body == MODEL)
        busy = sum(1 for status, _ in results if status == "503")
        other = [st for st, body in results if not (st == "200" and body == MODEL) and st != "503"]
        print(
            f"200 concurrent at --max-connections 50: {served} served, {busy} answered 503,"
            f" {len(other)} other {sorted(set(other))}"
        )
        assert served + busy == 200 and busy > 0 and served >= 50
        assert s.alive()
