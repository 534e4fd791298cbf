"""``scripts/bench fleet``: ``pullman serve`` against nginx, serving the same blob to a LAN.

One Ollama store holds a model whose only layer is a ``--size`` blob (default 1 GiB). nginx
serves that very file (a hard link: one inode, one page cache) with ``sendfile``, and
``pullman serve`` serves it as ``/v2/library/big/blobs/sha256:...``. Each round runs
``--clients`` concurrent ``curl`` downloads (default 4) from one server, then from the other
(alternating which goes first), every byte counted by curl, and times the batch from the first
start to the last exit. The file is read once before the first round, so both servers answer
from the page cache and the ratio compares servers, not the disk.

Reported: the median batch time per server, aggregate throughput, the servers' own CPU seconds
per GiB sent (from ``/proc/<pid>/stat``), and the target: nginx's time / serve's time >= 0.7.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import procs
from benchlib.cases import human_size
from benchlib.nginx import Nginx, find_nginx, free_port
from benchlib.options import BenchError, log

TARGET = 0.7
CHUNK = 16 << 20
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench fleet", description=__doc__.split("\n")[0])
    p.add_argument("--size", default="1G", help="blob size (K/M/G suffixes; default 1G)")
    p.add_argument("--clients", type=int, default=4, help="concurrent downloads (default 4)")
    p.add_argument("--rounds", type=int, default=3, help="rounds per server (default 3)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    p.add_argument("--workdir", help="where the store is made (default: a temp dir)")
    return p.parse_args(argv)


def parse_size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


# ---------------------------------------------------------------------------- the store


def make_store(root: Path, size: int) -> tuple[Path, str]:
    """An Ollama store with ``library/big:latest``; the blob's path and digest."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True)
    tmp = blobs / "partial"
    digest = hashlib.sha256()
    with tmp.open("wb") as f:
        left = size
        seed = hashlib.sha256(b"pullman fleet bench").digest()
        block = (seed * (CHUNK // len(seed) + 1))[:CHUNK]
        while left > 0:
            piece = block[: min(left, CHUNK)]
            block = block[1:] + block[:1]  # not one repeated page: nothing to dedupe
            f.write(piece)
            digest.update(piece)
            left -= len(piece)
    hexdigest = digest.hexdigest()
    blob = blobs / f"sha256-{hexdigest}"
    tmp.rename(blob)
    config = json.dumps({"model_format": "gguf", "model_family": "llama"}).encode()
    config_hex = hashlib.sha256(config).hexdigest()
    (blobs / f"sha256-{config_hex}").write_bytes(config)
    layer = {"mediaType": "application/vnd.ollama.image.model", "size": size}
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": f"sha256:{config_hex}",
            "size": len(config),
        },
        "layers": [{**layer, "digest": f"sha256:{hexdigest}"}],
    }
    tag = root / "manifests" / "registry.ollama.ai" / "library" / "big" / "latest"
    tag.parent.mkdir(parents=True)
    tag.write_text(json.dumps(manifest))
    return blob, f"sha256:{hexdigest}"


# ---------------------------------------------------------------------------- the servers


@dataclass
class Server:
    name: str
    url: str
    pid: int
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children that exited (nginx's workers live on)."""
    total = 0.0
    for p in [pid, *procs.descendants(pid)]:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def start_serve(store: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``pullman serve`` of ``store`` on a free loopback port; the process and its URL."""
    port = free_port()
    argv = [sys.executable, "-m", "pullman", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--ollama-dir", str(store)]
    env = {**os.environ, "PULLMAN_HOME": str(work / "pullman-home")}
    proc = procs.start(argv, env=env, stderr=work / "serve.log")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError("pullman serve exited:\n" + (work / "serve.log").read_text())
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    raise BenchError("pullman serve did not listen within 20 s")


def batch(url: str, clients: int, size: int) -> float:
    """``clients`` concurrent curl downloads of ``url``; the wall time of the batch."""
    argv = ["curl", "-s", "--http1.1", "-o", "/dev/null", "-w", "%{size_download}", url]
    start = time.monotonic()
    running = [subprocess.Popen(argv, stdout=subprocess.PIPE) for _ in range(clients)]
    outputs = [p.communicate()[0] for p in running]
    took = time.monotonic() - start
    for p, out in zip(running, outputs, strict=True):
        if p.returncode != 0 or int(out or b"0") != size:
            raise BenchError(f"curl {url}: exit {p.returncode}, {out!r} bytes of {size}")
    return took


def warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(CHUNK):
            pass


# ---------------------------------------------------------------------------- the run


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    size = parse_size(args.size)
    nginx_bin = find_nginx()
    if nginx_bin is None or shutil.which("curl") is None:
        raise BenchError("needs nginx and curl (Debian: apt-get install nginx-light curl)")
    blob, digest = make_store(work / "models", size)
    www = work / "www"
    www.mkdir()
    os.link(blob, www / "big.bin")
    warm(blob)
    nginx = Nginx(nginx_bin, work / "nginx", www, ["unthrottled"])
    nginx.start()
    assert nginx.proc is not None
    serve_proc, serve_url = start_serve(work / "models", work)
    servers = [
        Server("nginx", nginx.file_url("unthrottled", "big.bin"), nginx.proc.pid),
        Server("pullman serve", f"{serve_url}/v2/library/big/blobs/{digest}", serve_proc.pid),
    ]
    try:
        for s in servers:  # a first, untimed pass: connections, page cache, imports
            batch(s.url, 1, size)
        for r in range(args.rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:
                before = cpu_seconds(s.pid)
                s.times.append(batch(s.url, args.clients, size))
                s.cpu.append(cpu_seconds(s.pid) - before)
                log(f"    round {r + 1} {s.name}: {s.times[-1]:.2f} s")
    finally:
        nginx.stop()
        procs.kill_tree(serve_proc, term_first=3.0)
    return summarise(servers, size, args)


def summarise(servers: list[Server], size: int, args: argparse.Namespace) -> dict[str, Any]:
    sent_gib = size * args.clients / (1 << 30)
    rows = []
    for s in servers:
        median = statistics.median(s.times)
        rows.append({
            "server": s.name,
            "median_s": round(median, 3),
            "times_s": [round(t, 3) for t in s.times],
            "aggregate_MBps": round(size * args.clients / median / 1e6, 1),
            "cpu_s_per_GiB": round(statistics.median(s.cpu) / sent_gib, 3),
        })  # fmt: skip
    ratio = rows[0]["median_s"] / rows[1]["median_s"]
    status = "PASS" if ratio >= TARGET else "FAIL"
    return {
        "case": "fleet",
        "size": size,
        "clients": args.clients,
        "rounds": args.rounds,
        "servers": rows,
        "target": {
            "status": status,
            "text": f"nginx time / pullman serve time = {ratio:.2f} (>= {TARGET})",
            "ratio": round(ratio, 3),
        },
    }


def show(doc: dict[str, Any]) -> None:
    print(
        f"\n## fleet: {doc['clients']} clients x {human_size(doc['size'])}, {doc['rounds']} rounds"
    )
    print(f"{'server':<15} {'median':>8} {'MB/s':>9} {'CPU s/GiB':>10}  times")
    for r in doc["servers"]:
        times = " ".join(f"{t:.2f}" for t in r["times_s"])
        print(f"{r['server']:<15} {r['median_s']:>7.2f}s {r['aggregate_MBps']:>9.1f} "
              f"{r['cpu_s_per_GiB']:>10.3f}  {times}")  # fmt: skip
    print(f"{doc['target']['status']}: {doc['target']['text']}")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    parent = Path(args.workdir) if args.workdir else None
    work = Path(tempfile.mkdtemp(prefix="pullman-bench-fleet.", dir=parent))
    work.chmod(0o755)
    try:
        doc = run(args, work)
    finally:
        procs.kill_all()
        shutil.rmtree(work, ignore_errors=True)
    show(doc)
    if args.json == "-":
        print(json.dumps(doc, indent=2))
    elif args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if doc["target"]["status"] == "PASS" else 1
