"""Pull-through: a file read while the engine downloads it, and ``pullman serve --pull-through``
costing the upstream one download however many clients ask.

The engine side runs in-process against the simulator (real sockets): readers of a
:class:`~pullman.transfer.landing.Landing` get each range once its bytes are on disk, and fail
when the download fails. The server side runs the real ``pullman serve`` command against a
throttled simulator registry, with concurrent plain-HTTP clients.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from pullman.errors import NetworkError, NotFound, PullmanError
from pullman.testing import FlipByte, Simulator, Status, Throttle, make_data
from pullman.transfer.engine import Transfer
from pullman.transfer.landing import CHUNK, Landing

from helpers import KiB, MiB, fast_config, spec_for

# ---------------------------------------------------------------------- the engine side


def run_bounded(main: Callable[[], Awaitable[None]], seconds: float) -> None:
    async def bounded() -> None:
        with anyio.fail_after(seconds):
            await main()

    anyio.run(bounded)


async def _read(landing: Landing, start: int, end: int | None) -> bytes:
    return b"".join([chunk async for chunk in landing.read(start, end)])


def test_readers_get_each_range_while_the_file_downloads(sim: Simulator, tmp_path: Path) -> None:
    data = make_data(3 * MiB, 1)
    sim.add_file("f", data, throttle=Throttle(rate=2 * MiB, per="request"))
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    seen: dict[str, object] = {}

    async def reader(name: str, start: int, end: int | None) -> None:
        assert landing.available(start) == start  # nothing of it is written yet: it waits
        got = await _read(landing, start, end)
        seen[name] = (got, landing.state)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(transfer.run)
            tg.start_soon(reader, "all", 0, None)
            tg.start_soon(reader, "tail", len(data) - 100, len(data))
            tg.start_soon(reader, "middle", MiB + 7, 2 * MiB)

    run_bounded(main, 60)
    assert seen["all"][0] == data  # type: ignore[index]
    assert seen["tail"][0] == data[-100:]  # type: ignore[index]
    assert seen["middle"][0] == data[MiB + 7 : 2 * MiB]  # type: ignore[index]
    # The short ranges were answered before the whole file was committed.
    assert "writing" in (seen["tail"][1], seen["middle"][1])  # type: ignore[index]
    assert (tmp_path / "out" / "file.bin").read_bytes() == data
    assert sim.total_bytes_sent() < len(data) + 64 * KiB  # readers cost the upstream nothing


def test_a_reader_after_the_commit_reads_the_committed_file_in_bounded_chunks(
    sim: Simulator, tmp_path: Path
) -> None:
    data = make_data(2 * MiB + 5, 2)
    sim.add_file("f", data)
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)

    async def main() -> list[int]:
        await Transfer(spec, tmp_path / "staging", fast_config(), landing=landing).run()
        assert not list((tmp_path / "staging").glob("*.part"))
        return [len(chunk) async for chunk in landing.read(3, len(data))]

    sizes = anyio.run(main)
    assert landing.state == "done" and sum(sizes) == len(data) - 3
    assert max(sizes) <= CHUNK


def test_a_download_that_fails_fails_its_waiting_readers(sim: Simulator, tmp_path: Path) -> None:
    data = make_data(MiB, 3)
    sim.add_file("f", data, faults=[Status(code=404, times=-1)])
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    errors: list[BaseException] = []

    async def reader() -> None:
        try:
            await _read(landing, 0, len(data))
        except PullmanError as exc:
            errors.append(exc)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            with pytest.raises(NotFound):
                await transfer.run()

    run_bounded(main, 30)
    assert landing.state == "failed"
    assert len(errors) == 1 and isinstance(errors[0], NotFound)


def test_data_thrown_away_after_a_bad_digest_voids_a_reader_that_had_some(
    sim: Simulator, tmp_path: Path
) -> None:
    data = make_data(2 * MiB, 4)
    # The first copy is corrupt near its end: the engine hashes it, throws it away, fetches again.
    sim.add_file("f", data, faults=[FlipByte(offset=len(data) - 10, times=1)])
    spec = spec_for(sim.url("f"), tmp_path, data)
    landing = Landing(spec)
    outcome: dict[str, object] = {}

    async def slow() -> None:  # one chunk of the bad run, then it dawdles past the restart
        chunks = landing.read(0, None)
        first = await chunks.__anext__()
        while landing.epoch == 0:
            await landing.changed()
        try:
            async for _ in chunks:
                pass
        except NetworkError as exc:
            outcome["slow"] = (first, exc)

    async def fresh() -> None:  # starts after the restart: reads only the good run
        while landing.epoch == 0:
            await landing.changed()
        outcome["fresh"] = await _read(landing, 0, None)

    async def main() -> None:
        transfer = Transfer(spec, tmp_path / "staging", fast_config(), landing=landing)
        async with anyio.create_task_group() as tg:
            tg.start_soon(slow)
            tg.start_soon(fresh)
            await transfer.run()

    run_bounded(main, 60)
    assert landing.epoch == 1  # started over once
    first, error = outcome["slow"]  # type: ignore[misc]
    assert first == data[: len(first)] and "started over" in str(error)
    assert outcome["fresh"] == data
    assert (tmp_path / "out" / "file.bin").read_bytes() == data
