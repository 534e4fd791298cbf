"""``pullman serve`` for the tests: stores filled by ``pullman get`` from the simulators, and
the real command started on a free port (``--listen 127.0.0.1:0 --json``: the first stdout line
says where it listens)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, cli_env, pullman

MODEL = make_data(700 * KiB, 31)
LAYERS = [("model", MODEL), ("template", b"{{ .Prompt }}"), ("license", b"MIT")]
FILES = {
    "config.json": b'{"architectures": ["Tiny"]}\n',
    "README.md": b"# tiny\n",
    "weights/model.safetensors": make_data(600 * KiB, 32),
    "tokenizer.json": make_data(3 * KiB, 33),
}


@dataclass
class Stores:
    """An Ollama store and an HF cache on disk, as ``pullman get`` left them."""

    root: Path
    models: Path
    cache: Path
    registry_host: str
    manifest: bytes
    commits: dict[str, str] = field(default_factory=dict)
    """repo id -> commit, for the Hub repos fetched."""

    def blob(self, data: bytes) -> Path:
        import hashlib

        return self.models / "blobs" / f"sha256-{hashlib.sha256(data).hexdigest()}"


def fill_stores(
    sim: Simulator, root: Path, hub_repos: Mapping[str, dict[str, Any]] | None = None
) -> Stores:
    """``library/tiny`` into an Ollama store and ``org/tiny`` (plus ``hub_repos``: repo id ->
    ``add_repo`` keywords) into an HF cache, each by the real ``pullman get``."""
    registry, hub = OllamaRegistry(sim), HubSimulator(sim)
    manifest = registry.add_model("library/tiny", layers=LAYERS)
    stores = Stores(root, root / "models", root / "hf", registry.host, manifest)
    hub.add_token("hf_box_token")
    repos: dict[str, dict[str, Any]] = {"org/tiny": {"files": FILES}, **(hub_repos or {})}
    env = cli_env(root / "home", HF_ENDPOINT=hub.endpoint, HF_HUB_CACHE=str(stores.cache),
                  HF_TOKEN="hf_box_token")  # fmt: skip
    r = pullman("get", "--insecure", "--ollama-dir", str(stores.models),
                registry.name("library/tiny"), home=root / "home", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    for repo_id, kw in repos.items():
        kw = dict(kw)
        kind = kw.get("repo_type", "model")
        stores.commits[repo_id] = hub.add_repo(repo_id, kw.pop("files"), **kw)
        ref = f"hf://{'datasets/' if kind == 'dataset' else ''}{repo_id}"
        r = pullman("get", ref, home=root / "home", env=env)
        assert r.returncode == 0, r.stderr
    return stores


@dataclass
class Served:
    proc: subprocess.Popen[str]
    host: str
    summary: dict[str, Any]
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def port(self) -> int:
        return int(self.host.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def logged(self, text: str, timeout: float = 10) -> bool:
        """Whether an access line with ``text`` appears (lines are written once an answer
        ends, which a caching registry's client may see before it does)."""
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def get(
        self, path: str, headers: Mapping[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.url + path, headers=dict(headers or {}), method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def alive(self) -> bool:
        return self.proc.poll() is None and self.get("/v2/")[0] in (200, 401, 403)


@contextmanager
def serving(stores: Stores, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """``pullman serve`` over ``stores`` (plus ``args``), stopped with SIGTERM at the end."""
    err = stores.root / f"serve-{time.monotonic_ns()}.log"
    cmd = [sys.executable, "-m", "pullman", "serve", "--listen", "127.0.0.1:0", "--json",
           "--ollama-dir", str(stores.models), "--cache-dir", str(stores.cache), *args]  # fmt: skip
    run_env = dict(env) if env is not None else cli_env(stores.root / "home")
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=run_env, cwd=stores.root
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"pullman serve did not start: {err.read_text()}")
    summary = json.loads(line)
    served = Served(proc, summary["listen"], summary, err)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def run_client(
    code: str, env: Mapping[str, str], timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Python ``code`` in a fresh interpreter (huggingface_hub reads HF_ENDPOINT at import)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    full.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
