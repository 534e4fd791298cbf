"""The CLI with a running Ollama server: the after-pull check and ``--via-server``.

The Ollama server binary cannot be installed here, so these run against the scripted stand-in of
its HTTP API (``pullman.testing.ollama_api``) on loopback.
"""

from __future__ import annotations

import json
from pathlib import Path

from pullman.testing import Simulator, make_data
from pullman.testing.ollama_api import OllamaAPI, PullScript
from pullman.testing.registry import OllamaRegistry

from helpers import MiB, cli_env, free_port, pullman


def test_after_pull_without_a_server_says_when_the_model_appears(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(MiB, 1))])
    env = cli_env(tmp_path, OLLAMA_HOST=f"http://127.0.0.1:{free_port()}")
    r = pullman(
        "get", "--insecure", "--ollama-dir", str(tmp_path / "models"),
        registry.name("library/tiny"), home=tmp_path, env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Ollama is not running here; the model will appear when it starts" in r.stdout


def test_after_pull_a_running_server_that_sees_it_is_ready(sim: Simulator, tmp_path: Path) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(MiB, 2))])
    name = registry.name("library/tiny")
    with OllamaAPI() as api:
        # The stand-in plays a server that reads the same models directory.
        api.add_model(f"{registry.host}/library/tiny:latest", [MiB], installed=True)
        env = cli_env(tmp_path, OLLAMA_HOST=api.url)
        r = pullman(
            "get", "--insecure", "--ollama-dir", str(tmp_path / "models"), name,
            home=tmp_path, env=env,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"ready: ollama run {registry.host}/library/tiny:latest" in r.stdout


def test_after_pull_a_server_reading_another_directory_is_flagged(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(MiB, 3))])
    with OllamaAPI() as api:
        env = cli_env(tmp_path, OLLAMA_HOST=api.url)
        r = pullman(
            "get", "--insecure", "--ollama-dir", str(tmp_path / "models"),
            registry.name("library/tiny"), home=tmp_path, env=env,
        )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "warning:" in r.stdout and "OLLAMA_MODELS" in r.stdout


def test_via_server_recycles_a_slowing_pull(tmp_path: Path) -> None:
    # Each pull stream gets 2 MiB fast, then crawls at 64 KiB/s: 6 MiB would take over a minute
    # on one stream; recycled every 2 s it finishes in a few seconds.
    script = PullScript(fast_rate=8 * MiB, burst_bytes=2 * MiB, slow_rate=64 * 1024)
    with OllamaAPI(script) as api:
        api.add_model("tinyllama", [6 * MiB, 1000])
        env = cli_env(tmp_path, OLLAMA_HOST=api.url)
        r = pullman(
            "get", "--via-server", "--recycle-after", "2", "tinyllama", "--json",
            home=tmp_path, env=env, timeout=90,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        [doc] = json.loads(r.stdout)
        assert doc["ref"] == "tinyllama:latest" and doc["restarts"] >= 2
        assert doc["size"] == 6 * MiB + 1000
        assert doc["elapsed"] < 60  # one stream alone: 2 MiB fast + 4 MiB at 64 KiB/s = 64 s
        assert api.pulls >= 3


def test_via_server_unknown_model_and_no_server(tmp_path: Path) -> None:
    with OllamaAPI() as api:
        env = cli_env(tmp_path, OLLAMA_HOST=api.url)
        r = pullman("get", "--via-server", "nonesuch", home=tmp_path, env=env)
    assert r.returncode == 3 and "Traceback" not in r.stderr
    env = cli_env(tmp_path, OLLAMA_HOST=f"http://127.0.0.1:{free_port()}")
    r = pullman("get", "--via-server", "tinyllama", home=tmp_path, env=env)
    assert r.returncode == 1
    assert "cannot reach the Ollama server" in r.stderr and "ollama serve" in r.stderr


def test_via_server_refuses_urls_and_store_flags(tmp_path: Path) -> None:
    r = pullman("get", "--via-server", "https://h/x.gguf", home=tmp_path)
    assert r.returncode == 2
    r = pullman("get", "--via-server", "--ollama-dir", "/x", "llama3", home=tmp_path)
    assert r.returncode == 2 and "--ollama-dir" in r.stderr
