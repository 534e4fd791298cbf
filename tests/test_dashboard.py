"""The dashboard in a real headless browser: Debian's chromium, driven by its chromedriver
(selenium), against a real daemon (``pullman daemon --listen``) downloading a throttled file
from the simulator.

``PULLMAN_SCREENSHOT=docs/dashboard.png`` makes the first test save a screenshot of the page
with the download in progress, and ``docs/dashboard-dark.png`` in dark mode
(``scripts/screenshot`` does that).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pullman.testing import Simulator, Throttle, make_data

from daemon_api import wait_for
from helpers import KiB, MiB, cli_env, free_port, pullman

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
SCREENSHOT = os.environ.get("PULLMAN_SCREENSHOT")

pytestmark = pytest.mark.slow


# ---------------------------------------------------------------------- the daemon


class Daemon:
    """``pullman daemon --listen 127.0.0.1:PORT`` in a subprocess, and its API over TCP."""

    def __init__(self, home: Path, log: Path, **env: str) -> None:
        self.home = home
        self.port = free_port()
        self.env = cli_env(home, OLLAMA_HOST="http://127.0.0.1:9", **env)
        self.base = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pullman", "daemon", "--listen", f"127.0.0.1:{self.port}"],
                env=self.env,
                cwd=home.parent,  # where a URL queued without a path lands
                stdout=out,
                stderr=out,
            )
        self.log = log
        self.token = wait_for("the API token", self._token, 30)
        wait_for("the API", self._healthy, 30)

    def _token(self) -> str | None:
        path = self.home / "api-token"
        text = path.read_text().strip() if path.exists() else ""
        return text or None

    def _healthy(self) -> bool:
        try:
            return bool(self.api("GET", "/api/health")["ok"])
        except (OSError, urllib.error.URLError):
            assert self.proc.poll() is None, self.log.read_text()
            return False

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("X-Pullman-CSRF", "1")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def job(self, job_id: int) -> dict[str, Any]:
        return self.api("GET", f"/api/jobs/{job_id}")["job"]  # type: ignore[no-any-return]

    def get(self, *args: str) -> int:
        r = pullman("get", *args, "--detach", "--json", home=self.home, env=self.env)
        assert r.returncode == 0, r.stderr
        return int(json.loads(r.stdout)[0]["id"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    # For the screenshot, requests as long as real ones (the test settings' are 256 KiB), so a
    # connection that slows down within one is recycled, as against a real CDN.
    env = {"PULLMAN_TRANSFER_PIECE_SIZE": "16MiB"} if SCREENSHOT else {}
    d = Daemon(tmp_path / "home", tmp_path / "daemon.log", **env)
    yield d
    d.stop()


# ---------------------------------------------------------------------- the browser


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")  # fmt: skip
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (test extra)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1100,1000",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
    ):
        options.add_argument(arg)  # fmt: skip
    if os.geteuid() == 0:
        options.add_argument("--no-sandbox")  # chromium refuses to run as root with its sandbox
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def card(driver: Any, job_id: int) -> Any:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, f'article.job[data-job="{job_id}"]')
    return found[0] if found else None


def bar_value(driver: Any, job_id: int) -> float:
    script = (
        f"const b = document.querySelector('article.job[data-job=\"{job_id}\"] progress.bar');"
        "return b ? b.value : -1;"
    )
    return float(driver.execute_script(script))


def text_of(driver: Any, job_id: int, selector: str) -> str:
    element = card(driver, job_id)
    if element is None:
        return ""
    from selenium.webdriver.common.by import By

    found = element.find_element(By.CSS_SELECTOR, selector)
    return str(found.get_attribute("textContent")).strip()  # also in the closed "Finished" box


def open_dashboard(driver: Any, daemon: Daemon) -> None:
    driver.get(f"{daemon.base}/?token={daemon.token}")
    assert "token=" not in driver.current_url  # traded for a cookie, out of the address bar
    wait_for("the page to connect", lambda: driver.find_element("id", "live").text == "live")


# ---------------------------------------------------------------------- the tests


def test_the_assets_name_nothing_outside_the_daemon_and_never_parse_html() -> None:
    """Offline by construction (no URL but the SVG namespace), and the daemon's text (a ref
    is untrusted) only ever set as textContent."""
    import re
    from importlib import resources

    folder = resources.files("pullman.api").joinpath("static")
    names = sorted(p.name for p in folder.iterdir() if p.is_file())
    assert names == ["dashboard.css", "dashboard.js", "index.html"]
    for name in names:
        text = folder.joinpath(name).read_text()
        urls = set(re.findall(r"https?://[\w.-]+[^\s\"'`)]*", text))
        urls -= {"http://www.w3.org/2000/svg"}
        assert not urls, (name, urls)
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, name
        assert "eval(" not in text, name


def test_the_page_lists_a_running_job_its_bar_moves_and_pause_pauses_it(
    sim: Simulator, tmp_path: Path, daemon: Daemon, browser: Any
) -> None:
    size = 12 * MiB if not SCREENSHOT else 96 * MiB
    if SCREENSHOT:  # a CDN-like throttle that pullman's recycling beats: bursts, then a crawl
        throttle = Throttle(burst=1536 * KiB, rate=48 * KiB, peak=640 * KiB)
    else:
        throttle = Throttle(rate=96 * KiB)
    f = sim.add_file("qwen2.5-7b-q4_k_m.gguf", make_data(size, 1), throttle=throttle)
    out = tmp_path / "models" / "qwen2.5-7b-q4_k_m.gguf"
    job_id = daemon.get(sim.url(f.name), "--sha256", f.sha256, "-o", str(out))
    if SCREENSHOT:
        _screenshot_extras(sim, tmp_path, daemon)
    wait_for("the job to run", lambda: daemon.job(job_id)["state"] == "running")

    open_dashboard(browser, daemon)
    wait_for("the job's card", lambda: card(browser, job_id))
    assert text_of(browser, job_id, ".ref") == sim.url(f.name)
    wait_for("the running badge", lambda: text_of(browser, job_id, ".badge") == "running")
    first = wait_for("some progress", lambda: max(bar_value(browser, job_id), 0.0))
    wait_for("the bar to move", lambda: bar_value(browser, job_id) > first, timeout=20)
    wait_for("a speed", lambda: "/s" in text_of(browser, job_id, ".f-rate"))
    wait_for("the connections", lambda: "connections" in text_of(browser, job_id, ".f-conns"))
    wait_for("the chart", lambda: browser.execute_script(
        f'return document.querySelector(\'article.job[data-job="{job_id}"] .line\')'
        ".getAttribute('d').length > 10"))  # fmt: skip
    if SCREENSHOT:
        browser.set_window_size(1000, 1400)
        browser.execute_script("document.getElementById('finished-box').open = true")
        time.sleep(25)  # let the chart grow a life worth showing
        browser.save_screenshot(SCREENSHOT)
        dark = [{"name": "prefers-color-scheme", "value": "dark"}]
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": dark})
        browser.save_screenshot(SCREENSHOT.removesuffix(".png") + "-dark.png")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    pause = card(browser, job_id).find_element("css selector", 'button[data-action="pause"]')
    pause.click()
    wait_for("the job to pause", lambda: daemon.job(job_id)["state"] == "paused")
    wait_for("the page to show it", lambda: text_of(browser, job_id, ".badge") == "paused")
    assert "paused by the user" in text_of(browser, job_id, ".why")
    resume = card(browser, job_id).find_element("css selector", 'button[data-action="resume"]')
    wait_for("the resume button", resume.is_displayed)
    resume.click()
    wait_for("the job to run again", lambda: daemon.job(job_id)["state"] == "running")
    assert not out.exists()


def test_limit_add_priority_and_cancel_from_the_page(
    sim: Simulator, tmp_path: Path, daemon: Daemon, browser: Any
) -> None:
    f = sim.add_file("slow.bin", make_data(8 * MiB, 2), throttle=Throttle(rate=64 * KiB))
    job_id = daemon.get(sim.url(f.name), "-o", str(tmp_path / "slow.bin"))
    wait_for("the job to run", lambda: daemon.job(job_id)["state"] == "running")
    open_dashboard(browser, daemon)
    wait_for("the job's card", lambda: card(browser, job_id))

    browser.find_element("id", "limit-value").send_keys("3MB/s")
    browser.find_element("css selector", "#limit button").click()
    wait_for("the limit", lambda: daemon.api("GET", "/api/limit")["limit"] == 3_000_000)
    wait_for("the page's limit", lambda: browser.find_element("id", "limit-shown").text == "3 MB/s")

    other = sim.add_file("other.bin", make_data(64 * KiB, 3))
    browser.find_element("id", "add-ref").send_keys(sim.url(other.name))
    browser.find_element("css selector", "#add button").click()
    jobs = wait_for("the added job", lambda: [
        j for j in daemon.api("GET", "/api/jobs")["jobs"] if j["ref"] == sim.url(other.name)
    ])  # fmt: skip
    wait_for("its card", lambda: card(browser, jobs[0]["id"]))
    wait_for("it to finish", lambda: daemon.job(jobs[0]["id"])["state"] == "done")
    assert (tmp_path / "other.bin").read_bytes() == other.data

    prio = card(browser, job_id).find_element("css selector", "input.priority")
    prio.clear()
    prio.send_keys("7\n")
    wait_for("the priority", lambda: daemon.job(job_id)["priority"] == 7)

    card(browser, job_id).find_element("css selector", 'button[data-action="cancel"]').click()
    wait_for("the job to be cancelled", lambda: daemon.job(job_id)["state"] == "cancelled")
    wait_for("the page to show it", lambda: text_of(browser, job_id, ".badge") == "cancelled")
    assert browser.find_element("id", "message").get_attribute("textContent") == ""  # no error


def test_readable_on_a_phone_in_light_and_dark(
    sim: Simulator, tmp_path: Path, daemon: Daemon, browser: Any
) -> None:
    f = sim.add_file("m.bin", make_data(4 * MiB, 4), throttle=Throttle(rate=32 * KiB))
    job_id = daemon.get(sim.url(f.name), "-o", str(tmp_path / "m.bin"))
    browser.set_window_size(390, 844)  # a phone's viewport
    open_dashboard(browser, daemon)
    wait_for("the job's card", lambda: card(browser, job_id))
    overflow = "return document.documentElement.scrollWidth - window.innerWidth"
    assert browser.execute_script(overflow) <= 0  # nothing wider than the screen
    background = "return getComputedStyle(document.body).backgroundColor"
    light = browser.execute_script(background)
    features = [{"name": "prefers-color-scheme", "value": "dark"}]
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": features})
    dark = browser.execute_script(background)
    assert light == "rgb(246, 247, 249)" and dark == "rgb(17, 20, 24)"
    scripts = "return [...document.scripts].map(s => s.src)"
    sheets = "return [...document.styleSheets].map(s => s.href)"
    for url in browser.execute_script(scripts) + browser.execute_script(sheets):
        assert url.startswith(daemon.base + "/static/"), url  # nothing from elsewhere


def test_without_the_token_the_page_gets_nothing(daemon: Daemon, browser: Any) -> None:
    browser.get(f"{daemon.base}/")
    body = browser.find_element("tag name", "body").text
    assert "needs its token" in body and "qwen" not in body
    browser.get(f"{daemon.base}/?token=wrong")
    assert "not this daemon's" in browser.find_element("tag name", "body").text


def _screenshot_extras(sim: Simulator, tmp_path: Path, daemon: Daemon) -> None:
    """For the screenshot: a job waiting for its window, a paused one and a finished one."""
    done = sim.add_file("nomic-embed-text.gguf", make_data(2 * MiB, 5))
    done_id = daemon.get(sim.url(done.name), "-o", str(tmp_path / "models" / done.name))
    wait_for("the small job", lambda: daemon.job(done_id)["state"] == "done")
    hour = (time.localtime().tm_hour + 2) % 24
    later = sim.add_file("llama3.1-70b-q4_k_m.gguf", make_data(MiB, 6))
    daemon.get(sim.url(later.name), "--window", f"{hour:02d}:00-{(hour + 5) % 24:02d}:00",
               "-o", str(tmp_path / "models" / later.name))  # fmt: skip
    paused = sim.add_file("deepseek-r1-14b.gguf", make_data(MiB, 7), throttle=Throttle(rate=KiB))
    paused_id = daemon.get(sim.url(paused.name), "--priority", "-1", "-o",
                           str(tmp_path / "models" / paused.name))  # fmt: skip
    daemon.api("POST", f"/api/jobs/{paused_id}/pause")
