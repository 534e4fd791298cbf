"""``pullman service install|uninstall|status``: run the daemon (or, ``--serve``, ``pullman
serve``) under the user's service manager.

- Linux: a systemd **user** unit, ``~/.config/systemd/user/pullman.service`` (``systemctl --user``).
- macOS: a launchd **LaunchAgent**, ``~/Library/LaunchAgents/com.pullman.daemon.plist``.

Both are rendered from templates shipped as package data (``pullman/templates/``) with the
absolute command of this pullman (its console script next to the running Python, else
``python -m pullman``) and pullman's location variables
(``PULLMAN_HOME``, ``PULLMAN_CONFIG``, ``OLLAMA_MODELS``, ``OLLAMA_HOST``, ``HF_HOME``) when they
are set, so the service finds the same stores as the shell that installed it. Credentials are
never copied into a service file.

Pure parts (:func:`render_systemd`, :func:`render_launchd`, :func:`plan_install`,
:func:`plan_uninstall`) are separate from the I/O that carries a plan out. Commands run through
an injectable ``runner``, so tests never touch the real ``systemctl`` or ``launchctl``; every
command run (or, with ``dry_run``, that would run) is returned as a shell line, and file steps
as ``# ...`` comment lines, for the CLI to print.
"""

from __future__ import annotations

import os
import plistlib
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, NamedTuple

from pullman.errors import PullmanError, UsageError
from pullman.fsio import write_atomic

Manager = Literal["systemd", "launchd"]

UNIT_NAME = "pullman.service"
LABEL = "com.pullman.daemon"
PASS_ENV = ("PULLMAN_HOME", "PULLMAN_CONFIG", "OLLAMA_MODELS", "OLLAMA_HOST", "HF_HOME")
"""Variables copied into the service when set: where pullman's state and the stores live."""
SYSTEMD_TEMPLATE = UNIT_NAME
LAUNCHD_TEMPLATE = f"{LABEL}.plist"
"""Package data in :mod:`pullman.templates`."""


@dataclass(frozen=True)
class Unit:
    """Which pullman command a service runs, and the names it is known by."""

    unit_name: str
    """The systemd unit's file name."""
    label: str
    """The launchd label (and the plist's file name without ``.plist``)."""
    args: tuple[str, ...]
    """pullman's arguments: ``daemon``, or ``serve`` and its flags."""
    description: str
    log_name: str
    """launchd's log file, in :attr:`Host.log_dir`."""
    reloads: bool
    """Whether SIGHUP re-reads the configuration (systemd ``ExecReload=``)."""


DAEMON = Unit(UNIT_NAME, LABEL, ("daemon",), "pullman model download daemon", "daemon.log", True)
"""The download daemon: ``pullman service install``."""


def serve_unit(args: Sequence[str] = ()) -> Unit:
    """``pullman serve`` with ``args`` (``--listen``, ``--allow``...): ``install --serve``."""
    return Unit(
        "pullman-serve.service",
        "com.pullman.serve",
        ("serve", *args),
        "pullman serve: models of this machine for the LAN (OCI registry and HF endpoint)",
        "serve.log",
        False,
    )


class RunResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str]], RunResult]


def run_command(argv: Sequence[str]) -> RunResult:
    """The real runner: runs ``argv`` (no shell), capturing its output."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=60)  # noqa: S603 - fixed argv, no shell
    except FileNotFoundError:
        return RunResult(127, "", f"{argv[0]}: command not found")
    except subprocess.TimeoutExpired:
        return RunResult(124, "", f"{shlex.join(argv)}: no answer within 60 s")
    return RunResult(done.returncode, done.stdout, done.stderr)


# ---------------------------------------------------------------------------- rendering


def render_systemd(exe: str | Sequence[str], env: Mapping[str, str], unit: Unit = DAEMON) -> str:
    """The user unit for the command ``exe`` (a path, or argv prefix) plus ``unit.args``."""
    program, *args = [*_argv(exe), *unit.args]
    _argv([program, *args])  # the same checks for the unit's own arguments
    if any(c in program for c in "\"'\\"):
        raise ValueError(f"systemd refuses programs with quotes or backslashes: {program}")
    # systemd expands $VARIABLES in the arguments, never in the program path.
    words = [_systemd_word(program, dollar=False), *(_systemd_word(a, dollar=True) for a in args)]
    exec_start = " ".join(words)
    assignments = [f"{k}={v}" for k, v in _checked_env(env).items()]
    environment = "".join(f"Environment={_systemd_word(a, dollar=False)}\n" for a in assignments)
    text = template(SYSTEMD_TEMPLATE)
    text = text.replace("ExecStart=@EXEC_START@", f"ExecStart={exec_start}")
    text = text.replace("Description=@DESCRIPTION@", f"Description={unit.description}")
    if not unit.reloads:
        text = re.sub(r"^ExecReload=.*\n", "", text, flags=re.MULTILINE)
    return re.sub(r"^@ENVIRONMENT@\n", lambda _: environment, text, flags=re.MULTILINE)


def render_launchd(
    exe: str | Sequence[str], env: Mapping[str, str], log_dir: Path, unit: Unit = DAEMON
) -> bytes:
    """The LaunchAgent plist (XML) for ``exe`` plus ``unit.args``, logging into ``log_dir``."""
    argv = _argv([*_argv(exe), *unit.args])
    if not log_dir.is_absolute():
        raise ValueError(f"log_dir must be absolute, got {log_dir}")
    plist = plistlib.loads(template(LAUNCHD_TEMPLATE).encode())
    words = {"@LOG_FILE@": str(log_dir / unit.log_name), "@LABEL@": unit.label}
    plist = _fill(plist, argv=argv, env=_checked_env(env), words=words)
    return plistlib.dumps(plist, sort_keys=False)


def _fill(value: Any, *, argv: list[str], env: Mapping[str, str], words: dict[str, str]) -> Any:
    """Replace the plist template's placeholders, recursively."""
    if isinstance(value, str):
        return words.get(value, value)
    if isinstance(value, list):
        out: list[Any] = []
        for item in value:
            out.extend(
                argv if item == "@PROGRAM@" else [_fill(item, argv=argv, env=env, words=words)]
            )
        return out
    if isinstance(value, dict):
        if "@ENVIRONMENT@" in value:
            return dict(env)
        return {k: _fill(v, argv=argv, env=env, words=words) for k, v in value.items()}
    return value


def _argv(exe: str | Sequence[str]) -> list[str]:
    argv = [exe] if isinstance(exe, str) else list(exe)
    if not argv or not Path(argv[0]).is_absolute():
        raise ValueError(f"the service needs an absolute program path, got {argv[:1]}")
    for arg in argv:
        if any(ord(c) < 32 for c in arg):
            raise ValueError(f"control characters in {arg!r}")
    return argv


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _checked_env(env: Mapping[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not _ENV_NAME.fullmatch(key) or any(ord(c) < 32 for c in value):
            raise ValueError(f"cannot put {key}={value!r} into a service file")
    return dict(env)


_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./$-]+")


def _systemd_word(word: str, *, dollar: bool) -> str:
    """One word of a unit-file command line or assignment, quoted and escaped for systemd."""
    word = word.replace("%", "%%")  # specifiers
    if dollar:
        word = word.replace("$", "$$")  # variable expansion (ExecStart= only)
    if _SYSTEMD_PLAIN.fullmatch(word):  # (the program is absolute: no "-", "@"... prefix)
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def template(name: str) -> str:
    """A template shipped with pullman (package data, the same in a checkout and installed)."""
    return resources.files("pullman.templates").joinpath(name).read_text(encoding="utf-8")


# ---------------------------------------------------------------------------- where and who


def default_exe() -> tuple[str, ...]:
    """How to start this pullman: its console script beside the running Python, else ``-m``."""
    python = Path(sys.executable).absolute()
    script = python.parent / "pullman"
    if script.is_file() and os.access(script, os.X_OK):
        return (str(script),)
    return (str(python), "-m", "pullman")


PROXY_ENV = tuple(
    name
    for base in ("https_proxy", "http_proxy", "all_proxy", "no_proxy")
    for name in (base, base.upper())
)
"""Proxy variables, copied too, so the daemon reaches the network the same way, unless they
carry credentials: those belong in ``[network] proxy`` in pullman.toml, not in a unit file."""


def service_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of :data:`PASS_ENV` (and :data:`PROXY_ENV`, without credentials) that are
    set (and not empty) in ``environ``."""
    env = {k: environ[k] for k in PASS_ENV if environ.get(k)}
    env.update((k, environ[k]) for k in PROXY_ENV if environ.get(k) and "@" not in environ[k])
    return env


def manager_for(platform: str) -> Manager:
    """``linux`` (or ``systemd``) -> systemd; ``darwin`` (or ``launchd``) -> launchd."""
    if platform.startswith("linux") or platform == "systemd":
        return "systemd"
    if platform == "darwin" or platform == "launchd":
        return "launchd"
    raise UsageError(
        f"pullman service does not support {platform!r}",
        hint="it installs a systemd user unit (Linux) or a LaunchAgent (macOS); elsewhere "
        "run `pullman daemon` from your own service manager",
    )


@dataclass(frozen=True)
class Host:
    """Where, for whom and with what command the service is installed."""

    manager: Manager
    home: Path
    uid: int
    user: str
    exe: tuple[str, ...]
    environ: Mapping[str, str] = field(default_factory=dict)
    lingering: bool = True
    """systemd only: whether the user's manager keeps running after logout."""
    unit: Unit = DAEMON
    """Which service: the daemon, or ``pullman serve``."""

    @classmethod
    def current(cls, platform: str | None = None, unit: Unit = DAEMON) -> Host:
        user = os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())
        return cls(
            manager=manager_for(platform or sys.platform),
            home=Path.home(),
            uid=os.getuid(),
            user=user,
            exe=default_exe(),
            environ=dict(os.environ),
            lingering=(Path("/var/lib/systemd/linger") / user).exists(),
            unit=unit,
        )

    @property
    def unit_path(self) -> Path:
        config = self.environ.get("XDG_CONFIG_HOME") or str(self.home / ".config")
        return Path(config) / "systemd" / "user" / self.unit.unit_name

    @property
    def plist_path(self) -> Path:
        return self.home / "Library" / "LaunchAgents" / f"{self.unit.label}.plist"

    @property
    def log_dir(self) -> Path:
        """launchd's log directory: under ``PULLMAN_HOME`` if set, else ``~/Library/Logs``."""
        home = self.environ.get("PULLMAN_HOME")
        if home:
            return Path(home).expanduser().absolute() / "logs"
        return self.home / "Library" / "Logs" / "pullman"

    @property
    def service_file(self) -> Path:
        return self.unit_path if self.manager == "systemd" else self.plist_path

    @property
    def domain(self) -> str:
        return f"gui/{self.uid}"


# ---------------------------------------------------------------------------- plans (pure)


@dataclass(frozen=True)
class Mkdir:
    path: Path


@dataclass(frozen=True)
class Write:
    path: Path
    data: bytes


@dataclass(frozen=True)
class Remove:
    path: Path


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    check: bool = True
    """Whether a failure stops the plan (``False``: e.g. unloading what may not be loaded)."""


@dataclass(frozen=True)
class Note:
    text: str


Step = Mkdir | Write | Remove | Run | Note


def plan_install(host: Host, existing: bytes | None = None) -> list[Step]:
    """The steps that install and start the service, in order.

    ``existing`` is the service file already installed, if any: a systemd unit that changed is
    restarted (``enable --now`` leaves a running service alone); launchd reloads it anyway.
    """
    try:
        data = _render_for(host)
    except ValueError as exc:
        raise UsageError(
            f"cannot write a service file for {shlex.join(host.exe)}",
            why=str(exc),
            hint="install pullman under a path without quotes or backslashes",
        ) from None
    if host.manager == "systemd":
        changed = existing is not None and existing != data
        name = host.unit.unit_name
        restart = [Run(("systemctl", "--user", "restart", name))] if changed else []
        linger = [] if host.lingering else [Note(_LINGER_NOTE.format(user=host.user))]
        return [
            Mkdir(host.unit_path.parent),
            Write(host.unit_path, data),
            Run(("systemctl", "--user", "daemon-reload")),
            Run(("systemctl", "--user", "enable", "--now", name)),
            *restart,
            *linger,
        ]
    target = f"{host.domain}/{host.unit.label}"
    return [
        Mkdir(host.plist_path.parent),
        Mkdir(host.log_dir),
        Write(host.plist_path, data),
        Run(("launchctl", "bootout", target), check=False),  # an older copy, if loaded
        Run(("launchctl", "enable", target)),
        Run(("launchctl", "bootstrap", host.domain, str(host.plist_path))),
        Note(f"logs: {host.log_dir / host.unit.log_name}"),
    ]


def _render_for(host: Host) -> bytes:
    env = service_env(host.environ)
    if host.manager == "systemd":
        return render_systemd(host.exe, env, host.unit).encode()
    return render_launchd(host.exe, env, host.log_dir, host.unit)


def plan_uninstall(host: Host) -> list[Step]:
    """The steps that stop the service and remove its file, in order (logs are kept)."""
    if host.manager == "systemd":
        return [
            Run(("systemctl", "--user", "disable", "--now", host.unit.unit_name), check=False),
            Remove(host.unit_path),
            Run(("systemctl", "--user", "daemon-reload"), check=False),
        ]
    return [
        Run(("launchctl", "bootout", f"{host.domain}/{host.unit.label}"), check=False),
        Remove(host.plist_path),
        Note(f"logs are kept in {host.log_dir}"),
    ]


_LINGER_NOTE = (
    "note: user services stop when {user} logs out; to keep downloading then, run: "
    "loginctl enable-linger {user}"
)


# ---------------------------------------------------------------------------- carrying out


def install(
    platform: str | None = None,
    *,
    dry_run: bool = False,
    unit: Unit = DAEMON,
    host: Host | None = None,
    runner: Runner = run_command,
    echo: Callable[[str], object] | None = None,
) -> list[str]:
    """Write the service file and start the service: the steps taken (dry: to take) as lines."""
    host = host or Host.current(platform, unit)
    try:
        existing: bytes | None = host.service_file.read_bytes()
    except OSError:
        existing = None
    return carry_out(plan_install(host, existing), dry_run=dry_run, runner=runner, echo=echo)


def uninstall(
    platform: str | None = None,
    *,
    dry_run: bool = False,
    unit: Unit = DAEMON,
    host: Host | None = None,
    runner: Runner = run_command,
    echo: Callable[[str], object] | None = None,
) -> list[str]:
    """Stop the service and remove its file: the steps taken (dry: to take) as lines."""
    host = host or Host.current(platform, unit)
    if not host.service_file.exists():
        steps: list[Step] = [Note(f"not installed: {host.service_file} does not exist")]
    else:
        steps = plan_uninstall(host)
    return carry_out(steps, dry_run=dry_run, runner=runner, echo=echo)


def carry_out(
    steps: Sequence[Step],
    *,
    dry_run: bool,
    runner: Runner,
    echo: Callable[[str], object] | None = None,
) -> list[str]:
    """Do (or, dry, only list) ``steps``; returns them as shell lines and ``# `` comments.

    A failing command with ``check`` raises :class:`~pullman.errors.PullmanError` with the
    tool's own message; one without is reported in a comment and the plan goes on.
    """
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if echo is not None:
            echo(line)

    for step in steps:
        match step:
            case Note(text):
                say(f"# {text}")
            case Mkdir(path):
                if not path.is_dir():
                    say(shlex.join(["mkdir", "-p", str(path)]))
                    if not dry_run:
                        _storage(path, path.mkdir, parents=True, exist_ok=True)
            case Write(path, data):
                say(f"# {'would write' if dry_run else 'wrote'} {path} ({len(data)} bytes)")
                if not dry_run:
                    write_atomic(path, data)
            case Remove(path):
                say(shlex.join(["rm", "-f", str(path)]))
                if not dry_run:
                    _storage(path, path.unlink, missing_ok=True)
            case Run(argv, check):
                say(shlex.join(argv))
                result = RunResult(0, "", "") if dry_run else runner(argv)
                if result.returncode != 0 and check:
                    raise _command_failed(argv, result)
                if result.returncode != 0:
                    say(f"# (that failed, which is fine here: {_last_line(result)})")
    return lines


class ServiceStatus(NamedTuple):
    manager: Manager
    installed: bool
    """Whether the service file exists."""
    path: Path
    state: str
    """``active``/``inactive``/``failed``... (systemd), ``running``/``not loaded``... (launchd)."""
    enabled: bool | None
    """systemd: starts at login; launchd: loaded (``None`` when the manager did not answer)."""
    pid: int | None
    commands: list[str]

    def to_json(self) -> dict[str, Any]:
        data = self._asdict()
        data["path"] = str(self.path)
        return data


def status(
    platform: str | None = None,
    *,
    unit: Unit = DAEMON,
    host: Host | None = None,
    runner: Runner = run_command,
) -> ServiceStatus:
    """Ask the service manager how the service is doing (read-only commands)."""
    host = host or Host.current(platform, unit)
    installed = host.service_file.exists()
    argv: tuple[str, ...]
    if host.manager == "systemd":
        argv = (
            "systemctl",
            "--user",
            "show",
            host.unit.unit_name,
            "--property=ActiveState,MainPID,UnitFileState",
        )
        result = runner(argv)
        props = _properties(result.stdout) if result.returncode == 0 else {}
        state = props.get("ActiveState") or _unknown(result)
        file_state = props.get("UnitFileState")
        enabled = None if not props else file_state in ("enabled", "enabled-runtime", "linked")
        pid = _pid(props.get("MainPID"))
    else:
        argv = ("launchctl", "print", f"{host.domain}/{host.unit.label}")
        result = runner(argv)
        loaded = result.returncode == 0
        found: dict[str, str] = {}
        for key, value in re.findall(r"^\s*(state|pid) = (\S+)", result.stdout, flags=re.M):
            found.setdefault(key, value)  # the service's own lines come first
        state = found.get("state", "loaded") if loaded else "not loaded"
        enabled = loaded
        pid = _pid(found.get("pid"))
    return ServiceStatus(
        host.manager, installed, host.service_file, state, enabled, pid, [shlex.join(argv)]
    )


def _properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _pid(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() and int(text) > 0 else None


def _unknown(result: RunResult) -> str:
    reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
    return f"unknown ({reason})"


def _storage(path: Path, fn: Callable[..., object], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except OSError as exc:
        raise PullmanError(
            f"cannot write {path}",
            why=exc.strerror or str(exc),
            hint="check the permissions of that directory",
        ) from exc


def _last_line(result: RunResult) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {result.returncode}"


def _command_failed(argv: Sequence[str], result: RunResult) -> PullmanError:
    why = _last_line(result)
    if result.returncode == 127:
        hint = (
            f"{argv[0]} is not installed here; run `pullman daemon` from your own service manager"
        )
    elif "bus" in why.lower() or "XDG_RUNTIME_DIR" in why:
        hint = (
            "no systemd user manager is reachable from this shell (su, sudo, a container?); "
            "log in as the user, or run `loginctl enable-linger $USER` first, then try again"
        )
    else:
        hint = "run that command yourself to see more; `--dry-run` lists every step"
    return PullmanError(f"`{shlex.join(argv)}` failed", why=why, hint=hint)


# ---------------------------------------------------------------------------- bundled templates
