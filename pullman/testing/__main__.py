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

from pullman.testing.faults import Reset, Stall, Status, Throttle
from pullman.testing.files import make_data
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
    from pullman.config import parse_size

    return parse_size(text)


def build(args: argparse.Namespace) -> Simulator:
    sim = Simulator(host=args.host, port=args.port, cdn_port=args.cdn_port)
    data = make_data(args.size, args.seed)
    profile = args.profile
    if profile == "clean":
        sim.add_file(args.name, data)
    elif profile == "demo":
        sim.add_file(
            args.name,
            data,
            via_cdn=True,
            cdn_expires=20.0,
            throttle=Throttle(burst=16 * MiB, rate=256 << 10, peak=6 * MiB),
            faults=[
                Stall(after=256 << 10, seconds=30, on=(6,)),
                Reset(after=2 * MiB, chance=0.04, seed=args.seed),
                Status(code=503, chance=0.03, seed=args.seed + 1),
            ],
        )
    elif profile == "burst":
        sim.add_file(args.name, data, throttle=Throttle(burst=24 * MiB, rate=3 * MiB))
    elif profile == "crawl":
        sim.add_file(args.name, data, throttle=Throttle(burst=4 * MiB, rate=512 << 10))
    return sim


def info(sim: Simulator) -> dict[str, object]:
    return {
        "origin": sim.origin.url,
        "cdn": sim.cdn.url,
        "files": {
            name: {"url": sim.url(name), "size": f.size, "sha256": f.sha256}
            for name, f in sim.files.items()
        },
    }


async def serve(sim: Simulator, info_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        line = json.dumps(info(sim))
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
        epilog="profiles: " + "; ".join(f"{k}: {v}" for k, v in PROFILES.items()),
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
    sim = build(args)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(sim, args.info_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
