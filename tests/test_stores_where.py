"""Which store: the flag, the environment, the user's own, or the installed Ollama service's;
who owns what ``sudo pullman get`` writes; and what a queued job records about where it lands."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.core.jobs import GetOptions, JobOptions
from pullman.index import Index
from pullman.layouts.ollama_home import Machine, models_dir
from pullman.scheduler import Scheduler
from pullman.testing import Simulator, make_data
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry

from helpers import KiB, cli_env, fast_env, pullman


def machine(tmp_path: Path, unit: str | None = None, dropin: str | None = None,
            home: Path | None = None) -> Machine:  # fmt: skip
    units = tmp_path / "systemd"
    units.mkdir(exist_ok=True)
    if unit is not None:
        (units / "ollama.service").write_text(unit)
    if dropin is not None:
        (units / "ollama.service.d").mkdir(exist_ok=True)
        (units / "ollama.service.d" / "override.conf").write_text(dropin)
    return Machine(unit_dirs=[units], user_home=lambda name: home if name == "ollama" else None)


UNIT = """[Unit]
Description=Ollama Service

[Service]
ExecStart=/usr/local/bin/ollama serve
User=ollama
Environment="PATH=/usr/bin:/bin"
Environment="OLLAMA_MODELS={models}"
"""


def test_the_service_store_from_its_unit_when_the_user_has_none(tmp_path: Path) -> None:
    store = tmp_path / "srv" / "models"
    store.mkdir(parents=True)
    m = machine(tmp_path, unit=UNIT.format(models=store))
    env = {"HOME": str(tmp_path / "home")}
    assert m.unit_models() == (store, tmp_path / "systemd" / "ollama.service")
    assert models_dir(None, env, m) == store


def test_a_drop_in_overrides_the_unit(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    m = machine(tmp_path, unit=UNIT.format(models=first),
                dropin=f"[Service]\nEnvironment=OLLAMA_MODELS={second}\n")  # fmt: skip
    assert models_dir(None, {"HOME": str(tmp_path / "home")}, m) == second


def test_the_package_default_is_the_ollama_users_home(tmp_path: Path) -> None:
    home = tmp_path / "usr-share-ollama"
    (home / ".ollama" / "models").mkdir(parents=True)
    m = machine(tmp_path, unit="[Service]\nUser=ollama\n", home=home)
    assert models_dir(None, {"HOME": str(tmp_path / "me")}, m) == home / ".ollama" / "models"


def test_precedence_flag_env_own_service_default(tmp_path: Path) -> None:
    home = tmp_path / "usr-share-ollama"
    (home / ".ollama" / "models").mkdir(parents=True)
    m = machine(tmp_path, home=home)
    me = tmp_path / "me"
    env = {"HOME": str(me), "OLLAMA_MODELS": str(tmp_path / "env")}
    assert models_dir(str(tmp_path / "flag"), env, m) == tmp_path / "flag"
    assert models_dir(None, env, m) == tmp_path / "env"
    env.pop("OLLAMA_MODELS")
    assert models_dir(None, env, m) == home / ".ollama" / "models"  # the user has none
    (me / ".ollama" / "models").mkdir(parents=True)
    assert models_dir(None, env, m) == me / ".ollama" / "models"  # the user's own wins
    (tmp_path / "bare").mkdir()
    nothing = machine(tmp_path / "bare")
    assert models_dir(None, {"HOME": str(tmp_path / "nobody")}, nothing) == (
        tmp_path / "nobody" / ".ollama" / "models"
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root: checks what sudo pullman get leaves")
def test_root_writes_into_a_store_as_its_owner(sim: Simulator, tmp_path: Path) -> None:
    registry = OllamaRegistry(sim)
    registry.add_model("library/tiny", layers=[("model", make_data(300 * KiB, 1))])
    models = tmp_path / "models"
    models.mkdir()
    os.chown(models, 65534, 65534)  # the store belongs to another user (ollama, say)
    args = ("get", "--insecure", "--ollama-dir", str(models), registry.name("library/tiny"))
    r = pullman(*args, home=tmp_path / "home")
    assert r.returncode == 0, r.stderr
    made = list(models.rglob("*"))
    assert any(p.name == "latest" for p in made) and any(p.parent.name == "blobs" for p in made)
    wrong = [str(p) for p in made if (p.lstat().st_uid, p.lstat().st_gid) != (65534, 65534)]
    assert wrong == []


def test_a_queued_job_records_its_stores_and_endpoint_but_no_token(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    hub.add_repo("org/tiny", {"config.json": b"{}\n"})
    cache = tmp_path / "submitter-cache"
    env = cli_env(tmp_path / "home", HF_HUB_CACHE=str(cache), HF_ENDPOINT=hub.endpoint,
                  HF_TOKEN="hf_secret_token", OLLAMA_MODELS=str(tmp_path / "ollama"))  # fmt: skip
    r = pullman("get", "--detach", "--json", "hf://org/tiny", home=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    r = pullman("status", "--json", home=tmp_path, env=env)
    options = json.loads(r.stdout)[0]["options"]
    assert options["hf_cache"] == str(cache)
    assert options["hf_endpoint"] == hub.endpoint
    assert options["ollama_dir"] == str(tmp_path / "ollama")
    assert "hf_secret_token" not in r.stdout


def test_the_daemon_downloads_into_the_submitters_cache_from_the_submitters_hub(
    sim: Simulator, tmp_path: Path
) -> None:
    hub = HubSimulator(sim)
    hub.add_repo("org/tiny", {"config.json": b'{"a": 1}\n'})
    cache = tmp_path / "submitter-cache"
    # The daemon's own environment has no HF_HUB_CACHE or HF_ENDPOINT (the autouse fixture
    # cleared them); the job row says where and from where.
    settings = config.load(env={"PULLMAN_HOME": str(tmp_path / "home"), **fast_env()})
    index = Index.open(settings.paths.index)
    options = GetOptions(hf_cache=str(cache), hf_endpoint=hub.endpoint)
    job = index.add_job("hf://org/tiny", JobOptions(options).to_json())
    anyio.run(lambda: Scheduler(settings, index).run(only=[job]))
    assert index.job(job).state == "done"  # type: ignore[union-attr]
    snapshot = next((cache / "models--org--tiny" / "snapshots").iterdir())
    assert (snapshot / "config.json").read_bytes() == b'{"a": 1}\n'
