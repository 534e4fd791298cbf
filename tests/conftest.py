"""Shared fixtures: a clean environment for every test, and a simulator on loopback.

Helpers (engine runs, the ``pullman`` command, fast settings) are in ``helpers.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pullman.testing import Simulator

from helpers import cli_env

if TYPE_CHECKING:
    from daemon_api import ApiDaemon

LEAKY = ("PULLMAN_", "HF_", "HUGGINGFACE_", "OLLAMA_", "XDG_")
"""Prefixes of variables from the developer's shell that would steer a test elsewhere."""
PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
KEPT = {"HF_HUB_DISABLE_TELEMETRY", "HF_HUB_DISABLE_XET", "HF_HUB_DISABLE_PROGRESS_BARS"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the stores, tokens, endpoints or proxies of the shell that runs pytest."""
    for name in list(os.environ):
        leaky = name.startswith(LEAKY) and name not in KEPT
        if leaky or name.lower() in PROXIES or name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator() as s:
        yield s


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The API tests' environment: a home in ``tmp_path``, no Ollama server to find."""
    return cli_env(tmp_path / "home", OLLAMA_HOST="http://127.0.0.1:9")


@pytest.fixture
def daemon(env: dict[str, str], tmp_path: Path) -> Iterator[ApiDaemon]:
    """A started ``pullman daemon`` with its API on TCP (test_api*.py, test_cli_api.py; other
    files define their own ``daemon``)."""
    from daemon_api import ApiDaemon

    d = ApiDaemon(env, tmp_path / "daemon.log")
    d.start()
    yield d
    if d.proc is not None:
        d.stop(signal.SIGKILL)
