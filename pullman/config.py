"""Settings: defaults, then ``pullman.toml``, then ``PULLMAN_*`` environment, then flags.

Built once at the edge (the CLI or the daemon) and passed down as narrow frozen objects
(:class:`~pullman.transfer.config.TransferConfig`, paths). Unknown keys are errors, so a typo in
the config file is reported instead of silently ignored.

``pullman.toml``::

    [transfer]
    connections = 8
    piece_size = "32MiB"

    [recycle]
    stall_timeout = 15
    pause = 0.1

    [schedule]
    connections = 16
    limit = "20MB/s"
    window = "01:00-07:00"

    [hooks]
    on_done = "notify.sh"        # PULLMAN_JOB, _REF, _STATE, _PATH in its environment; no shell
    on_failed = "sh -c 'echo \"$PULLMAN_REF failed\" >> ~/failed.txt'"
    notify = true                # a desktop notification (notify-send, osascript)
    timeout = 60                 # seconds a hook may run before it is killed

    [network]
    proxy = "http://proxy.example:3128"   # else HTTPS_PROXY / HTTP_PROXY / ALL_PROXY; "none"
    no_proxy = "localhost,127.0.0.1,.lan"   # else NO_PROXY

Environment: ``PULLMAN_<SECTION>_<KEY>``, e.g. ``PULLMAN_TRANSFER_CONNECTIONS=16``.
``PULLMAN_HOME`` moves all of pullman's state (data, config, index) under one directory.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from pullman.core.hooks import parse_command
from pullman.core.mirrors import parse_mirror
from pullman.core.proxies import Proxies
from pullman.core.units import parse_rate, parse_size
from pullman.core.windows import Window
from pullman.errors import UsageError
from pullman.fsio import disk_errors
from pullman.transfer.config import TransferConfig
from pullman.transfer.recycle import RecycleConfig

SECTIONS = ("transfer", "recycle", "schedule", "network", "stores", "sources", "hooks")
_SIZE_KEYS = {
    "piece_size",
    "min_piece",
    "write_block",
    "journal_bytes",
    "journal_from",
    "space_margin",
    "request_bytes",
    "min_request_bytes",
}


@dataclass(frozen=True)
class ScheduleConfig:
    """``[schedule]``: how the scheduler shares the machine between jobs."""

    connections: int = 16
    """Connections open at once, over every job (the global budget)."""
    per_host: int = 8
    """Connections open at once to any one host."""
    jobs: int = 4
    """Jobs downloading at once."""
    limit: str = "off"
    """Global bandwidth cap, e.g. "20MB/s" (``pullman limit`` changes it at runtime)."""
    window: str = "always"
    """Default time window for jobs, e.g. "01:00-07:00"."""
    disk_retry: float = 60.0
    """Seconds between checks of free space for a job waiting for it."""
    network_retry: float = 30.0
    """Seconds before a job that could not reach its host (no network) tries again."""

    def __post_init__(self) -> None:
        if self.connections < 1 or self.per_host < 1 or self.jobs < 1:
            raise ValueError("connections, per_host and jobs must be >= 1")
        parse_rate(self.limit, what="[schedule] limit")
        Window.parse(self.window)


@dataclass(frozen=True)
class NetworkConfig:
    """``[network]``: the proxy for every request (over the environment's), and the hosts
    reached directly. ``None``: take the environment's (``HTTPS_PROXY``, ``NO_PROXY``, ...)."""

    proxy: str | None = None
    no_proxy: str | None = None


@dataclass(frozen=True)
class StoresConfig:
    """``[stores]``: where an app's store is when it is not where it is found by default
    (``--lmstudio-dir`` wins). Ollama's is ``OLLAMA_MODELS``, as for Ollama itself."""

    lmstudio: str | None = None


@dataclass(frozen=True)
class SourcesConfig:
    """``[sources]``: mirrors asked before the upstream (``pullman serve`` on another box, a
    registry), and the file holding a token for them (read when a job runs, never stored)."""

    mirrors: tuple[str, ...] = ()
    mirror_token_file: str | None = None

    def __post_init__(self) -> None:
        for mirror in self.mirrors:
            parse_mirror(mirror)

    def token(self) -> str | None:
        """The mirror token, read from its file now (so the daemon reads its own)."""
        if self.mirror_token_file is None:
            return None
        path = Path(self.mirror_token_file).expanduser()
        with disk_errors(path):
            token = path.read_text().strip()
        if not token or any(ch.isspace() for ch in token):
            raise UsageError(f"{path} does not hold a token", hint="one word, on one line")
        return token


@dataclass(frozen=True)
class HooksConfig:
    """``[hooks]``: commands run when a job ends (``--on-done`` / ``--on-failed`` win), a desktop
    notification, and how long a hook may run before it is killed."""

    on_done: str | None = None
    on_failed: str | None = None
    notify: bool = False
    timeout: float = 60.0

    def __post_init__(self) -> None:
        for name in ("on_done", "on_failed"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a command line (a string)")
                parse_command(value, f"[hooks] {name}")
        if not self.timeout > 0:
            raise ValueError("timeout must be > 0 seconds")


@dataclass(frozen=True)
class Paths:
    data: Path
    config_file: Path

    @property
    def downloads(self) -> Path:
        return self.data / "downloads"

    @property
    def index(self) -> Path:
        return self.data / "index.db"

    @property
    def control(self) -> Path:
        """A directory the daemon watches: touching ``wake`` in it wakes the daemon."""
        return self.data / "control"

    @property
    def daemon_lock(self) -> Path:
        return self.data / "daemon.lock"

    @property
    def api_socket(self) -> Path:
        """The daemon's HTTP API (``0600``): the CLI's channel to it while it runs."""
        return self.data / "daemon.sock"

    def ensure(self) -> Path:
        """The state directory, created private to the user (0700) if it is not there yet."""
        if not self.data.exists():
            self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data.chmod(0o700)  # mkdir's mode is filtered by the umask
        return self.data

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Paths:
        env = os.environ if env is None else env
        home = env.get("PULLMAN_HOME")
        if home:
            base = Path(home).expanduser()
            data, config_dir = base, base
        else:
            data = Path(platformdirs.user_data_dir("pullman", appauthor=False))
            config_dir = Path(platformdirs.user_config_dir("pullman", appauthor=False))
        config_file = Path(env.get("PULLMAN_CONFIG") or config_dir / "pullman.toml").expanduser()
        return cls(data=data, config_file=config_file)


@dataclass(frozen=True)
class Settings:
    paths: Paths
    transfer: TransferConfig = field(default_factory=TransferConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    stores: StoresConfig = field(default_factory=StoresConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    hooks: HooksConfig = field(default_factory=HooksConfig)


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    name = f"[{section}] {key}"
    if key in _SIZE_KEYS:
        return parse_size(value, what=name)
    kind = type(default)
    if kind is tuple:  # a TOML list, or comma-separated in the environment
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(isinstance(v, str) for v in items):
            raise UsageError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(v.strip() for v in items if v.strip())
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false"):
            return value.lower() in ("1", "true", "yes", "on")
        raise UsageError(f"{name}: expected true or false, got {value!r}")
    try:
        if kind is int:
            return int(value)
        if kind is float:
            return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{name}: expected a number, got {value!r}") from None
    return value


def _apply(obj: Any, section: str, values: Mapping[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(obj) if f.name not in ("recycle", "proxies")}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise UsageError(
                f"unknown setting [{section}] {key}",
                hint=f"known settings in [{section}]: {', '.join(sorted(known))}",
            )
        changes[key] = _coerce(section, key, value, getattr(obj, key))
    try:
        return dataclasses.replace(obj, **changes)
    except ValueError as exc:
        raise UsageError(f"[{section}]: {exc}") from None


def _from_env(env: Mapping[str, str], section: str, obj: Any) -> dict[str, str]:
    prefix = f"PULLMAN_{section.upper()}_"
    names = {f.name for f in dataclasses.fields(obj)}
    out = {}
    for key, value in env.items():
        if key.startswith(prefix):
            name = key[len(prefix) :].lower()
            if name not in names:
                raise UsageError(f"unknown setting in environment variable {key}")
            out[name] = value
    return out


def load(
    *,
    env: Mapping[str, str] | None = None,
    transfer: Mapping[str, Any] | None = None,
    recycle: Mapping[str, Any] | None = None,
    schedule: Mapping[str, Any] | None = None,
) -> Settings:
    """Settings from every layer; ``transfer`` / ``recycle`` are the command-line overrides."""
    env = os.environ if env is None else env
    paths = Paths.from_env(env)
    doc: dict[str, Any] = {}
    try:
        text = paths.config_file.read_text() if paths.config_file.exists() else ""
        doc = tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read config file {paths.config_file}",
            why=str(exc),
            hint="fix the file (TOML syntax) or its permissions, or move it away",
        ) from None
    for section in doc:
        if section not in SECTIONS:
            raise UsageError(f"unknown section [{section}] in {paths.config_file}")
    rec = RecycleConfig()
    for layer in (doc.get("recycle", {}), _from_env(env, "recycle", rec), recycle or {}):
        rec = _apply(rec, "recycle", layer)
    net = NetworkConfig()
    for layer in (doc.get("network", {}), _from_env(env, "network", net)):
        net = _apply(net, "network", layer)
    proxies = Proxies.from_env(env, proxy=net.proxy, no_proxy=net.no_proxy)
    tc = TransferConfig(recycle=rec, proxies=proxies)
    for layer in (doc.get("transfer", {}), _from_env(env, "transfer", tc), transfer or {}):
        tc = _apply(tc, "transfer", layer)
    sc = ScheduleConfig()
    for layer in (doc.get("schedule", {}), _from_env(env, "schedule", sc), schedule or {}):
        sc = _apply(sc, "schedule", layer)
    st = StoresConfig()
    for layer in (doc.get("stores", {}), _from_env(env, "stores", st)):
        st = _apply(st, "stores", layer)
    so = SourcesConfig()
    for layer in (doc.get("sources", {}), _from_env(env, "sources", so)):
        so = _apply(so, "sources", layer)
    hk = HooksConfig()
    for layer in (doc.get("hooks", {}), _from_env(env, "hooks", hk)):
        hk = _apply(hk, "hooks", layer)
    return Settings(paths=paths, transfer=tc, schedule=sc, stores=st, sources=so, hooks=hk)
