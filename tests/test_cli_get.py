"""``pullman get URL`` end to end: the real command in a subprocess, the simulator on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pullman.testing import Simulator, Throttle, make_data
from pullman.transfer.staging import Staging

from helpers import KiB, MiB, cli_env, no_traceback, pullman, spawn


def test_get_url_with_sha256(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("model.gguf", make_data(2 * MiB, 1))
    out = tmp_path / "dl" / "model.gguf"
    r = pullman("get", sim.url("model.gguf"), "--sha256", f.sha256, "-o", str(out), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == f.data
    assert "verified" in r.stdout and str(out) in r.stdout
    assert not list((out.parent / ".pullman-partial").iterdir())


def test_default_destination_is_the_current_directory(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("weights.bin", make_data(300 * KiB, 2))
    here = tmp_path / "work"
    r = pullman("get", sim.url("weights.bin"), home=tmp_path / "home", cwd=here)
    assert r.returncode == 0, r.stderr
    assert (here / "weights.bin").read_bytes() == f.data  # as curl -O, wget and aria2c do
    assert "unverified" in r.stdout
    assert not (tmp_path / "home" / "downloads").exists()


def test_json_report(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(MiB, 3))
    r = pullman("get", sim.url("a.bin"), "--sha256", f.sha256, "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["status"] == "downloaded" and doc["verified"] is True
    assert doc["size"] == MiB and doc["sha256"] == f.sha256 and doc["discarded"] == 0


def test_second_run_is_a_no_op(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(MiB, 4))
    args = ("get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(tmp_path / "a.bin"))
    assert pullman(*args, home=tmp_path).returncode == 0
    sent = f.bytes_sent
    r = pullman(*args, home=tmp_path)
    assert r.returncode == 0 and "already present (verified)" in r.stdout
    assert f.bytes_sent == sent


def test_existing_different_file_needs_force(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(MiB, 5))
    target = tmp_path / "a.bin"
    target.write_bytes(b"something else")
    args = ("get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(target))
    r = pullman(*args, home=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr and no_traceback(r.stderr)
    assert target.read_bytes() == b"something else"
    r = pullman(*args, "--force", home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == f.data


def test_404_exit_code_and_message(sim: Simulator, tmp_path: Path) -> None:
    r = pullman("get", sim.url("nope.bin"), "-o", str(tmp_path / "x"), home=tmp_path)
    assert r.returncode == 3
    assert "not found" in r.stderr and no_traceback(r.stderr)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("ftp://host/file",), "not something pullman can fetch"),
        (("",), "empty ref"),
        (("http://",), "has no host"),
        (("https://h/x", "--sha256", "abc"), "not a sha256 digest"),
        (("https://h/x", "--connections", "0"), "Invalid value"),
        (("https://h/x", "https://h/y", "-o", "z"), "-o applies to a single URL"),
    ],
)
def test_bad_usage_exits_2(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    r = pullman("get", *args, home=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and no_traceback(r.stderr)


def test_unresolvable_host(tmp_path: Path) -> None:
    r = pullman("get", "http://no-such-host.invalid/m.gguf", home=tmp_path)
    assert r.returncode == 1
    assert "could not resolve host no-such-host.invalid" in r.stderr and no_traceback(r.stderr)


def test_bad_config_file_is_reported(tmp_path: Path, sim: Simulator) -> None:
    (tmp_path / "pullman.toml").write_text("[transfer]\nconections = 4\n")
    r = pullman("get", sim.url("x"), home=tmp_path)
    assert r.returncode == 2 and "unknown setting [transfer] conections" in r.stderr


def test_help_lists_exit_codes(tmp_path: Path) -> None:
    r = pullman("-h", home=tmp_path)
    assert r.returncode == 0 and "75" in r.stdout
    r = pullman("get", "--help", home=tmp_path)
    assert r.returncode == 0 and "--sha256" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop to an unprivileged user")
def test_unwritable_destination_as_unprivileged_user(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(MiB, 6))
    base = Path(tempfile.mkdtemp(prefix="pullman-perm-"))  # /tmp itself is world-traversable
    base.chmod(0o755)
    locked = base / "locked"
    locked.mkdir(mode=0o755)  # owned by root: the unprivileged user may not write here
    home = base / "home"
    home.mkdir()
    home.chmod(0o777)
    env = cli_env(home)
    r = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            sys.executable,
            "-m",
            "pullman",
            "get",
            sim.url("a.bin"),
            "--sha256",
            f.sha256,
            "-o",
            str(locked / "a.bin"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        assert r.returncode == 5, r.stderr
        assert "cannot write to" in r.stderr and no_traceback(r.stderr)
        assert not (locked / "a.bin").exists()
    finally:
        shutil.rmtree(base)


def test_unwritable_destination_without_root(sim: Simulator, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere; covered by the unprivileged-user test")
    f = sim.add_file("a.bin", make_data(MiB, 6))
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    r = pullman(
        "get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(locked / "a.bin"), home=tmp_path
    )
    assert r.returncode == 5 and "cannot write to" in r.stderr


def test_sigterm_stops_cleanly_and_the_rerun_resumes(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("slow.bin", make_data(4 * MiB, 7), throttle=Throttle(burst=0, rate=256 * KiB))
    out = tmp_path / "slow.bin"
    args = ("get", sim.url("slow.bin"), "--sha256", f.sha256, "-o", str(out), "--json")
    proc = spawn(*args, home=tmp_path)
    deadline = time.monotonic() + 30
    while f.bytes_sent < MiB and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=15)
    assert proc.returncode == 75, err
    assert "stopped by SIGTERM" in err and no_traceback(err)
    assert not out.exists()
    journal_file = next((tmp_path / ".pullman-partial").glob("*.journal"))
    journal = Staging(journal_file.parent, journal_file.stem).load_journal()
    assert journal is not None
    saved = sum(e - s for s, e in journal.done)
    assert saved >= MiB // 2  # what arrived before the signal was kept
    r = pullman(*args, home=tmp_path, timeout=60)
    assert r.returncode == 0, r.stderr
    [doc] = json.loads(r.stdout)
    assert doc["resumed"] >= saved and doc["discarded"] == 0
    assert out.read_bytes() == f.data


def test_dry_run_shows_the_plan_and_fetches_nothing(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("w.bin", make_data(300 * KiB, 8))
    out = tmp_path / "models" / "w.bin"
    r = pullman("get", sim.url("w.bin"), "-o", str(out), "--dry-run", "--json", home=tmp_path)
    assert r.returncode == 0, r.stderr
    [plan] = json.loads(r.stdout)
    assert plan["files"] == [
        {"name": "w.bin", "size": None, "digest": None, "dest": str(out), "present": False}
    ]
    assert not out.parent.exists()  # nothing made, nothing fetched
    assert f.bytes_sent == 0
    r = pullman("get", sim.url("w.bin"), "-o", str(out), "--dry-run", home=tmp_path)
    assert r.returncode == 0 and str(out) in r.stdout


def test_quiet_prints_only_the_path(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("w.bin", make_data(300 * KiB, 9))
    out = tmp_path / "w.bin"
    r = pullman("get", "-q", sim.url("w.bin"), "-o", str(out), home=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{out}\n" and r.stderr == ""
    assert out.read_bytes() == f.data


def test_a_token_is_read_from_a_file_never_from_the_command_line(
    sim: Simulator, tmp_path: Path
) -> None:
    sim.add_file("w.bin", make_data(10 * KiB, 10))
    token = tmp_path / "token"
    token.write_text("hf_from_a_file\n")
    r = pullman("get", "--detach", "--token", str(token), sim.url("w.bin"), home=tmp_path)
    assert r.returncode == 2 and "foreground" in r.stderr  # never queued with a token
    r = pullman("status", "--json", home=tmp_path)
    assert "hf_from_a_file" not in r.stdout
