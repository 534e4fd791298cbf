"""pullman's simulator in its own process, for the bench (``python simserver.py SPEC.json``).

- ``lossy`` / ``decay-sim`` files are served by the simulator itself at ``/files/<name>``.
- An Ollama registry (``pullman.testing.registry.OllamaRegistry``) and a Hub
  (``pullman.testing.hub.HubSimulator``) answer the metadata; their data redirects (the
  registry's 307 for a blob, the Hub's 302 for an LFS file) point at nginx instead of the
  simulator's CDN: :class:`BenchSimulator` maps those files' names to nginx URLs.
- With ``hub_many``, the Hub also has issue 17's 50-file repo and a 1-file one
  (:mod:`benchlib.scale`), served by the simulator's own CDN.
- ``GET /_bench/stats`` returns and resets connection counters; ``GET /_bench/rearm`` re-arms
  the lossy files' faults (same seeds), so every contender meets the same dice.

It writes a JSON description to ``SPEC["info_file"]`` when it is ready, and serves until
SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from pullman.testing.faults import ClientCap, Fault, Reset, Throttle
from pullman.testing.hub import HubSimulator
from pullman.testing.registry import OllamaRegistry
from pullman.testing.server import Request, send_simple
from pullman.testing.simulator import Simulator

from benchlib.cases import AGGREGATE_CAP
from benchlib.scale import MANY_REPO, ONE_REPO, many_files

MiB = 1 << 20


def lossy_faults(seed: int) -> list[Fault]:
    return [
        Reset(after=1 * MiB, chance=0.10, seed=seed),
        Reset(after=4 * MiB, chance=0.15, seed=seed + 1),
        Reset(after=16 * MiB, chance=0.25, seed=seed + 2),
    ]


def decay_throttle() -> Throttle:
    return Throttle(burst=16 * MiB, rate=4 * MiB, per="connection", decay=10.0, floor=1 * MiB)


class BenchSimulator(Simulator):
    """Data redirects for the files in :attr:`redirects` go to nginx, not to the CDN."""

    def __init__(self, host: str) -> None:
        super().__init__(host=host)
        self.redirects: dict[str, str] = {}

    def signed_url(self, name: str, expires_in: float | None) -> str:
        target = self.redirects.get(name)
        return target if target is not None else super().signed_url(name, expires_in)


def _add_files(
    sim: BenchSimulator, files: list[dict[str, Any]], seed: int, out: dict[str, Any]
) -> list[str]:
    """The simulator profiles' files; returns the lossy ones' names (re-armed per run)."""
    lossy: list[str] = []
    for f in files:
        data = Path(f["path"]).read_bytes()
        if f["profile"] == "lossy":
            sim_file = sim.add_file(f["name"], data, faults=lossy_faults(seed))
            lossy.append(f["name"])
        elif f["profile"] == "decay-sim":
            sim_file = sim.add_file(f["name"], data, throttle=decay_throttle())
        elif f["profile"] == "aggregate":
            sim_file = sim.add_file(
                f["name"], data, throttle=Throttle(cap=ClientCap(AGGREGATE_CAP))
            )
        elif f["profile"] == "full":  # unthrottled, fault-free: pullman-ref's reference
            sim_file = sim.add_file(f["name"], data)
        else:
            raise ValueError(f"unknown simulator profile {f['profile']!r}")
        sim_file.__dict__["sha256"] = f["sha256"]  # a cached_property: skip hashing again
        out["files"][f["name"]] = f["name"]
    return lossy


def build(spec: dict[str, Any]) -> tuple[BenchSimulator, dict[str, Any]]:
    sim = BenchSimulator(spec.get("host", "127.0.0.1"))
    seed = int(spec.get("seed", 1))
    out: dict[str, Any] = {"files": {}}
    lossy = _add_files(sim, spec.get("files", []), seed, out)

    ollama = spec.get("ollama")
    if ollama is not None:
        registry = OllamaRegistry(sim, cdn_expires=None)
        data = Path(ollama["path"]).read_bytes()
        registry.add_model(ollama["repo"], layers=[("model", data)])
        blob = registry.blob(ollama["sha256"])
        sim.redirects[blob.name] = ollama["redirect"]
        out["ollama"] = {"repo": ollama["repo"]}  # the name needs the port: see serve()

    hub_spec, many = spec.get("hub"), spec.get("hub_many")
    hub = HubSimulator(sim, cdn_expires=None, page_size=1000) if hub_spec or many else None
    if hub is not None and many is not None:  # goal 4's 50-file repo, and a 1-file one
        files = many_files(int(many["count"]))
        hub.add_repo(MANY_REPO, files)
        hub.add_repo(ONE_REPO, dict(list(files.items())[:1]))
    if hub is not None and hub_spec is not None:
        data = Path(hub_spec["path"]).read_bytes()
        hub.add_repo(hub_spec["repo"], {hub_spec["filename"]: data})
        hub_file = hub.file(hub_spec["repo"], hub_spec["filename"])
        sim.redirects[hub_file.sim_file.name] = hub_spec["redirect"]
        out["hub"] = {"repo": hub_spec["repo"], "filename": hub_spec["filename"]}

    async def stats(request: Request) -> None:
        doc = {}
        for origin in (sim.origin, sim.cdn):
            doc[origin.name] = {
                "connections": origin.connections,
                "max_active": origin.max_active,
                "active": origin.active,
            }
            origin.connections = 0
            origin.max_active = origin.active
        await send_simple(request, 200, json.dumps(doc).encode())

    async def rearm(request: Request) -> None:
        for name in lossy:
            sim.files[name].faults = lossy_faults(seed)
            sim.files[name].requests = 0
        await send_simple(request, 200, b"{}")

    sim.origin.route("GET", r"/_bench/stats", stats)
    sim.origin.route("GET", r"/_bench/rearm", rearm)
    return sim, out


async def serve(sim: BenchSimulator, out: dict[str, Any], info_file: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        out["origin"] = sim.origin.url
        out["cdn"] = sim.cdn.url
        out["ports"] = [sim.origin.port, sim.cdn.port]
        if "ollama" in out:
            host = sim.origin.url.removeprefix("http://")
            out["ollama"]["model"] = f"{host}/{out['ollama']['repo']}:latest"
        tmp = info_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(out) + "\n")
        tmp.replace(info_file)

    async with asyncio.TaskGroup() as tg:
        server = tg.create_task(sim.serve(ready=ready))
        await stop.wait()
        server.cancel()


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    sim, out = build(spec)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sim, out, Path(spec["info_file"])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
