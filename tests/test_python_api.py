"""The Python API: ``await pullman.get(...)`` and ``pullman.get_sync(...)`` against the simulator;
progress events with the fields of ``pullman get --progress json``; errors of pullman.errors."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

import pullman
from pullman import config
from pullman.errors import IntegrityError, NotFound, PullmanError, UsageError
from pullman.index import Index
from pullman.progress import ProgressEvent
from pullman.testing import Simulator, Status, Throttle, make_data

from helpers import KiB, MiB, cli_env
from helpers import pullman as run_pullman


def settings_for(home: Path) -> config.Settings:
    return config.load(env=cli_env(home))


def test_get_downloads_with_a_progress_callback(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("model.gguf", make_data(2 * MiB, 1), throttle=Throttle(rate=2 * MiB))
    events: list[ProgressEvent] = []
    dest = tmp_path / "dl" / "model.gguf"
    download = anyio.run(
        lambda: pullman.get(
            sim.url("model.gguf"),
            output=dest,
            sha256=f.sha256,
            progress=events.append,
            progress_interval=0.05,
            settings=settings_for(tmp_path / "home"),
        )
    )
    assert dest.read_bytes() == f.data
    assert download.path == dest and download.ref == sim.url("model.gguf")
    [file] = download.files
    assert file.verified and file.status == "downloaded" and file.size == 2 * MiB
    assert file.digest == f"sha256:{f.sha256}"
    progress = [e for e in events if e["event"] == "progress"]
    assert len(progress) >= 2, events  # it took about a second: several ticks
    dones = [e["done"] for e in progress]
    assert dones == sorted(dones) and dones[0] < 2 * MiB
    [end] = [e for e in events if e["event"] == "end"]
    assert end["done"] == end["size"] == 2 * MiB and end["percent"] == 100.0
    # the job is in the index, done, like a foreground `pullman get`'s
    index = Index.open(tmp_path / "home" / "index.db")
    job = index.job(download.job)
    index.close()
    assert job is not None and job.state == "done"


def test_events_have_the_fields_of_get_progress_json(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("a.bin", make_data(MiB, 2), throttle=Throttle(rate=256 * KiB))
    r = run_pullman(
        "get", sim.url("a.bin"), "--sha256", f.sha256, "-o", str(tmp_path / "cli.bin"),
        "--json", "--progress", "json", home=tmp_path / "home",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stderr.splitlines() if x.startswith("{")]
    assert lines and {x["event"] for x in lines} == {"progress", "end"}
    assert json.loads(r.stdout)[0]["verified"] is True  # --json's report is still on stdout

    events: list[ProgressEvent] = []

    async def record(event: ProgressEvent) -> None:  # an async callback is awaited
        events.append(event)

    anyio.run(
        lambda: pullman.get(
            sim.url("a.bin"),
            output=tmp_path / "api.bin",
            progress=record,
            settings=settings_for(tmp_path / "home2"),
        )
    )
    assert events
    assert {frozenset(e) for e in events} == {frozenset(x) for x in lines}
    assert set(lines[0]) == set(ProgressEvent.__annotations__)


def test_errors_are_pullman_errors(sim: Simulator, tmp_path: Path) -> None:
    sim.add_file("gone.bin", make_data(100 * KiB, 3), faults=[Status(code=404, times=-1)])
    f = sim.add_file("b.bin", make_data(100 * KiB, 4))
    settings = settings_for(tmp_path / "home")
    with pytest.raises(NotFound) as missing:
        pullman.get_sync(sim.url("gone.bin"), output=tmp_path / "x", settings=settings)
    assert missing.value.exit_code == 3
    with pytest.raises(IntegrityError):
        pullman.get_sync(
            sim.url("b.bin"), output=tmp_path / "b", sha256="0" * 64, settings=settings
        )
    with pytest.raises(UsageError):
        pullman.get_sync("hf://", settings=settings)
    with pytest.raises(UsageError, match="limit"):
        pullman.get_sync(sim.url("b.bin"), limit="fast", settings=settings)
    assert not (tmp_path / "b").exists()  # nothing unverified in place
    assert f.sha256


def test_get_sync_outside_an_event_loop_and_refused_inside(sim: Simulator, tmp_path: Path) -> None:
    f = sim.add_file("c.bin", make_data(300 * KiB, 5))
    settings = settings_for(tmp_path / "home")
    download = pullman.get_sync(sim.url("c.bin"), output=tmp_path / "c.bin", settings=settings)
    assert download.path == tmp_path / "c.bin" and (tmp_path / "c.bin").read_bytes() == f.data
    assert pullman.get_sync.__name__ == "get_sync"

    async def inside() -> None:
        pullman.get_sync(sim.url("c.bin"), output=tmp_path / "d.bin", settings=settings)

    with pytest.raises(UsageError, match="inside a running event loop") as refused:
        anyio.run(inside)
    assert isinstance(refused.value, PullmanError)


def test_a_cancelled_get_leaves_its_job_paused_and_a_second_call_resumes(
    sim: Simulator, tmp_path: Path
) -> None:
    size = 4 * MiB
    f = sim.add_file("slow.bin", make_data(size, 6), throttle=Throttle(rate=512 * KiB))
    settings = settings_for(tmp_path / "home")
    dest = tmp_path / "slow.bin"
    seen: list[ProgressEvent] = []

    async def cancel_midway() -> None:
        with anyio.move_on_after(60) as scope:

            def watch(event: ProgressEvent) -> None:
                seen.append(event)
                if event["done"] >= MiB:
                    scope.cancel()

            await pullman.get(
                sim.url("slow.bin"), output=dest, progress=watch, progress_interval=0.05,
                settings=settings,
            )  # fmt: skip

    anyio.run(cancel_midway)
    assert not dest.exists() and seen[-1]["done"] >= MiB
    index = Index.open(settings.paths.index)
    [job] = index.jobs(("paused",))
    index.close()
    assert job.bytes_done >= MiB
    sent = f.bytes_sent
    sim.files["slow.bin"].throttle = None
    download = pullman.get_sync(sim.url("slow.bin"), output=dest, settings=settings)
    assert download.job == job.id and dest.read_bytes() == f.data
    assert f.bytes_sent - sent < size  # resumed, not fetched again from the start


def test_the_config_applies_as_for_the_command(sim: Simulator, tmp_path: Path) -> None:
    """``[sources] mirrors`` and ``[stores] lmstudio`` reach the job as they do for `get`."""
    f = sim.add_file("e.bin", make_data(100 * KiB, 7))
    home = tmp_path / "home"
    home.mkdir()
    (home / "pullman.toml").write_text(
        '[sources]\nmirrors = ["http://127.0.0.1:9"]\n[stores]\nlmstudio = "/srv/lms"\n'
    )
    download = pullman.get_sync(sim.url("e.bin"), output=tmp_path / "e.bin", sha256=f.sha256,
                                settings=settings_for(home))  # fmt: skip
    index = Index.open(home / "index.db")
    job = index.job(download.job)
    index.close()
    assert job is not None
    assert job.options["mirrors"] == ["http://127.0.0.1:9"]
    assert job.options["lmstudio_dir"] == "/srv/lms"
