"""Hooks: real commands run when a job ends (foreground ``get`` and the daemon), with the job in
their environment, a time limit, and their output in the log; the simulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from pullman import config
from pullman.config import HooksConfig
from pullman.core.hooks import hook_env, notify_argv, parse_command
from pullman.core.jobs import JobOptions
from pullman.daemon import daemon_pid
from pullman.errors import UsageError
from pullman.hooks import Ending, Hooks
from pullman.procs import run_limited
from pullman.testing import Simulator, Status, make_data

from helpers import KiB, cli_env, pullman

ENV_KEYS = ("PULLMAN_JOB", "PULLMAN_REF", "PULLMAN_STATE", "PULLMAN_PATH")


def env_hook(tmp_path: Path, name: str = "hook.py") -> tuple[Path, Path]:
    """A hook script that writes its PULLMAN_* environment (and its cwd) to a JSON file."""
    out = tmp_path / f"{name}.json"
    script = tmp_path / name
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "doc = {k: v for k, v in os.environ.items() if k.startswith('PULLMAN_')}\n"
        "doc['cwd'] = os.getcwd(); doc['argv'] = sys.argv[1:]\n"
        f"open({str(out)!r}, 'w').write(json.dumps(doc))\n"
        "print('hook says hello'); print('hook stderr', file=sys.stderr)\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, out


def wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


# ---------------------------------------------------------------------- the pure parts


def test_commands_split_like_a_shell_but_run_without_one() -> None:
    assert parse_command("notify.sh --to 'my phone' $HOME", "x") == (
        "notify.sh",
        "--to",
        "my phone",
        "$HOME",
    )
    with pytest.raises(UsageError, match="cannot split"):
        parse_command("echo 'unbalanced", "--on-done")
    with pytest.raises(UsageError, match="empty"):
        parse_command("   ", "--on-done")


def test_the_environment_and_the_notification_command() -> None:
    env = hook_env(7, "qwen2.5:7b", "failed", None, "not found\nwhy: 404")
    assert env == {
        "PULLMAN_JOB": "7",
        "PULLMAN_REF": "qwen2.5:7b",
        "PULLMAN_STATE": "failed",
        "PULLMAN_PATH": "",
        "PULLMAN_ERROR": "not found",
    }
    have = {"osascript": "/usr/bin/osascript", "notify-send": "/usr/bin/notify-send"}.get
    mac = notify_argv("darwin", have, "t", 'a "quoted" ref')
    assert mac == ("osascript", "-e", 'display notification "a \\"quoted\\" ref" with title "t"')
    assert notify_argv("linux", have, "t", "m") == ("notify-send", "--app-name=pullman", "t", "m")
    assert notify_argv("linux", lambda _: None, "t", "m") is None
    assert notify_argv("win32", have, "t", "m") is None


def test_the_jobs_own_hook_wins_over_the_config() -> None:
    cfg = HooksConfig(on_done="from-config", on_failed="cfg-failed", notify=True)
    hooks = Hooks()
    own = JobOptions(on_done="mine")
    assert hooks.commands(cfg, own, "done") == [("on_done", "mine"), ("notify", "")]
    assert hooks.commands(cfg, own, "failed") == [("on_failed", "cfg-failed"), ("notify", "")]
    assert hooks.commands(cfg, own, "paused") == []
    # persisted with the job, and a rerun with other hooks is still the same request
    assert JobOptions.from_json(own.to_json()) == own
    assert own.same_request(JobOptions(on_failed="other", notify=True))


def test_a_bad_hooks_section_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "pullman.toml").write_text('[hooks]\non_done = "echo \'x"\n')
    with pytest.raises(UsageError, match=r"\[hooks\] on_done"):
        config.load(env={"PULLMAN_HOME": str(tmp_path)})
    (tmp_path / "pullman.toml").write_text("[hooks]\ntimeout = 0\n")
    with pytest.raises(UsageError, match="timeout"):
        config.load(env={"PULLMAN_HOME": str(tmp_path)})
    (tmp_path / "pullman.toml").unlink()
    r = pullman("get", "https://example.invalid/x", "--on-done", "'", home=tmp_path)
    assert r.returncode == 2 and "--on-done: cannot split" in r.stderr
    r = pullman("get", "qwen2.5:0.5b", "--via-server", "--notify", home=tmp_path)
    assert r.returncode == 2 and "not --via-server" in r.stderr


# ---------------------------------------------------------------------- running a command


def test_a_command_past_its_limit_is_killed_with_its_children() -> None:
    argv = ["sh", "-c", "sleep 60 & echo started; wait"]
    start = time.monotonic()
    finished = anyio.run(lambda: run_limited(argv, timeout=0.5))
    assert finished.returncode is None and finished.output == b"started\n"
    assert time.monotonic() - start < 5
    r = subprocess.run(["pgrep", "-f", "sleep 60"], capture_output=True, text=True, check=False)
    assert r.stdout.strip() == "", "the hook's child outlived the limit"


def test_notify_unavailable_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks(platform="linux", which=lambda _: None)
    ending = Ending(1, "m:1", "done", "/x")
    with caplog.at_level("INFO", logger="pullman.hooks"):
        anyio.run(hooks.run, HooksConfig(notify=True), JobOptions(), ending)
        anyio.run(hooks.run, HooksConfig(notify=True), JobOptions(), ending)
    said = [r for r in caplog.records if "notifications are not available" in r.message]
    assert len(said) == 1


def test_notify_runs_notify_send_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in ``notify-send`` first on PATH: found by the real lookup, and run."""
    fake = tmp_path / "bin" / "notify-send"
    fake.parent.mkdir()
    seen = tmp_path / "seen"
    fake.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {seen}\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    ending = Ending(3, "qwen2.5:7b", "done", "/p")
    anyio.run(Hooks(platform="linux").run, HooksConfig(notify=True), JobOptions(), ending)
    assert seen.read_text().splitlines() == [
        "--app-name=pullman",
        "pullman: download done",
        "qwen2.5:7b",
    ]


def test_a_hooks_output_is_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    line = "echo fetched https://cdn.example/b?X-Amz-Signature=s3cr3t with hf_abcdefghijklmnop"
    options = JobOptions(on_done=f"sh -c '{line}'")
    with caplog.at_level("INFO", logger="pullman.hooks"):
        anyio.run(Hooks().run, HooksConfig(), options, Ending(2, "m:1", "done", "/x"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "| fetched https://cdn.example/b?… with hf_…" in logged
    assert "s3cr3t" not in logged and "abcdefghijklmnop" not in logged


# ---------------------------------------------------------------------- foreground get


def test_on_done_hook_gets_the_job_in_its_environment(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("model.gguf", make_data(300 * KiB, 1))
    script, out = env_hook(tmp_path)
    dest = tmp_path / "dl" / "model.gguf"
    r = pullman(
        "-v", "get", sim.url("model.gguf"), "--sha256", f.sha256, "-o", str(dest),
        "--on-done", f"{script} 'two words'", home=tmp_path / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["PULLMAN_STATE"] == "done" and doc["PULLMAN_REF"] == sim.url("model.gguf")
    assert doc["PULLMAN_PATH"] == str(dest) and int(doc["PULLMAN_JOB"]) >= 1
    assert doc["argv"] == ["two words"]  # split with shlex, no shell
    assert doc["cwd"] == str(tmp_path)  # where the command was given
    assert "on_done hook (hook.py) ran" in r.stderr
    assert "| hook says hello" in r.stderr and "| hook stderr" in r.stderr
    assert str(script) not in r.stderr  # the command line is never logged


def test_a_failing_hook_does_not_fail_the_download(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(200 * KiB, 2))
    dest = tmp_path / "a.bin"
    r = pullman(
        "get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(dest),
        "--on-done", "sh -c 'echo broken; exit 9'", home=tmp_path / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == f.data
    assert "on_done hook (sh) exited 9" in r.stderr and "| broken" in r.stderr
    r = pullman(
        "get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(tmp_path / "b.bin"),
        "--on-done", "/no/such/program", home=tmp_path / "home",
    )  # fmt: skip
    assert r.returncode == 0 and "could not start" in r.stderr


def test_a_hanging_hook_is_killed_at_the_configured_limit(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(200 * KiB, 3))
    home = tmp_path / "home"
    home.mkdir()
    (home / "pullman.toml").write_text('[hooks]\non_done = "sleep 300"\ntimeout = 1\n')
    start = time.monotonic()
    r = pullman(
        "get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(tmp_path / "a.bin"), home=home
    )
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - start < 30
    assert "on_done hook (sleep) was killed after 1 s" in r.stderr


def test_on_failed_runs_for_a_failed_download(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("gone.bin", make_data(100 * KiB, 4), faults=[Status(code=404, times=-1)])
    script, out = env_hook(tmp_path)
    done_script, done_out = env_hook(tmp_path, "done.py")
    home = tmp_path / "home"
    r = pullman(
        "get", sim.url("gone.bin"), "-o", str(tmp_path / "gone.bin"),
        "--on-failed", str(script), "--on-done", str(done_script), home=home,
    )  # fmt: skip
    assert r.returncode == 3, r.stderr
    doc = json.loads(out.read_text())
    assert doc["PULLMAN_STATE"] == "failed" and doc["PULLMAN_PATH"] == ""
    assert "404" in doc["PULLMAN_ERROR"] or "not found" in doc["PULLMAN_ERROR"].lower()
    assert not done_out.exists()


# ---------------------------------------------------------------------- the daemon


def test_the_daemon_runs_a_jobs_persisted_hooks(sim: Simulator, tmp_path: Path) -> None:
    """Hook options travel with the job row: the daemon (another process) runs on_done for one
    job and on_failed for another, plus its own [hooks] on_failed from its config."""
    good = sim.add_file("good.bin", make_data(300 * KiB, 5))
    sim.add_file("bad.bin", make_data(100 * KiB, 6), faults=[Status(code=404, times=-1)])
    script, out = env_hook(tmp_path)
    cfg_script, cfg_out = env_hook(tmp_path, "cfg.py")
    home = tmp_path / "home"
    home.mkdir()
    (home / "pullman.toml").write_text(f'[hooks]\non_failed = "{cfg_script}"\n')
    env = cli_env(home)
    log = tmp_path / "daemon.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pullman", "daemon"], env=env, stdout=sink, stderr=sink
        )
    try:
        paths = config.Paths.from_env(env)
        wait_for("the daemon", lambda: daemon_pid(paths) == proc.pid)
        dest = tmp_path / "good.bin"
        r = pullman(
            "get", sim.url("good.bin"), "--sha256", good.sha256, "-o", str(dest),
            "--detach", "--on-done", str(script), home=home, env=env,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        wait_for("the on_done hook", out.exists)
        doc = json.loads(out.read_text())
        assert doc["PULLMAN_STATE"] == "done" and doc["PULLMAN_PATH"] == str(dest)
        r = pullman("get", sim.url("bad.bin"), "--detach", home=home, env=env)
        assert r.returncode == 0, r.stderr
        wait_for("the [hooks] on_failed hook", cfg_out.exists)
        assert json.loads(cfg_out.read_text())["PULLMAN_STATE"] == "failed"
        wait_for("the hook's log line", lambda: "on_failed hook (cfg.py) ran" in log.read_text())
        assert "| hook says hello" in log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert os.environ.get("PULLMAN_JOB") is None  # nothing leaked into the test's environment
