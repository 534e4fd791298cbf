"""Helpers the tests share: engine runs in-process, the ``pullman`` command as a subprocess,
and the chaos harness. (Fixtures live in ``conftest.py``; settings in ``pullman.testing``.)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio

from pullman.core.digests import sha256
from pullman.core.plan import FileSpec
from pullman.testing.hub import HubSimulator
from pullman.testing.settings import KiB, MiB, fast_config, fast_env
from pullman.transfer.config import TransferConfig
from pullman.transfer.engine import Transfer
from pullman.transfer.stats import Outcome

ROOT = Path(__file__).resolve().parents[1]

__all__ = [
    "ROOT",
    "FastClock",
    "KiB",
    "MiB",
    "Recorder",
    "cli_env",
    "fast_config",
    "fast_env",
    "free_port",
    "load_chaoslib",
    "no_traceback",
    "pullman",
    "run_transfer",
    "spawn",
    "spec_for",
    "staging_is_clean",
]

# ---------------------------------------------------------------------- the engine in-process


def spec_for(url: str, tmp_path: Path, data: bytes | None = None, **kw: Any) -> FileSpec:
    digest = sha256(hashlib.sha256(data).hexdigest()) if data is not None else None
    fields: dict[str, Any] = {
        "url": url,
        "dest": tmp_path / "out" / "file.bin",
        "key": "test-file",
        "name": "file.bin",
        "size": len(data) if data is not None else None,
        "digest": digest,
    }
    fields.update(kw)
    return FileSpec(**fields)


class Recorder:
    """An injected sleep that records what was asked for, and sleeps only a tick."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await anyio.sleep(min(seconds, 0.01))


def run_transfer(
    spec: FileSpec,
    tmp_path: Path,
    config: TransferConfig | None = None,
    staging_dir: Path | None = None,
    **kw: Any,
) -> tuple[Outcome, Transfer]:
    staging = staging_dir or tmp_path / "staging"
    transfer = Transfer(spec, staging, config or fast_config(), **kw)
    outcome = anyio.run(transfer.run)
    return outcome, transfer


def staging_is_clean(tmp_path: Path) -> bool:
    staging = tmp_path / "staging"
    return not staging.exists() or not any(staging.iterdir())


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FastClock:
    """A scheduler wall clock where one real second is a minute (``speedup``)."""

    def __init__(self, start: datetime, speedup: float = 60.0) -> None:
        self.start = start
        self.speedup = speedup
        self.t0 = time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(time.monotonic() - self.t0) * self.speedup)

    def seconds_until(self, when: datetime) -> float:
        return (when - self.now()).total_seconds() / self.speedup


# ---------------------------------------------------------------------- the command


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    """The current environment without pullman's own variables, plus the fast settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULLMAN_")}
    env.update(fast_env())
    env["PULLMAN_HOME"] = str(home)
    env.update(extra)
    return env


def pullman(
    *args: str,
    home: Path,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m pullman ARGS`` to completion, output captured; in ``cwd`` (default:
    the directory that holds ``home``, so a URL without ``-o`` lands in the test's own)."""
    where = cwd or home.parent
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "pullman", *args],
        cwd=where,
        env=env or cli_env(home),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def spawn(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    home.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "pullman", *args],
        cwd=home.parent,
        env=env or cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def no_traceback(text: str) -> bool:
    return "Traceback" not in text


# ---------------------------------------------------------------------- the chaos harness


def load_chaoslib() -> ModuleType:
    """``scripts/chaoslib``, importable from the tests."""
    scripts = str(ROOT / "scripts")
    if scripts not in sys.path:
        sys.path.insert(0, scripts)
    import chaoslib

    return chaoslib


# ---------------------------------------------------------------------- TLS with a test CA


def local_address() -> str | None:
    """This machine's own non-loopback IPv4 address (no packet is sent), or None.

    pullman skips TLS verification for loopback hosts only, so a verified-TLS test needs a
    server on an address that is not loopback but still on this machine.
    """
    import ipaddress
    import socket

    for probe in ("192.0.2.1", "10.255.255.255", "198.51.100.1"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
                address = s.getsockname()[0]
            except OSError:
                continue
        if not ipaddress.ip_address(address).is_loopback:
            return str(address)
    return None


def make_test_ca(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``address`` (by openssl): (ca.pem, cert.pem, key.pem)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "ext.cnf"
    ext.write_text(f"subjectAltName=IP:{address}\nbasicConstraints=CA:FALSE\n")
    steps = [
        ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca,
         "-days", "2", "-subj", "/CN=pullman test CA"],
        ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={address}"],
        ["x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
         "-out", cert, "-days", "2", "-extfile", ext],
    ]  # fmt: skip
    for step in steps:
        subprocess.run(["openssl", *map(str, step)], check=True, capture_output=True)
    return ca, cert, key


def hub_env(tmp_path: Path, hub: HubSimulator, **extra: str) -> dict[str, str]:
    """The ``pullman`` command's environment against a Hub simulator: no token, no offline
    mode, the HF home and cache in ``tmp_path``, no Ollama server to find."""
    env = cli_env(tmp_path / "home")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE"):
        env.pop(name, None)
    env.update(
        HF_ENDPOINT=hub.endpoint,
        HF_HOME=str(tmp_path / "hf-home"),
        HF_HUB_CACHE=str(tmp_path / "cache"),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_XET="1",
        OLLAMA_HOST="http://127.0.0.1:9",
    )
    env.update(extra)
    return env
