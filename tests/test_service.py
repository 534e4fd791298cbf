"""Service files: the unit verifies, the plist parses, install/uninstall under a tmp HOME."""

from __future__ import annotations

import os
import plistlib
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import pullman.service as service
from pullman.errors import PullmanError, UsageError
from pullman.service import (
    LABEL,
    Host,
    RunResult,
    install,
    manager_for,
    render_launchd,
    render_systemd,
    serve_unit,
    service_env,
    status,
    uninstall,
)

from helpers import cli_env, pullman

EXE = "/opt/pullman/bin/pullman"
LAN = ("--listen", "192.168.1.10:11435", "--allow", "192.168.1.0/24")
"""Flags of `pullman serve` for a LAN, as `service install --serve -- ...` passes them."""


class FakeRunner:
    """Records commands instead of running them; answers from a script (default: success)."""

    def __init__(self, answers: dict[str, RunResult] | None = None) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.answers = answers or {}

    def __call__(self, argv: Sequence[str]) -> RunResult:
        self.calls.append(tuple(argv))
        for prefix, result in self.answers.items():
            if " ".join(argv).startswith(prefix):
                return result
        return RunResult(0, "", "")


def host(tmp_path: Path, manager: str, **kw: object) -> Host:
    fields: dict[str, object] = {
        "manager": manager,
        "home": tmp_path / "home",
        "uid": 501,
        "user": "ada",
        "exe": (EXE,),
        "environ": {"PULLMAN_HOME": "/data/pullman", "HF_TOKEN": "hf_secret", "PATH": "/bin"},
        "lingering": True,
    }
    fields.update(kw)
    return Host(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- systemd


def test_systemd_unit_has_what_the_service_needs() -> None:
    unit = render_systemd(EXE, {"PULLMAN_HOME": "/data/pullman"})
    lines = unit.splitlines()
    for line in (
        f"ExecStart={EXE} daemon",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=30",
        "SuccessExitStatus=75",
        "WantedBy=default.target",
        "Environment=PULLMAN_HOME=/data/pullman",
    ):
        assert line in lines
    settings = [line for line in lines if not line.startswith("#")]
    assert not [line for line in settings if re.search(r"@[A-Z_]+@", line)]


def test_systemd_without_env_leaves_no_placeholder_line() -> None:
    unit = render_systemd([EXE], {})
    assert "@ENVIRONMENT@" not in unit and "Environment=" not in unit


def test_systemd_quotes_awkward_paths() -> None:
    unit = render_systemd(
        ["/home/a b/100%/$x/python", "-m", "pull man", 'a"$b'], {"PULLMAN_HOME": '/my "p" 5%'}
    )
    assert 'ExecStart="/home/a b/100%%/$x/python" -m "pull man" "a\\"$$b" daemon' in unit
    assert 'Environment="PULLMAN_HOME=/my \\"p\\" 5%%"' in unit
    with pytest.raises(ValueError, match="quotes or backslashes"):
        render_systemd("/home/o'brien/bin/pullman", {})


def test_systemd_refuses_relative_programs_and_bad_env() -> None:
    with pytest.raises(ValueError, match="absolute"):
        render_systemd("pullman", {})
    with pytest.raises(ValueError, match="service file"):
        render_systemd(EXE, {"PULLMAN_HOME": "a\nExecStartPre=/bin/evil"})
    with pytest.raises(ValueError, match="service file"):
        render_systemd(EXE, {"BAD NAME": "x"})


def _verify(unit_dir: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "SYSTEMD_LOG_LEVEL": "notice"}
    unit = str(unit_dir / "pullman.service")
    done = subprocess.run(
        ["systemd-analyze", "--user", "verify", unit], capture_output=True, text=True, env=env
    )
    if "Failed to initialize manager" in done.stderr:  # no user manager possible here
        done = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
    return done


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian/Ubuntu: apt-get install systemd)",
)
@pytest.mark.parametrize("case", ["plain", "awkward", "serve"])
def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path, case: str) -> None:
    awkward = case == "awkward"
    bindir = tmp_path / ("my bin 100% $HOME" if awkward else "bin")
    bindir.mkdir()
    exe = bindir / "pullman"
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    units = tmp_path / "units"
    units.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {"PULLMAN_HOME": str(tmp_path / 'data "dir" 5%'), "OLLAMA_HOST": "127.0.0.1:11434"}
    argv = [str(exe), "--debug"] if not awkward else [str(exe), 'a "quoted" $arg', "100%"]
    unit = serve_unit(LAN) if case == "serve" else service.DAEMON
    (units / "pullman.service").write_text(render_systemd(argv, env, unit))
    done = _verify(units, runtime)
    assert done.returncode == 0, done.stderr
    assert "pullman.service" not in done.stderr, done.stderr  # no warnings about our unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_does_catch_a_missing_program(tmp_path: Path) -> None:
    """The check above is worth something: verify fails when the program does not exist."""
    units = tmp_path / "units"
    units.mkdir()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    (units / "pullman.service").write_text(render_systemd(str(tmp_path / "missing"), {}))
    assert _verify(units, runtime).returncode != 0


def test_install_systemd_writes_the_unit_and_enables_it(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd")
    runner = FakeRunner()
    lines = install(host=h, runner=runner)
    unit = tmp_path / "home" / ".config" / "systemd" / "user" / "pullman.service"
    assert unit.read_text() == render_systemd(EXE, {"PULLMAN_HOME": "/data/pullman"})
    assert runner.calls == [
        ("systemctl", "--user", "daemon-reload"),
        ("systemctl", "--user", "enable", "--now", "pullman.service"),
    ]
    assert "systemctl --user daemon-reload" in lines
    assert "systemctl --user enable --now pullman.service" in lines
    assert any(line.startswith("# wrote ") and str(unit) in line for line in lines)
    assert "hf_secret" not in unit.read_text() and "PATH" not in unit.read_text()


def test_install_systemd_dry_run_writes_and_runs_nothing(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd", lingering=False)
    runner = FakeRunner()
    echoed: list[str] = []
    lines = install("linux", dry_run=True, host=h, runner=runner, echo=echoed.append)
    assert runner.calls == []
    assert not (tmp_path / "home").exists()
    assert lines == echoed
    assert lines[0].startswith("mkdir -p ")
    assert lines[1].startswith("# would write ") and lines[1].endswith(" bytes)")
    assert lines[2:4] == [
        "systemctl --user daemon-reload",
        "systemctl --user enable --now pullman.service",
    ]
    assert "loginctl enable-linger ada" in lines[4]


def test_reinstall_restarts_only_a_changed_unit(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd")
    install(host=h, runner=FakeRunner())
    same = FakeRunner()
    install(host=h, runner=same)
    assert ("systemctl", "--user", "restart", "pullman.service") not in same.calls
    moved = FakeRunner()
    install(host=host(tmp_path, "systemd", exe=("/usr/local/bin/pullman",)), runner=moved)
    assert moved.calls[-1] == ("systemctl", "--user", "restart", "pullman.service")
    assert "ExecStart=/usr/local/bin/pullman daemon" in h.unit_path.read_text()


def test_install_refuses_a_program_systemd_cannot_run(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd", exe=("/home/o'brien/bin/pullman",))
    with pytest.raises(UsageError, match="cannot write a service file") as info:
        install(dry_run=True, host=h, runner=FakeRunner())
    assert info.value.hint and "quotes" in info.value.hint


def test_install_honours_xdg_config_home(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd", environ={"XDG_CONFIG_HOME": str(tmp_path / "xdg")})
    install(host=h, runner=FakeRunner())
    assert (tmp_path / "xdg" / "systemd" / "user" / "pullman.service").is_file()


def test_install_reports_a_failing_systemctl(tmp_path: Path) -> None:
    runner = FakeRunner(
        {"systemctl": RunResult(1, "", "Failed to connect to bus: No medium found\n")}
    )
    with pytest.raises(PullmanError) as info:
        install(host=host(tmp_path, "systemd"), runner=runner)
    assert info.value.what == "`systemctl --user daemon-reload` failed"
    assert info.value.why == "Failed to connect to bus: No medium found"
    assert info.value.hint and "enable-linger" in info.value.hint


def test_install_without_systemctl(tmp_path: Path) -> None:
    runner = FakeRunner({"systemctl": RunResult(127, "", "systemctl: command not found")})
    with pytest.raises(PullmanError) as info:
        install(host=host(tmp_path, "systemd"), runner=runner)
    assert info.value.hint and "pullman daemon" in info.value.hint


def test_uninstall_systemd(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd")
    install(host=h, runner=FakeRunner())
    dry = uninstall(dry_run=True, host=h, runner=FakeRunner())
    assert h.unit_path.exists()
    runner = FakeRunner({"systemctl --user disable": RunResult(1, "", "not loaded")})
    lines = uninstall(host=h, runner=runner)
    assert lines[0] == dry[0] == "systemctl --user disable --now pullman.service"
    assert "(that failed, which is fine here: not loaded)" in lines[1]
    assert f"rm -f {h.unit_path}" in lines
    assert runner.calls[-1] == ("systemctl", "--user", "daemon-reload")
    assert not h.unit_path.exists()
    assert uninstall(host=h, runner=FakeRunner())[0].startswith("# not installed")


def test_status_systemd(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd")
    show = "ActiveState=active\nMainPID=4242\nUnitFileState=enabled\n"
    got = status(host=h, runner=FakeRunner({"systemctl": RunResult(0, show, "")}))
    assert (got.installed, got.state, got.enabled, got.pid) == (False, "active", True, 4242)
    assert got.to_json()["path"].endswith("pullman.service")
    quiet = "ActiveState=inactive\nMainPID=0\nUnitFileState=\n"
    got = status(host=h, runner=FakeRunner({"systemctl": RunResult(0, quiet, "")}))
    assert (got.state, got.enabled, got.pid) == ("inactive", False, None)
    no_bus = RunResult(1, "", "Failed to connect to bus: No medium found")
    got = status(host=h, runner=FakeRunner({"systemctl": no_bus}))
    assert got.state.startswith("unknown (Failed to connect to bus")
    assert got.enabled is None


# ---------------------------------------------------------------------------- launchd


def test_launchd_plist_parses_and_has_the_keys_launchd_needs(tmp_path: Path) -> None:
    logs = tmp_path / "Logs" / "pullman"
    env = {"PULLMAN_HOME": "/data/p & <q>", "OLLAMA_MODELS": "/Volumes/ssd/models"}
    plist = plistlib.loads(render_launchd(["/usr/bin/python3", "-m", "pullman"], env, logs))
    assert plist["Label"] == LABEL
    assert plist["ProgramArguments"] == ["/usr/bin/python3", "-m", "pullman", "daemon"]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardOutPath"] == str(logs / "daemon.log")
    assert plist["StandardErrorPath"] == str(logs / "daemon.log")
    assert plist["EnvironmentVariables"] == env
    assert isinstance(plist["ExitTimeOut"], int)
    assert b"@" not in render_launchd(EXE, {}, logs)
    assert plistlib.loads(render_launchd(EXE, {}, logs))["EnvironmentVariables"] == {}


def test_launchd_refuses_relative_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absolute"):
        render_launchd("pullman", {}, tmp_path)
    with pytest.raises(ValueError, match="absolute"):
        render_launchd(EXE, {}, Path("logs"))


def test_install_launchd_writes_the_agent_and_bootstraps_it(tmp_path: Path) -> None:
    h = host(tmp_path, "launchd", environ={})
    runner = FakeRunner({"launchctl bootout": RunResult(3, "", "No such process")})
    lines = install(host=h, runner=runner)
    agent = tmp_path / "home" / "Library" / "LaunchAgents" / "com.pullman.daemon.plist"
    plist = plistlib.loads(agent.read_bytes())
    assert plist["ProgramArguments"] == [EXE, "daemon"]
    log_dir = tmp_path / "home" / "Library" / "Logs" / "pullman"
    assert log_dir.is_dir() and plist["StandardErrorPath"] == str(log_dir / "daemon.log")
    assert runner.calls == [
        ("launchctl", "bootout", "gui/501/com.pullman.daemon"),
        ("launchctl", "enable", "gui/501/com.pullman.daemon"),
        ("launchctl", "bootstrap", "gui/501", str(agent)),
    ]
    assert f"launchctl bootstrap gui/501 {agent}" in lines


def test_install_launchd_dry_run_and_pullman_home_logs(tmp_path: Path) -> None:
    h = host(tmp_path, "launchd", environ={"PULLMAN_HOME": str(tmp_path / "ph")})
    runner = FakeRunner()
    lines = install("darwin", dry_run=True, host=h, runner=runner)
    assert runner.calls == [] and not (tmp_path / "home").exists()
    assert f"mkdir -p {tmp_path / 'ph' / 'logs'}" in lines
    assert "launchctl enable gui/501/com.pullman.daemon" in lines
    assert f"launchctl bootstrap gui/501 {h.plist_path}" in lines


def test_uninstall_and_status_launchd(tmp_path: Path) -> None:
    h = host(tmp_path, "launchd")
    install(host=h, runner=FakeRunner())
    printed = (
        "gui/501/com.pullman.daemon = {\n\tstate = running\n\tpid = 777\n"
        "\tendpoints = {\n\t\tstate = active\n"
    )
    got = status(host=h, runner=FakeRunner({"launchctl print": RunResult(0, printed, "")}))
    assert (got.installed, got.state, got.pid, got.enabled) == (True, "running", 777, True)
    assert got.commands == ["launchctl print gui/501/com.pullman.daemon"]
    runner = FakeRunner()
    lines = uninstall(host=h, runner=runner)
    assert runner.calls == [("launchctl", "bootout", "gui/501/com.pullman.daemon")]
    assert not h.plist_path.exists() and h.log_dir.is_dir()  # logs are kept
    assert lines[-1].startswith("# logs are kept")
    missing = RunResult(113, "", 'Could not find service "com.pullman.daemon" in domain')
    got = status(host=h, runner=FakeRunner({"launchctl": missing}))
    assert (got.installed, got.state, got.enabled, got.pid) == (False, "not loaded", False, None)


# ---------------------------------------------------------------------------- odds and ends


def test_manager_for_platforms() -> None:
    assert manager_for("linux") == "systemd"
    assert manager_for("darwin") == "launchd"
    with pytest.raises(UsageError, match="win32"):
        manager_for("win32")


def test_service_env_passes_locations_not_secrets() -> None:
    env = {"PULLMAN_HOME": "/p", "OLLAMA_MODELS": "", "HF_TOKEN": "x", "OLLAMA_HOST": "h:1"}
    assert service_env(env) == {"PULLMAN_HOME": "/p", "OLLAMA_HOST": "h:1"}


def test_default_exe_is_absolute() -> None:
    exe = service.default_exe()
    assert Path(exe[0]).is_absolute()
    assert exe[1:] in ((), ("-m", "pullman"))


def test_current_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    h = Host.current("linux")
    assert h.manager == "systemd" and h.home == tmp_path and h.uid == os.getuid()


def test_the_templates_are_package_data() -> None:
    """One copy of each template, read the same way from a checkout and from an install."""
    assert "ExecStart=" in service.template(service.SYSTEMD_TEMPLATE)
    assert "<plist" in service.template(service.LAUNCHD_TEMPLATE)
    assert not hasattr(service, "_SYSTEMD_FALLBACK") and not hasattr(service, "_LAUNCHD_FALLBACK")


def test_proxy_variables_reach_the_service_unless_they_carry_credentials() -> None:
    env = service.service_env(
        {
            "HTTPS_PROXY": "http://proxy:3128",
            "no_proxy": "localhost,.lan",
            "ALL_PROXY": "socks5://user:secret@proxy:1080",
            "HOME": "/home/me",
        }
    )
    assert env == {"HTTPS_PROXY": "http://proxy:3128", "no_proxy": "localhost,.lan"}


# ---------------------------------------------------------------------------- pullman serve


def test_the_serve_unit_runs_serve_with_its_flags_and_has_no_reload() -> None:
    unit = render_systemd(EXE, {}, serve_unit(LAN))
    assert f"ExecStart={EXE} serve --listen 192.168.1.10:11435 --allow 192.168.1.0/24" in unit
    assert "Description=pullman serve" in unit
    assert "ExecReload" not in unit  # serve does not re-read its config on SIGHUP
    assert "ExecReload=/bin/kill -HUP $MAINPID" in render_systemd(EXE, {})  # the daemon does
    with pytest.raises(ValueError, match="control characters"):
        render_systemd(EXE, {}, serve_unit(["--listen", "a\nExecStartPre=/bin/evil"]))


def test_install_serve_writes_its_own_unit_next_to_the_daemon(tmp_path: Path) -> None:
    h = host(tmp_path, "systemd", unit=serve_unit(LAN))
    runner = FakeRunner()
    install(host=h, runner=runner)
    units = tmp_path / "home" / ".config" / "systemd" / "user"
    assert "serve --listen 192.168.1.10:11435" in (units / "pullman-serve.service").read_text()
    assert not (units / "pullman.service").exists()
    assert ("systemctl", "--user", "enable", "--now", "pullman-serve.service") in runner.calls
    uninstall(host=h, runner=runner)
    assert not (units / "pullman-serve.service").exists()


def test_install_serve_on_macos_is_a_second_launch_agent(tmp_path: Path) -> None:
    h = host(tmp_path, "launchd", environ={}, unit=serve_unit(LAN))
    runner = FakeRunner()
    install(host=h, runner=runner)
    agent = tmp_path / "home" / "Library" / "LaunchAgents" / "com.pullman.serve.plist"
    plist = plistlib.loads(agent.read_bytes())
    assert plist["Label"] == "com.pullman.serve"
    assert plist["ProgramArguments"] == [EXE, "serve", *LAN]
    assert plist["StandardOutPath"].endswith("/serve.log")
    assert ("launchctl", "bootstrap", "gui/501", str(agent)) in runner.calls
    daemon = plistlib.loads(render_launchd(EXE, {}, tmp_path))
    assert daemon["Label"] == LABEL and daemon["ProgramArguments"] == [EXE, "daemon"]


def test_cli_service_install_serve_dry_run(tmp_path: Path) -> None:
    home = tmp_path / "home"
    args = ("service", "install", "--serve", "--dry-run", "--json", "--", "--listen",
            "127.0.0.1:11435")  # fmt: skip
    r = pullman(*args, home=home, env=cli_env(home, HOME=str(home)))
    if sys.platform.startswith("linux"):
        assert r.returncode == 0, r.stderr
        assert "pullman-serve.service" in r.stdout
    r = pullman("service", "install", "--dry-run", "--", "--listen", "x", home=home)
    assert r.returncode == 2 and "--serve" in r.stderr


def test_cli_service_install_serve_refuses_flags_serve_would_refuse(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_env(home, HOME=str(home))
    r = pullman("service", "install", "--serve", "--dry-run", "--", "--no-such-flag", home=home,
                env=env)  # fmt: skip
    assert r.returncode == 2 and "--no-such-flag" in r.stderr, r.stderr
    assert not (home / ".config" / "systemd" / "user" / "pullman-serve.service").exists()
    r = pullman("service", "install", "--serve", "--", "--listen", "not-an-address", home=home,
                env=env)  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert not (home / ".config" / "systemd" / "user" / "pullman-serve.service").exists()
