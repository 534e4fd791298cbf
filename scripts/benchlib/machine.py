"""What the bench ran on: CPU, cores, RAM, kernel, the temp dir's disk, tool versions."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any


def _first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else "?"


def _cpuinfo() -> dict[str, str]:
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key and key not in info:
                info[key] = value.strip()
    return info


def _meminfo_total() -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def _mount_of(path: Path) -> tuple[str, str, str]:
    """(device, fstype, mount point) of the filesystem holding ``path``."""
    best = ("?", "?", "/")
    real = str(path.resolve())
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            inside = real == mnt or real.startswith(mnt.rstrip("/") + "/")
            if inside and len(mnt) >= len(best[2]):
                best = (dev, fstype, mnt)
    return best


def _rotational(device: str) -> str:
    name = Path(device).name
    for cand in (name, name.rstrip("0123456789"), name.split("p")[0]):
        p = Path(f"/sys/block/{cand}/queue/rotational")
        if p.exists():
            rot = p.read_text().strip() == "1"
            return "rotational, says the kernel" if rot else "non-rotational, says the kernel"
    return "?"


def describe(workdir: Path, tools: dict[str, str | None]) -> dict[str, Any]:
    cpu = _cpuinfo()
    dev, fstype, mnt = _mount_of(workdir)
    usage = shutil.disk_usage(workdir)
    versions: dict[str, str] = {}
    if tools.get("nginx"):
        versions["nginx"] = _first_line([str(tools["nginx"]), "-v"])
    if tools.get("aria2c"):
        versions["aria2c"] = _first_line([str(tools["aria2c"]), "--version"])
    versions["curl"] = " ".join(_first_line(["curl", "--version"]).split()[:3])
    versions["openssl"] = _first_line(["openssl", "version"])
    versions["python"] = platform.python_version()
    for dist in ("pullman", "huggingface_hub", "httpx2"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    flags = cpu.get("flags", "").split()
    return {
        "cpu": cpu.get("model name", platform.processor() or "?"),
        "cores": os.cpu_count(),
        "sha_extensions": "sha_ni" in flags or "sha2" in cpu.get("Features", ""),
        "ram_bytes": _meminfo_total(),
        "kernel": platform.release(),
        "os": _pretty_os(),
        "workdir": str(workdir),
        "disk": {
            "device": dev,
            "fstype": fstype,
            "mount": mnt,
            "kind": _rotational(dev),
            "size_bytes": usage.total,
            "free_bytes": usage.free,
        },
        "versions": versions,
        "load_at_start": list(os.getloadavg()),
    }


def _pretty_os() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.system()
