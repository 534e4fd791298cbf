"""CNCF distribution (Debian's ``docker-registry``) started for a test: a real OCI registry on
a free loopback port, its data and access log in the test's directory."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

REGISTRY = shutil.which("docker-registry") or "/usr/bin/docker-registry"


@dataclass(frozen=True)
class Started:
    host: str
    """``127.0.0.1:PORT``."""
    log: Path
    data: Path


def start_distribution(tmp_path: Path, extra: str = "", storage: str = "") -> Iterator[Started]:
    """Run docker-registry until the generator is closed; skips the test when it is missing.

    ``extra`` is more YAML under ``http:`` (then top-level sections, such as ``auth:``);
    ``storage`` more under ``storage:`` (``maintenance: readonly``...)."""
    if not Path(REGISTRY).exists():
        pytest.skip("needs Debian's docker-registry (scripts/test installs it)")
    port = free_port()
    data = tmp_path / "registry-data"
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {data}\n{storage}"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: pullman-test-secret\n{extra}"
    )
    log = tmp_path / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([REGISTRY, "serve", str(config)], stdout=out, stderr=out)
    host = f"127.0.0.1:{port}"
    try:
        _wait_up(host, proc, log)
        yield Started(host, log, data)
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_up(host: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://{host}/v2/", timeout=1):
                return
        except urllib.error.HTTPError:
            return  # 401: up, and wants auth
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"docker-registry did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)
