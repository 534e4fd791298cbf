"""This machine's memory budget for running a model: RAM, NVIDIA VRAM, Apple unified memory.

- Linux: ``MemTotal`` of ``/proc/meminfo``. Not ``MemAvailable``: a download is for later
  runs, and what other programs hold right now says little about then; a model needs its
  weights resident (llama.cpp maps them; pages that do not fit are read again from disk on
  every token, the "crawls from swap" case). ``--memory`` names another figure.
- NVIDIA: the total memory of every GPU NVML reports (``nvidia-ml-py``, the ``nvidia``
  extra; llama.cpp splits layers across devices), when the bindings import and a GPU answers.
- macOS: ``hw.memsize`` (``sysctl``), and the share Metal lets the GPU wire
  (:func:`pullman.core.gguf_fit.apple_gpu_share`; ``iogpu.wired_limit_mb`` when set).

Anything that cannot be read leaves that part unknown; with nothing known the budget is
unknown and ``get`` behaves as it did before fit checks.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from pathlib import Path

from pullman.core.gguf_fit import Budget, apple_gpu_share, meminfo_bytes

log = logging.getLogger("pullman.machine")

MEMINFO = Path("/proc/meminfo")


def linux_ram(meminfo: Path = MEMINFO) -> int | None:
    try:
        return meminfo_bytes(meminfo.read_text())
    except OSError:
        return None


def nvidia_vram() -> int | None:
    """The summed total memory of the NVIDIA GPUs, or None (no bindings, driver or GPU)."""
    try:
        import pynvml  # type: ignore[import-not-found, unused-ignore]  # nvidia-ml-py, optional
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        count = int(pynvml.nvmlDeviceGetCount())
        total = sum(
            int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(i)).total)
            for i in range(count)
        )
    except Exception as exc:  # any NVML failure leaves the GPU unknown
        log.debug("NVML: %s", exc)
        total = 0
    with contextlib.suppress(Exception):
        pynvml.nvmlShutdown()
    return total or None


def _sysctl(name: str) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed program and a fixed key
            ["/usr/sbin/sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return int(text) if out.returncode == 0 and text.isdigit() else None


def mac_budget() -> Budget:
    ram = _sysctl("hw.memsize")
    if ram is None:
        return Budget(None, source="this Mac")
    share = apple_gpu_share(ram, _sysctl("iogpu.wired_limit_mb"))
    return Budget(ram, gpu_share=share, source="this Mac")


def this_machine() -> Budget:
    """The budget of the machine pullman runs on."""
    if sys.platform == "darwin":
        return mac_budget()
    ram = linux_ram() if sys.platform.startswith("linux") else None
    return Budget(ram, vram=nvidia_vram(), source="this machine")
