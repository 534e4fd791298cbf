"""``pullman push`` into a real OCI registry (Debian's ``docker-registry``, CNCF distribution),
then ``pullman get`` from it into a fresh store: byte-exact. The model comes from the simulator
through ``pullman get`` (there is no ``ollama`` binary here: the pull back is pullman's).

Counts come from push's ``--json`` and from the registry's own access log."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pullman.testing import Simulator, make_data
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, free_port, pullman, spawn

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
MODEL = make_data(3 * MiB + 123, 31)
LAYERS = [("model", MODEL), ("template", b"{{ .Prompt }}"), ("license", b"MIT or so")]


@dataclass
class Registry:
    host: str
    log: Path
    data: Path

    def lines(self, needle: str) -> list[str]:
        """Access-log lines that contain ``needle`` (e.g. ``"HEAD /v2/library/tiny/blobs"``)."""
        return [line for line in self.log.read_text().splitlines() if needle in line]


def start_registry(tmp_path: Path, extra: str = "") -> Iterator[Registry]:
    if not Path(REGISTRY).exists():
        pytest.skip("needs Debian's docker-registry (scripts/test installs it)")
    port = free_port()
    data = tmp_path / "registry-data"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: pullman-test-secret\n{extra}"
    )
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=out)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                break
        except urllib.error.HTTPError:
            break  # 401: up, and wants auth
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    try:
        yield Registry(host, log, data)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    yield from start_registry(tmp_path)


@dataclass
class Pulled:
    models: Path
    name: str
    """The model's name in the store (the simulator's host/library/tiny:latest)."""
    raw: bytes
    blobs: dict[str, bytes]
    home: Path


def pull_from_simulator(sim: Simulator, tmp_path: Path, layers: list[tuple[str, bytes]]) -> Pulled:
    upstream = OllamaRegistry(sim)
    config = b'{"model_format":"gguf","model_family":"llama"}'
    raw = upstream.add_model("library/tiny", layers=layers, config=config)
    models, home = tmp_path / "models", tmp_path / "home"
    name = upstream.name("library/tiny")
    r = pullman("get", "--insecure", "--ollama-dir", str(models), name, home=home)
    assert r.returncode == 0, r.stderr
    blobs = {hashlib.sha256(d).hexdigest(): d for d in [config, *(d for _, d in layers)]}
    return Pulled(models, name, raw, blobs, home)


@pytest.fixture
def pulled(sim: Simulator, tmp_path: Path) -> Pulled:
    return pull_from_simulator(sim, tmp_path, LAYERS)


def push(p: Pulled, dest: str, *extra: str, env: dict[str, str] | None = None, home: Path | None = None):  # type: ignore[no-untyped-def]
    return pullman("push", "--insecure", "--ollama-dir", str(p.models), p.name, dest, "--json",
                   *extra, home=home or p.home, env=env)  # fmt: skip


def summary(r: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert r.returncode == 0, r.stderr
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


def pull_back(reg: Registry, repo: str, tag: str, tmp_path: Path, p: Pulled) -> None:
    """``pullman get`` from the registry into a fresh store: the same bytes, every one."""
    fresh = tmp_path / "fresh"
    r = pullman("get", "--insecure", "--ollama-dir", str(fresh), f"{reg.host}/{repo}:{tag}",
                home=tmp_path / "home2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ns, model = repo.split("/")
    assert (fresh / "manifests" / reg.host / ns / model / tag).read_bytes() == p.raw
    for hex_digest, data in p.blobs.items():
        assert (fresh / "blobs" / f"sha256-{hex_digest}").read_bytes() == data
    shutil.rmtree(fresh)


def test_push_then_pull_back_is_byte_exact_then_skips_then_mounts(
    registry: Registry, pulled: Pulled, tmp_path: Path
) -> None:
    total = sum(len(d) for d in pulled.blobs.values())
    dest = f"{registry.host}/library/tiny"
    first = summary(push(pulled, dest, "--chunk-size", "1MiB"))
    assert (first["uploaded"], first["skipped"], first["mounted"]) == (4, 0, 0)
    assert first["bytes_sent"] == total
    assert first["manifest_digest"] == "sha256:" + hashlib.sha256(pulled.raw).hexdigest()
    patches = registry.lines("PATCH /v2/library/tiny/blobs/uploads/")
    assert len(patches) == 4  # the 3 MiB model in 1 MiB chunks; small blobs in one PUT
    pull_back(registry, "library/tiny", "latest", tmp_path, pulled)

    second = summary(push(pulled, dest))
    assert (second["uploaded"], second["skipped"], second["mounted"]) == (0, 4, 0)
    assert second["bytes_sent"] == 0
    heads = registry.lines("HEAD /v2/library/tiny/blobs/sha256:")
    assert len([h for h in heads if '" 200 ' in h]) == 4
    assert len(registry.lines("PUT /v2/library/tiny/manifests/latest")) == 2

    other = summary(push(pulled, f"{registry.host}/library/other:v1"))
    assert (other["uploaded"], other["skipped"], other["mounted"]) == (0, 0, 4)
    assert other["bytes_sent"] == 0
    assert {b["mounted_from"] for b in other["blobs"]} == {"library/tiny"}
    mounts = registry.lines("POST /v2/library/other/blobs/uploads/?from=library%2Ftiny")
    mounts += registry.lines("POST /v2/library/other/blobs/uploads/?mount=")
    assert len([m for m in mounts if '" 201 ' in m]) == 4
    pull_back(registry, "library/other", "v1", tmp_path, pulled)


# ---------------------------------------------------------------------- interrupted pushes

BIG = make_data(8 * MiB + 77, 32)
BIG_HEX = hashlib.sha256(BIG).hexdigest()
CHUNK = 16 * KiB


def saved_offset(home: Path) -> int:
    """The model blob's offset in the push state file (-1: no upload saved)."""
    for path in (home / "push").glob("*.json"):
        doc = json.loads(path.read_text())
        for key, entry in doc["uploads"].items():
            if key.endswith(f"sha256:{BIG_HEX}"):
                return int(entry["offset"])
    return -1


def interrupt(p: Pulled, dest: str, sig: signal.Signals, after: int) -> int:
    """Start a push, stop it with ``sig`` once the state shows ``after`` bytes held; the
    offset saved when it ended."""
    args = ("push", "--insecure", "--ollama-dir", str(p.models), p.name, dest,
            "--chunk-size", str(CHUNK), "--json")  # fmt: skip
    proc = spawn(*args, home=p.home)
    deadline = time.monotonic() + 60
    while saved_offset(p.home) < after:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the push never got going"
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 75, err
        assert "Traceback" not in err
    else:
        assert proc.returncode == -signal.SIGKILL
    offset = saved_offset(p.home)
    assert 0 < offset < len(BIG)
    return offset


@pytest.fixture
def big(sim: Simulator, tmp_path: Path) -> Pulled:
    return pull_from_simulator(sim, tmp_path, [("model", BIG), ("license", b"MIT")])


def model_blob(doc: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(b for b in doc["blobs"] if b["digest"] == f"sha256:{BIG_HEX}")
    return found


def test_a_push_stopped_by_sigint_resumes_from_its_offset(
    registry: Registry, big: Pulled, tmp_path: Path
) -> None:
    dest = f"{registry.host}/library/tiny"
    offset = interrupt(big, dest, signal.SIGINT, after=8 * CHUNK)
    assert offset % CHUNK == 0  # the chunk in flight was let finish: nothing half-sent
    again = summary(push(big, dest, "--chunk-size", str(CHUNK)))
    blob = model_blob(again)
    assert blob["action"] == "uploaded" and blob["restarted"] == 0
    assert blob["resumed_from"] == offset  # continued where it stopped, not from 0
    assert blob["sent"] == len(BIG) - offset
    assert saved_offset(big.home) == -1  # nothing left unfinished
    pull_back(registry, "library/tiny", "latest", tmp_path, big)


def test_a_push_killed_with_sigkill_completes_byte_exact(
    registry: Registry, big: Pulled, tmp_path: Path
) -> None:
    """SIGKILL may land mid-chunk: distribution then refuses the stale upload state (it
    cancels an upload whose data outgrew it), and the blob starts again; between chunks it
    resumes. Either way the result is exact and said so in the summary."""
    dest = f"{registry.host}/library/tiny"
    offset = interrupt(big, dest, signal.SIGKILL, after=8 * CHUNK)
    blob = model_blob(summary(push(big, dest, "--chunk-size", str(CHUNK))))
    resumed = (blob["resumed_from"], blob["restarted"]) == (offset, 0)
    restarted = (blob["resumed_from"], blob["restarted"]) == (0, 1)
    assert resumed or restarted, blob
    assert blob["sent"] == len(BIG) - blob["resumed_from"]
    pull_back(registry, "library/tiny", "latest", tmp_path, big)


def test_an_upload_the_registry_forgot_starts_again(
    registry: Registry, big: Pulled, tmp_path: Path
) -> None:
    dest = f"{registry.host}/library/tiny"
    interrupt(big, dest, signal.SIGINT, after=4 * CHUNK)
    uploads = registry.data / "docker/registry/v2/repositories/library/tiny/_uploads"
    assert uploads.is_dir()
    shutil.rmtree(uploads)  # the registry purged it (as it does with old uploads)
    blob = model_blob(summary(push(big, dest, "--chunk-size", str(CHUNK))))
    assert (blob["resumed_from"], blob["restarted"], blob["sent"]) == (0, 1, len(BIG))
    assert registry.lines("GET /v2/library/tiny/blobs/uploads/")  # it asked first
    pull_back(registry, "library/tiny", "latest", tmp_path, big)


# ---------------------------------------------------------------------- credentials

USER, PASSWORD = "pusher", "s3cret-Pa55-word"
HTPASSWD = shutil.which("htpasswd")


@pytest.fixture
def basic_registry(tmp_path: Path) -> Iterator[Registry]:
    if HTPASSWD is None:
        pytest.skip("needs htpasswd (Debian's apache2-utils)")
    made = subprocess.run([HTPASSWD, "-Bbn", USER, PASSWORD], capture_output=True, check=True)
    users = tmp_path / "htpasswd"
    users.write_bytes(made.stdout)
    auth = f"auth:\n  htpasswd:\n    realm: pullman-test\n    path: {users}\n"
    yield from start_registry(tmp_path, auth)


def docker_config(directory: Path, host: str, user: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    doc = {"auths": {f"https://{host}": {"auth": token}}, "credsStore": "desktop"}
    (directory / "config.json").write_text(json.dumps(doc))
    return directory


def no_secret(*texts: str) -> bool:
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    return not any(PASSWORD in t or encoded in t for t in texts)


def test_basic_auth_from_the_docker_config_and_never_shown(
    basic_registry: Registry, pulled: Pulled, tmp_path: Path
) -> None:
    reg = basic_registry
    dest = f"{reg.host}/library/tiny"
    r = push(pulled, dest, env=cli_env(pulled.home, DOCKER_CONFIG=str(tmp_path / "none")))
    assert r.returncode == 6, r.stderr
    assert "wants credentials" in r.stderr and "docker login" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""

    wrong = docker_config(tmp_path / "wrong", reg.host, USER, "not-it")
    r = push(pulled, dest, env=cli_env(pulled.home, DOCKER_CONFIG=str(wrong)))
    assert r.returncode == 6, r.stderr
    assert f"refused user {USER!r}" in r.stderr and "not-it" not in r.stderr

    good = docker_config(tmp_path / "good", reg.host, USER, PASSWORD)
    r = pullman("-vv", "push", "--insecure", "--ollama-dir", str(pulled.models), pulled.name,
                dest, "--json", "--progress", "plain", home=pulled.home,
                env=cli_env(pulled.home, DOCKER_CONFIG=str(good)))  # fmt: skip
    assert summary(r)["uploaded"] == 4
    state = "".join(p.read_text() for p in (pulled.home / "push").glob("*"))
    assert no_secret(r.stdout, r.stderr, state)

    # the pull back needs the credentials too: prove the model is there with them
    request = urllib.request.Request(f"http://{reg.host}/v2/library/tiny/manifests/latest")
    request.add_header("Authorization", "Basic " + base64.b64encode(
        f"{USER}:{PASSWORD}".encode()).decode())  # fmt: skip
    request.add_header("Accept", "application/vnd.docker.distribution.manifest.v2+json")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.read() == pulled.raw


# ---------------------------------------------------------------------- bearer tokens


class TokenRealm:
    """A token service as docker's auth spec has it (what Harbor or Docker Hub run): Basic
    credentials in, a JWT out (RS256, signed by ``openssl``, its certificate in ``x5c``),
    granting what was asked for. Every request it answered is kept in ``seen``."""

    def __init__(self, directory: Path) -> None:
        import http.server
        import threading

        self.key, self.cert = directory / "token.key", directory / "token.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", self.key, "-out", self.cert, "-days", "2",
                        "-subj", "/CN=pullman test token issuer"],
                       check=True, capture_output=True)  # fmt: skip
        der = subprocess.run(["openssl", "x509", "-in", self.cert, "-outform", "DER"],
                             check=True, capture_output=True).stdout  # fmt: skip
        self.x5c = base64.b64encode(der).decode()
        self.seen: list[tuple[str, str | None]] = []
        realm = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                realm.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, handler: Any) -> None:
        from urllib.parse import parse_qs, urlsplit

        auth = handler.headers.get("Authorization")
        self.seen.append((handler.path, auth))
        wanted = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if auth != wanted:
            handler.send_response(401)
            handler.end_headers()
            return
        query = parse_qs(urlsplit(handler.path).query)
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.split(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",")})
        body = json.dumps({"token": self.sign(access), "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def sign(self, access: list[dict[str, Any]]) -> str:
        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": "pullman-test", "sub": USER, "aud": "pullman-registry", "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": str(time.monotonic_ns()),
                  "access": access}  # fmt: skip
        signing = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key],
                                   input=signing.encode(), check=True,
                                   capture_output=True).stdout  # fmt: skip
        return f"{signing}.{b64(signature)}"


@pytest.fixture
def token_registry(tmp_path: Path) -> Iterator[tuple[Registry, TokenRealm]]:
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to sign tokens")
    realm = TokenRealm(tmp_path)
    auth = (f"auth:\n  token:\n    realm: {realm.url}\n    service: pullman-registry\n"
            f"    issuer: pullman-test\n    rootcertbundle: {realm.cert}\n")  # fmt: skip
    try:
        for reg in start_registry(tmp_path, auth):
            yield reg, realm
    finally:
        realm.close()


def test_bearer_tokens_from_the_realm_with_the_docker_credentials(
    token_registry: tuple[Registry, TokenRealm], pulled: Pulled, tmp_path: Path
) -> None:
    reg, realm = token_registry
    r = push(pulled, f"{reg.host}/library/tiny",
             env=cli_env(pulled.home, DOCKER_CONFIG=str(tmp_path / "none")))  # fmt: skip
    assert r.returncode == 6, r.stderr
    assert "wants credentials" in r.stderr and "Traceback" not in r.stderr

    good = docker_config(tmp_path / "good", reg.host, USER, PASSWORD)
    env = cli_env(pulled.home, DOCKER_CONFIG=str(good))
    runs = [push(pulled, f"{reg.host}/library/{repo}", env=env) for repo in ("tiny", "other")]
    first, other = map(summary, runs)
    assert first["uploaded"] == 4
    assert other["mounted"] == 4 and other["bytes_sent"] == 0
    asked = [path for path, auth in realm.seen if auth is not None]
    assert any("scope=repository%3Alibrary%2Fother%3Apull%2Cpush" in p for p in asked)
    assert any("scope=repository%3Alibrary%2Ftiny%3Apull" in p and "other" in p for p in asked)
    assert all("service=pullman-registry" in p and f"account={USER}" in p for p in asked)
    state = "".join(p.read_text() for p in (pulled.home / "push").glob("*"))
    shown = [t for run in runs for t in (run.stdout, run.stderr)]
    assert no_secret(*shown, state) and not any("eyJ" in t for t in [*shown, state])
