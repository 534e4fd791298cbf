"""Shared fixtures: a clean environment for every test, and a simulator on loopback.

Helpers (engine runs, the ``pullman`` command, fast settings) are in ``helpers.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from pullman.testing import Simulator

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
