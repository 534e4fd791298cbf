"""Behind a forward proxy: a real tinyproxy (Debian's package) between pullman and the simulator.

tinyproxy adds a ``Via`` header to every request it forwards, so the simulator tells proxied
requests from direct ones: a pull "went through the proxy" when every request the registry, Hub
and CDN saw carries it. The proxy's own log is read too. ``scripts/test`` installs tinyproxy;
without it these tests skip and say why.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullman.core.proxies import Proxies
from pullman.errors import UsageError
from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, MiB, cli_env, free_port, pullman

TINYPROXY = shutil.which("tinyproxy") or "/usr/bin/tinyproxy"
needs_tinyproxy = pytest.mark.skipif(
    not Path(TINYPROXY).exists(),
    reason="needs Debian's tinyproxy (scripts/test installs it: apt-get install tinyproxy)",
)


@dataclass
class Proxy:
    url: str
    log: Path

    def requests(self) -> list[str]:
        """The requests tinyproxy forwarded, as its log line shows them."""
        return [line for line in self.log.read_text().splitlines() if "Request (file" in line]


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Proxy]:
    yield from _tinyproxy(tmp_path)


@pytest.fixture
def auth_proxy(tmp_path: Path) -> Iterator[Proxy]:
    yield from _tinyproxy(tmp_path, auth=("puller", "s3cret-pw"))


def _tinyproxy(tmp_path: Path, auth: tuple[str, str] | None = None) -> Iterator[Proxy]:
    if not Path(TINYPROXY).exists():
        pytest.skip("needs Debian's tinyproxy (scripts/test installs it)")
    work = tmp_path / "tinyproxy"
    work.mkdir()
    work.chmod(0o777)  # tinyproxy may drop privileges before it opens its log
    port = free_port()
    log = work / "log"
    lines = [
        f"Port {port}",
        "Listen 127.0.0.1",
        "Timeout 60",
        f'LogFile "{log}"',
        "LogLevel Info",
        "MaxClients 256",
        "Allow 127.0.0.1",
    ]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    (work / "conf").write_text("\n".join(lines) + "\n")
    conf = str(work / "conf")
    proc = subprocess.Popen([TINYPROXY, "-d", "-c", conf], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("tinyproxy did not start")
    credentials = f"{auth[0]}:{auth[1]}@" if auth else ""
    try:
        yield Proxy(f"http://{credentials}127.0.0.1:{port}", log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def all_via_proxy(*origins: object) -> bool:
    seen = [s for origin in origins for s in origin.seen]  # type: ignore[attr-defined]
    return bool(seen) and all("tinyproxy" in s.headers.get("via", "") for s in seen)


def none_via_proxy(*origins: object) -> bool:
    seen = [s for origin in origins for s in origin.seen]  # type: ignore[attr-defined]
    return bool(seen) and not any("via" in s.headers for s in seen)


# ---------------------------------------------------------------------- the three sources


@needs_tinyproxy
def test_a_url_download_goes_through_the_proxy(
    sim: Simulator, proxy: Proxy, tmp_path: Path
) -> None:
    data = make_data(3 * MiB + 7, 1)
    sim.add_file("m.bin", data, via_cdn=True)
    env = cli_env(tmp_path / "home", HTTP_PROXY=proxy.url)
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "m.bin").read_bytes() == data
    assert all_via_proxy(sim.origin, sim.cdn)  # the probe, the redirect, every range
    assert len(proxy.requests()) == len(sim.origin.seen) + len(sim.cdn.seen)


@needs_tinyproxy
def test_an_ollama_pull_goes_through_the_proxy(
    sim: Simulator, proxy: Proxy, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(2 * MiB, 2))])
    env = cli_env(tmp_path / "home", http_proxy=proxy.url, OLLAMA_HOST="http://127.0.0.1:9")
    models = tmp_path / "models"
    args = ("get", "--insecure", "--ollama-dir", str(models), registry.name("library/tiny"))
    r = pullman(*args, home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert list((models / "manifests").rglob("latest"))
    assert all_via_proxy(sim.origin, sim.cdn)  # manifest, blob redirects, CDN ranges
    assert any("/manifests/latest" in line for line in proxy.requests())


@needs_tinyproxy
def test_a_hugging_face_pull_goes_through_the_proxy(
    sim: Simulator, proxy: Proxy, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    files = {"config.json": b'{"a": 1}\n', "model.safetensors": make_data(1 * MiB, 3)}
    hub.add_repo("org/tiny", files)
    env = cli_env(
        tmp_path / "home",
        ALL_PROXY=proxy.url,
        HF_ENDPOINT=hub.endpoint,
        HF_HUB_CACHE=str(tmp_path / "cache"),
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_XET="1",
    )
    r = pullman("get", "hf://org/tiny", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert all_via_proxy(sim.origin, sim.cdn)  # huggingface_hub's metadata calls included
    assert any("/api/models/org/tiny" in line for line in proxy.requests())


# ---------------------------------------------------------------------- bypass, config, failure


@needs_tinyproxy
def test_no_proxy_bypasses_it(sim: Simulator, proxy: Proxy, tmp_path: Path) -> None:
    sim.add_file("m.bin", make_data(512 * KiB, 4))
    env = cli_env(tmp_path / "home", HTTP_PROXY=proxy.url, NO_PROXY="localhost,127.0.0.1")
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert none_via_proxy(sim.origin)
    assert proxy.requests() == []


@needs_tinyproxy
def test_the_proxy_from_pullman_toml_and_none_to_ignore_the_environment(
    sim: Simulator, proxy: Proxy, tmp_path: Path
) -> None:
    sim.add_file("m.bin", make_data(256 * KiB, 5))
    config = tmp_path / "pullman.toml"
    config.write_text(f'[network]\nproxy = "{proxy.url}"\n')
    env = cli_env(tmp_path / "home", PULLMAN_CONFIG=str(config))
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "a.bin"), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert all_via_proxy(sim.origin)
    config.write_text('[network]\nproxy = "none"\n')
    sim.origin.seen.clear()
    env["HTTP_PROXY"] = "http://127.0.0.1:9"  # would fail if it were used
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "b.bin"), home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert none_via_proxy(sim.origin)


@needs_tinyproxy
def test_proxy_credentials_are_used_and_never_shown(
    sim: Simulator, auth_proxy: Proxy, tmp_path: Path
) -> None:
    sim.add_file("m.bin", make_data(256 * KiB, 6))
    env = cli_env(tmp_path / "home", HTTP_PROXY=auth_proxy.url)
    out = tmp_path / "m.bin"
    r = pullman("-vv", "get", sim.url("m.bin"), "-o", str(out), "--json", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    assert all_via_proxy(sim.origin)
    assert "s3cret-pw" not in r.stderr + r.stdout
    address = auth_proxy.url.split("@")[1]
    wrong = cli_env(tmp_path / "home", HTTP_PROXY=f"http://puller:wrong-pw@{address}")
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "x.bin"), home=tmp_path, env=wrong)
    assert r.returncode != 0 and "wrong-pw" not in r.stderr
    assert "Traceback" not in r.stderr


def test_a_dead_proxy_is_a_clear_error_within_seconds(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("m.bin", make_data(64 * KiB, 7))
    dead = f"http://user:hunter2@127.0.0.1:{free_port()}"
    env = cli_env(tmp_path / "home", HTTP_PROXY=dead)
    started = time.monotonic()
    r = pullman("get", sim.url("m.bin"), "-o", str(tmp_path / "m.bin"), home=tmp_path, env=env)
    elapsed = time.monotonic() - started
    assert r.returncode == 1, r.stderr
    assert "could not reach the proxy http://127.0.0.1:" in r.stderr
    assert "HTTPS_PROXY" in r.stderr  # the fix names where the proxy came from
    assert "hunter2" not in r.stderr and "Traceback" not in r.stderr
    assert sim.origin.seen == []
    assert elapsed < 30


# ---------------------------------------------------------------------- the rules, pure


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTPS_PROXY": "p:3128"}, "https://h/x", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:1"}, "http://h/x", None),
        ({"HTTP_PROXY": "http://p:1"}, "http://h/x", "http://p:1"),
        ({"http_proxy": "http://low:1", "HTTP_PROXY": "http://up:1"}, "http://h/x", "http://low:1"),
        ({"ALL_PROXY": "socks5://s:1080"}, "https://h/x", "socks5://s:1080"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://h/x", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"},
            "https://cdn.example.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"},
            "https://notexample.com/",
            "http://p:1",
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.com"},
            "https://example.com/",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "10.0.0.0/8"}, "https://10.2.3.4/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "::1"}, "https://[::1]:8443/", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "h:8443"}, "https://h/x", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "h:8443"}, "https://h:8443/x", None),
    ],
)
def test_which_proxy_a_url_goes_through(
    env: dict[str, str], url: str, expected: str | None
) -> None:
    assert Proxies.from_env(env).for_url(url) == expected


@pytest.mark.parametrize("value", ["socks4://bob:hunter2@proxy:1080", "http://bob:hunter2@:8080"])
def test_a_bad_proxy_url_is_refused_without_showing_its_password(value: str) -> None:
    with pytest.raises(UsageError) as info:
        Proxies.from_env({"HTTPS_PROXY": value}).for_url("https://h/x")
    message = info.value.explain()
    assert "HTTPS_PROXY" in message and "not a proxy URL" in message
    assert "hunter2" not in message and "bob" not in message
