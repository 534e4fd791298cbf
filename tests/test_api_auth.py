"""Who may use the daemon's API: the token on TCP (401 without it), the cookie traded for it once,
Origin / CSRF checks on every change (403), the file modes, and the token never in a log line.
Against a real daemon on loopback; the pure checks also on their own."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import httpx2
import pytest

from pullman.api.address import Listen, parse_listen
from pullman.api.auth import csrf_refusal, load_token, redacted, same_token
from pullman.errors import UsageError

from daemon_api import ApiDaemon
from helpers import cli_env, pullman


def queue_one(daemon: ApiDaemon, tmp_path: Path) -> int:
    with daemon.unix() as client:
        body = {"refs": ["http://127.0.0.1:9/x.bin"], "output": str(tmp_path / "x.bin")}
        r = client.post("/api/jobs", json=body)
    assert r.status_code == 201
    return int(r.json()["jobs"][0]["id"])


@pytest.mark.parametrize("path", ["/", "/api/health", "/api/jobs", "/api/jobs/1", "/api/events"])
def test_no_token_gets_401_and_nothing_about_jobs(
    daemon: ApiDaemon, tmp_path: Path, path: str
) -> None:
    queue_one(daemon, tmp_path)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Cookie": "pullman_token=wrong"}):
        r = httpx2.get(daemon.url + path, headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.json()["error"]["status"] == 401
        assert "x.bin" not in r.text and '"jobs"' not in r.text
    r = httpx2.get(daemon.url + "/?token=wrong", timeout=10, follow_redirects=False)
    assert r.status_code == 401 and "set-cookie" not in r.headers


def test_the_token_is_traded_once_for_a_strict_httponly_cookie(daemon: ApiDaemon) -> None:
    with httpx2.Client(base_url=daemon.url, timeout=10) as browser:
        r = browser.get(f"/?token={daemon.token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"  # the token leaves the URL
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        assert r.headers["cache-control"] == "no-store"
        page = browser.get("/")  # the cookie now opens the page and the API
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert browser.get("/api/jobs").status_code == 200


def test_every_change_checks_origin_or_the_csrf_header(daemon: ApiDaemon, tmp_path: Path) -> None:
    job_id = queue_one(daemon, tmp_path)
    host = daemon.url.removeprefix("http://")
    pause = f"/api/jobs/{job_id}/pause"
    with httpx2.Client(base_url=daemon.url, timeout=10) as browser:
        browser.get(f"/?token={daemon.token}")  # a browser holding the cookie
        assert browser.post(pause).status_code == 403  # no Origin, no CSRF header
        evil = {"Origin": "http://evil.example"}
        r = browser.post(pause, headers=evil)
        assert r.status_code == 403 and "evil.example" in r.json()["error"]["what"]
        r = browser.post(pause, headers={**evil, "X-Pullman-CSRF": "1"})
        assert r.status_code == 403  # a wrong Origin is refused whatever else is sent
        r = browser.put("/api/limit", json={"limit": "1MB/s"}, headers=evil)
        assert r.status_code == 403
        r = browser.post(pause, headers={"Origin": f"http://{host}"})  # the dashboard itself
        assert r.status_code == 200 and r.json()["job"]["state"] == "paused"
        assert browser.get(f"/api/jobs/{job_id}").status_code == 200  # reads need no check
    with daemon.tcp(csrf=False) as script:
        assert script.post(f"/api/jobs/{job_id}/resume").status_code == 403
    with daemon.tcp() as script:  # bearer + X-Pullman-CSRF: curl, scripts
        assert script.post(f"/api/jobs/{job_id}/resume").status_code == 200
    with daemon.unix() as cli:  # the socket: its 0600 mode is the check
        assert cli.post(f"/api/jobs/{job_id}/cancel").status_code == 200


def test_modes_and_the_token_never_in_the_log(daemon: ApiDaemon, tmp_path: Path) -> None:
    token = daemon.token
    token_file = daemon.paths.data / "api-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(daemon.socket.stat().st_mode)
    with httpx2.Client(base_url=daemon.url, timeout=10) as browser:
        browser.get(f"/?token={token}")
        browser.get(f"/api/jobs?token={token}")
        browser.get(f"/api/nowhere?x=1&token={token}")
    with daemon.tcp() as client:
        client.get("/api/health")
        client.post("/api/jobs", content=b"{broken")
    assert daemon.stop() == 0
    log = (tmp_path / "daemon.log").read_text()
    assert '"GET /?token=<redacted>" 303' in log  # the access log has the request, redacted
    assert token not in log
    assert "Traceback" not in log


def test_web_prints_the_dashboard_url_or_says_how_to_get_one(
    env: dict[str, str], tmp_path: Path, daemon: ApiDaemon
) -> None:
    home = tmp_path / "home"
    r = pullman("web", "--url", home=home, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{daemon.url}/?token={daemon.token}"
    with httpx2.Client(timeout=10, follow_redirects=True) as browser:  # it opens the page
        assert browser.get(r.stdout.strip()).status_code == 200
    script = tmp_path / "browser.py"  # a "browser" that notes the address it was given
    opened = tmp_path / "opened.txt"
    script.write_text(f"import sys, pathlib; pathlib.Path({str(opened)!r}).write_text(sys.argv[1])")
    browser = {**env, "BROWSER": f"{sys.executable} {script} %s"}
    r = pullman("web", "--open", home=home, env=browser)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert opened.read_text() == f"{daemon.url}/?token={daemon.token}"
    daemon.stop()
    r = pullman("web", "--url", home=home, env=env)
    assert r.returncode == 9 and "no pullman daemon is running" in r.stderr
    plain = ApiDaemon(env, tmp_path / "plain.log", listen=None)
    plain.start()
    try:
        r = pullman("web", home=home, env=env)
        assert r.returncode == 9
        assert "not serve its dashboard over TCP" in r.stderr and "--listen" in r.stderr
    finally:
        plain.stop()


def test_a_bad_or_busy_listen_address_is_a_usage_error(
    env: dict[str, str], tmp_path: Path, daemon: ApiDaemon
) -> None:
    r = pullman("daemon", "--listen", "nonsense", home=tmp_path / "home", env=env)
    assert r.returncode == 2 and "is not HOST:PORT" in r.stderr
    other = cli_env(tmp_path / "other", OLLAMA_HOST="http://127.0.0.1:9")
    port = daemon.url.rsplit(":", 1)[1]
    r = pullman("daemon", "--listen", f"127.0.0.1:{port}", home=tmp_path / "other", env=other)
    assert r.returncode == 2 and "cannot listen on" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------- the pure parts


def test_same_token_and_csrf_rules() -> None:
    assert same_token("abc", "abc") and not same_token("abd", "abc")
    assert not same_token(None, "abc") and not same_token("", "abc")
    host = {"Host": "127.0.0.1:8765"}
    assert csrf_refusal("GET", host) is None
    assert csrf_refusal("POST", host) is not None
    assert csrf_refusal("POST", {**host, "Origin": "http://127.0.0.1:8765"}) is None
    assert csrf_refusal("PUT", {**host, "Origin": "http://127.0.0.1:9999"}) is not None
    assert csrf_refusal("DELETE", {**host, "X-Pullman-CSRF": "1"}) is None
    origin_and_header = {**host, "Origin": "null", "X-Pullman-CSRF": "1"}
    assert csrf_refusal("POST", origin_and_header) is not None


def test_redacted_hides_every_token_value() -> None:
    line = 'GET /?token=s3cr3t&x=1 "/api?TOKEN=abc" token=zz'
    out = redacted(line)
    assert "s3cr3t" not in out and "abc" not in out and "zz" not in out
    assert out.count("<redacted>") == 3 and "&x=1" in out


def test_the_token_file_is_created_once_private(tmp_path: Path) -> None:
    assert load_token(tmp_path, create=False) is None
    token = load_token(tmp_path)
    assert token is not None and len(token) >= 40
    assert load_token(tmp_path) == token
    assert stat.S_IMODE((tmp_path / "api-token").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("text", "listen", "url"),
    [
        ("8765", Listen("127.0.0.1", 8765), "http://127.0.0.1:8765/"),
        (":8765", Listen("127.0.0.1", 8765), "http://127.0.0.1:8765/"),
        ("192.168.1.5:80", Listen("192.168.1.5", 80), "http://192.168.1.5:80/"),
        ("[::1]:8765", Listen("::1", 8765), "http://[::1]:8765/"),
        ("0.0.0.0:8765", Listen("0.0.0.0", 8765), "http://127.0.0.1:8765/"),
    ],
)
def test_listen_addresses(text: str, listen: Listen, url: str) -> None:
    assert parse_listen(text) == listen
    assert listen.url() == url
    assert parse_listen(text).loopback == (listen.host in ("127.0.0.1", "::1"))


@pytest.mark.parametrize("text", ["", "host", "1.2.3.4:", ":99999", "[::1]8765", "a:b"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(UsageError, match="HOST:PORT"):
        parse_listen(text)


def test_the_listener_can_come_from_the_environment(tmp_path: Path) -> None:
    """For the service: PULLMAN_LISTEN in its environment instead of an edited command line."""
    env = cli_env(tmp_path / "home", PULLMAN_LISTEN="127.0.0.1:0")
    d = ApiDaemon(env, tmp_path / "daemon.log", listen=None)
    d.start()
    try:
        assert d.url.startswith("http://127.0.0.1:")
        assert httpx2.get(d.url + "/api/health", timeout=10).status_code == 401
        with d.tcp() as client:
            assert client.get("/api/health").json()["listen"] == d.url + "/"
    finally:
        assert d.stop() == 0
