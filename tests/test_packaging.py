"""What ``pip install .`` builds: one version, the license, the templates as package data (Ollama's
chat templates and its license among them), and ``ollama`` as an optional extra only
``--via-server`` needs."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

import pullman
from pullman.cli import cli

from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if r.returncode != 0 and "No matching distribution" in r.stderr:
        pytest.skip("PyPI is out of reach here: cannot fetch setuptools>=77 to build")
    assert r.returncode == 0, r.stderr
    [built] = out.glob("pullman-*.whl")
    return built


def test_the_wheel_carries_templates_license_and_one_version(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        [meta_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = email.message_from_bytes(z.read(meta_name))
    assert {
        "pullman/templates/pullman.service",
        "pullman/templates/com.pullman.daemon.plist",
        "pullman/templates/ollama/index.json",
        "pullman/templates/ollama/chatml.gotmpl",
        "pullman/templates/ollama/chatml.json",
        "pullman/templates/ollama/LICENSE",
    } <= names
    vendored = {n for n in names if n.startswith("pullman/templates/ollama/")}
    shipped = {
        f"pullman/templates/ollama/{p.name}" for p in (ROOT / "pullman/templates/ollama").iterdir()
    }
    assert vendored == shipped
    assert "pullman/py.typed" in names
    dashboard = {f"pullman/api/static/{n}" for n in ("index.html", "dashboard.js", "dashboard.css")}
    assert dashboard <= names  # the dashboard works offline: every asset ships
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert meta["Version"] == pullman.__version__
    assert meta["License-Expression"] == "MIT"
    assert "Programming Language :: Python :: 3.11" in meta.get_all("Classifier", [])
    requires = meta.get_all("Requires-Dist", [])
    assert any(r.startswith("aiohttp") for r in requires)  # the daemon's API
    ollama = [r for r in requires if r.startswith("ollama")]
    assert ollama and all('extra == "ollama"' in r or 'extra == "test"' in r for r in ollama)


def test_the_installed_wheel_reads_its_templates(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    code = (
        "import pullman, pullman.service as s, pullman.templates as t; "
        "print(pullman.__file__); print(s.render_systemd('/usr/bin/pullman', {})); "
        "print(len(t.ollama_templates()), 'ollama templates')"
    )
    # -S: no site-packages (where the checkout is installed in editable mode); the service
    # module needs only the standard library.
    r = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={"PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target)) and "[Unit]" in r.stdout
    assert "37 ollama templates" in r.stdout


def test_via_server_without_the_ollama_package_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pullman.cli import get_cmd

    monkeypatch.setattr(get_cmd, "_have_ollama_client", lambda: False)
    result = CliRunner().invoke(cli, ["get", "--via-server", "llama3"])
    assert result.exit_code != 0
    assert "pullman[ollama]" in (getattr(result.exception, "hint", "") or "")
