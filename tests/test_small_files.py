"""Small files never wait behind a big one for connection slots (issue 17: a model's 27-byte
template, license and params layers waited 0.76 s each for the big layer's connections)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from pullman import config
from pullman.core.jobs import GetOptions
from pullman.session import Session
from pullman.testing import Simulator, make_data
from pullman.testing.faults import Fault, IgnoreRange, Stall
from pullman.testing.registry import OllamaRegistry
from pullman.transfer.slots import SMALL_FILE, SMALL_LANE, Lanes

from helpers import MiB

SMALL = [
    ("template", b"{{ .Prompt }} 27 bytes long."),
    ("license", b"MIT License\n" * 40),
    ("params", b'{"stop": ["<|eot|>"], "temperature": 0.7}'),
]


def test_small_layers_finish_while_the_big_layer_holds_every_connection(
    sim: Simulator, tmp_path: Path
) -> None:
    """One connection in the budget, held by a big layer whose every request stalls for a
    minute: the small layers still arrive (they have their own lane), long before it."""
    registry = OllamaRegistry(sim)
    big = make_data(4 * MiB, 7)
    registry.add_model(
        "library/stuck",
        layers=[("model", big), *SMALL],
        faults={"model": [Stall(times=-1, after=0, seconds=60.0)]},
    )
    # The stall watchdog (which would free the slot) waits longer than the poll below.
    env = {
        "PULLMAN_HOME": str(tmp_path),
        "PULLMAN_TRANSFER_CONNECTIONS": "1",
        "PULLMAN_TRANSFER_SPACE_MARGIN": "0",
        "PULLMAN_RECYCLE_STALL_TIMEOUT": "120",
    }
    session = Session(config.load(env=env))
    models = tmp_path / "models"
    options = GetOptions(insecure=True, ollama_dir=str(models))
    small = {hashlib.sha256(d).hexdigest(): d for _k, d in SMALL}
    landed: dict[str, bytes] = {}
    big_state = ""

    async def main() -> None:
        nonlocal big_state
        plan = await session.plan(registry.name("library/stuck"), options)
        dests = {spec.dest.name.removeprefix("sha256-"): spec.dest for spec in plan.files}
        async with anyio.create_task_group() as tg:
            tg.start_soon(session.fetch, plan, options)
            with anyio.fail_after(20):  # a poll with a deadline; the stall lasts 60 s
                while len(landed) < len(small):
                    for hex_ in small:
                        if dests[hex_].exists():  # committed (the plan moves it at the end)
                            landed[hex_] = dests[hex_].read_bytes()
                    await anyio.sleep(0.01)
            big_state = next(s.state for s in session.statistics() if s.size == len(big))
            tg.cancel_scope.cancel()

    anyio.run(main)
    assert landed == small
    assert big_state == "downloading"  # the big layer was still stuck on the only connection
    assert registry.blob(big).bytes_sent == 0


def test_lanes_route_by_known_size() -> None:
    lanes = Lanes()
    big = anyio.CapacityLimiter(8)
    assert lanes.slots(27, big) is lanes.small
    assert lanes.slots(SMALL_FILE, big) is lanes.small
    assert lanes.slots(SMALL_FILE + 1, big) is big
    assert lanes.slots(None, big) is big  # size unknown: it may be huge
    assert lanes.small.total_tokens == SMALL_LANE


@pytest.mark.parametrize("lane", [1, 3])
def test_the_small_lane_caps_its_own_connections(lane: int) -> None:
    lanes = Lanes(small_lane=lane)
    held = 0
    peak = 0

    async def one() -> None:
        nonlocal held, peak
        async with lanes.slots(100, anyio.CapacityLimiter(1)):
            held += 1
            peak = max(peak, held)
            await anyio.lowlevel.checkpoint()
            held -= 1

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)

    anyio.run(main)
    assert peak == lane


def _fetch_model(sim: Simulator, tmp_path: Path, registry: OllamaRegistry, name: str) -> None:
    env = {"PULLMAN_HOME": str(tmp_path), "PULLMAN_TRANSFER_SPACE_MARGIN": "0"}
    session = Session(config.load(env=env))
    options = GetOptions(insecure=True, ollama_dir=str(tmp_path / "models"))

    async def main() -> None:
        plan = await session.plan(registry.name(name), options)
        await session.fetch(plan, options)

    anyio.run(main)


def test_a_small_file_of_known_size_comes_whole_with_its_probe(
    sim: Simulator, tmp_path: Path
) -> None:
    """One request a small layer: the probe asks for every byte and the file lands from it
    (verified, committed); a large layer still gets the one-byte probe and its ranges."""
    registry = OllamaRegistry(sim)
    big = make_data(2 * MiB, 3)
    registry.add_model("library/tiny", layers=[("model", big), *SMALL])
    _fetch_model(sim, tmp_path, registry, "library/tiny")
    blobs = tmp_path / "models" / "blobs"
    for _kind, data in SMALL:
        f = registry.blob(data)
        assert f.ranges == [(0, len(data))] and f.statuses == [206]
        assert (blobs / f"sha256-{hashlib.sha256(data).hexdigest()}").read_bytes() == data
    assert registry.blob(big).ranges[0] == (0, 1)
    assert (blobs / f"sha256-{hashlib.sha256(big).hexdigest()}").read_bytes() == big


def test_a_small_file_whose_server_ignores_ranges_comes_whole_too(
    sim: Simulator, tmp_path: Path
) -> None:
    registry = OllamaRegistry(sim)
    faults: dict[str, list[Fault]] = {kind: [IgnoreRange(times=-1)] for kind, _d in SMALL}
    registry.add_model("library/plain", layers=list(SMALL), faults=faults)
    _fetch_model(sim, tmp_path, registry, "library/plain")
    blobs = tmp_path / "models" / "blobs"
    for _kind, data in SMALL:
        assert (blobs / f"sha256-{hashlib.sha256(data).hexdigest()}").read_bytes() == data
        assert registry.blob(data).statuses == [200]  # the whole file, from the probe
