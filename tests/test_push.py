"""``pullman push`` into a real OCI registry (Debian's ``docker-registry``, CNCF distribution),
then ``pullman get`` from it into a fresh store: byte-exact. The model comes from the simulator
through ``pullman get`` (there is no ``ollama`` binary here: the pull back is pullman's).

Counts come from push's ``--json`` and from the registry's own access log."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pullman.core.push_target import parse_destination
from pullman.core.registry_auth import (
    Challenge,
    Lookup,
    lookup,
    parse_challenge,
    parse_config,
    parse_token,
    push_scopes,
    token_query,
)
from pullman.core.uploads import content_range, next_location, offset_from_range, with_query
from pullman.errors import ProtocolViolation, UsageError
from pullman.testing import Simulator, make_data
from pullman.testing.registry import OllamaRegistry

from distribution import start_distribution
from helpers import KiB, MiB, cli_env, pullman, spawn

MODEL = make_data(3 * MiB + 123, 31)
LAYERS = [("model", MODEL), ("template", b"{{ .Prompt }}"), ("license", b"MIT or so")]


# ---------------------------------------------------------------------- the pure parts


@pytest.mark.parametrize(
    ("text", "insecure", "want"),
    [
        ("registry.lan:5000/library/qwen2.5:7b", False,
         ("https", "registry.lan:5000", "library/qwen2.5", "7b")),
        ("registry.lan/library/tiny", True, ("http", "registry.lan", "library/tiny", "q4")),
        ("http://127.0.0.1:5000/a/b/c", False, ("http", "127.0.0.1:5000", "a/b/c", "q4")),
        ("localhost/tiny:v1", False, ("https", "localhost", "tiny", "v1")),
        ("Reg.Example.com/x__y/m-1.2", False, ("https", "reg.example.com", "x__y/m-1.2", "q4")),
    ],
)  # fmt: skip
def test_destinations_parse(text: str, insecure: bool, want: tuple[str, ...]) -> None:
    t = parse_destination(text, default_tag="q4", insecure=insecure)
    assert (t.scheme, t.host, t.repo, t.tag) == want


@pytest.mark.parametrize(
    "text",
    [
        "library/tiny",  # no host: docker would read "library" as a repo, not a registry
        "registry.lan:5000",
        "registry.lan:5000/",
        "registry.lan/Library/tiny",  # uppercase
        "registry.lan/a//b",
        "registry.lan/../etc",
        "registry.lan/a/b:bad tag",
        "registry.lan/a/b:" + "t" * 129,
        "http://registry.lan/a/b",  # plain http to a non-loopback host without --insecure
        "ftp://registry.lan/a/b",
    ],
)
def test_bad_destinations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_destination(text, default_tag="latest")


def test_upload_arithmetic() -> None:
    assert content_range(0, 10) == "0-9"
    assert content_range(1 << 20, 1) == "1048576-1048576"
    assert offset_from_range(None, size=100) == 0
    assert offset_from_range("0-0", size=100) == 0  # distribution's empty upload
    assert offset_from_range("0-49", size=100) == 50
    assert offset_from_range("bytes=0-99", size=100) == 100
    for bad in ("5-9", "0-100", "0--1", "x", "0-99999999999999999"):
        with pytest.raises(ProtocolViolation):
            offset_from_range(bad, size=100)
    base = "http://r:5000/v2/a/b/blobs/uploads/u?_state=abc%3D%3D"
    assert next_location(base, "/v2/a/b/blobs/uploads/u?_state=new") == (
        "http://r:5000/v2/a/b/blobs/uploads/u?_state=new"
    )
    assert next_location(base, None) == base
    with pytest.raises(ProtocolViolation):
        next_location(base, "file:///etc/passwd")
    put = with_query(base, digest="sha256:" + "0" * 64)
    assert put == f"{base}&digest=sha256%3A{'0' * 64}"


def test_docker_config_and_challenges() -> None:
    token = base64.b64encode(b"me:p:w").decode()
    auths = {"https://r.lan:5000/v1/": {"auth": token}, "other": {"username": "u", "password": "x"}}
    doc = parse_config(
        json.dumps({"auths": auths, "credHelpers": {"gcr.io": "gcloud"}}).encode(), "c"
    )
    found = lookup(doc, "R.lan:5000", "cfg").credentials
    assert found is not None and (found.username, found.password) == ("me", "p:w")
    assert "p:w" not in repr(found) and "p:w" not in str(found)
    assert found.basic() == "Basic " + token
    assert lookup(doc, "gcr.io", "cfg") == Lookup(None, "gcloud")  # named, never run
    assert lookup(doc, "nowhere:1", "cfg").credentials is None
    hub = parse_config(
        json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": token}}}).encode(), "c"
    )
    assert lookup(hub, "registry-1.docker.io", "c").credentials == replace(found, source="c")
    with pytest.raises(UsageError):
        lookup(parse_config(b'{"auths": {"r": {"auth": "!!"}}}', "cfg"), "r", "cfg")
    with pytest.raises(UsageError):
        parse_config(b"[1]", "cfg")
    bearer = parse_challenge('Bearer realm="https://auth.lan/token",service="reg",scope="x"')
    assert bearer is not None and bearer.scheme == "bearer"
    assert bearer.params["realm"] == "https://auth.lan/token"
    assert parse_challenge('Basic realm="registry"') == Challenge("basic", {})
    assert parse_challenge("Bearer nope") is None and parse_challenge(None) is None
    scopes = push_scopes("library/b", ["library/a", "library/b"])
    assert scopes == ("repository:library/b:pull,push", "repository:library/a:pull")
    assert token_query(bearer, scopes, "me") == (
        "service=reg&scope=repository%3Alibrary%2Fb%3Apull%2Cpush"
        "&scope=repository%3Alibrary%2Fa%3Apull&account=me"
    )
    assert parse_token(b'{"token": "abc"}') == "abc"
    assert parse_token(b'{"access_token": "def"}') == "def"
    assert parse_token(b'{"token": "a\r\nb"}') is None and parse_token(b"[]") is None


@dataclass
class Registry:
    host: str
    log: Path
    data: Path

    def lines(self, needle: str) -> list[str]:
        """Access-log lines that contain ``needle`` (e.g. ``"HEAD /v2/library/tiny/blobs"``)."""
        return [line for line in self.log.read_text().splitlines() if needle in line]


def start_registry(tmp_path: Path, extra: str = "", storage: str = "") -> Iterator[Registry]:
    for started in start_distribution(tmp_path, extra, storage):
        yield Registry(started.host, started.log, started.data)


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


def push(
    p: Pulled, dest: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return pullman("push", "--insecure", "--ollama-dir", str(p.models), p.name, dest, "--json",
                   *extra, home=p.home, env=env)  # fmt: skip


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


# ---------------------------------------------------------------------- what a user sees


def test_the_text_report_and_clear_errors(
    registry: Registry, pulled: Pulled, tmp_path: Path
) -> None:
    dest = f"{registry.host}/library/tiny:v2"
    r = pullman("push", "--insecure", "--ollama-dir", str(pulled.models), pulled.name, dest,
                "--progress", "none", home=pulled.home)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"pushed {pulled.name} to {dest}: blobs 4 uploaded, 0 mounted, 0 skipped" in r.stdout
    assert f"pull it with: ollama pull --insecure {dest}" in r.stdout

    def fails(*args: str) -> subprocess.CompletedProcess[str]:
        r = pullman("push", "--insecure", "--ollama-dir", str(pulled.models), *args,
                    home=pulled.home)  # fmt: skip
        assert "Traceback" not in r.stderr and r.stdout == ""
        return r

    assert fails("nope:1", dest).returncode == 3  # no such model here
    assert "no model nope:1" in fails("nope:1", dest).stderr
    assert fails(pulled.name, "library/tiny").returncode == 2  # no registry host
    assert fails(pulled.name, dest, "--chunk-size", "12").returncode == 2
    r = pullman("push", "--ollama-dir", str(pulled.models), pulled.name,
                "http://192.0.2.1/library/tiny", home=pulled.home)  # fmt: skip
    assert r.returncode == 2 and "--insecure" in r.stderr
    model = pulled.models / "blobs" / f"sha256-{hashlib.sha256(MODEL).hexdigest()}"
    damaged = bytearray(MODEL)
    damaged[1000] ^= 1
    model.write_bytes(bytes(damaged))  # same size, one bit off: the registry refuses it
    shutil.rmtree(pulled.home / "push")  # forget what was pushed: no mount to hide it
    r = fails(pulled.name, f"{registry.host}/library/damaged")
    assert r.returncode == 4 and "does not match its digest" in r.stderr, r.stderr
    model.unlink()
    r = fails(pulled.name, dest)
    assert r.returncode == 3 and "is incomplete" in r.stderr and "pullman get" in r.stderr


def test_a_read_only_registry_says_it_takes_no_pushes(pulled: Pulled, tmp_path: Path) -> None:
    readonly = "  maintenance:\n    readonly:\n      enabled: true\n"
    for reg in start_registry(tmp_path, storage=readonly):
        r = push(pulled, f"{reg.host}/library/tiny")
        assert r.returncode == 1, r.stderr
        assert "does not accept pushes" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------- a network that drops


class DroppingRelay:
    """A TCP relay in front of the registry that cuts every connection once ``budget`` bytes
    went towards the registry in all, once (a network drop in the middle of a chunk)."""

    def __init__(self, target: str, budget: int) -> None:
        import socket
        import threading

        self.target = target.rsplit(":", 1)
        self.budget = budget
        self.dropped = False
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.lock = threading.Lock()
        self.sent = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection((self.target[0], int(self.target[1])))
            for a, b, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pipe, args=(a, b, counted), daemon=True).start()

    def _pipe(self, src: Any, dst: Any, counted: bool) -> None:
        import socket

        try:
            while data := src.recv(65536):
                if counted:
                    with self.lock:
                        self.sent += len(data)
                        cut = not self.dropped and self.sent >= self.budget
                        self.dropped = self.dropped or cut
                    if cut:
                        dst.sendall(data[: len(data) // 2])
                        for s in (src, dst):
                            s.shutdown(socket.SHUT_RDWR)
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    def close(self) -> None:
        self.sock.close()


def test_a_dropped_connection_mid_chunk_is_retried_to_a_byte_exact_blob(
    registry: Registry, big: Pulled, tmp_path: Path
) -> None:
    relay = DroppingRelay(registry.host, budget=len(BIG) // 2)
    try:
        r = push(big, f"{relay.host}/library/tiny", "--chunk-size", str(256 * KiB))
        doc = summary(r)
    finally:
        relay.close()
    assert relay.dropped
    blob = model_blob(doc)
    assert blob["action"] == "uploaded" and blob["retries"] >= 1
    # distribution refuses an upload whose data outgrew the state it handed out (the half
    # chunk that got through), so the blob began again: said so, and sent in full twice over.
    assert blob["restarted"] == 1 and blob["sent"] >= len(BIG) + len(BIG) // 4, blob
    assert registry.lines("GET /v2/library/tiny/blobs/uploads/")  # it asked before starting over
    pull_back(registry, "library/tiny", "latest", tmp_path, big)
