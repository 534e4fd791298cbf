"""``python -m pullman.testing``: run the simulator in the foreground (demo, benchmarks).

Prints one JSON line with the origin and CDN addresses and each file's URL, size and sha256
(and writes it to ``--info-file``), then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from pullman.testing.faults import Fault, Reset, Stall, Status, Throttle
from pullman.testing.files import make_data
from pullman.testing.registry import OllamaRegistry
from pullman.testing.simulator import Simulator

MiB = 1 << 20

PROFILES = {
    "clean": "no throttling, no faults",
    "demo": "a CDN that gives each connection 16 MiB at 6 MiB/s, then 256 KiB/s; signed "
    "links that expire after 20 s; random resets and 503s; one 30 s stall",
    "burst": "each connection: 24 MiB at full speed, then 3 MiB/s",
    "crawl": "each connection: 4 MiB at full speed, then 512 KiB/s",
}


def _size(text: str) -> int:
    from pullman.core.units import parse_size

    return parse_size(text)


MODEL = "library/tinyllama"
SMALL_LAYERS = [
    ("template", b"{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}"),
    ("params", b'{"stop": ["<|user|>", "<|system|>"]}'),
    ("license", b"Apache License 2.0 (a stand-in for the model's licence text)"),
]


def profile_shape(args: argparse.Namespace) -> tuple[Throttle | None, list[Fault]]:
    """Per-connection throttle and faults of a profile."""
    if args.profile == "demo":
        throttle = Throttle(burst=16 * MiB, rate=256 << 10, peak=6 * MiB)
        faults: list[Fault] = [
            Stall(after=256 << 10, seconds=30, on=(6,)),
            Reset(after=2 * MiB, chance=0.04, seed=args.seed),
            Status(code=503, chance=0.03, seed=args.seed + 1),
        ]
        return throttle, faults
    if args.profile == "burst":
        return Throttle(burst=24 * MiB, rate=3 * MiB), []
    if args.profile == "crawl":
        return Throttle(burst=4 * MiB, rate=512 << 10), []
    return None, []


def build(args: argparse.Namespace) -> tuple[Simulator, OllamaRegistry]:
    """A plain file at /files/<name>, and the same bytes as a model in an Ollama registry."""
    sim = Simulator(host=args.host, port=args.port, cdn_port=args.cdn_port)
    data = make_data(args.size, args.seed)
    throttle, faults = profile_shape(args)
    sim.add_file(
        args.name,
        data,
        throttle=throttle,
        faults=faults,
        via_cdn=args.profile == "demo",
        cdn_expires=20.0 if args.profile == "demo" else None,
    )
    registry = OllamaRegistry(sim, cdn_expires=20.0 if args.profile == "demo" else None)
    registry.add_model(
        MODEL,
        layers=[("model", data), *SMALL_LAYERS],
        throttle=throttle,
        faults={"model": list(faults)},
    )
    return sim, registry


def info(sim: Simulator, registry: OllamaRegistry) -> dict[str, object]:
    return {
        "origin": sim.origin.url,
        "cdn": sim.cdn.url,
        "files": {
            name: {"url": sim.url(name), "size": f.size, "sha256": f.sha256}
            for name, f in sim.files.items()
            if not name.startswith("blobs/")
        },
        "ollama": {"registry": registry.host, "models": [registry.name(MODEL)]},
    }


async def serve(sim: Simulator, registry: OllamaRegistry, info_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        line = json.dumps(info(sim, registry))
        if info_file is not None:
            tmp = info_file.with_suffix(".tmp")
            tmp.write_text(line + "\n")
            tmp.replace(info_file)
        print(line, flush=True)

    async with asyncio.TaskGroup() as tg:
        server = tg.create_task(sim.serve(ready=ready))
        await stop.wait()
        server.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pullman.testing",
        description="pullman's local registry / CDN simulator",
        epilog="profiles: "
        + "; ".join(f"{k}: {v}" for k, v in PROFILES.items())
        + f". The file is also the model layer of {MODEL} in an Ollama registry.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="demo")
    parser.add_argument("--size", type=_size, default=256 * MiB, help="e.g. 256MiB")
    parser.add_argument("--name", default="tiny-model-q4_k_m.gguf")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--info-file", type=Path)
    args = parser.parse_args(argv)
    sim, registry = build(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sim, registry, args.info_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
