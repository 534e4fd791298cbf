"""``pullman serve`` as an OCI registry (the read API) over the Ollama store: the wire details
by plain HTTP, ``pullman get`` from it into another store, and a real registry (CNCF
distribution, Debian's ``docker-registry``) pulling through from it as a cache."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullman.testing import Simulator

from helpers import cli_env, free_port, pullman
from serve_fixtures import LAYERS, MODEL, Stores, fill_stores, serving

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    with Simulator() as sim:
        yield fill_stores(sim, tmp_path_factory.mktemp("stores"))


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_read_api_answers_as_a_registry_does(stores: Stores) -> None:
    with serving(stores, "--registry", stores.registry_host) as s:
        status, headers, body = s.get("/v2/")
        assert status == 200 and headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        assert json.loads(s.get("/v2/_catalog")[2]) == {"repositories": ["library/tiny"]}
        tags = json.loads(s.get("/v2/library/tiny/tags/list")[2])
        assert tags == {"name": "library/tiny", "tags": ["latest"]}
        for ref in ("latest", _digest(stores.manifest)):
            status, headers, body = s.get(f"/v2/library/tiny/manifests/{ref}")
            assert status == 200 and body == stores.manifest  # the stored bytes exactly
            assert headers["Docker-Content-Digest"] == _digest(stores.manifest)
            assert headers["Content-Type"] == MANIFEST_V2
        status, headers, body = s.get("/v2/library/tiny/manifests/latest", method="HEAD")
        assert (
            status == 200 and body == b"" and int(headers["Content-Length"]) == len(stores.manifest)
        )
        blob = f"/v2/library/tiny/blobs/{_digest(MODEL)}"
        status, headers, body = s.get(blob)
        assert status == 200 and body == MODEL and headers["Accept-Ranges"] == "bytes"
        assert headers["Docker-Content-Digest"] == _digest(MODEL)
        assert headers["ETag"] == f'"{_digest(MODEL)}"'
        status, headers, body = s.get(blob, {"Range": "bytes=1000-1999"})
        assert status == 206 and body == MODEL[1000:2000]
        assert headers["Content-Range"] == f"bytes 1000-1999/{len(MODEL)}"
        status, headers, body = s.get(blob, {"Range": "bytes=-10"})
        assert status == 206 and body == MODEL[-10:]
        status, headers, _ = s.get(blob, {"Range": f"bytes={len(MODEL)}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{len(MODEL)}"
        status, headers, body = s.get(blob, method="HEAD")
        assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(MODEL)


def _code(s: object, path: str) -> tuple[int, str]:
    status, _, body = s.get(path)  # type: ignore[attr-defined]
    return status, json.loads(body)["errors"][0]["code"]


def test_registry_errors_are_the_registry_json_codes(stores: Stores) -> None:
    with serving(stores, "--registry", stores.registry_host) as s:
        assert _code(s, "/v2/library/tiny/manifests/nope") == (404, "MANIFEST_UNKNOWN")
        assert _code(s, f"/v2/library/tiny/manifests/{_digest(b'x')}") == (404, "MANIFEST_UNKNOWN")
        assert _code(s, f"/v2/library/tiny/blobs/{_digest(b'x')}") == (404, "BLOB_UNKNOWN")
        assert _code(s, "/v2/library/nope/tags/list") == (404, "NAME_UNKNOWN")
        assert _code(s, "/v2/library/tiny/blobs/sha256:abc") == (400, "DIGEST_INVALID")
        assert _code(s, "/v2/library/tiny/blobs/md5:abc") == (400, "UNSUPPORTED")
        assert _code(s, "/v2/library/tiny/blobs/" + "sha256:" + "A" * 64) == (400, "DIGEST_INVALID")
        assert _code(s, "/v2/Library/Tiny/tags/list") == (400, "NAME_INVALID")
        assert _code(s, "/v2/library/tiny/manifests/-bad") == (400, "TAG_INVALID")
        # a blob in the store, but no manifest of this repository names it: not served
        assert _code(s, f"/v2/library/other/blobs/{_digest(MODEL)}") == (404, "BLOB_UNKNOWN")
    with serving(stores) as s:  # the default registry has no models in this store
        assert _code(s, "/v2/library/tiny/manifests/latest") == (404, "MANIFEST_UNKNOWN")
        assert json.loads(s.get("/v2/_catalog")[2]) == {"repositories": []}


def test_default_registry_models_are_served_under_plain_names(
    stores: Stores, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(stores.models / "blobs", models / "blobs")
    plain = models / "manifests" / "registry.ollama.ai" / "library" / "tiny"
    plain.mkdir(parents=True)
    (plain / "q4").write_bytes(stores.manifest)
    copy = Stores(tmp_path, models, stores.cache, "registry.ollama.ai", stores.manifest)
    with serving(copy) as s:
        status, _, body = s.get("/v2/library/tiny/manifests/q4")
        assert status == 200 and body == stores.manifest
        assert s.get(f"/v2/tiny/blobs/{_digest(MODEL)}")[2] == MODEL  # one part: library/


def test_pullman_get_from_serve_lands_byte_for_byte_in_another_store(
    stores: Stores, tmp_path: Path
) -> None:
    with serving(stores, "--registry", stores.registry_host) as s:
        other = tmp_path / "other"
        r = pullman("get", "--insecure", "--ollama-dir", str(other), f"{s.host}/library/tiny",
                    home=tmp_path / "home", env=cli_env(tmp_path / "home"))  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert (
            other / "manifests" / s.host / "library" / "tiny" / "latest"
        ).read_bytes() == stores.manifest
        for _, data in LAYERS:
            assert (
                other / "blobs" / f"sha256-{hashlib.sha256(data).hexdigest()}"
            ).read_bytes() == data
        assert "GET /v2/library/tiny/blobs/" in s.log()  # one access line per request


@pytest.fixture
def pull_through(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """docker-registry configured as a pull-through cache of whatever ``remote`` is set to."""
    if not Path(REGISTRY).exists():
        pytest.skip("needs Debian's docker-registry (scripts/test installs it)")
    yield str(free_port()), tmp_path


def _start_registry(
    port: str, root: Path, remote: str, password: str | None = None
) -> subprocess.Popen[bytes]:
    config = root / "registry.yml"
    auth = f"  username: lan\n  password: {password}\n" if password else ""
    config.write_text(
        "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nproxy:\n  remoteurl: {remote}\n{auth}"
    )
    with (root / "registry.log").open("wb") as out:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=out)
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                return proc
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(
                    f"docker-registry did not start: {(root / 'registry.log').read_text()[-2000:]}"
                )
            time.sleep(0.05)


def test_a_real_registry_pulls_through_from_serve(
    stores: Stores, pull_through: tuple[str, Path]
) -> None:
    port, root = pull_through
    with serving(stores, "--registry", stores.registry_host) as s:
        proc = _start_registry(port, root, s.url)
        try:
            base = f"http://127.0.0.1:{port}/v2/library/tiny"
            accept = {"Accept": MANIFEST_V2}
            with urllib.request.urlopen(
                urllib.request.Request(f"{base}/manifests/latest", headers=accept), timeout=20
            ) as r:
                assert r.read() == stores.manifest  # through the cache, byte for byte
                assert r.headers["Docker-Content-Digest"] == _digest(stores.manifest)
            for _, data in LAYERS:
                with urllib.request.urlopen(f"{base}/blobs/{_digest(data)}", timeout=20) as r:
                    assert r.read() == data
            home = root / "home"
            name = f"127.0.0.1:{port}/library/tiny"
            r2 = pullman("get", "--insecure", "--ollama-dir", str(root / "models"), name,
                         home=home, env=cli_env(home))  # fmt: skip
            assert r2.returncode == 0, r2.stderr
            stored = (
                root / "models" / "manifests" / f"127.0.0.1:{port}" / "library" / "tiny" / "latest"
            )
            assert stored.read_bytes() == stores.manifest
            assert (
                root / "models" / "blobs" / f"sha256-{hashlib.sha256(MODEL).hexdigest()}"
            ).read_bytes() == MODEL
            assert s.logged(f"GET /v2/library/tiny/blobs/{_digest(MODEL)}")  # from serve
            log = s.log()
            assert "/v2/library/tiny/manifests/latest" in log
        finally:
            proc.terminate()
            proc.wait(10)


def test_a_real_registry_pulls_through_with_the_token_as_its_password(
    stores: Stores, pull_through: tuple[str, Path]
) -> None:
    port, root = pull_through
    token = root / "token"
    token.write_text("lan-secret-456\n")
    with serving(stores, "--registry", stores.registry_host, "--token-file", str(token)) as s:
        proc = _start_registry(port, root, s.url, password="lan-secret-456")
        try:
            url = f"http://127.0.0.1:{port}/v2/library/tiny/blobs/{_digest(MODEL)}"
            with urllib.request.urlopen(url, timeout=20) as r:
                assert r.read() == MODEL
            assert s.logged(f'GET /v2/library/tiny/blobs/{_digest(MODEL)} HTTP/1.1" 200')
            log = s.log()
            assert '"GET /v2/token?' in log  # the docker token flow, with the token as password
            assert "lan-secret-456" not in log
        finally:
            proc.terminate()
            proc.wait(10)


def test_sigterm_stops_it_cleanly_and_a_taken_port_or_bad_address_is_a_clear_error(
    stores: Stores, tmp_path: Path
) -> None:
    with serving(stores) as s:
        assert s.alive()
        taken = s.port
        home = tmp_path / "home"
        r = pullman(
            "serve", "--listen", f"127.0.0.1:{taken}", "--ollama-dir", str(stores.models), home=home
        )
        assert (
            r.returncode == 69 and "the port is taken" in r.stderr and "Traceback" not in r.stderr
        )
        s.proc.send_signal(signal.SIGTERM)
        assert s.proc.wait(15) == 0
    r = pullman("serve", "--listen", "no.such.host:80", home=home)
    assert r.returncode == 2 and "is not an IP address" in r.stderr
    r = pullman("serve", "--listen", "192.0.2.77:8080", home=home)  # not an address of this box
    assert r.returncode == 2 and "cannot listen on" in r.stderr
    r = pullman("serve", "--listen", "127.0.0.1:99999", home=home)
    assert r.returncode == 2 and "is not a port" in r.stderr
    r = pullman("serve", "--allow", "10.0.0.0/33", home=home)
    assert r.returncode == 2 and "is not a network" in r.stderr
    with socket.socket() as probe:  # nothing left listening on the port it had
        assert probe.connect_ex(("127.0.0.1", taken)) != 0
